#!/usr/bin/env bash
# benchmarks/gpu_check.sh -- one short check of adamlab on a CUDA GPU (issue 21). See benchmarks/README.md.
#
# Run from the repository root on a machine with an NVIDIA GPU and a CUDA build of torch:
#
#     ADAMLAB_DATA=/path/to/data bash benchmarks/gpu_check.sh            # ~10 minutes on one H200
#     FULL=1 ADAMLAB_DATA=/path/to/data bash benchmarks/gpu_check.sh     # + the whole deepobs reproduction
#
# It prints everything to stdout and keeps the raw files in $OUT (default gpu_check_out/):
#   0. the environment: torch, CUDA, the GPU (nvidia-smi -L);
#   1. the CUDA tests: tests/devices (runs, data, noise and checkpoints on the GPU, determinism) and
#      tests/optim/test_fast_cuda.py (the compiled kernels on CUDA), skips listed with their reasons;
#   2. the step-time benchmark at 10M, 100M and 1B parameters on the GPU, every row against
#      torch.optim.Adam(fused=True) on the same tensors (benchmarks/step_time.py --device cuda);
#   3. a batched (vmap) sweep of dissect-p1-fmnist's problem (fmnist.cnn, batch 64) at a few lrs for
#      M-SGD, M-SSD, M-SVAG and M-SSD-VA, on the GPU, with its wall time, then `adamlab export`;
#   3b. benchmarks/dissect_cost.py on the GPU (statistics per step, peak memory) and StepStats' CUDA test;
#   4. with FULL=1 only: `adamlab reproduce dissect-p1-fmnist --protocol deepobs --device cuda`, timed
#      (hours on 2 CPU cores; bounded by FULL_TIMEOUT seconds, default 3000).
# Each part has its own timeout, so one that hangs does not take the rest with it; the exit code is the
# number of parts that failed.
#
# Settings (environment): PY (the Python with adamlab installed; default .venv/bin/python if present,
# else python3), OUT, ADAMLAB_DATA (default shared/data, then ../shared/data), DEVICE (default cuda),
# STEP_SIZES (default "10M 100M 1B"), STEP_OPTIMIZERS (default "adam msvag mssd"), SWEEP_STEPS (default 937,
# one epoch), SWEEP_LRS (default 1e-4,1e-3,1e-2,1e-1).
set -u
cd "$(dirname "$0")/.."

if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
OUT=${OUT:-gpu_check_out}
DEVICE=${DEVICE:-cuda}
STEP_SIZES=${STEP_SIZES:-"10M 100M 1B"}
STEP_OPTIMIZERS=${STEP_OPTIMIZERS:-"adam msvag mssd"}
SWEEP_STEPS=${SWEEP_STEPS:-937}
SWEEP_LRS=${SWEEP_LRS:-1e-4,1e-3,1e-2,1e-1}
if [ -z "${ADAMLAB_DATA:-}" ]; then
  for d in shared/data ../shared/data; do
    if [ -d "$d" ]; then ADAMLAB_DATA=$(cd "$d" && pwd); break; fi
  done
fi
export ADAMLAB_DATA=${ADAMLAB_DATA:-}
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
failed=0

part() {  # part NAME TIMEOUT_S COMMAND...: run, time and report one part
  local name=$1 limit=$2; shift 2
  echo
  echo "=== $name (timeout ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc, wall $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

echo "=== 0. environment"
"$PY" - <<'EOF'
import torch
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| available", torch.cuda.is_available(),
      "| devices", torch.cuda.device_count())
if torch.cuda.is_available():
    print("GPU 0:", torch.cuda.get_device_name(0), "|", round(torch.cuda.get_device_properties(0).total_memory / 2**30),
          "GiB | cuDNN", torch.backends.cudnn.version())
else:
    raise SystemExit("no CUDA device: this script is for a GPU machine (the CPU tests run in the normal suite)")
EOF
[ $? -eq 0 ] || exit 99
command -v nvidia-smi >/dev/null && nvidia-smi -L
echo "ADAMLAB_DATA=${ADAMLAB_DATA:-<unset>}"

# 1. The CUDA tests (-m "" also selects tests marked slow or compile in these files).
part "1. CUDA tests" 300 "$PY" -m pytest -p no:cacheprovider -q -rs -m "" tests/devices tests/optim/test_fast_cuda.py

# 2. Step time on the GPU against torch's fused CUDA Adam.
# shellcheck disable=SC2086
part "2. step time ($STEP_SIZES) vs torch fused CUDA Adam" 420 \
  "$PY" benchmarks/step_time.py --device "$DEVICE" --sizes $STEP_SIZES --optimizers $STEP_OPTIMIZERS \
  --paths foreach compiled --reps 20 --warmup 3 --out "$OUT/step_time_cuda.json"

# 3. A batched sweep of dissect-p1-fmnist's problem at a few lrs, on the GPU.
rm -f "$OUT/p1.sqlite"
part "3. vmap sweep fmnist.cnn (dissect-p1-fmnist) x 4 methods x lrs $SWEEP_LRS, $SWEEP_STEPS steps" 420 \
  "$PY" -m adamlab.cli sweep fmnist.cnn --optimizers msgd,mssd,msvag,mssdva --lr-grid "$SWEEP_LRS" \
  --steps "$SWEEP_STEPS" --eval-every "$SWEEP_STEPS" --option eval_size=1000 --backend vmap --device "$DEVICE" \
  --store "$OUT/p1.sqlite" -q
"$PY" -m adamlab.cli export "$OUT/p1.sqlite" --format csv --out "$OUT" >/dev/null 2>&1 \
  && echo "runs table: $OUT/p1.runs.csv (backend, device, device_name, cuda_version columns)"

# 3b. What the dissection statistics cost per step on the GPU (moments, StepStats, Monitor, BackPACK when
# installed), with peak memory, and StepStats' CUDA test.
part "3b. dissect cost on $DEVICE (mlp, 2c2d, 3c3d)" 300 \
  "$PY" -W ignore -m benchmarks.dissect_cost --device "$DEVICE" --no-func --rounds 20 --skip cockpit
part "3c. StepStats on CUDA" 120 "$PY" -m pytest -p no:cacheprovider -q -rs tests/dissect/test_step_stats.py -k cuda

# 4. The whole reproduction, only when asked for.
if [ "${FULL:-0}" = "1" ]; then
  part "4. adamlab reproduce dissect-p1-fmnist --protocol deepobs --device $DEVICE" "${FULL_TIMEOUT:-3000}" \
    "$PY" -m adamlab.cli reproduce dissect-p1-fmnist --protocol deepobs --device "$DEVICE" \
    --out "$OUT/dissect-p1-fmnist-deepobs" --quiet
fi

echo
echo "=== gpu_check: $failed part(s) failed; files in $OUT/"
exit "$failed"
