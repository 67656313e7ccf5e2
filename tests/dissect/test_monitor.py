"""Monitor: its metrics against an independent float64 NumPy reference, its cadence, CSV/TensorBoard output,
the runner hook, and the Lightning / Hugging Face adapters (skipped when those packages are absent)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from adamlab.dissect.decompose import decompose
from adamlab.dissect.integrations import MonitorHook, huggingface_callback, lightning_callback
from adamlab.dissect.moments import backward_stats
from adamlab.dissect.monitor import Monitor
from adamlab.optim.registry import make_optimizer

from .test_hooks import TinyClassification


def _setup(optimizer: str = "adam", dead: bool = True):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).double()
    if dead:  # unit 0 never fires: its weights and bias get exactly-zero per-example gradients
        with torch.no_grad():
            model[0].weight[0] = 0.0
            model[0].bias[0] = -10.0
    opt = make_optimizer(optimizer, model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=g)
    return model, opt, x, y


def _per_example(model, x, y) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {n: [] for n, _ in model.named_parameters()}
    for k in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[k:k + 1]), y[k:k + 1]).backward()
        for n, p in model.named_parameters():
            out[n].append(p.grad.detach().numpy().copy())
    return {n: np.stack(v).reshape(len(x), -1) for n, v in out.items()}


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties sharing their mean rank (scipy.stats.rankdata's 'average'), by an explicit loop."""
    return np.array([np.sum(x < v) + (np.sum(x == v) - 1) / 2 for v in x], dtype=np.float64)


def _erf(z: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(z)



def _one_monitored_step(model, opt, x, y):
    """One training step under ``Monitor(every=1, sample=None)``; its record."""
    mon = Monitor(model, opt, every=1, sample=None)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    mon.close()
    return mon.history[-1]


def test_metrics_match_numpy_reference():
    model, opt, x, y = _setup()
    ref = _per_example(model, x, y)
    before = {n: p.detach().numpy().copy().reshape(-1) for n, p in model.named_parameters()}
    rec = _one_monitored_step(model, opt, x, y)
    g = np.concatenate([ref[n] for n in ref], axis=1)
    n = g.shape[0]
    mean, var = g.mean(0), g.var(0, ddof=1)
    sigma2 = var / n
    with np.errstate(divide="ignore", invalid="ignore"):
        eta2 = np.where(sigma2 == 0, 0.0, sigma2 / mean**2)
        z = np.where(mean == 0, 0.0, np.abs(mean) / np.sqrt(2 * sigma2))
    rho = 0.5 * (1 + _erf(z))
    dead = (g == 0).all(0)
    live = ~dead  # medians, means and correlations over live coordinates
    assert rec["eta2_median"] == pytest.approx(np.median(eta2[live]), rel=1e-9)
    assert rec["rho_gaussian_mean"] == pytest.approx(rho[live].mean(), rel=1e-9)
    assert rec["gamma_grad_ideal_median"] == pytest.approx(np.median(1 / (1 + eta2[live])), rel=1e-9)
    assert rec["gamma_sign_ideal_median"] == pytest.approx(np.median(2 * rho[live] - 1), rel=1e-9)
    assert dead.sum() >= 6 and rec["frac_zero_grad"] == pytest.approx(dead.mean())
    assert rec["grad_norm"] == pytest.approx(np.linalg.norm(mean), rel=1e-9)
    after = np.concatenate([p.detach().numpy().reshape(-1) for p in model.parameters()])
    assert rec["step_norm"] == pytest.approx(np.linalg.norm(after - np.concatenate(list(before.values()))), rel=1e-9)
    gamma = np.concatenate([p.gamma.detach().numpy().reshape(-1) for p in decompose(opt)])
    ideal = 2 * rho - 1  # Adam's direction is a sign
    assert rec["gamma_measured_median"] == pytest.approx(np.median(gamma[live]), rel=1e-9)
    assert rec["gamma_corr"] == pytest.approx(np.corrcoef(gamma[live], ideal[live])[0, 1], rel=1e-9)
    assert rec["gamma_abs_error_median"] == pytest.approx(np.median(np.abs(gamma - ideal)[live]), rel=1e-9)
    assert rec["gamma_rank_corr"] == pytest.approx(
        np.corrcoef(_average_ranks(gamma[live]), _average_ranks(ideal[live]))[0, 1], rel=1e-9)
    # per layer: the first Linear's values from its own coordinates
    g0 = np.concatenate([ref["0.weight"], ref["0.bias"]], axis=1)
    assert rec["grad_norm/0"] == pytest.approx(np.linalg.norm(g0.mean(0)), rel=1e-9)


def test_sampled_coordinates_are_deterministic_and_close():
    out = []
    for sample in (None, 20, 20):
        model, opt, x, y = _setup(dead=False)
        mon = Monitor(model, opt, every=1, sample=sample)
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        out.append(mon.history[-1])
        mon.close()
    exact, a, b = out
    assert a == b
    assert a["grad_norm"] == pytest.approx(exact["grad_norm"]) and a["step_norm"] == pytest.approx(exact["step_norm"])
    assert abs(a["rho_gaussian_mean"] - exact["rho_gaussian_mean"]) < 0.1


def test_cadence_csv_and_no_effect_on_training(tmp_path):
    runs = []
    for monitored in (False, True):
        model, opt, x, y = _setup()
        mon = Monitor(model, opt, every=3, csv=tmp_path / "m.csv") if monitored else None
        for _ in range(7):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        runs.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])  # same bits with and without the monitor
    assert [r["step"] for r in mon.history] == [3.0, 6.0]
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert {r["layer"] for r in rows} == {"all", "0", "2"} and {int(r["step"]) for r in rows} == {3, 6}
    assert float(next(r for r in rows if r["quantity"] == "eta2_median" and r["step"] == "6")["value"]) == \
        mon.history[-1]["eta2_median"]
    mon.close()
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="every"):
        Monitor(model, opt, every=0)
    with pytest.raises(ValueError, match="sample"):
        Monitor(model, opt, sample=0)


