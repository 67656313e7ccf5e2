"""The vmap backend gives the serial backend's metrics (float64: to 1e-9), and falls back where it must."""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import pytest
import torch
from torch import Tensor, nn

from adamlab.problems.mnist import MnistLogReg
from adamlab.runner import Store, sweep
from adamlab.runner.backends import RunContext, get_backend, names
from adamlab.runner.backends.vmap import block_key, plan_blocks
from adamlab.runner.backends.vmap_optim import NotVectorizable, StackedOptimizer


class LogReg64(MnistLogReg):
    """MNIST logistic regression in float64 (the tiny data set), for tight cross-backend tolerances."""

    name: ClassVar[str] = "test.logreg64"

    def transform(self, inputs: Tensor) -> Tensor:
        return super().transform(inputs).double()

    def build_model(self) -> nn.Module:
        return nn.Linear(784, 10).double()


class MLP64(LogReg64):
    """A Linear-ReLU-Linear stack (no dropout): exercises the batched later layers."""

    name: ClassVar[str] = "test.mlp64"

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.Tanh(), nn.Linear(16, 10)).double()


def _run_both(tmp_path, problem, optimizers, lrs, seeds, steps=12, **kwargs):
    results = {}
    for backend in ("serial", "vmap"):
        store = Store(tmp_path / f"{backend}.sqlite")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = sweep(problem, optimizers, lrs, seeds, steps, store, backend, quiet=True, eval_every=5,
                           **kwargs)
        results[backend] = (report, store, [w for w in caught if "vmap backend" in str(w.message)])
    return results


def _series(store: Store, run_id: str) -> dict[tuple[int, str], float]:
    return {(step, name): value for name, (steps, values) in store.metrics(run_id).items()
            for step, value in zip(steps, values, strict=True)}


def _assert_same(results, rtol: float, atol: float = 0.0) -> None:
    (rep_s, st_s, _), (rep_v, st_v, _) = results["serial"], results["vmap"]
    assert rep_s.run_ids == rep_v.run_ids
    assert (rep_s.finished, rep_s.diverged, rep_s.failed) == (rep_v.finished, rep_v.diverged, rep_v.failed)
    rows_s = {r["run_id"]: r for r in st_s.runs()}
    rows_v = {r["run_id"]: r for r in st_v.runs()}
    compared = 0
    for run_id in rep_s.run_ids:
        assert rows_s[run_id]["status"] == rows_v[run_id]["status"], run_id
        a, b = _series(st_s, run_id), _series(st_v, run_id)
        keys = {k for k in a if k[1] != "wall_time"}
        assert keys == {k for k in b if k[1] != "wall_time"}, run_id
        for key in keys:
            assert math.isclose(a[key], b[key], rel_tol=rtol, abs_tol=atol), (run_id, key, a[key], b[key])
            compared += 1
    assert compared > 0


def test_vmap_backend_is_registered():
    assert "vmap" in names()
    assert get_backend("vmap", max_block=8).max_block == 8
    with pytest.raises(ValueError, match="max_block"):
        get_backend("vmap", max_block=0)
    with pytest.raises(ValueError, match="options"):
        get_backend("vmap", nonsense=1)


@pytest.mark.parametrize("optimizer", ["adam", "msvag", "momentum", "adagrad"])
def test_vmap_equals_serial_float64(tiny_data_root, tmp_path, optimizer):
    # one block: 2 lrs x 2 seeds (per-run batches); momentum has a first-step branch, adagrad a non-zero init
    results = _run_both(tmp_path, LogReg64(), [optimizer], [1e-2, 1e-1], seeds=[0, 1], steps=8)
    assert not results["vmap"][2], "no fallback expected"
    _assert_same(results, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["rmsprop", "adamax", "mssd", "ssd", "svag", "mssdva", "nesterov", "amsgrad",
                                       "adamw", "adam-nobc", "msgd", "sgd"])
def test_vmap_equals_serial_float64_all_optimizers(tiny_data_root, tmp_path, optimizer):
    results = _run_both(tmp_path, LogReg64(), [optimizer], [1e-3, 1e-2, 1e-1], seeds=[0, 1])
    assert not results["vmap"][2], "no fallback expected"
    _assert_same(results, rtol=1e-9, atol=1e-12)


