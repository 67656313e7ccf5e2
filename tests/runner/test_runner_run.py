import math

import pytest
import torch

from adamlab.runner import Budget, make_config, run
from adamlab.runner.train import build_problem
from tests.runner import runner_tiny_problem as tiny


def test_same_seed_identical_metrics_different_seed_differs():
    a = run(tiny.NAME, "adam", {"lr": 0.05}, seed=3, budget=30)
    b = run(tiny.NAME, "adam", {"lr": 0.05}, seed=3, budget=30)
    c = run(tiny.NAME, "adam", {"lr": 0.05}, seed=4, budget=30)
    strip = [{k: v for k, v in r.items() if k != "wall_time"} for r in a.records]
    assert strip == [{k: v for k, v in r.items() if k != "wall_time"} for r in b.records]
    assert a.final("train_loss") != c.final("train_loss")


def test_dropout_run_deterministic():
    a = run((tiny.NAME, {"dropout": 0.3}), "sgd", {"lr": 0.05}, seed=1, budget=20)
    b = run((tiny.NAME, {"dropout": 0.3}), "sgd", {"lr": 0.05}, seed=1, budget=20)
    assert a.series("train_loss") == b.series("train_loss")


def test_metrics_per_eval_point():
    res = run(tiny.NAME, "sgd", {"lr": 0.05}, seed=0, budget=25, eval_every=10)
    assert res.status == "finished"
    steps = [int(r["step"]) for r in res.records]
    assert steps == [0, 10, 20, 25]
    last = res.records[-1]
    for key in ("epoch", "train_loss", "batch_loss", "test_loss", "test_accuracy", "wall_time", "lr"):
        assert key in last
    assert last["epoch"] == pytest.approx(25 * 8 / 64)
    assert "train_loss" not in res.records[0]  # no training loss before the first step


def test_train_loss_is_running_mean_since_last_eval():
    # recompute the per-step losses by hand with plain torch SGD (same model, same batches)
    problem = build_problem(tiny.NAME)
    res = run(problem, "sgd", {"lr": 0.05}, seed=2, budget=10, eval_every=5)
    torch.manual_seed(2)
    model = problem.make_model(2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    batches = problem.train_batches(2)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = problem.loss(model, next(batches))
        losses.append(loss.item())
        loss.backward()
        opt.step()
    assert res.records[1]["batch_loss"] == pytest.approx(sum(losses[:5]) / 5, rel=1e-6)
    assert res.records[2]["batch_loss"] == pytest.approx(sum(losses[5:]) / 5, rel=1e-6)
    # the tiny problem's evaluate() has no train_loss, so train_loss is the running mean
    assert res.records[2]["train_loss"] == res.records[2]["batch_loss"]


def test_problem_train_loss_wins_over_running_mean():
    class Exact(tiny.TinyRegression):
        def evaluate(self, model):
            return {**super().evaluate(model), "train_loss": 42.0}

    res = run(Exact(), "sgd", {"lr": 0.05}, seed=0, budget=10, eval_every=5)
    assert [r["train_loss"] for r in res.records] == [42.0, 42.0, 42.0]
    assert res.records[1]["batch_loss"] != 42.0


def test_divergence_policy():
    res = run(tiny.NAME, "sgd", {"lr": 10.0}, seed=0, budget=200, eval_every=10)
    assert res.status == "diverged"
    assert res.diverged_step is not None and 1 <= res.diverged_step < 200
    assert all(math.isfinite(v) for r in res.records for v in r.values())
    assert max(r["step"] for r in res.records) < res.diverged_step
    assert res.final("train_loss") is not None


def test_schedule_applied_inv_sqrt():
    res = run(tiny.NAME, "sgd", {"lr": 0.1}, seed=0, budget=16, eval_every=4, schedule="inv_sqrt")
    for rec in res.records[1:]:
        assert rec["lr"] == pytest.approx(0.1 / math.sqrt(rec["step"]))


def test_step_schedule_lr():
    res = run(tiny.NAME, "sgd", {"lr": 0.1}, seed=0, budget=12, eval_every=4,
              schedule={"name": "step", "gamma": 0.5, "every": 4})
    assert [r["lr"] for r in res.records[1:]] == pytest.approx([0.1, 0.05, 0.025])


def test_epoch_budget_and_defaults():
    problem = build_problem(tiny.NAME)
    cfg = make_config(problem, "sgd", {"lr": 0.1}, 0, Budget(epochs=2))
    assert cfg.steps == 16 and cfg.batch_size == 8 and cfg.eval_every == 10
    assert make_config(problem, "sgd", {}, 0, None).steps == problem.protocol.steps
    cfg4 = make_config(problem, "sgd", {}, 0, Budget(epochs=1), batch_size=4)
    assert cfg4.steps == 16


def test_hooks_recorded():
    class Hook:
        every = 5
        name = "gradnorm"

        def __init__(self):
            self.calls = []

        def __call__(self, step, model, optimizer, problem, batch):
            self.calls.append(step)
            g = torch.cat([p.grad.flatten() for p in model.parameters()])
            return {"grad_norm": float(g.norm())}

    hook = Hook()
    res = run(tiny.NAME, "sgd", {"lr": 0.05}, seed=0, budget=20, hooks=[hook])
    assert hook.calls == [5, 10, 15, 20]
    assert res.series("grad_norm")[0] == [5, 10, 15, 20]
    cfg = make_config(build_problem(tiny.NAME), "sgd", {"lr": 0.05}, 0, 20, hooks=[hook])
    assert cfg.hooks == ("gradnorm@5",)


def test_config_hash_stable_and_sensitive():
    p = build_problem(tiny.NAME)
    a = make_config(p, "adam", {"lr": 0.001}, 0, 10)
    b = make_config(p, "Adam", {"lr": 10 ** -3.0}, 0, 10)
    assert a.run_id == b.run_id and len(a.run_id) == 16
    assert a.run_id != make_config(p, "adam", {"lr": 0.002}, 0, 10).run_id
    assert a.run_id != make_config(p, "adam", {"lr": 0.001}, 1, 10).run_id
    assert a.run_id != make_config(build_problem(tiny.NAME, {"dropout": 0.1}), "adam", {"lr": 0.001}, 0, 10).run_id


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"optimizer": "nosuch"}, "unknown optimizer"),
        ({"seed": -1}, "seed"),
        ({"budget": 0}, "steps"),
        ({"eval_every": 0}, "eval_every"),
        ({"batch_size": 0}, "batch_size"),
        ({"schedule": "cosine"}, "schedule"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = {"optimizer": "sgd", "seed": 0, "budget": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        run(tiny.NAME, args.pop("optimizer"), {"lr": 0.1}, **args)


def test_unknown_problem():
    with pytest.raises(ValueError, match="unknown problem"):
        run("no.such.problem", "sgd", {"lr": 0.1}, budget=5)
