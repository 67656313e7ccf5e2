"""The per-layer dashboard from a Monitor's history, and the Dissecting Adam recipes' cadence."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from adamlab.dissect.integrations import MonitorHook
from adamlab.dissect.monitor import Monitor
from adamlab.optim.registry import make_optimizer
from adamlab.plotting import write_figure
from adamlab.plotting.dissect import layer_dashboard, split_curves


def test_dashboard_from_monitor_history(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = make_optimizer("adam", model.parameters(), lr=1e-2)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    with Monitor(model, opt, every=2) as mon:
        for _ in range(10):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for step, layer, quantity, value in mon.rows():
        key = quantity if layer == "all" else f"{quantity}/{layer}"
        curves.setdefault(key, ([], []))[0].append(step)
        curves[key][1].append(value)
    by = split_curves({f"dx_{k}": v for k, v in curves.items()}, "dx_")
    assert set(by["eta2_median"]) == {"all", "0", "2"} and by["eta2_median"]["all"][0] == [2, 4, 6, 8, 10]
    fig = layer_dashboard(curves, title="test")
    path = write_figure(fig, tmp_path / "d.png")
    assert path.stat().st_size > 20_000


@pytest.mark.parametrize("name", ["dissect-p1-fmnist", "dissect-p2-cifar10", "dissect-p3-cifar100",
                                  "dissect-p4-tolstoi"])
def test_dissect_recipes_record_the_statistics(name):
    import adamlab.reproduce as reproduce

    recipe = reproduce.get(name)
    assert recipe.quick.hook_every == 1 and recipe.full.hook_every == 10
    assert list(recipe.quick.hook_seeds) == [0]
    hook = recipe.hook(None, recipe.quick.hook_every)
    assert isinstance(hook, MonitorHook) and hook.every == 1 and hook.per_layer
    assert "dx_eta2_median" in recipe.hook_metrics and recipe.extra_figures is not None
