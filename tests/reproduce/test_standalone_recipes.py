"""The standalone recipes of issue 13: Reddi et al.'s counterexample and seed 003's picture slides."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from adamlab import cli
from adamlab.reproduce import get, reproduce
from adamlab.reproduce.recipes import adam_slides as S
from adamlab.reproduce.recipes import reddi_counterexample as R


# -- Reddi et al.: the construction and the regret, by hand -------------------------------------------------
def test_coefficients_and_regret_by_hand():
    assert [R.coefficient(t) for t in range(1, 8)] == [3, -1, -1, 3, -1, -1, 3]
    # T = 6: sum a_t = 2 (3 - 1 - 1) * 2 = 2 -> min_x 2x on [-1, 1] is -2
    assert R.best_fixed_loss(6) == -2.0
    assert R.best_fixed_loss(7) == -5.0
    xs = np.array([0.0, 0.5, 1.0, 1.0, -1.0, 0.25])
    played = 3 * 0 - 0.5 - 1.0 + 3 * 1.0 + 1.0 - 0.25  # sum_t a_t x_t
    assert R.average_regret(xs) == pytest.approx((played - (-2.0)) / 6)
    assert R.average_regret(np.ones(300)) == pytest.approx(2 * (R.C - 2) / 3)  # stuck at +1
    assert R.average_regret(-np.ones(300)) == pytest.approx(0.0)


def _numpy_projected_adam(beta2, steps, amsgrad, alpha=0.1, eps=1e-8):
    """Independent transcription: beta1 = 0, bias-corrected, torch's AMSGrad (max of v), projection."""
    x, v, vmax, xs = 0.0, 0.0, 0.0, []
    for t in range(1, steps + 1):
        xs.append(x)
        g = 3.0 if t % 3 == 1 else -1.0
        v = beta2 * v + (1 - beta2) * g * g
        vmax = max(vmax, v)
        denom = math.sqrt((vmax if amsgrad else v) / (1 - beta2**t)) + eps
        x = min(1.0, max(-1.0, x - alpha / math.sqrt(t) * g / denom))
    return x, xs


@pytest.mark.parametrize("method", ["adam", "amsgrad"])
def test_run_online_matches_a_numpy_transcription(method):
    betas = [0.1, 0.9, 0.999]
    res = R.run_online(method, betas, 40, keep=5)
    for k, b in enumerate(betas):
        x, xs = _numpy_projected_adam(b, 40, method == "amsgrad")
        assert res["final_x"][k] == pytest.approx(x, abs=1e-12)
        assert res["avg_regret"][k] == pytest.approx(R.average_regret(np.array(xs)), abs=1e-12)
    assert all(-1.0 <= x <= 1.0 for x in res["final_x"])


def test_beta2_grid_contains_the_theorem_value():
    grid = R.beta2_grid(13)
    assert R.THEOREM_BETA2 in grid and grid == sorted(grid)
    assert grid[0] == pytest.approx(0.01) and grid[-1] == pytest.approx(0.9999)


def test_reddi_quick_path_tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(R.GRID_SIZE, True, 3)
    recipe = get("reddi-counterexample")
    tiny = replace(recipe, quick=replace(recipe.quick, steps=60))
    summary = reproduce(tiny, quick=True, out=tmp_path, log=lambda s: None)
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["recipe"] == "reddi-counterexample" and data["quick"] is True
    assert len(data["claims"]) == 3 and all(isinstance(c["agree"], bool) for c in data["claims"])
    assert (tmp_path / "reddi-counterexample.png").stat().st_size > 0
    res = summary["results"]
    assert len(res["beta2"]) == 4 and set(res["methods"]) == {"adam", "amsgrad"}


@pytest.mark.slow
def test_reddi_quick_claims_agree(tmp_path):
    summary = reproduce("reddi-counterexample", quick=True, out=tmp_path, log=lambda s: None)
    assert summary["all_claims_agree"], summary["claims"]


# -- seed 003's picture slides -----------------------------------------------------------------------------
def test_quadratic_and_theory_steps():
    q = S.hessian().numpy()
    np.testing.assert_allclose(np.linalg.eigvalsh(q), [1 / S.KAPPA, 1.0], rtol=1e-12)
    th = S.theory_steps()
    assert th["sgd"] == pytest.approx(math.log(1e-4) / (2 * math.log(99 / 101)))
    assert th["momentum"] < th["sgd"]
    assert S.steps_to(np.array([1.0, 0.5, 0.05, 0.2]), 0.1) == 2 and S.steps_to(np.ones(3), 0.1) is None


def test_noise_free_gd_follows_the_closed_form():
    lr, steps = 0.5, 7
    r = S.run_quadratic("sgd", lr, steps, 1, 0.0)
    m = np.linalg.matrix_power(np.eye(2) - lr * S.hessian().numpy(), steps)
    np.testing.assert_allclose(r["traj"][-1, 0].numpy(), m @ S.start().numpy(), rtol=1e-12)
    np.testing.assert_allclose(r["align"].numpy(), 1.0, atol=1e-12)  # a GD step is -lr grad


def test_sparse_regression_gradient():
    """lr 0 moves nothing; AdaGrad learns the frequent weights within 200 steps; shapes are [steps+1, seeds]."""
    r = S.run_sparse("sgd", 0.0, 3, [0, 1])
    np.testing.assert_allclose(r["rare"][-1].numpy(), r["rare"][0].numpy())  # lr 0: nothing moves
    assert r["rare"].shape == (4, 2) and r["total"].shape == (4, 2)
    moved = S.run_sparse("adagrad", 0.3, 200, [0])
    assert float(moved["frequent"][-1, 0]) < 0.5 * float(moved["frequent"][0, 0])


