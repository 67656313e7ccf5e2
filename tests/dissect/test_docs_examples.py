"""The "dissect a plain PyTorch loop" examples of README.md and docs/dissect.md run as written."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _monitor_block(path: Path) -> str:
    text = path.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    found = [b for b in blocks if "Monitor(model, optimizer" in b and "import torch" in b]
    assert found, f"{path.name}: no self-contained Monitor example"
    return found[0]


@pytest.mark.parametrize("doc", ["README.md", "docs/dissect.md"])
def test_plain_loop_example_runs(doc, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # it writes dissect.csv
    namespace: dict = {}
    exec(compile(_monitor_block(ROOT / doc), doc, "exec"), namespace)
    monitor = namespace["monitor"]
    assert [r["step"] for r in monitor.history] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert math.isfinite(monitor.history[-1]["gamma_corr/0"]) and (tmp_path / "dissect.csv").exists()
    assert capsys.readouterr().out.strip()


def test_step_stats_example_runs(capsys):
    text = (ROOT / "docs/dissect.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    found = [b for b in blocks if "StepStats()" in b and "import torch" in b]
    assert found, "docs/dissect.md: no self-contained StepStats example"
    namespace: dict = {}
    exec(compile(found[0], "docs/dissect.md", "exec"), namespace)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all(math.isfinite(float(v)) for line in lines for v in line.split())
    assert namespace["s"].eta2["2.weight"].dtype == namespace["torch"].float32
