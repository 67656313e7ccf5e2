"""benchmarks/step_time.py: AMSGrad and AdamW are also compared with torch's fused implementation of the
same algorithm, and the targets table says so (no timing asserted)."""

from __future__ import annotations

import torch
from benchmarks.step_time import REFERENCE, SAME_ALGORITHM, make_blocks, target_table


def test_blocks_step_torchs_fused_twin_of_amsgrad_and_adamw():
    params = [torch.zeros(3, requires_grad=True)]
    blocks = dict(make_blocks(params, ["amsgrad", "adamw", "msvag"], ["compiled"], torch_paths=False))
    assert SAME_ALGORITHM["amsgrad"][0] in blocks["amsgrad"] and SAME_ALGORITHM["adamw"][0] in blocks["adamw"]
    assert not any(label in blocks["msvag"] for label, _ in SAME_ALGORITHM.values())
    twin = blocks["amsgrad"][SAME_ALGORITHM["amsgrad"][0]]()
    assert isinstance(twin, torch.optim.Adam) and twin.defaults["amsgrad"] and twin.defaults["fused"]


def test_target_table_gives_the_same_algorithm_ratio():
    row = {"ratio_to_torch_fused": 1.32, "gb_per_s": 40.0, "fraction_of_probe": 1.0, "ratio_to_torch_same": 1.04}
    results = {"torch": "x", "threads": 2, "reps": 1, "load_average": [0.1, 0.1, 0.1],
               "sizes": {"50M": {"rows": {"amsgrad:compiled": row, REFERENCE: {"median_ms": 1.0, "gb_per_s": 1.0}}}}}
    table = target_table(results)
    assert "**1.32x / 40.0 / 100%** (1.04x torch's fused amsgrad)" in table
