"""GradientStatsHook: the runner's hook protocol, its metrics, and that measured gamma tracks the ideal one."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from adamlab.dissect import GradientStatsHook
from adamlab.optim.registry import make_optimizer
from adamlab.problems import Problem, Protocol


class TinyClassification(Problem):
    """A 2-layer MLP with BatchNorm and dropout on a fixed synthetic data set (test only)."""

    name = "test.tiny_classification"
    protocol = Protocol(batch_size=32, steps=20, eval_every=10)
    criterion = staticmethod(F.cross_entropy)

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 8, generator=g)
        self.y = (self.x[:, 0] + 0.5 * self.x[:, 1] > 0).long()

    def make_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))

    def train_batches(self, seed: int, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, ...]]:
        g = torch.Generator().manual_seed(seed)
        b = batch_size or self.protocol.batch_size
        while True:
            idx = torch.randint(0, 256, (b,), generator=g)
            yield self.x[idx], self.y[idx]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.criterion(model(batch[0]), batch[1])


def _train(optimizer_name: str, steps: int, hook: GradientStatsHook, **hp) -> list[dict[str, float]]:
    problem = TinyClassification()
    model = problem.make_model(0)
    opt = make_optimizer(optimizer_name, model.parameters(), **hp)
    batches = problem.train_batches(0)
    out = []
    for step in range(1, steps + 1):
        batch = next(batches)
        opt.zero_grad()
        problem.loss(model, batch).backward()
        opt.step()
        if step % hook.every == 0:
            out.append(hook(step, model, opt, problem, batch))
    assert all(m.training for m in model.modules()), "the hook must leave the model in train mode"
    return out


def test_hook_metrics_with_adam():
    records = _train("adam", 20, GradientStatsHook(every=10), lr=1e-2)
    assert len(records) == 2
    rec = records[-1]
    for key in ("gs_eta2_median", "gs_rho_empirical_mean", "gs_gamma_grad_ideal_median",
                "gs_gamma_sign_ideal_median", "gs_gamma_measured_median", "gs_gamma_sign_empirical_median",
                "gs_gamma_abs_error_median", "gs_gamma_corr", "gs_gamma_rank_corr", "gs_frac_eta2_gt_1"):
        assert key in rec and math.isfinite(rec[key]), key
    assert 0.0 <= rec["gs_rho_empirical_mean"] <= 1.0
    assert 0.0 <= rec["gs_gamma_measured_median"] <= 1.0


def test_hook_without_gamma_for_sgd():
    rec = _train("sgd", 5, GradientStatsHook(every=5, max_examples=8), lr=0.1)[-1]
    assert "gs_eta2_median" in rec and "gs_gamma_measured_median" not in rec  # SGD has no per-coordinate gamma


def test_hook_in_the_runner():
    runner = pytest.importorskip("adamlab.runner")
    result = runner.run(TinyClassification(), "msvag", {"lr": 0.05}, seed=0, budget=6,
                        hooks=[GradientStatsHook(every=3)])
    steps_with_stats = [r["step"] for r in result.records if "gs_eta2_median" in r]
    assert steps_with_stats == [3.0, 6.0]


def test_hook_errors():
    with pytest.raises(ValueError, match="every"):
        GradientStatsHook(every=0)
    with pytest.raises(ValueError, match="max_examples"):
        GradientStatsHook(max_examples=1)
    hook = GradientStatsHook(every=1)
    problem = TinyClassification()
    problem.criterion = None
    model = problem.make_model(0)
    with pytest.raises(ValueError, match="loss_fn"):
        hook(1, model, make_optimizer("adam", model.parameters()), problem, next(problem.train_batches(0)))


def test_cost_measurement_runs():
    from benchmarks.dissect_cost import hook_cost

    r = hook_cost(hidden=8, batch=8, repeats=1)
    assert r["step_s"] > 0 and r["hook_s"] > 0 and r["ratio"] > 0


@pytest.mark.slow
def test_figure_is_written(tmp_path):
    from scripts.dissect_figures import make_figure, measured_vs_ideal

    gamma, ideal = measured_vs_ideal("adam")
    assert float(torch.corrcoef(torch.stack([gamma, ideal]))[0, 1]) > 0.8
    out = make_figure(tmp_path / "f.png")
    assert out.stat().st_size > 10_000


def test_old_metric_names_are_read_as_todays(tmp_path):
    """A store written before the names were unified (gs_sign_agreement_mean, ...) reads with today's names,
    through every query, and a query for today's name finds the old rows."""
    from adamlab.runs.config import RunConfig
    from adamlab.runs.result import RunResult, RunStatus
    from adamlab.store import Store

    config = RunConfig(problem="p", optimizer="adam", hparams={"lr": 0.1}, seed=0, steps=20, batch_size=4,
                       eval_every=10, schedule={"name": "constant"})
    records = [{"step": 10, "gs_sign_agreement_mean": 0.7, "gs_sign_agreement_gaussian_mean": 0.8, "gs_eta2_median": 1.0},
               {"step": 20, "gs_sign_agreement_mean": 0.6, "gs_sign_agreement_gaussian_mean": 0.9, "gs_eta2_median": 2.0}]
    with Store(tmp_path / "old.sqlite") as db:
        db.plan([config])
        db.record(RunResult(config, RunStatus.FINISHED, records, wall_time=1.0))
    rid = config.run_id
    with Store(tmp_path / "old.sqlite", readonly=True) as db:
        assert db.metric_names() == ["gs_eta2_median", "gs_rho_empirical_mean", "gs_rho_gaussian_mean"]
        assert db.metrics(rid)["gs_rho_empirical_mean"] == ([10, 20], [0.7, 0.6])
        assert db.curves([rid], ["gs_rho_gaussian_mean"]) == {rid: {"gs_rho_gaussian_mean": ([10, 20], [0.8, 0.9])}}
        assert db.final_metric(rid, "gs_rho_empirical_mean") == 0.6
        assert db.final_metrics([rid], ["gs_rho_empirical_mean"]) == {rid: {"gs_rho_empirical_mean": 0.6}}
        assert db.final_values([rid], "gs_rho_gaussian_mean") == [0.9]
        assert {name for _, _, name, _ in db.metric_rows()} == {"gs_eta2_median", "gs_rho_empirical_mean",
                                                                "gs_rho_gaussian_mean"}
