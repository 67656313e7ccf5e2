"""Every data-backed problem builds, trains a few steps, evaluates, and is deterministic per seed.

Runs on fake tensors in ``adamlab.data``'s documented formats (``fake_data``) and, when the data
engineer's fixture files exist, on tiny files in each real format (``tiny_data_root``).
"""

from __future__ import annotations

import math

import pytest
import torch

import adamlab.problems as problems
from adamlab.problems.datasets import clear_cache, shuffled_batches

DATA_PROBLEMS = {  # name -> (small batch size, expected input shape after transform, outputs per example)
    "mnist.logreg": (8, (784,), (10,)),
    "mnist.mlp": (8, (784,), (10,)),
    "mnist.vae": (8, (784,), None),
    "imdb.bow_logreg": (8, (10_000,), (1,)),
    "cifar10.cnn": (4, (3, 32, 32), (10,)),
    "fmnist.cnn": (8, (1, 28, 28), (10,)),
    "cifar10.3c3d": (4, (3, 32, 32), (10,)),
    "cifar100.allcnnc": (4, (3, 32, 32), (100,)),
    "tolstoi.char_rnn": (4, (10,), (10, 29)),
}
#: Options that keep the tests small: tiny evaluation subsets, short character sequences.
SMALL = {"eval_size": 8}


def small_options(name: str) -> dict:
    return {**SMALL, "seq_len": 10} if name == "tolstoi.char_rnn" else dict(SMALL)


def eval_mode_loss(problem, model, batch) -> float:
    was = model.training
    model.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        value = float(problem.loss(model, batch))
    model.train(was)
    return value


def check_trains(problem, batch_size: int, steps: int = 3) -> None:
    torch.manual_seed(0)
    model = problem.make_model(0)
    stream = problem.train_batches(0, batch_size=batch_size)
    batch = next(stream)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = eval_mode_loss(problem, model, batch)
    for _ in range(steps):  # a few steps on one batch: the loss on it must go down
        opt.zero_grad()
        loss = problem.loss(model, batch)
        assert loss.dim() == 0 and math.isfinite(float(loss.detach()))
        loss.backward()
        opt.step()
    after = eval_mode_loss(problem, model, batch)
    assert math.isfinite(after) and after < before
    opt.zero_grad()  # and a fresh batch trains without error
    problem.loss(model, next(stream)).backward()
    opt.step()
    metrics = problem.evaluate(model)
    assert metrics and all(math.isfinite(v) for v in metrics.values())
    assert "test_loss" in metrics and "train_loss" in metrics
    if problem.criterion is not None:
        assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert model.training  # evaluate restores the mode


@pytest.mark.parametrize("name", sorted(DATA_PROBLEMS))
def test_problem_builds_trains_and_evaluates_on_fake_data(name: str, fake_data) -> None:
    bs, in_shape, out_shape = DATA_PROBLEMS[name]
    problem = problems.get(name, **small_options(name))
    inputs, targets = next(problem.train_batches(0, batch_size=bs))
    assert inputs.shape == (bs, *in_shape)
    assert inputs.dtype == (torch.int64 if name == "tolstoi.char_rnn" else torch.float32)
    if name.startswith(("mnist", "fmnist")):
        assert 0.0 <= float(inputs.min()) and float(inputs.max()) <= 1.0
    if out_shape is not None:
        model = problem.make_model(0).eval()
        assert model(inputs).shape == (bs, *out_shape)
    check_trains(problem, bs)


