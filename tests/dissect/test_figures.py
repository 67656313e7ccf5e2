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


def test_a_dissect_recipe_records_and_draws(tmp_path):
    """End to end on a synthetic problem (nn.Linear least squares): the hooked seed-0 runs write the
    monitor's metrics into the store, the summary carries them and the figures are drawn."""
    import dataclasses
    import json

    from adamlab import cli, reproduce
    from adamlab.reproduce import Protocol, Setting
    from adamlab.reproduce.base import REGISTRY
    from adamlab.reproduce.recipes.dissect_paper import dissect_recipe

    proto = Protocol(lr_grid=[1e-2], tune_seeds=[0], seeds=[0], steps=6, eval_every=3)
    recipe = dataclasses.replace(dissect_recipe(
        name="toy-dissect", title="toy dissect", setting=Setting("ls", "leastsquares.wilson"), dataset="none",
        sign_wins=None, full=proto, quick=proto, doc="toy"), datasets=[])
    reproduce.register(recipe)
    try:
        out = tmp_path / "out"
        assert cli.main(["reproduce", "toy-dissect", "--quick", "--backend", "serial", "--out", str(out),
                         "--quiet"]) == 0
    finally:
        REGISTRY.remove("toy-dissect")
    summary = json.loads((out / "summary.json").read_text())
    dissection = summary["settings"]["ls"]["variants"]["mssd"]["dissection"]
    assert dissection["dx_eta2_median"]["mean"] >= 0 and 0.5 <= dissection["dx_rho_gaussian_mean"]["mean"] <= 1
    assert (out / "toy-dissect_dissection.png").stat().st_size > 10_000
    assert {p.name for p in out.glob("toy-dissect_layers_*.png")} == {
        f"toy-dissect_layers_{v}.png" for v in ("msgd", "mssd", "msvag", "mssdva")}