def test_vmap_batches_betas_and_splits_branching_settings(tiny_data_root, tmp_path):
    # betas differ (batched as tensors); weight_decay 0 vs > 0 makes the rule branch: split by lr-only blocks.
    problem = LogReg64()
    results = {}
    for backend in ("serial", "vmap"):
        store = Store(tmp_path / f"{backend}.sqlite")
        reports = []
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback warning
            for hp in ({"betas": [0.9, 0.999]}, {"betas": [0.5, 0.9]}, {"weight_decay": 0.1}):
                reports.append(sweep(problem, ["adam"], [1e-2, 1e-1], [0], 8, store, backend, quiet=True,
                                     eval_every=4, hparams=hp))
        results[backend] = reports, store
    for rep_s, rep_v in zip(results["serial"][0], results["vmap"][0], strict=True):
        assert rep_s.run_ids == rep_v.run_ids and rep_v.finished == len(rep_v.run_ids)
        for run_id in rep_s.run_ids:
            a, b = _series(results["serial"][1], run_id), _series(results["vmap"][1], run_id)
            for key in a:
                if key[1] != "wall_time":
                    assert math.isclose(a[key], b[key], rel_tol=1e-9, abs_tol=1e-12), key


def test_block_plan_groups_by_switches_not_seed(tiny_data_root):
    from adamlab.runner import expand_grid

    problem = LogReg64()
    configs = expand_grid(problem, ["adam", "amsgrad"], [1e-3, 1e-2, 1e-1], [0, 1], 4, instances=[problem])
    blocks = plan_blocks(configs, max_block=64)
    assert len(blocks) == 2  # one per optimizer (amsgrad needs another state); 3 lrs x 2 seeds together
    assert all(len({c.seed for c in b}) == 2 and len(b) == 6 for b in blocks)
    assert len(plan_blocks(configs, max_block=4)) == 4
    adam = [c for c in configs if c.optimizer == "adam"]
    assert len({block_key(c) for c in adam}) == 1
    assert len({block_key(c, strict=True) for c in adam}) == 1  # only lr and seed differ


def test_wide_and_vmap_layouts_agree_mlp(tiny_data_root, tmp_path):
    # Sequential(Flatten, Linear, Tanh, Linear): wide first layer + bmm, versus torch.func.vmap.
    results = _run_both(tmp_path, MLP64(), ["msvag"], [1e-2, 1e-1], [3])
    _assert_same(results, rtol=1e-9, atol=1e-12)
    store = Store(tmp_path / "narrow.sqlite")
    rep = sweep(MLP64(), ["msvag"], [1e-2, 1e-1], [3], 12, store, "vmap", quiet=True, eval_every=5,
                backend_options={"wide": False})
    ref = results["serial"][1]
    for run_id in rep.run_ids:
        a, b = _series(ref, run_id), _series(store, run_id)
        for key in a:
            if key[1] != "wall_time":
                assert math.isclose(a[key], b[key], rel_tol=1e-9, abs_tol=1e-12), key


def test_vmap_generic_loss_path_quadratic(tmp_path):
    # A problem with its own loss (no criterion): vmap over functional_call of problem.loss, float32.
    results = _run_both(tmp_path, ("quadratic.noisy", {"d": 10}), ["msvag", "adam"], [1e-2, 1e-1], [0, 1],
                        steps=20)
    assert not results["vmap"][2]
    _assert_same(results, rtol=1e-4, atol=1e-6)


def test_vmap_real_float32_mnist_logreg_matches(tiny_data_root, tmp_path):
    results = _run_both(tmp_path, "mnist.logreg", ["adam"], [1e-3, 1e-2], [0], steps=10)
    _assert_same(results, rtol=1e-4, atol=1e-6)


def test_divergence_matches_serial(tiny_data_root, tmp_path):
    # sgd at lr 1e12 blows up within a few steps; the other lrs must be unaffected.
    results = _run_both(tmp_path, LogReg64(), ["sgd"], [1e-2, 1e6, 1e12], [0], steps=30)
    assert results["serial"][0].diverged >= 1
    rows_s = {r["run_id"]: r for r in results["serial"][1].runs()}
    rows_v = {r["run_id"]: r for r in results["vmap"][1].runs()}
    for run_id, row in rows_s.items():
        assert row["status"] == rows_v[run_id]["status"]
        assert row.get("diverged_step") == rows_v[run_id].get("diverged_step")
    _assert_same(results, rtol=1e-9, atol=1e-12)