@pytest.mark.parametrize("name", sorted(DATA_PROBLEMS))
def test_same_seed_same_model_and_batches(name: str, fake_data) -> None:
    bs = DATA_PROBLEMS[name][0]
    problem = problems.get(name, **small_options(name))
    a, b, c = problem.make_model(1).state_dict(), problem.make_model(1).state_dict(), problem.make_model(2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    s1, s2, s3 = (problem.train_batches(seed, batch_size=bs) for seed in (5, 5, 6))
    for _ in range(3):
        (x1, y1), (x2, y2), (x3, _) = next(s1), next(s2), next(s3)
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert not torch.equal(x1, x3)


@pytest.mark.parametrize("name", [n for n in sorted(DATA_PROBLEMS) if n != "mnist.vae"])
def test_loss_is_criterion_plus_regularization(name: str, fake_data) -> None:
    bs = DATA_PROBLEMS[name][0]
    problem = problems.get(name, **small_options(name))
    model = problem.make_model(0).eval()
    x, y = next(problem.train_batches(0, batch_size=bs))
    reg = problem.regularization(model)
    expected = problem.criterion(model(x), y) + (0.0 if reg is None else reg)
    torch.testing.assert_close(problem.loss(model, (x, y)), expected)
    wd = problem.options.get("weight_decay", 0.0)
    if wd:
        ref = 0.5 * wd * sum(float(p.detach().double().square().sum()) for p in model.parameters() if p.dim() > 1)
        assert float(reg) == pytest.approx(ref, rel=1e-5)
    else:
        assert reg is None


def test_data_is_loaded_lazily_once_per_process(fake_data) -> None:
    problem = problems.get("mnist.logreg")
    assert fake_data == []  # building a problem loads nothing
    next(problem.train_batches(0))
    problems.get("mnist.mlp").train_batches(1)
    next(problems.get("mnist.mlp").train_batches(1))
    assert fake_data == [("mnist", "train")]
    problem.evaluate(problem.make_model(0))
    assert fake_data == [("mnist", "train"), ("mnist", "test")]
    assert problem.steps_per_epoch == 1  # 96 examples < 128: one (smaller) batch per epoch


def test_steps_per_epoch_and_tolstoi_sequences(fake_data) -> None:
    assert problems.get("fmnist.cnn").steps_per_epoch == 1  # 96 // 64
    rnn = problems.get("tolstoi.char_rnn")
    assert rnn.steps_per_epoch == 1  # 40 sequences, batches of 50: clamped to one (smaller) batch
    x, y = rnn.data("train")
    assert x.shape == (40, 50) and y.shape == (40, 50)
    torch.testing.assert_close(x[:, 1:], y[:, :-1])  # targets are the next characters


def test_shuffled_batches_cover_each_epoch_once_and_reshuffle() -> None:
    inputs = torch.arange(12).reshape(12, 1)
    targets = torch.arange(12)
    stream = shuffled_batches(inputs, targets, 4, seed=0)
    epoch1 = torch.cat([next(stream)[1] for _ in range(3)])
    epoch2 = torch.cat([next(stream)[1] for _ in range(3)])
    assert sorted(epoch1.tolist()) == list(range(12)) == sorted(epoch2.tolist())
    assert not torch.equal(epoch1, epoch2)
    x, y = next(shuffled_batches(inputs, targets, 5, seed=0))  # incomplete last batch dropped
    assert x.shape == (5, 1) and torch.equal(x[:, 0], y)
    full = next(shuffled_batches(inputs, targets, 100, seed=0))  # larger than the data: everything
    assert full[0].shape == (12, 1)


@pytest.fixture
def tiny_root(request):
    pytest.importorskip("adamlab.data.testing", reason="adamlab.data.testing (tiny fixture files) not written yet")
    clear_cache()
    yield request.getfixturevalue("tiny_data_root")
    clear_cache()


@pytest.mark.parametrize("name", sorted(DATA_PROBLEMS))
def test_problem_trains_on_tiny_real_format_files(name: str, tiny_root) -> None:
    bs = DATA_PROBLEMS[name][0]
    problem = problems.get(name, **small_options(name))
    model = problem.make_model(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    stream = problem.train_batches(0, batch_size=bs)
    for _ in range(2):
        opt.zero_grad()
        loss = problem.loss(model, next(stream))
        assert math.isfinite(float(loss.detach()))
        loss.backward()
        opt.step()
    metrics = problem.evaluate(model)
    assert metrics and all(math.isfinite(v) for v in metrics.values())
    assert problem.steps_per_epoch >= 1


@pytest.mark.parametrize("name", [n for n in sorted(DATA_PROBLEMS) if n != "mnist.vae"] + ["leastsquares.wilson"])
def test_criterion_gives_per_sample_gradients_with_torch_func(name: str, fake_data) -> None:
    """The dissection code's route: vmap(grad(criterion(functional_call(model, params, x_i), y_i)))."""
    from torch.func import functional_call, grad, vmap

    opts = {} if name == "leastsquares.wilson" else small_options(name)
    problem = problems.get(name, **opts)
    model = problem.make_model(0).eval()
    x, y = next(problem.train_batches(0, batch_size=2))
    x, y = x[:2], y[:2]
    params = {k: v.detach() for k, v in model.named_parameters()}

    def sample_loss(p, xi, yi):
        return problem.criterion(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)
    for i in range(2):
        model.zero_grad()
        problem.criterion(model(x[i : i + 1]), y[i : i + 1]).backward()
        for k, p in model.named_parameters():
            torch.testing.assert_close(per_sample[k][i], p.grad, atol=1e-5, rtol=1e-4)