def test_plain_torch_optimizer_has_no_measured_gamma():
    model, _, x, y = _setup()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Monitor(model, opt) as mon:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    assert "eta2_median" in mon.history[0] and "gamma_measured_median" not in mon.history[0]


def test_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    model, opt, x, y = _setup()
    with Monitor(model, opt, tensorboard=tmp_path / "tb") as mon:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    assert mon.history and list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_monitor_hook_in_the_runner():
    runner = pytest.importorskip("adamlab.runner")
    problem = TinyClassification()
    hook = MonitorHook(every=3, per_layer=True)
    result = runner.run(problem, "adam", {"lr": 0.01}, seed=0, budget=9, hooks=[hook])
    hook.close()
    steps = [r["step"] for r in result.records if "dx_eta2_median" in r]
    assert steps == [3.0, 6.0, 9.0]
    last = next(r for r in result.records if r["step"] == 9.0)
    assert math.isfinite(last["dx_gamma_corr"]) and "dx_eta2_median/0" in last
    # BatchNorm trains in training mode: it is skipped, the other layers are measured
    assert "dx_eta2_median/1" not in last
    with pytest.raises(ValueError, match="every"):
        MonitorHook(every=0)


def test_monitor_hook_leaves_the_run_as_it_would_be_unmonitored():
    """The hook's extra first pass restores the random state (dropout) and the buffers (BatchNorm's
    running statistics): every training and evaluation number is the unmonitored run's, bit for bit."""
    runner = pytest.importorskip("adamlab.runner")
    problem = TinyClassification()  # dropout and BatchNorm in training mode
    hook = MonitorHook(every=3)
    monitored = runner.run(problem, "adam", {"lr": 0.01}, seed=0, budget=9, eval_every=3, hooks=[hook])
    hook.close()
    plain = runner.run(TinyClassification(), "adam", {"lr": 0.01}, seed=0, budget=9, eval_every=3)

    def numbers(result):
        return [{k: v for k, v in r.items() if not k.startswith("dx_") and "time" not in k} for r in result.records]

    assert any("dx_eta2_median" in r for r in monitored.records)
    assert numbers(monitored) == numbers(plain)