def test_slides_quick_path_tiny(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "QUAD_STEPS", 20)
    recipe = get("adam-slides")
    tiny = replace(recipe, quick=replace(recipe.quick, steps=30, lr_grid=[0.1], seeds=[0, 1]))
    summary = reproduce(tiny, quick=True, out=tmp_path, log=lambda s: None)
    for stem in ("acceleration", "noise", "sparsity"):
        assert (tmp_path / f"adam-slides_{stem}.png").stat().st_size > 0
    res = summary["results"]
    assert set(res["acceleration"]) == set(res["noise"]) == {"sgd", "momentum", "adam"}
    assert set(res["sparsity"]) == {"sgd", "adagrad", "adam"}
    assert all(res["noise"][m]["lr"] == 0.1 for m in res["noise"])
    assert len(summary["claims"]) == 3


@pytest.mark.slow
def test_slides_quick_claims_agree(tmp_path):
    summary = reproduce("adam-slides", quick=True, out=tmp_path, log=lambda s: None)
    assert summary["all_claims_agree"], summary["claims"]


def test_list_shows_the_new_recipes(capsys):
    assert cli.main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert "reddi-counterexample" in out and "adam-slides" in out


# -- each claim check can fail ------------------------------------------------------------------------------
def _reddi_summary(adam_x, ams_x):
    grid = [0.01, R.THEOREM_BETA2, 0.5, 0.9999]
    res = {"beta2": grid, "theorem_beta2": R.THEOREM_BETA2,
           "methods": {"adam": {"final_x": adam_x, "avg_regret": [0.5] * 4},
                       "amsgrad": {"final_x": ams_x, "avg_regret": [0.01] * 4}}}
    wrong = [b for b, x in zip(grid, adam_x, strict=True) if x > 0]
    right = [b for b, x in zip(grid, adam_x, strict=True) if x < -0.9]
    res["adam_wrong_end_max_beta2"] = max(wrong) if wrong else None
    res["adam_right_end_min_beta2"] = min(right) if right else None
    return {"results": res}


def test_reddi_claims_can_fail():
    good = _reddi_summary([1.0, 1.0, -1.0, -1.0], [-1.0] * 4)
    assert all(c.check(good)[0] for c in R.RECIPE.claims)
    adam_always_wrong = _reddi_summary([1.0] * 4, [-1.0] * 4)
    assert R._depends(adam_always_wrong)[0] is False
    adam_always_right = _reddi_summary([-1.0] * 4, [-1.0] * 4)
    assert R._theorem(adam_always_right)[0] is False
    ams_wrong = _reddi_summary([1.0, 1.0, -1.0, -1.0], [-1.0, 1.0, -1.0, -1.0])
    assert R._amsgrad_always(ams_wrong)[0] is False and R._theorem(ams_wrong)[0] is False


def test_slides_claims_can_fail():
    acc = {m: {"steps_to_target": s, "lr": 0.1} for m, s in (("sgd", 50), ("momentum", 80), ("adam", 30))}
    noise = {m: {"align": 0.5, "smooth": sm, "floor": fl, "lr": 0.1}
             for m, sm, fl in (("sgd", 0.0, 1e-3), ("momentum", 0.9, 2e-3), ("adam", 0.9, 1e-3))}
    sparse = {m: {"steps_rare": r, "steps_frequent": 10, "lr": 0.1, "speedup_rare_vs_sgd": 1.0}
              for m, r in (("sgd", 100), ("adagrad", 50), ("adam", None))}
    summary = {"results": {"acceleration": acc, "noise": noise, "sparsity": sparse, "sparse_steps": 200,
                           "theory_steps": S.theory_steps()}}
    assert S._acceleration(summary)[0] is False  # momentum slower than GD
    assert S._noise(summary)[0] is False  # smoother but a higher floor
    assert S._sparsity(summary)[0] is False  # Adam never reaches 10% on the rare weights
    acc["momentum"]["steps_to_target"] = 20
    noise["momentum"]["floor"] = 5e-4
    sparse["adam"]["steps_rare"] = 60
    assert S._acceleration(summary)[0] and S._noise(summary)[0] and S._sparsity(summary)[0]


@pytest.mark.slow
def test_full_protocol_claims_agree(tmp_path):
    summary = reproduce("reddi-counterexample", quick=False, out=tmp_path, log=lambda s: None)
    assert summary["all_claims_agree"], summary["claims"]


@pytest.mark.slow
def test_adam_slides_full_protocol_as_documented(tmp_path):
    """docs/seed_claims.md: under the full protocol acceleration and noise cancelling agree, and the
    sparsity claim does not, because Adam (at its tuned lr) is slower than SGD on the rare weights while
    AdaGrad is about twice as fast."""
    summary = reproduce("adam-slides", quick=False, out=tmp_path, log=lambda s: None)
    assert [c["agree"] for c in summary["claims"]] == [True, True, False], summary["claims"]
    sparsity = summary["results"]["sparsity"]
    assert sparsity["adagrad"]["speedup_rare_vs_sgd"] > 1.5
    assert sparsity["adam"]["speedup_rare_vs_sgd"] < 1.0
