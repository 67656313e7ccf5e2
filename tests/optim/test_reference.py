"""Every optimizer against an independent float64 NumPy transcription of its paper's equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import adamlab.optim as O
from tests.optim import numpy_reference as R

SEEDS = [0, 1, 2]
STEPS = 60
SHAPE = (7, 5)


def _gradients(seed: int, steps: int = STEPS) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # Gradients with a persistent mean and noise of varying size, so signs and gammas vary.
    mean = rng.normal(size=SHAPE)
    scale = rng.uniform(0.1, 3.0, size=SHAPE)
    return [mean + scale * rng.normal(size=SHAPE) for _ in range(steps)]


def _run_adamlab(make, theta0: np.ndarray, grads: list[np.ndarray]) -> list[np.ndarray]:
    p = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    opt = make([p])
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


CASES = {
    "sgd": (lambda ps: O.SGD(ps, lr=0.05), lambda th, gs: R.sgd_run(th, gs, 0.05)),
    "momentum": (lambda ps: O.SGD(ps, lr=0.05, momentum=0.9), lambda th, gs: R.sgd_run(th, gs, 0.05, 0.9)),
    "nesterov": (lambda ps: O.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
                 lambda th, gs: R.sgd_run(th, gs, 0.05, 0.9, nesterov=True)),
    "sgd_l2": (lambda ps: O.SGD(ps, lr=0.05, weight_decay=0.1), lambda th, gs: R.sgd_run(th, gs, 0.05, weight_decay=0.1)),
    "adagrad": (lambda ps: O.Adagrad(ps, lr=0.1), lambda th, gs: R.adagrad_run(th, gs, 0.1)),
    "rmsprop": (lambda ps: O.RMSprop(ps, lr=0.01, alpha=0.9), lambda th, gs: R.rmsprop_run(th, gs, 0.01, beta=0.9)),
    "adam": (lambda ps: O.Adam(ps, lr=0.01), lambda th, gs: R.adam_run(th, gs, lr=0.01)),
    "adam_eps_inside": (lambda ps: O.Adam(ps, lr=0.01, eps=1e-3, eps_inside_sqrt=True),
                        lambda th, gs: R.adam_run(th, gs, lr=0.01, eps=1e-3, eps_inside_sqrt=True)),
    "adam_no_bias_correction": (lambda ps: O.Adam(ps, lr=0.01, bias_correction=False),
                                lambda th, gs: R.adam_run(th, gs, lr=0.01, bias_correction=False)),
    "amsgrad": (lambda ps: O.Adam(ps, lr=0.01, amsgrad=True), lambda th, gs: R.adam_run(th, gs, lr=0.01, amsgrad=True)),
    "adam_l2": (lambda ps: O.Adam(ps, lr=0.01, weight_decay=0.1),
                lambda th, gs: R.adam_run(th, gs, lr=0.01, weight_decay=0.1)),
    "adamw": (lambda ps: O.Adam(ps, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
              lambda th, gs: R.adam_run(th, gs, lr=0.01, weight_decay=0.1, decoupled=True)),
    "adamax": (lambda ps: O.Adamax(ps, lr=0.01, eps=0.0), lambda th, gs: R.adamax_run(th, gs, lr=0.01)),
    "ssd": (lambda ps: O.SSD(ps, lr=0.01),
            lambda th, gs: R.msvag_family_run(th, gs, 0.01, sign=True, variance_adaptation=False, momentum=False)),
    "mssd": (lambda ps: O.MSSD(ps, lr=0.01, beta=0.8),
             lambda th, gs: R.msvag_family_run(th, gs, 0.01, 0.8, sign=True, variance_adaptation=False)),
    "svag": (lambda ps: O.SVAG(ps, lr=0.05),
             lambda th, gs: R.msvag_family_run(th, gs, 0.05, momentum=False)),
    "msvag": (lambda ps: O.MSVAG(ps, lr=0.05), lambda th, gs: R.msvag_family_run(th, gs, 0.05)),
    "msvag_beta_0.5": (lambda ps: O.MSVAG(ps, lr=0.05, beta=0.5), lambda th, gs: R.msvag_family_run(th, gs, 0.05, 0.5)),
    "mssdva": (lambda ps: O.MSSDVA(ps, lr=0.01), lambda th, gs: R.msvag_family_run(th, gs, 0.01, sign=True)),
}

#: Largest relative deviation seen per case, printed by `pytest -s` for the closing note.
MAX_DEVIATION: dict[str, float] = {}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_numpy_reference(case: str, seed: int) -> None:
    make, reference = CASES[case]
    grads = _gradients(seed)
    theta0 = np.random.default_rng(100 + seed).normal(size=SHAPE)
    ours = _run_adamlab(make, theta0, grads)
    ref = reference(theta0, grads)
    assert len(ours) == len(ref) == STEPS
    for t, (a, b) in enumerate(zip(ours, ref, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{case}: step {t + 1}")
    dev = max(float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))) for a, b in zip(ours, ref, strict=True))
    MAX_DEVIATION[case] = max(MAX_DEVIATION.get(case, 0.0), dev)


def test_reference_can_fail() -> None:
    """The comparison is sharp: a 1e-6 change of one hyperparameter is detected."""
    grads = _gradients(0)
    theta0 = np.zeros(SHAPE)
    ours = _run_adamlab(lambda ps: O.MSVAG(ps, lr=0.05, beta=0.9 + 1e-6), theta0, grads)
    ref = R.msvag_family_run(theta0, grads, 0.05)
    assert not np.allclose(ours[-1], ref[-1], rtol=1e-10, atol=1e-12)
