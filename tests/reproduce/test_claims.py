"""The claim checks agree and disagree on hand-made summaries (each check can fail)."""

from __future__ import annotations

import math

import pytest

from adamlab.reproduce import get
from adamlab.reproduce.recipes import noisy_quadratic as nq
from adamlab.reproduce.recipes.common import as_good_as, group_wins
from adamlab.reproduce.summary import ordering, stats

SEEDS = [0, 1, 2, 3, 4]
JITTER = [-0.01, 0.005, 0.0, 0.01, -0.005]  # relative seed-to-seed spread (mean 0)


def _summary(settings):
    """settings: {label: (options, {variant: mean of every metric or None for diverged})}.

    Each variant gets five seeds whose values are the mean times (1 + a 1% jitter), train error 0.
    """
    out = {"settings": {}}
    for label, (options, values) in settings.items():
        variants = {}
        for v, x in values.items():
            seeds = None if x is None else [x * (1 + j) for j in JITTER]
            per_seed = {m: seeds or [None] * len(SEEDS) for m in ("train_loss", "test_error", "test_accuracy")}
            per_seed["train_error"] = [0.0] * len(SEEDS)
            variants[v] = {"final": {"train_loss": {"mean": x}, "test_error": {"mean": x},
                                     "train_error": {"mean": 0.0}, "test_accuracy": {"mean": x}},
                           "n_diverged": 0 if x is not None else len(SEEDS), "lr_scores": {},
                           "seeds": list(SEEDS), "per_seed": per_seed}
        out["settings"][label] = {"options": options, "variants": variants}
    return out


def test_stats_reference():
    st = stats([1.0, 2.0, 4.0])
    assert st["mean"] == pytest.approx(7 / 3)
    assert st["std"] == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    assert (st["min"], st["max"], st["n"]) == (1.0, 4.0, 3)
    assert stats([5.0])["std"] is None  # one statistics convention: the sd of one value is undefined
    assert stats([float("nan"), None])["n"] == 0


def test_ordering_puts_diverged_last():
    s = _summary({"a": ({}, {"x": 2.0, "y": None, "z": 1.0})})["settings"]["a"]
    assert ordering(s, "train_loss", "min") == ["z", "x", "y"]
    assert ordering(s, "train_loss", "max") == ["x", "z", "y"]


def _quad(axis_adv: float, rot_adv: float, va_gain: float, adam_vs_va: float):
    """Noisy-quadratic summary: sign advantage (decades) on ill/axis and ill/rotated, VA gain, Adam offset."""
    settings = {}
    for spec in ("well", "ill"):
        for rot in ("axis", "rotated"):
            adv = (axis_adv if rot == "axis" else rot_adv) if spec == "ill" else 0.0
            base = 10.0
            vals = {"msgd": base, "mssd": base / 10 ** adv}
            vals["msvag"] = vals["msgd"] / 10 ** va_gain
            vals["mssdva"] = vals["mssd"] / 10 ** va_gain
            vals["adam"] = vals["mssdva"] * 10 ** adam_vs_va
            settings[nq.label(spec, rot, 4.0)] = ({"spectrum": spec, "rotation": rot, "nu": 4.0}, vals)
    return _summary(settings)


def test_noisy_quadratic_claims_agree_on_paper_like_numbers():
    s = _quad(axis_adv=0.5, rot_adv=-0.1, va_gain=0.1, adam_vs_va=0.05)
    for claim in get("noisy-quadratic").claims:
        ok, text = claim.check(s)
        assert ok, (claim.text, text)


@pytest.mark.parametrize("index,kwargs", [
    (0, dict(axis_adv=-0.3, rot_adv=-0.1, va_gain=0.1, adam_vs_va=0.0)),   # gradient wins on axis
    (1, dict(axis_adv=0.5, rot_adv=0.8, va_gain=0.1, adam_vs_va=0.0)),    # advantage grows when rotated
    (2, dict(axis_adv=0.5, rot_adv=-0.1, va_gain=-0.2, adam_vs_va=0.0)),  # VA hurts
    (3, dict(axis_adv=0.5, rot_adv=-0.1, va_gain=0.1, adam_vs_va=0.6)),   # Adam far from M-SSD-VA
])
def test_noisy_quadratic_claims_can_fail(index, kwargs):
    claim = get("noisy-quadratic").claims[index]
    ok, _ = claim.check(_quad(**kwargs))
    assert not ok


def test_wilson_claims():
    recipe = get("wilson")
    label = recipe.settings[0].label
    good = _summary({label: ({}, {"sgd": 0.0, "momentum": 0.01, "adagrad": 0.41, "rmsprop": 0.4, "adam": 0.39})})
    assert recipe.claims[0].check(good)[0]
    bad = _summary({label: ({}, {"sgd": 0.3, "momentum": 0.01, "adagrad": 0.41, "rmsprop": 0.4, "adam": 0.39})})
    assert not recipe.claims[0].check(bad)[0]
    bad2 = _summary({label: ({}, {"sgd": 0.0, "momentum": 0.0, "adagrad": 0.41, "rmsprop": 0.4, "adam": 0.0})})
    assert not recipe.claims[0].check(bad2)[0]


