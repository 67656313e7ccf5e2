"""adamlab optimizers under torch.distributed: 2 CPU processes (gloo) equal one process.

Each rank takes half of every global batch; DDP all-reduces (averages) the gradients, so every rank
steps with the gradient of the mean loss over the global batch. The element-wise rules then see the
same gradient as a single process on the whole batch, and the parameters must agree to rounding --
also when the optimizer state is sharded (ZeroRedundancyOptimizer: whole tensors per rank; FSDP2
``fully_shard``: row shards of every tensor), because every rule acts on each element alone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ddp_worker  # noqa: E402


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(out_dir: Path) -> tuple[bool, list[str]]:
    """Run the two ranks; (all exited 0, their outputs)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(HERE / "ddp_worker.py"), str(rank), "2", str(port), str(out_dir)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for rank in range(2)]
    outputs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outputs.append(out.decode(errors="replace"))
    return all(p.returncode == 0 for p in procs), outputs


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed/gloo unavailable")
def test_ddp_zero_fsdp2_two_processes_match_single_process(tmp_path):
    ok, outputs = _launch(tmp_path)
    if not ok:  # one retry with a fresh port: the free port can be taken by another process meanwhile
        ok, outputs = _launch(tmp_path)
    assert ok, "\n".join(outputs)

    for name, (cls, kwargs) in ddp_worker.optimizers().items():
        model = ddp_worker.make_model()
        start = {k: v.clone() for k, v in model.state_dict().items()}
        ddp_worker.train(model, cls(model.parameters(), **kwargs))
        for mode in ddp_worker.MODES:
            got = torch.load(tmp_path / f"{mode}-{name}.pt", weights_only=True)
            assert got.keys() == model.state_dict().keys()
            for key, value in model.state_dict().items():
                assert not torch.equal(value, start[key]), f"{name}: {key} did not move"
                torch.testing.assert_close(got[key], value, rtol=1e-10, atol=1e-12, msg=f"{mode} {name}: {key}")
