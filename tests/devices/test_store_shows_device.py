"""The store records where a run ran; ``export`` and ``report`` show it."""

from __future__ import annotations

import csv

from adamlab import problems
from adamlab.analysis.export import export_store
from adamlab.analysis.report import build_report
from adamlab.analysis.report_page import render_html
from adamlab.runner.sweep import sweep
from adamlab.runner.train import execute
from adamlab.runs.config import make_config
from adamlab.store import Store

GPU = {"backend": "vmap", "block_size": 4, "device": "cuda:0", "device_type": "cuda",
       "device_name": "NVIDIA H200", "torch": "2.13.0", "cuda": "12.8", "deterministic": False}


def _store_with_a_gpu_run(path):
    sweep("quadratic.noisy", ["adam"], [1e-2], 1, 6, path, quiet=True, eval_every=3)
    problem = problems.get("quadratic.noisy")
    config = make_config(problem, "adam", {"lr": 1e-2}, 1, 6, eval_every=3)
    result = execute(config, problem)
    result.execution = dict(GPU)  # as a run on a GPU records it
    with Store(path) as db:
        db.plan([config])
        db.record_many([result])
    return config.run_id


def test_the_execution_record_holds_the_device(tmp_path):
    path = tmp_path / "s.sqlite"
    gpu_id = _store_with_a_gpu_run(path)
    with Store(path) as db:
        by_id = {r["run_id"]: r["execution"] for r in db.runs()}
    assert by_id[gpu_id] == GPU
    assert [e for i, e in by_id.items() if i != gpu_id] == [{"backend": "serial", "block_size": 1}]


def test_export_has_backend_device_and_cuda_columns(tmp_path):
    path = tmp_path / "s.sqlite"
    gpu_id = _store_with_a_gpu_run(path)
    runs_path, _ = export_store(path, tmp_path / "out")
    with open(runs_path, newline="") as fh:
        rows = {r["run_id"]: r for r in csv.DictReader(fh)}
    gpu = rows.pop(gpu_id)
    (cpu,) = rows.values()
    assert (gpu["backend"], gpu["device"], gpu["device_name"], gpu["cuda_version"]) == (
        "vmap", "cuda:0", "NVIDIA H200", "12.8")
    assert (cpu["backend"], cpu["device"], cpu["device_name"], cpu["cuda_version"]) == ("serial", "cpu", "", "")


def test_report_says_where_the_runs_ran(tmp_path):
    path = tmp_path / "s.sqlite"
    _store_with_a_gpu_run(path)
    report = build_report(path)
    assert report.devices == ["cpu", "cuda:0 (NVIDIA H200)"]
    page = render_html(report, {})
    assert "ran on: cpu, cuda:0 (NVIDIA H200)" in page