def test_group_wins_and_as_good_as():
    s = _summary({"p": ({}, {"msgd": 1.0, "msvag": 0.9, "mssd": 0.5, "mssdva": 2.0})})
    assert group_wins("p", ["mssd", "mssdva"], ["msgd", "msvag"], "train_loss", "min")(s)[0]
    assert not group_wins("p", ["msgd", "msvag"], ["mssd", "mssdva"], "train_loss", "min")(s)[0]
    assert group_wins("p", ["msgd", "msvag"], ["mssd", "mssdva"], "test_accuracy", "max")(s)[0] is False
    assert as_good_as("p", "msvag", ["msgd"], "train_loss", "min")(s)[0]
    assert as_good_as("p", "msgd", ["msvag"], "train_loss", "min", rel_tol=0.2)(s)[0]
    assert not as_good_as("p", "msgd", ["msvag"], "train_loss", "min", rel_tol=0.05)(s)[0]
    assert not as_good_as("p", "mssdva", ["mssd"], "train_loss", "min")(s)[0]


def test_dissection_hook_matches_the_lemma_on_a_quadratic():
    """gamma_ideal of a gradient method is the mean of 1/(1+eta^2), eta^2 = nu^2 (QQ)_ii / (Q theta)_i^2."""
    import numpy as np
    import torch

    from adamlab import problems
    from adamlab.optim.registry import make_optimizer

    prob = problems.get("quadratic.noisy", spectrum="ill", rotation="axis", nu=0.5, d=10)
    torch.manual_seed(0)
    model = prob.make_model(0)
    opt = make_optimizer("msvag", model.parameters(), lr=0.01)
    batch = next(prob.train_batches(0))
    for _ in range(3):
        opt.zero_grad()
        prob.loss(model, batch).backward()
        opt.step()
    hook = nq.QuadraticDissectionHook(prob, every=1)
    out = hook(3, model, opt, prob, batch)
    theta = model.theta.detach().double().numpy()
    q = prob.hessian64
    grad = q @ theta
    sigma2 = 0.25 * np.diag(q @ q)
    eta2 = sigma2 / grad**2
    assert out["gamma_ideal"] == pytest.approx(np.mean(1 / (1 + eta2)), rel=1e-5)
    assert out["eta2_median"] == pytest.approx(np.sort(eta2)[(eta2.size - 1) // 2], rel=1e-4)  # lower median
    from math import erf, sqrt
    rho = np.mean([0.5 * (1 + erf(abs(g) / (sqrt(2) * sqrt(s)))) for g, s in zip(grad, sigma2, strict=True)])
    assert out["rho"] == pytest.approx(rho, rel=1e-6)
    assert 0.0 <= out["gamma_measured"] <= 1.0


def test_a_mean_advantage_within_the_seed_spread_does_not_agree():
    """The means favour sign descent, but two of five seeds do not: the interval includes zero."""
    s = _quad(axis_adv=0.5, rot_adv=-0.1, va_gain=0.1, adam_vs_va=0.05)
    claim = get("noisy-quadratic").claims[0]
    verdict = claim.check(s)
    assert verdict.agree and verdict.effect.low > 0 and verdict.effect.n == len(SEEDS)
    lab = nq.label("ill", "axis", 4.0)
    v = s["settings"][lab]["variants"]["mssd"]
    v["per_seed"]["train_loss"] = [0.5, 0.5, 0.5, 30.0, 30.0]  # msgd: 10; mean of log10 still below 1
    verdict = claim.check(s)
    assert verdict.effect.estimate > 0 and verdict.effect.low < 0 and not verdict.agree


def test_as_good_as_effect_by_hand_and_with_diverged_runs():
    s = _summary({"p": ({}, {"adam": 1.0, "sgd": 2.0, "bad": None})})
    for v in s["settings"]["p"]["variants"].values():  # no jitter: the interval is a point
        if v["per_seed"]["train_loss"][0] is not None:
            v["per_seed"]["train_loss"] = [v["final"]["train_loss"]["mean"]] * len(SEEDS)
    verdict = as_good_as("p", "adam", ["sgd"], "train_loss", "min", rel_tol=0.05)(s)
    assert verdict.effect.estimate == pytest.approx(math.log10(2.0) + math.log10(1.05))
    assert verdict.effect.low == verdict.effect.high == verdict.effect.estimate and verdict.agree
    # a diverged competitor is infinitely worse (agree); a diverged target never agrees
    assert as_good_as("p", "adam", ["sgd", "bad"], "train_loss", "min")(s).agree
    assert not as_good_as("p", "bad", ["adam"], "train_loss", "min")(s).agree


def test_summary_claim_entry_carries_the_effect():
    from adamlab.reproduce.base import Claim
    from adamlab.reproduce.summary import check_claim

    s = _summary({"p": ({}, {"adam": 1.0, "sgd": 2.0})})
    entry = check_claim(Claim("adam wins", as_good_as("p", "adam", ["sgd"], "train_loss", "min")), s)
    assert entry["agree"] is True and entry["effect"]["low"] > 0 and entry["effect"]["n"] == len(SEEDS)
    legacy = check_claim(Claim("old style", lambda summary: (True, "text")), s)
    assert legacy == {"claim": "old style", "agree": True, "measured": "text", "effect": None}
    missing = check_claim(Claim("needs nosuch", as_good_as("p", "nosuch", ["sgd"], "train_loss", "min")), s)
    assert missing["agree"] is False and "could not be checked" in missing["measured"]