def test_lightning_callback():
    pytest.importorskip("lightning")
    assert hasattr(lightning_callback(every=2), "on_fit_start")


def test_huggingface_callback():
    pytest.importorskip("transformers")
    assert hasattr(huggingface_callback(every=2), "on_train_begin")


def test_adapters_say_what_is_missing():
    for factory, package in ((lightning_callback, "lightning"), (huggingface_callback, "transformers")):
        try:
            __import__(package)
        except ImportError:
            with pytest.raises(ImportError, match=package):
                factory()


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_cost_benchmark_smoke():
    from benchmarks.dissect_cost import run

    med, _, missing, params = run("mlp", batch=4, rounds=1, warmup=0, quick=True, with_func=False, device="cpu")
    assert {"plain", "moments", "statistics", "monitor"} <= set(med) and params == 784 * 16 + 16 + 16 * 10 + 10
    assert all(t > 0 for t in med.values())
    assert ("backpack.Variance" in med) != ("backpack" in missing)
    assert ("cockpit" in med) != ("cockpit" in missing)


@pytest.mark.parametrize("seed", range(4))
def test_medians_and_ranks_per_layer_against_numpy(seed):
    """Every layer's medians (odd and even counts of live coordinates, rows of different lengths) and its
    rank correlation (average ranks for ties) against NumPy."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 9), nn.ReLU(), nn.Linear(9, 3)).double()
    opt = make_optimizer("adam", model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(6 + seed, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (6 + seed,), generator=g)
    ref = _per_example(model, x, y)  # at the parameters before the step, as the monitor
    same = backward_stats(model, F.cross_entropy, x, y)  # the monitor's own numerics, for the ranks
    rec = _one_monitored_step(model, opt, x, y)
    gamma = {p_name: piece.gamma.detach().numpy().reshape(-1)
             for p_name, piece in zip(ref, decompose(opt), strict=True)}
    for layer, names in (("0", ["0.weight", "0.bias"]), ("2", ["2.weight", "2.bias"])):
        gl = np.concatenate([ref[k] for k in names], axis=1)
        mean, var = gl.mean(0), gl.var(0, ddof=1)
        sigma2 = var / gl.shape[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            eta2 = np.where(sigma2 == 0, 0.0, sigma2 / mean**2)
            z = np.where(mean == 0, 0.0, np.abs(mean) / np.sqrt(2 * sigma2))
        live = ~(gl == 0).all(0)
        ideal = _erf(z)
        # ranks see the last bit of near-ties, so they are checked on the same per-coordinate numbers
        same_ideal = np.concatenate([same.gamma_sign_gaussian[k].numpy().reshape(-1) for k in names])
        meas = np.concatenate([gamma[k] for k in names])
        assert rec[f"eta2_median/{layer}"] == pytest.approx(np.median(eta2[live]), rel=1e-9)
        assert rec[f"gamma_sign_ideal_median/{layer}"] == pytest.approx(np.median(ideal[live]), rel=1e-9)
        assert rec[f"gamma_grad_ideal_median/{layer}"] == pytest.approx(np.median(1 / (1 + eta2[live])), rel=1e-9)
        assert rec[f"gamma_measured_median/{layer}"] == pytest.approx(np.median(meas[live]), rel=1e-9)
        assert rec[f"gamma_rank_corr/{layer}"] == pytest.approx(
            np.corrcoef(_average_ranks(meas[live]), _average_ranks(same_ideal[live]))[0, 1], rel=1e-9)