def test_global_rng_problem_falls_back_with_one_warning(tiny_data_root, tmp_path):
    # the LSTM's dropout draws from torch's global RNG (and nn.LSTM has no vmap rule): serial, one warning
    results = _run_both(tmp_path, ("tolstoi.char_rnn", {"seq_len": 10, "eval_size": 20}), ["adam"], [1e-3, 1e-2],
                        [0], steps=2)
    caught = results["vmap"][2]
    assert len(caught) == 1
    assert "dropout" in str(caught[0].message) and "2 of 2 runs" in str(caught[0].message)
    _assert_same(results, rtol=0.0)  # the serial backend ran them: identical


def test_dropout_problem_batches_and_matches_serial(tiny_data_root, tmp_path):
    # imdb.bow_logreg's input dropout draws from each run's own generator: it batches, equal to serial
    results = _run_both(tmp_path, "imdb.bow_logreg", ["adam"], [1e-3, 1e-2], [0, 1], steps=4)
    assert not results["vmap"][2], "no fallback expected"
    _assert_same(results, rtol=1e-5, atol=1e-7)


def test_resume_skips_done_runs(tiny_data_root, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    first = sweep(LogReg64(), ["adam"], [1e-3, 1e-2], [0], 6, store, "vmap", quiet=True)
    again = sweep(LogReg64(), ["adam"], [1e-3, 1e-2, 1e-1], [0], 6, store, "vmap", quiet=True)
    assert first.finished == 2 and again.skipped == 2 and again.finished == 1


def test_stacked_optimizer_rejects_mixed_state_and_branching():
    with pytest.raises(NotVectorizable, match="state"):
        StackedOptimizer("adam", [{"amsgrad": True}, {"amsgrad": False}], torch.float64, torch.device("cpu"))
    opt = StackedOptimizer("adam", [{"weight_decay": 0.0}, {"weight_decay": 0.1}], torch.float64,
                           torch.device("cpu"))
    with pytest.raises(NotVectorizable, match="branches"):
        opt.trial()
    ok = StackedOptimizer("adam", [{"lr": 0.1}, {"lr": 0.2, "betas": (0.8, 0.99)}], torch.float64,
                          torch.device("cpu"))
    ok.trial()
    kw = ok.stacked_kwargs(3)
    assert isinstance(kw["lr"], Tensor) and kw["lr"].tolist() == [0.1, 0.2]
    assert kw["eps"] == 1e-8  # shared values stay Python numbers


@pytest.mark.slow
def test_compiled_stacked_step_equals_serial(tiny_data_root, tmp_path):
    # compile=True: the rule compiled into one in-place kernel per stacked tensor (torch.compile, ~10 s)
    from adamlab.optim import fast

    if not fast.compile_available()[0]:
        pytest.skip("torch.compile is not available here")
    serial = Store(tmp_path / "serial.sqlite")
    ref = sweep(LogReg64(), ["msvag"], [1e-2, 1e-1], [0], 8, serial, "serial", quiet=True, eval_every=4)
    store = Store(tmp_path / "vmap.sqlite")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback to eager
        sweep(LogReg64(), ["msvag"], [1e-2, 1e-1], [0], 8, store, "vmap", quiet=True, eval_every=4,
              backend_options={"compile": True})
    for run_id in ref.run_ids:
        a, b = _series(serial, run_id), _series(store, run_id)
        for key in a:
            if key[1] != "wall_time":
                assert math.isclose(a[key], b[key], rel_tol=1e-9, abs_tol=1e-12), key


def test_cli_sweep_backend_vmap(tmp_path, capsys):
    from adamlab import cli

    store_path = tmp_path / "cli.sqlite"
    code = cli.main(["sweep", "quadratic.noisy", "--option", "d=10", "--optimizers", "adam,msvag",
                     "--lr-grid", "1e-2,1e-1", "--steps", "5", "--backend", "vmap", "--store", str(store_path), "-q"])
    assert code == 0, capsys.readouterr().err
    with Store(store_path) as store:
        rows = store.runs()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"}
    code = cli.main(["sweep", "quadratic.noisy", "--optimizers", "adam", "--lr-grid", "0.1", "--steps", "2",
                     "--backend", "nonsense", "--store", str(store_path), "-q"])
    assert code == 2


# -- issue 12: the engine -----------------------------------------------------------------------------


def test_per_step_scalars_come_from_one_rule_kwargs_call(monkeypatch):
    # K runs with different lrs and betas: ONE rule_kwargs call per step, on the stacked group, gives the
    # same per-run scalars (bias corrections, rho) as each run's own optimizer.
    from adamlab.optim import MSVAG, Adam

    k = 5
    hp = [{"lr": 0.01 * (i + 1), "betas": (0.5 + 0.1 * i, 0.9 + 0.02 * i)} for i in range(k)]
    opt = StackedOptimizer("adam", hp, torch.float64, torch.device("cpu"))
    opt.add_param(torch.zeros(k, 3, dtype=torch.float64), 0)
    calls = []
    original = Adam.rule_kwargs
    monkeypatch.setattr(Adam, "rule_kwargs", lambda self, group, step: (calls.append(step), original(self, group, step))[1])
    for step in (1, 2, 7):
        opt.set_lr_factor(0.5)
        kw = opt.stacked_kwargs(step)
        for i, (one, group) in enumerate(zip(opt.optimizers, opt.groups, strict=True)):
            ref = original(one, {**group, "lr": group["lr"] * 0.5}, step)
            for name in ("lr", "bias_correction1", "bias_correction2", "beta1", "beta2"):
                assert float(kw[name][i]) == pytest.approx(ref[name], rel=1e-15), (name, step)
    assert calls == [1, 2, 7]  # one call per step, not one per run
    ms = StackedOptimizer("msvag", [{"lr": 0.1, "beta": b} for b in (0.5, 0.9, 0.99)], torch.float64,
                          torch.device("cpu"))
    for step in (1, 2, 30):
        kw = ms.stacked_kwargs(step)
        for i, group in enumerate(ms.groups):
            ref = MSVAG.rule_kwargs(ms.optimizers[i], group, step)
            assert float(kw["variance_factor"][i]) == pytest.approx(ref["variance_factor"], rel=1e-14)
            assert float(kw["inv_bias_correction"][i]) == pytest.approx(ref["inv_bias_correction"], rel=1e-14)


def test_blocks_are_sized_by_memory_not_capped_at_64(tiny_data_root):
    from adamlab import problems
    from adamlab.runner import expand_grid
    from adamlab.runner.backends.vmap import MAX_BLOCK, runs_per_block

    quad = problems.get("quadratic.noisy")
    configs = expand_grid(quad, ["adam"], [10 ** (-4 + i / 100) for i in range(300)], 15, 5, instances=[quad])
    assert runs_per_block(quad, configs[0]) == MAX_BLOCK >= 4000
    backend = get_backend("vmap")
    blocks = backend.plan(configs, RunContext(problems={}))
    assert [len(b) for b in blocks] == [2250, 2250]  # 4,500 runs: two even blocks
    wilson = problems.get("leastsquares.wilson")
    wilson_config = expand_grid(wilson, ["adam"], [0.1], 1, 5, instances=[wilson])[0]
    assert runs_per_block(wilson, wilson_config) >= 2000
    assert runs_per_block(wilson, wilson_config, own_batch=True) >= 2000  # one full batch for every seed
    logreg = problems.get("mnist.logreg")
    logreg_config = expand_grid(logreg, ["adam"], [0.1], 1, 5, instances=[logreg])[0]
    assert runs_per_block(logreg, logreg_config) >= 1000
    assert runs_per_block(logreg, logreg_config, own_batch=True) < runs_per_block(logreg, logreg_config)
    assert runs_per_block(logreg, expand_grid(logreg, ["adam"], [0.1], 1, 5, instances=[logreg])[0],
                          memory_mb=10) < 100  # a smaller budget, smaller blocks
    assert len(get_backend("vmap", max_block=7).plan(configs[:20], RunContext())) == 3


def test_a_block_is_committed_in_one_transaction(tiny_data_root, tmp_path, monkeypatch):
    calls = []
    original = Store.record_many
    monkeypatch.setattr(Store, "record_many", lambda self, results: (calls.append(len(results)),
                                                                      original(self, results))[1])
    rep = sweep(LogReg64(), ["adam", "sgd"], [1e-3, 1e-2, 1e-1], [0, 1], 4, Store(tmp_path / "s.sqlite"), "vmap",
                quiet=True)
    assert rep.finished == 12
    assert calls == [6, 6]  # one commit per block of 6 runs


def test_block_mates_change_a_run_only_by_rounding_and_the_store_says_so(tiny_data_root, tmp_path):
    # issue 15.3: the same run alone and inside a 4-lr block; float64: equal to 1e-9; float32: to rounding.
    for problem, rtol in ((LogReg64(), 1e-9), ("mnist.logreg", 1e-4)):
        alone, block = Store(tmp_path / "alone.sqlite"), Store(tmp_path / "block.sqlite")
        one = sweep(problem, ["adam"], [1e-2], [0], 10, alone, "vmap", quiet=True, eval_every=5)
        sweep(problem, ["adam"], [1e-3, 1e-2, 3e-2, 1e-1], [0], 10, block, "vmap", quiet=True, eval_every=5)
        (run_id,) = one.run_ids
        a, b = _series(alone, run_id), _series(block, run_id)
        assert a.keys() == b.keys()
        for key in a:
            if key[1] != "wall_time":
                assert math.isclose(a[key], b[key], rel_tol=rtol, abs_tol=rtol * 1e-3), key
        assert {r["run_id"]: r["execution"] for r in alone.runs()}[run_id] == {"backend": "vmap", "block_size": 1}
        assert {r["run_id"]: r["execution"] for r in block.runs()}[run_id] == {"backend": "vmap", "block_size": 4}
        serial = Store(tmp_path / "serial.sqlite")
        sweep(problem, ["adam"], [1e-2], [0], 10, serial, "serial", quiet=True, eval_every=5)
        assert serial.runs()[0]["execution"] == {"backend": "serial", "block_size": 1}
        for path in ("alone", "block", "serial"):
            (tmp_path / f"{path}.sqlite").unlink()


def test_quadratic_evaluation_is_batched(tmp_path, monkeypatch):
    # the quadratic's evaluate_tensors runs under vmap for the whole block: evaluate is never called
    from adamlab.problems.quadratic import NoisyQuadratic

    def boom(self, model):
        raise AssertionError("per-run evaluate called")

    monkeypatch.setattr(NoisyQuadratic, "evaluate", boom)
    rep = sweep(("quadratic.noisy", {"d": 10}), ["adam"], [1e-2, 1e-1], [0, 1], 20, Store(tmp_path / "q.sqlite"),
                "vmap", quiet=True)
    assert rep.finished == 4


def test_wilson_batches_and_matches_serial(tmp_path):
    results = _run_both(tmp_path, ("leastsquares.wilson", {"n": 20, "n_test": 10}), ["adam", "sgd"], [1e-2, 1e-1],
                        [0])
    assert not results["vmap"][2]
    _assert_same(results, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist.vae", "mnist.mlp"])
def test_stochastic_problems_batch_and_match_serial(tiny_data_root, tmp_path, name):
    # VAE samples and dropout masks come from each run's own generator, in both backends
    options = {"eval_size": 50}
    results = {}
    for backend in ("serial", "vmap"):
        store = Store(tmp_path / f"{backend}.sqlite")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = sweep((name, options), ["adam"], [1e-3, 1e-2], [0, 1], 3, store, backend, quiet=True,
                           eval_every=3, batch_size=16)
        results[backend] = (report, store, [w for w in caught if "vmap backend" in str(w.message)])
    assert not results["vmap"][2], results["vmap"][2] and str(results["vmap"][2][0].message)
    _assert_same(results, rtol=1e-4, atol=1e-5)


def test_threads_option_is_scoped_to_the_block(tmp_path, monkeypatch):
    seen = []
    from adamlab.runner.backends import vmap_train

    original = vmap_train.train_block

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        yield from original(*args, **kwargs)

    monkeypatch.setattr(vmap_train, "train_block", spy)
    before = torch.get_num_threads()
    rep = sweep(("quadratic.noisy", {"d": 10}), ["adam"], [1e-2, 1e-1], [0], 5, Store(tmp_path / "t.sqlite"), "vmap",
                quiet=True, backend_options={"threads": 1})
    assert rep.finished == 2 and seen == [1] and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        get_backend("vmap", threads=0)


def test_a_problem_whose_runs_train_one_at_a_time_is_said_once():
    """Issue 24 d2: a block of one is not batched; the vmap backend says so once, in one line, with the reason."""
    import warnings

    from adamlab import problems
    from adamlab.runner import expand_grid

    quad = problems.get("quadratic.noisy")
    configs = expand_grid(quad, ["adam", "sgd"], [1e-3, 1e-2, 1e-1], 1, 5, instances=[quad])
    backend = get_backend("vmap", memory_mb=1e-6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        blocks = backend.plan(configs, RunContext(problems={}))
    assert [len(b) for b in blocks] == [1] * 6
    said = [str(w.message) for w in caught if "one at a time" in str(w.message)]
    assert len(said) == 1 and "quadratic.noisy" in said[0] and "memory_mb" in said[0] and "\n" not in said[0]
