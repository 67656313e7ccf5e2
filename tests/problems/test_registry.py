"""Registry, option validation and the ``adamlab list`` command."""

from __future__ import annotations

import pytest

import adamlab.problems as problems
from adamlab.cli import main

ALL = [
    "cifar10.3c3d",
    "cifar10.cnn",
    "cifar100.allcnnc",
    "fmnist.cnn",
    "imdb.bow_logreg",
    "leastsquares.wilson",
    "mnist.logreg",
    "mnist.mlp",
    "mnist.vae",
    "quadratic.noisy",
    "tolstoi.char_rnn",
]


def test_names_lists_every_problem() -> None:
    # Tests elsewhere register their own tiny problems; the built-in ones come from adamlab's modules.
    from adamlab.problems.base import REGISTRY

    builtin = [n for n in problems.names() if REGISTRY.entries[n].factory.__module__.startswith("adamlab.")]
    assert builtin == ALL


@pytest.mark.parametrize("name", ALL)
def test_every_problem_has_a_sourced_protocol_and_docstring(name: str) -> None:
    cls = problems.base.REGISTRY.entries[name].factory
    proto = cls.protocol
    assert proto.batch_size >= 1 and proto.steps >= proto.eval_every >= 1
    assert proto.source, name
    assert cls.__doc__ and cls.description


def test_unknown_problem_is_a_value_error_listing_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown problem 'nope'.*quadratic.noisy"):
        problems.get("nope")


@pytest.mark.parametrize("name", ALL)
def test_unknown_option_is_a_value_error_naming_it(name: str) -> None:
    with pytest.raises(ValueError, match="'bogus'"):
        problems.get(name, bogus=1)


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("quadratic.noisy", {"spectrum": "medium"}, "spectrum"),
        ("quadratic.noisy", {"rotation": "diag"}, "rotation"),
        ("quadratic.noisy", {"nu": -0.1}, "nu"),
        ("quadratic.noisy", {"d": 0}, "d must"),
        ("leastsquares.wilson", {"p": 0.5}, "p must"),
        ("leastsquares.wilson", {"n": 0}, "n must"),
        ("mnist.logreg", {"weight_decay": -1.0}, "weight_decay"),
        ("mnist.mlp", {"dropout": 1.0}, "dropout"),
        ("cifar10.cnn", {"input_dropout": -0.5}, "input_dropout"),
        ("tolstoi.char_rnn", {"seq_len": 0}, "seq_len"),
        ("fmnist.cnn", {"eval_size": 0}, "eval_size"),
    ],
)
def test_invalid_option_values_raise(name: str, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        problems.get(name, **options)


def test_options_are_completed_with_defaults_in_config() -> None:
    p = problems.get("quadratic.noisy", nu=4.0)
    cfg = p.config()
    assert cfg["problem"] == "quadratic.noisy"
    assert cfg["nu"] == 4.0 and cfg["d"] == 100 and cfg["spectrum"] == "well"


def test_criterion_is_none_where_the_loss_is_not_criterion_form() -> None:
    assert problems.get("quadratic.noisy").criterion is None
    assert problems.get("mnist.vae").criterion is None
    assert callable(problems.get("fmnist.cnn").criterion)
    assert callable(problems.get("leastsquares.wilson").criterion)


def test_cli_list_prints_every_problem_with_its_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ALL:
        assert name in out
    assert "batch 128, 21060 steps, eval every 468, lr schedule inv_sqrt" in out
    assert "Kingma & Ba 2015, sec. 6.1" in out


def test_cli_list_names_and_selection(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--names"]) == 0
    assert capsys.readouterr().out.split() == ALL
    assert main(["list", "quadratic.noisy"]) == 0
    out = capsys.readouterr().out
    assert "options:" in out and "spectrum='well'" in out and "mnist.logreg" not in out


def test_cli_list_unknown_problem_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "nope"]) == 2
    assert "unknown problem" in capsys.readouterr().err


def test_cli_list_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["list", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_list_optimizers_shows_required_hyperparameters(capsys):
    assert main(["list", "--optimizers"]) == 0
    out = capsys.readouterr().out
    assert "msvag " in out and "lr=REQUIRED" in out and "required: --lr (sweep: --lr-grid)" in out
    assert "foreach" not in out
    assert main(["list", "--optimizers", "--names"]) == 0
    assert "msvag" in capsys.readouterr().out.split()


def test_run_without_lr_for_an_optimizer_without_default_says_which_flag(capsys, tmp_path):
    assert main(["run", "quadratic.noisy", "--optimizer", "msvag", "--steps", "3",
                 "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "give one with --lr X" in err and "param group" not in err
