"""Every recipe is registered, documented, and its protocol is stated everywhere it must be."""

from __future__ import annotations

import pytest

from adamlab import cli
from adamlab.commands.reproduce import list_recipes
from adamlab.reproduce import get, names

EXPECTED = [
    "noisy-quadratic", "wilson", "adam-mnist-logreg", "adam-imdb-bow", "adam-mnist-mlp",
    "adam-vae-bias-correction", "dissect-p1-fmnist", "dissect-p4-tolstoi", "adam-cifar10-cnn",
    "dissect-p2-cifar10", "dissect-p3-cifar100", "reddi-counterexample", "adam-slides",
]


def test_every_recipe_is_registered():
    assert sorted(names()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_recipe_is_documented(name):
    recipe = get(name)
    doc = recipe.doc.lower()
    # grid, seeds, budget and selection rule are stated in the docstring
    for word in ("lr grid", "seed", "steps", "selection", "quick", "claim"):
        assert word in doc, f"{name}: docstring does not mention {word!r}"
    assert recipe.settings_for(True) and recipe.variants_for(True)
    assert recipe.settings_for(False) and recipe.variants_for(False)
    for quick in (True, False):
        proto = recipe.protocol(quick)
        assert proto.steps >= 1 and proto.lr_grid and proto.seeds and proto.tune_seeds
        assert "lr grid" in proto.describe() and "steps" in proto.describe()
    assert recipe.quick.steps < recipe.full.steps
    metric, mode = recipe.order_metric()
    assert mode in ("min", "max") and metric


@pytest.mark.parametrize("name", EXPECTED)
def test_recipe_optimizers_and_problems_exist(name):
    from adamlab import problems
    from adamlab.optim import registry

    recipe = get(name)
    standalone = hasattr(recipe, "run_standalone")  # its own loop: settings name no registered problem
    for quick in (True, False):
        for v in recipe.variants_for(quick):
            assert v.optimizer in registry.names()
        for s in recipe.settings_for(quick):
            assert standalone or s.problem in problems.names()


def test_unknown_recipe_is_a_value_error():
    with pytest.raises(ValueError, match="known recipes"):
        get("nope")


def test_list_names_every_recipe(capsys):
    text = list_recipes()
    for name in EXPECTED:
        assert name in text
    assert cli.main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXPECTED)
    assert cli.main(["reproduce"]) == 0  # no NAME lists too
    assert "wilson" in capsys.readouterr().out


def test_cli_unknown_recipe_exit_2(capsys):
    assert cli.main(["reproduce", "no-such-recipe"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown recipe" in err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "adamlab reproduce noisy-quadratic --quick" in out
