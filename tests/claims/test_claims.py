"""The claim records of issue 13 (adamlab.claims.seed_claims): each check's math on a tiny case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adamlab.claims import seed_claims as C
from adamlab.claims import verify
from adamlab.dissect.decompose import StepRecorder
from adamlab.optim.registry import make_optimizer, names


# -- the slope estimator and the seed interval -------------------------------------------------------------
def test_slope_of_synthetic_power_laws():
    t = torch.arange(1, 1001, dtype=torch.float64)
    assert float(C.loglog_slope(3.0 / t)) == pytest.approx(-1.0, abs=1e-12)
    cols = torch.stack([2.0 / t, 5.0 * t**-0.5, torch.full_like(t, 0.7)], 1)
    np.testing.assert_allclose(C.loglog_slope(cols).numpy(), [-1.0, -0.5, 0.0], atol=1e-12)
    # only the second half is fitted: a kink in the first half does not matter
    kinked = torch.where(t <= 400, 1.0 / t**3, 1.0 / t)
    assert float(C.loglog_slope(kinked)) == pytest.approx(-1.0, abs=1e-12)
    assert abs(float(C.loglog_slope(kinked, start=1)) + 1.0) > 0.1  # the whole run is not a power law


def test_slope_rejects_bad_input():
    with pytest.raises(ValueError, match="start"):
        C.loglog_slope(torch.ones(10, dtype=torch.float64), start=10)
    with pytest.raises(ValueError, match="> 0"):
        C.loglog_slope(torch.zeros(10, dtype=torch.float64))


def test_seed_interval_is_the_t_interval():
    x = torch.tensor([-1.0, -0.9, -1.1, -0.95, -1.05, -1.02, -0.98, -1.0], dtype=torch.float64)
    mean, lo, hi = C.seed_interval(x)
    half = 2.365 * x.numpy().std(ddof=1) / math.sqrt(8)  # t_{0.975, 7}
    assert mean == pytest.approx(x.numpy().mean())
    assert (lo, hi) == pytest.approx((mean - half, mean + half))
    with pytest.raises(ValueError, match="2 seeds"):
        C.seed_interval(x[:1])


# -- idealized SVAG -------------------------------------------------------------------------------------
def test_idealized_svag_step_is_gamma_times_g():
    rng = np.random.default_rng(0)
    theta, g, grad = (rng.standard_normal(6) for _ in range(3))
    grad[2] = 0.0
    sigma2 = rng.uniform(0.1, 2.0, 6)
    want = theta - 0.3 * g / (1 + sigma2 / np.where(grad == 0, 1.0, grad**2))
    want[2] = theta[2]  # grad L = 0 with noise: gamma = 0, no step
    got = C.idealized_svag_step(*(torch.from_numpy(a) for a in (theta, g, grad, sigma2)), lr=0.3)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-14, atol=1e-15)


def test_sgd_floor_and_short_rate_records():
    curves = C.svag_rate_curves(seeds=2, steps=300, lr=0.5)
    prob = curves["problem"]
    lam = prob.eigenvalues64
    assert curves["floor"] == pytest.approx(0.5 * 0.5 * prob.nu**2 * np.sum(lam**2 / (2 - 0.5 * lam)))
    assert all(curves[k].shape == (300, 2) for k in ("ideal", "sgd", "msvag"))
    recs = C.check_svag_idealized_rate(seeds=3, steps=400)
    assert [r.optimizer for r in recs] == ["svag-ideal", "sgd", "msvag"]
    assert [r.theory for r in recs] == [True, False, False]
    assert all(r.property == "svag_idealized_rate" and "per seed" in r.details for r in recs)


def test_svag_rate_figure(tmp_path):
    from scripts.claims_figure import draw_svag_rate

    paths = draw_svag_rate(tmp_path, steps=40, seeds=2)
    assert [p.name for p in paths] == ["dissect_svag_rate.png", "dissect_svag_rate.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)


@pytest.mark.slow
def test_idealized_svag_converges_at_one_over_t():
    ideal, sgd, msvag = C.check_svag_idealized_rate()
    assert ideal.holds and -1.2 <= ideal.measured <= -0.8
    assert sgd.holds and abs(sgd.measured) < 0.05
    assert msvag.holds is True


# -- the ill-conditioning problem -------------------------------------------------------------------------
@pytest.mark.parametrize("normalized", [False, True])
def test_equivalent_pair_computes_the_same_function(normalized):
    a, b, c = C.equivalent_pair(3, normalized=normalized)
    x = torch.randn(100, 6, dtype=torch.float64)
    with torch.no_grad():
        assert float((a(x) - b(x)).abs().max()) < 1e-14
    assert not torch.allclose(a.hidden.weight, b.hidden.weight)
    assert float(c.min()) >= 1 / 3 - 1e-12 and float(c.max()) <= 3 + 1e-12


def test_sgd_on_b_is_sgd_on_a_with_per_unit_learning_rates():
    """Theory: W1' = C W1 moved by lr * dL/dW1' = lr C^-1 dL/dW1 is W1 moved by lr C^-2 dL/dW1."""
    lr, steps = 0.05, 6
    a, b, c = C.equivalent_pair(0, normalized=False)
    x, y, held = C._regression_data(0, 6, 2, 256)
    order = torch.randint(0, 256, (steps, 16), generator=torch.Generator().manual_seed(1))
    opt = make_optimizer("sgd", list(b.parameters()), lr=lr)
    w1, w2, b2 = (t.detach().clone().requires_grad_(True) for t in (a.hidden.weight, a.out.weight, a.out.bias))
    for idx in order:
        opt.zero_grad()
        (0.5 * (b(x[idx]) - y[idx]).square().sum(1).mean()).backward()
        opt.step()
        out = torch.relu(x[idx] @ w1.T) @ w2.T + b2
        gw1, gw2, gb2 = torch.autograd.grad((0.5 * (out - y[idx]).square().sum(1).mean()), (w1, w2, b2))
        with torch.no_grad():  # A with per-unit learning rates lr/c^2 (input) and lr c^2 (output)
            w1 -= (lr / c[:, None] ** 2) * gw1
            w2 -= (lr * c[None, :] ** 2) * gw2
            b2 -= lr * gb2
    with torch.no_grad():
        f_rescaled = torch.relu(held @ w1.T) @ w2.T + b2
        assert float((b(held) - f_rescaled).abs().max()) < 1e-12
    gap = C.function_gap("sgd", seed=0, steps=steps, lr=lr)
    assert gap["gap0"] < 1e-14 and gap["relative"] > 1e-3


def test_gap_is_zero_for_an_exactly_equivalent_update():
    # an optimizer whose step is zero keeps A and B identical (the measure itself adds no gap)
    gap = C.function_gap("sgd", steps=3, lr=0.0)
    assert gap["gap"] < 1e-14


@pytest.mark.parametrize("name", ["sgd", "adam", "msvag"])
def test_sgd_and_adam_records_report_the_gap(name):
    for normalized in (False, True):
        rec = C.check_ill_conditioning(name, normalized=normalized)
        assert rec.theory is False and rec.has_property is False and rec.holds is True
        assert rec.measured > 1e-3 and "before" in rec.details


@pytest.mark.skipif("ndadam" not in names(), reason="ND-Adam is not registered on this branch")
def test_ndadam_removes_the_gap_only_on_the_normalised_layer():
    norm = C.check_ill_conditioning("ndadam", normalized=True)
    assert norm.theory is True and norm.measured < C.GAP_TOL and norm.holds
    relu = C.check_ill_conditioning("ndadam", normalized=False)
    assert relu.theory is False and relu.measured > 1e-3 and relu.holds


def test_verify_runs_the_new_records():
    recs = verify(["sgd", "adam"], ["ill_conditioning", "ill_conditioning_normalized"])
    assert [(r.optimizer, r.property) for r in recs] == [
        ("sgd", "ill_conditioning"), ("adam", "ill_conditioning"),
        ("sgd", "ill_conditioning_normalized"), ("adam", "ill_conditioning_normalized")]


# -- eps dominance of v_hat -----------------------------------------------------------------------------
def test_probe_counts_sqrt_vhat_below_eps():
    p = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = make_optimizer("adam", [p], lr=1e-3)
    p.grad = torch.tensor([0.0, 1e-9, 5e-9, 1e-7, 1.0], dtype=torch.float64)
    with StepRecorder(opt) as rec:
        opt.step()
    v_hat = opt.state[p]["exp_avg_sq"] / (1 - 0.999)  # step 1: v_hat = g^2 (independent of the pieces)
    np.testing.assert_allclose(rec.pieces[0].second_moment.numpy(), v_hat.numpy(), rtol=1e-12)
    out = C.EpsFractionProbe()(rec.pieces, 1e-8, ["p"])
    assert out["all"] == pytest.approx(3 / 5)  # 0, 1e-9 and 5e-9 are below eps = 1e-8
    assert out["all_nonzero"] == pytest.approx(2 / 4)
    sgd = make_optimizer("sgd", [p], lr=1e-3)
    with StepRecorder(sgd) as rec2:
        sgd.step()
    with pytest.raises(ValueError, match="second_moment"):
        C.EpsFractionProbe()(rec2.pieces, 1e-8, ["p"])


def test_eps_dominance_on_fixture_data(tiny_data_root):
    rows = C.eps_fraction_curve(steps=4, every=2, batch_size=8, problem="mnist.logreg", fused=False)
    assert [r["step"] for r in rows] == [1.0, 2.0, 4.0]
    assert all(0.0 <= r["all"] <= 1.0 and "weight" in r for r in rows), rows[0].keys()
    (rec,) = C.check_eps_dominance(steps=1, every=1, batch_size=4, fused=False)  # fmnist.cnn, one step
    assert rec.property == "eps_dominance" and rec.theory is None and "fmnist.cnn" in rec.details
    assert "not the paper's CIFAR-10" in rec.details


def test_eps_dominance_without_data_says_so():
    (rec,) = C.check_eps_dominance(steps=2)
    assert math.isnan(rec.measured) and rec.holds is None and "ADAMLAB_DATA" in rec.details


def test_eps_record_verdict_reads_the_nonzero_fraction():
    def row(step, all_, nonzero):
        return {"step": float(step), "loss": 1.0, "all": all_, "all_nonzero": nonzero, "w": all_}

    falling_all = [row(1, 0.27, 0.0002), row(100, 0.05, 0.001), row(200, 0.045, 0.003)]
    rec = C.eps_record(falling_all, steps=200, seed=0, batch_size=64, long=True)
    assert rec.has_property and rec.holds and rec.measured == 0.003
    assert "grows: yes" in rec.details and "grows: no" in rec.details  # nonzero grows, all falls
    flat = [row(1, 0.2, 0.01), row(100, 0.05, 0.01), row(200, 0.05, 0.0101)]
    rec = C.eps_record(flat, steps=200, seed=0, batch_size=64, long=True)
    assert not rec.has_property and rec.holds is False and rec.must_hold_failed
    assert C.eps_record(flat, steps=200, seed=0, batch_size=64, long=False).holds is None
