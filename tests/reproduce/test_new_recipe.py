"""A new recipe needs one module and its registration: nothing in adamlab names it.

The toy recipe here is defined and registered in this file only, then used through the public API
(``adamlab.reproduce.get``/``names``/``reproduce``) and the command line (``adamlab reproduce``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from adamlab import cli, reproduce
from adamlab.reproduce import Claim, Protocol, Recipe, Setting, Variant
from adamlab.reproduce.base import REGISTRY

NAME = "toy-recipe"
BUILT_IN = [
    "noisy-quadratic", "wilson", "adam-mnist-logreg", "adam-imdb-bow", "adam-mnist-mlp",
    "adam-vae-bias-correction", "dissect-p1-fmnist", "dissect-p4-tolstoi", "adam-cifar10-cnn",
    "dissect-p2-cifar10", "dissect-p3-cifar100", "reddi-counterexample", "adam-slides",
]


def _adam_no_worse(summary: dict[str, Any]) -> tuple[bool, str]:
    final = {v: s["final"]["train_loss"]["mean"]
             for v, s in summary["settings"]["d=10"]["variants"].items()}
    return final["adam"] <= 10 * final["sgd"] + 1.0, f"final train loss: {final}"


TOY = Recipe(
    name=NAME,
    title="toy: SGD and Adam on a 10-d noisy quadratic (tests)",
    settings=[Setting("d=10", "quadratic.noisy", {"d": 10})],
    variants=[Variant("sgd", "sgd"), Variant("adam", "adam")],
    full=Protocol(lr_grid=[1e-2, 1e-1], tune_seeds=[0], seeds=[0, 1], steps=40, eval_every=10),
    quick=Protocol(lr_grid=[1e-2, 1e-1], tune_seeds=[0], seeds=[0], steps=8, eval_every=4),
    criterion="min:train_loss",
    metrics=["train_loss"],
    claims=[Claim("Adam is not much worse than SGD here", _adam_no_worse)],
    doc="A toy recipe: lr grid {0.01, 0.1}, seed 0, 8 steps (quick); selection min:train_loss; one claim.",
)


@pytest.fixture
def toy_recipe() -> Iterator[str]:
    reproduce.register(TOY)
    yield NAME
    REGISTRY.remove(NAME)


def test_registered_through_the_public_api(toy_recipe: str) -> None:
    assert reproduce.get(toy_recipe) is TOY
    assert reproduce.names() == [*BUILT_IN, NAME]  # the built-ins keep their order; a new one comes last
    with pytest.raises(ValueError, match="already registered"):
        reproduce.register(TOY)


def test_an_order_places_it(toy_recipe: str) -> None:
    REGISTRY.remove(toy_recipe)
    reproduce.register(TOY, order=15)  # between noisy-quadratic (10) and wilson (20)
    assert reproduce.names()[:3] == ["noisy-quadratic", NAME, "wilson"]


def test_gone_after_removal() -> None:
    assert reproduce.names() == BUILT_IN
    with pytest.raises(ValueError, match=f"unknown recipe '{NAME}'; known recipes: noisy-quadratic, wilson"):
        reproduce.get(NAME)


def test_listed_and_run_by_the_cli(toy_recipe: str, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reproduce", "--list"]) == 0
    listing = capsys.readouterr().out
    assert listing.index("adam-slides") < listing.index(NAME)
    assert "toy: SGD and Adam on a 10-d noisy quadratic (tests) [no data needed]" in listing
    out = tmp_path / "toy"
    assert cli.main(["reproduce", toy_recipe, "--quick", "--backend", "serial", "--out", str(out),
                     "--quiet"]) == 0
    text = capsys.readouterr().out
    assert f"recipe {NAME}" in text and "[too few seeds (1 < 5)] Adam is not much worse than SGD here" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"] == NAME and summary["n_runs"] == 2 * 2  # 2 methods x 2 lrs (seed 0 reruns are the tuning runs)
