import sqlite3

import pytest

from adamlab.cli import build_parser, main
from adamlab.reproduce import demo
from tests.runner import runner_tiny_problem as tiny


def _err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_sweep_done_criterion_and_rerun_does_nothing(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    argv = ["sweep", "quadratic.noisy", "--optimizers", "sgd,adam,msvag", "--lr-grid", "1e-3:1e0:4",
            "--seeds", "2", "--steps", "30", "--store", str(store), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "24 runs done" in out and "best learning rate" in out
    assert main(argv) == 0
    assert "all 24 runs were already done" in capsys.readouterr().out
    con = sqlite3.connect(store)
    assert con.execute("SELECT COUNT(*), SUM(attempts) FROM runs").fetchone() == (24, 24)


def test_run_prints_table(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    code = main(["run", tiny.NAME, "--optimizer", "adam", "--lr", "0.05", "--seeds", "2", "--steps", "20",
                 "--store", str(store), "-q", "--option", "dropout=0.1", "--hparam", "betas=[0.9,0.99]"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.count(tiny.NAME) == 2 and "test_accuracy" in out and "finished" in out
    con = sqlite3.connect(store)
    (hp,) = con.execute("SELECT DISTINCT hparams FROM runs").fetchone()
    assert hp == '{"betas":[0.9,0.99],"lr":0.05}'


def test_run_epochs_and_step_schedule(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    assert main(["run", tiny.NAME, "--optimizer", "sgd", "--lr", "0.1", "--epochs", "2", "--schedule", "step",
                 "--decay-gamma", "0.5", "--decay-every", "4", "--store", str(store), "-q"]) == 0
    con = sqlite3.connect(store)
    assert con.execute("SELECT steps, schedule FROM runs").fetchone() == (16, '{"every":4,"gamma":0.5,"name":"step"}')


def test_sweep_with_rerun_seeds(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    assert main(["sweep", tiny.NAME, "--optimizers", "sgd", "--lr-grid", "0.001,0.05", "--steps", "20",
                 "--rerun-seeds", "3", "--store", str(store), "-q"]) == 0
    out = capsys.readouterr().out
    assert "tuning: 2 runs done" in out and "rerun: 2 runs done" in out and "lr=0.05" in out


def test_failed_runs_exit_1(tmp_path, capsys, monkeypatch):
    def boom(self, model, batch):
        raise RuntimeError("kaput")

    monkeypatch.setattr(tiny.TinyRegression, "loss", boom)
    code = main(["run", tiny.NAME, "--optimizer", "sgd", "--lr", "0.1", "--steps", "5",
                 "--store", str(tmp_path / "r.sqlite"), "-q"])
    assert code == 1
    assert "kaput" in capsys.readouterr().err


def test_diverged_is_not_failure(tmp_path, capsys):
    code = main(["run", tiny.NAME, "--optimizer", "sgd", "--lr", "10", "--steps", "200",
                 "--store", str(tmp_path / "r.sqlite"), "-q"])
    assert code == 0
    assert "diverged@" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["sweep", "no.such", "--optimizers", "sgd", "--lr-grid", "0.1"], "unknown problem 'no.such'"),
        (["sweep", tiny.NAME, "--optimizers", "sgd,nope", "--lr-grid", "0.1"], "unknown optimizer 'nope'"),
        (["sweep", tiny.NAME, "--optimizers", "sgd", "--lr-grid", "1e-3:1"], "START:STOP:COUNT"),
        (["sweep", tiny.NAME, "--optimizers", "sgd", "--lr-grid", "x,y"], "comma list"),
        (["sweep", tiny.NAME, "--optimizers", "sgd", "--lr-grid", "0.1", "--backend", "nope"], "unknown backend"),
        (["sweep", tiny.NAME, "--optimizers", "sgd", "--lr-grid", "0.1", "--criterion", "best:x"], "criterion"),
        (["run", tiny.NAME, "--optimizer", "sgd", "--lr", "0.1", "--hparam", "momentum=-1"], "momentum"),
        (["run", tiny.NAME, "--optimizer", "sgd", "--lr", "0.1", "--hparam", "novalue"], "KEY=VALUE"),
        (["run", tiny.NAME, "--optimizer", "sgd", "--lr", "0.1", "--decay-gamma", "0.5"], "--schedule step"),
        (["run", tiny.NAME, "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1", "--option", "bogus=1"], "bogus"),
        (["run", "quadratic.noisy", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1"], "epochs"),
        (["plot", "missing.sqlite"], "does not exist"),
    ],
)
def test_bad_arguments_exit_2_one_line(argv, match, tmp_path, capsys):
    if argv[0] != "plot":
        argv = argv + ["--store", str(tmp_path / "r.sqlite"), "-q"]
    assert main(argv) == 2
    line = _err_line(capsys)
    assert line.startswith(f"adamlab {argv[0]}: error:")
    assert match in line


def test_unwritable_store_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["run", tiny.NAME, "--optimizer", "sgd", "--lr", "0.1", "--store", str(blocker / "a.sqlite"), "-q"])
    assert code == 2
    assert "cannot open results store" in _err_line(capsys)


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", tiny.NAME, "--optimizer", "sgd", "--lr", "-1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["sweep", tiny.NAME, "--optimizers", "sgd", "--lr-grid", "0.1", "--steps", "1", "--epochs", "1"])
    assert exc.value.code == 2


@pytest.mark.parametrize("command", ["demo", "run", "sweep", "plot"])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"adamlab {command}" in out


def test_plot_command(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    assert main(["sweep", tiny.NAME, "--optimizers", "sgd,adam", "--lr-grid", "0.01,0.1,10", "--seeds", "2",
                 "--steps", "30", "--store", str(store), "-q"]) == 0
    out_dir = tmp_path / "figs"
    assert main(["plot", str(store), "--out", str(out_dir)]) == 0
    files = sorted(p.name for p in out_dir.iterdir())
    assert len(files) == 4 and {p.suffix for p in out_dir.iterdir()} == {".png", ".pdf"}
    assert all((out_dir / f).stat().st_size > 1000 for f in files)
    capsys.readouterr()
    assert main(["plot", str(store), "--problem", "other.problem", "--out", str(out_dir)]) == 2
    assert "no runs of problem" in _err_line(capsys)


def test_demo_command_small(tmp_path, capsys, monkeypatch):
    """The demo's wiring, on a shrunken protocol (the full demo is the slow test below)."""
    small = tuple(
        demo.DemoTask(t.title, t.problem, t.options, 20, 10, t.criterion, t.columns, t.show) for t in demo.TASKS
    )
    monkeypatch.setattr(demo, "TASKS", small)
    monkeypatch.setattr(demo, "LR_GRID", "1e-3:1e-1:2")
    monkeypatch.setattr(demo, "RERUN_SEEDS", 2)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    for method in demo.METHODS:
        assert f"\n{method} " in text
    assert "figure:" in text and (out / "demo.png").stat().st_size > 1000 and (out / "demo.pdf").exists()
    assert not list(out.glob("*.checkpoints"))  # issue 24: no empty checkpoint folder beside the store
    assert main(["demo", "--out", str(out), "-q"]) == 0
    assert "(0 runs trained" in capsys.readouterr().out


@pytest.mark.slow
def test_full_demo_under_two_minutes(tmp_path, capsys):
    import time

    t0 = time.perf_counter()
    assert main(["demo", "--out", str(tmp_path / "demo"), "-q"]) == 0
    assert time.perf_counter() - t0 < 120
    out = capsys.readouterr().out
    assert "msvag" in out and (tmp_path / "demo" / "demo.png").exists()


# -- reliability (issue 15): one line and exit 2 for bad input, never a traceback ---------------------


def _sweep_argv(store, *extra):
    return ["sweep", tiny.NAME, "--optimizers", "sgd,adam", "--lr-grid", "0.01,0.1", "--steps", "20",
            "--store", str(store), "-q", *extra]


def test_problem_too_large_for_memory_is_one_line(tmp_path, capsys):
    code = main(["run", "quadratic.noisy", "--optimizer", "sgd", "--lr", "0.1", "--steps", "1",
                 "--option", "d=1000000000000", "--store", str(tmp_path / "r.sqlite"), "-q"])
    assert code == 2
    line = _err_line(capsys)
    assert "d=1000000000000" in line and "does not fit in memory" in line


def test_memory_error_anywhere_is_one_line(tmp_path, capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise MemoryError("Unable to allocate 7.28 TiB")

    import importlib

    monkeypatch.setattr(importlib.import_module("adamlab.runner.sweep"), "sweep", boom)
    assert main(_sweep_argv(tmp_path / "r.sqlite")) == 2
    assert "out of memory (Unable to allocate 7.28 TiB)" in _err_line(capsys)


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_plot_out_on_a_file_is_one_line_with_the_path(tmp_path, capsys, where):
    store = tmp_path / "r.sqlite"
    assert main(_sweep_argv(store)) == 0
    capsys.readouterr()
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker if where == "file" else blocker / "figs"
    assert main(["plot", str(store), "--out", str(out)]) == 2
    line = _err_line(capsys)
    assert line.startswith("adamlab plot: error:") and str(blocker) in line


def test_unknown_criterion_metric_in_sweep_is_an_error(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    assert main(_sweep_argv(store, "--criterion", "max:nosuchmetric", "--rerun-seeds", "3")) == 2
    line = _err_line(capsys)
    assert "'nosuchmetric'" in line and "metrics available:" in line and "test_loss" in line
    con = sqlite3.connect(store)
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 4  # no rerun on a meaningless lr
    con.close()


def test_unknown_criterion_metric_in_plot_is_an_error(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    assert main(_sweep_argv(store)) == 0
    capsys.readouterr()
    assert main(["plot", str(store), "--out", str(tmp_path / "f"), "--criterion", "max:nosuch"]) == 2
    line = _err_line(capsys)
    assert "'nosuch'" in line and "train_loss" in line
    assert not (tmp_path / "f").exists()


def test_plot_api_warns_about_an_unknown_criterion_metric(tmp_path, capsys):
    from adamlab.analysis.plots import CriterionWarning, plot_curves

    store = tmp_path / "r.sqlite"
    assert main(_sweep_argv(store)) == 0
    with pytest.warns(CriterionWarning, match="'nosuch' is not recorded .*metrics there: .*train_loss"):
        plot_curves(store, tmp_path / "f", criterion="max:nosuch")


@pytest.mark.parametrize("extra, match", [
    (["--lr-grid", "1e-3:1e0:1000000"], "COUNT 1000000 is more than --max-runs 10000"),
    (["--lr-grid", "1e-3:1e0:100", "--seeds", "60"], "plans 12000 runs, more than --max-runs 10000"),
    (["--lr-grid", "1e-3:1e0:4", "--max-runs", "7"], "plans 8 runs, more than --max-runs 7"),
    (["--lr-grid", "1e-3:1e0:2", "--rerun-seeds", "3", "--max-runs", "9"], "plans 10 runs"),
])
def test_grids_above_the_run_limit_are_refused(tmp_path, capsys, extra, match):
    argv = ["sweep", tiny.NAME, "--optimizers", "sgd,adam", "--steps", "5", "--store", str(tmp_path / "r.sqlite"),
            "-q", *extra]
    assert main(argv) == 2
    assert match in _err_line(capsys)
    assert not (tmp_path / "r.sqlite").exists()  # refused before the store is opened


def test_max_runs_allows_a_larger_grid(tmp_path, capsys):
    argv = ["sweep", tiny.NAME, "--optimizers", "sgd,adam", "--lr-grid", "1e-3:1e0:4", "--steps", "5",
            "--store", str(tmp_path / "r.sqlite"), "-q", "--max-runs", "8"]
    assert main(argv) == 0
    assert "8 runs done" in capsys.readouterr().out


def _corrupt_mnist(root):
    path = root / "mnist" / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("backend", ["serial", "vmap"])
def test_runs_on_corrupt_data_exit_2_without_a_vmap_warning(tiny_data_root, tmp_path, capsys, backend):
    import warnings

    path = _corrupt_mnist(tiny_data_root)
    store = tmp_path / "r.sqlite"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["sweep", "mnist.logreg", "--optimizers", "adam", "--lr-grid", "0.01,0.1", "--steps", "2",
                     "--backend", backend, "--store", str(store), "-q"])
    assert code == 2
    line = _err_line(capsys)
    assert "failed its integrity check" in line and str(path) in line
    assert not [w for w in caught if "vectorised" in str(w.message)]
    con = sqlite3.connect(store)  # nothing recorded as failed: the runs are left to do once the data is fixed
    assert {s for (s,) in con.execute("SELECT status FROM runs")} == {"pending"}
    con.close()
