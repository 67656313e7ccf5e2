"""Wilson et al. 2017, sec. 3.3: Lemma 3.1 numerically on the separable least-squares construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import adamlab.problems as problems

try:  # the project's Adam once it exists; torch's is the same update in exact arithmetic
    from adamlab.optim import Adam
except ImportError:  # pragma: no cover - until adamlab.optim lands
    from torch.optim import Adam


def train(problem, opt_factory, steps: int) -> np.ndarray:
    model = problem.make_model(0)
    opt = opt_factory(model.parameters())
    stream = problem.train_batches(0)
    for _ in range(steps):
        opt.zero_grad()
        problem.loss(model, next(stream)).backward()
        opt.step()
    return model, model.weight.detach().double().numpy().ravel()


@pytest.fixture(scope="module")
def problem():
    return problems.get("leastsquares.wilson", n=30, n_test=200, p=0.6, data_seed=1)


def test_construction_satisfies_the_lemma_condition(problem) -> None:
    x, y = problem.x_train64, problem.y_train64
    u = np.sign(x.T @ y)
    np.testing.assert_array_equal(x @ u, 4.0 * y)  # X sign(X^T y) = c y with c = 4
    assert (y > 0).sum() > (y < 0).sum()
    # each example owns its unique features: 1 if y = +1, 5 if y = -1
    np.testing.assert_array_equal(x[:, 3:].sum(1), np.where(y > 0, 1, 5))
    assert ((x[:, 3:] != 0).sum(0) <= 1).all()
    assert (problem.x_test64[:, 3 : x.shape[0] * 5 + 3] == 0).all()  # test points: unseen features only


@pytest.mark.parametrize("lr", [1e-3, 1e-2])
def test_full_batch_adam_from_zero_moves_along_sign_and_generalises_at_chance(problem, lr: float) -> None:
    model, w = train(problem, lambda ps: Adam(ps, lr=lr), steps=200)
    u = problem.adaptive_direction()
    proj = (w @ u) / (u @ u) * u
    assert np.linalg.norm(w) > 0.05
    assert np.linalg.norm(w - proj) <= 1e-4 * np.linalg.norm(w)  # w stays proportional to sign(X^T y)
    assert w @ u > 0
    metrics = problem.evaluate(model)
    negatives = float(np.mean(problem.y_test64 < 0))
    # every test point is labelled +1: the test error is the rate of the negative class
    assert metrics["test_error"] == pytest.approx(negatives, abs=1e-6)
    assert 0.25 < negatives < 0.5


def test_full_batch_sgd_reaches_the_minimum_norm_solution_and_classifies_correctly(problem) -> None:
    x = problem.x_train64
    lmax = np.linalg.eigvalsh(x.T @ x / x.shape[0]).max()
    model, w = train(problem, lambda ps: torch.optim.SGD(ps, lr=1.0 / lmax), steps=800)
    w_star = problem.min_norm_solution()
    np.testing.assert_allclose(w_star, np.linalg.lstsq(x, problem.y_train64, rcond=None)[0], atol=1e-10)
    assert np.linalg.norm(w - w_star) <= 1e-3 * np.linalg.norm(w_star)
    metrics = problem.evaluate(model)
    assert metrics["train_error"] == 0.0
    assert metrics["test_error"] == 0.0 and metrics["test_accuracy"] == 1.0
    assert metrics["train_loss"] < 1e-6


def test_data_are_seeded_and_the_model_starts_at_zero() -> None:
    a = problems.get("leastsquares.wilson", data_seed=3)
    b = problems.get("leastsquares.wilson", data_seed=3)
    c = problems.get("leastsquares.wilson", data_seed=4)
    np.testing.assert_array_equal(a.x_train64, b.x_train64)
    assert not np.array_equal(a.y_train64, c.y_train64)
    assert torch.count_nonzero(a.make_model(7).weight) == 0
    x, y = next(a.train_batches(0))
    assert x.shape == (100, a.dim) and y.shape == (100,)  # full batch by default
    xb, yb = next(a.train_batches(0, batch_size=10))
    assert xb.shape == (10, a.dim)
