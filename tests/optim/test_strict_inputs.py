"""Bad input is refused with a ValueError naming the parameter; NaN is never silently swallowed.

Issue 15: booleans take True/False only (API and CLI), integer parameters are refused, a NaN gradient
reaches the parameter under ``nonfinite="propagate"``; issue 14: copies keep the non-finite policy.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import adamlab.optim as O
from adamlab.optim import validation as V
from adamlab.runs.parsing import parse_assignments, parse_value
from tests.optim.cases import CASES, NAMES, inner

CLASSES = [O.SGD, O.Adagrad, O.RMSprop, O.Adam, O.Adamax, O.Dissected, O.SSD, O.MSSD, O.SVAG, O.MSVAG, O.MSSDVA]
NOT_BOOLEANS = ["no", "yes", "True", 1, 0, None, 1.0, torch.tensor(True)]


def _boolean_switches(cls) -> list[str]:
    names = [n for n, check in cls.hyperparameter_checks.items() if check is V.boolean]
    return [*names, "differentiable"]


def test_every_documented_switch_is_checked_as_a_boolean() -> None:
    expected = {
        O.Adam: {"amsgrad", "maximize", "decoupled_weight_decay", "bias_correction", "eps_inside_sqrt"},
        O.SGD: {"nesterov", "maximize"}, O.RMSprop: {"centered", "maximize"},
        O.Dissected: {"variance_adaptation", "use_momentum", "maximize"},
    }
    for cls, names in expected.items():
        assert names <= set(_boolean_switches(cls)), cls


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_boolean_switches_refuse_anything_but_true_and_false(cls) -> None:
    p = [nn.Parameter(torch.zeros(2))]
    for name in _boolean_switches(cls):
        if cls is not O.Dissected and issubclass(cls, O.Dissected) and name in ("variance_adaptation", "use_momentum"):
            continue  # fixed by the preset
        for value in NOT_BOOLEANS:
            with pytest.raises(ValueError, match=name):
                cls(p, lr=0.1, **{name: value})
            with pytest.raises(ValueError, match=name):  # ... and as a per-group override
                cls([{"params": p, name: value}], lr=0.1)
        for value in (True, False):
            if name == "nesterov" and value:
                continue
            cls(p, lr=0.1, **{name: value})


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_foreach_and_fused_take_none_true_or_false(cls) -> None:
    p = [nn.Parameter(torch.zeros(2))]
    for name in ("foreach", "fused"):
        for value in ("no", 1, 0):
            with pytest.raises(ValueError, match=name):
                cls(p, lr=0.1, **{name: value})


def test_dissected_refuses_non_boolean_switches() -> None:
    p = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="momentum"):
        O.Dissected(p, lr=0.1, momentum=-1, variance_adaptation="x")
    with pytest.raises(ValueError, match="variance_adaptation"):
        O.Dissected(p, lr=0.1, variance_adaptation="x")
    with pytest.raises(ValueError, match="use_momentum"):
        O.Dissected(p, lr=0.1, use_momentum=0)


def test_cli_values_true_false_only() -> None:
    assert parse_value("true") is True and parse_value("false") is False
    assert parse_value("True") is True and parse_value("FALSE") is False
    for text in ("no", "yes", "on", "off"):
        assert parse_value(text) == text  # a string: the optimizer refuses it for a switch
    assert parse_assignments(["maximize=false", "momentum=0.9"]) == {"maximize": False, "momentum": 0.9}


def test_cli_run_with_maximize_no_exits_2_with_one_line(tmp_path, capsys, monkeypatch) -> None:
    from adamlab.cli import main

    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "runs.db")
    try:
        code = main(["run", "quadratic.noisy", "--optimizer", "sgd", "--lr", "0.01", "--steps", "300",
                     "--hparam", "maximize=no", "--store", store])
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "maximize" in err


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
@pytest.mark.parametrize("name", NAMES)
def test_integer_and_bool_parameters_are_refused(name, dtype) -> None:
    p = torch.zeros(3, dtype=dtype)
    with pytest.raises(ValueError, match=str(dtype).replace("torch.", "")):
        CASES[name]([p])
    opt = CASES[name]([nn.Parameter(torch.zeros(3))])
    with pytest.raises(ValueError, match="floating-point"):
        opt.add_param_group({"params": [p]})


@pytest.mark.parametrize("name", NAMES)
def test_a_nan_gradient_reaches_the_parameter_under_propagate(name) -> None:
    """As in torch.optim: one NaN gradient coordinate makes that parameter coordinate NaN."""
    p = nn.Parameter(torch.linspace(-1.0, 1.0, 4, dtype=torch.float64))
    opt = CASES[name]([p])
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        p.grad = torch.randn(4, generator=gen, dtype=torch.float64)
        opt.step()
    g = torch.randn(4, generator=gen, dtype=torch.float64)
    g[1] = float("nan")
    p.grad = g
    opt.step()
    assert torch.isnan(p[1]), f"{name}: a NaN gradient left the parameter finite: {p.detach()}"
    p.grad = torch.randn(4, generator=gen, dtype=torch.float64)
    opt.step()  # never silently recovers either
    assert torch.isnan(p[1]) or not any(torch.isnan(v).any() for v in _state_tensors(opt))


def _state_tensors(opt):
    return [v for s in inner(opt).state.values() for v in s.values() if isinstance(v, torch.Tensor)]


def test_nan_sign_keeps_nan_and_the_sign_of_everything_else() -> None:
    from adamlab.functional.common import nan_sign

    x = torch.tensor([float("nan"), float("inf"), -float("inf"), -2.0, 0.0, -0.0, 3e-310], dtype=torch.float64)
    got = nan_sign(x)
    assert torch.isnan(got[0])
    assert torch.equal(got[1:], torch.tensor([1.0, -1.0, -1.0, 0.0, 0.0, 1.0], dtype=x.dtype))


@pytest.mark.parametrize("name", [n for n in NAMES if not n.startswith("averaging")])
def test_deepcopy_keeps_the_nonfinite_policy_and_the_skipped_count(name) -> None:
    p = nn.Parameter(torch.zeros(3))
    opt = CASES[name]([p], nonfinite="skip")
    p.grad = torch.tensor([1.0, float("nan"), 0.0])
    opt.step()
    assert opt.skipped_steps == 1
    pickled_state = opt.__getstate__()  # what pickle and deepcopy save
    assert pickled_state["nonfinite"] == "skip" and pickled_state["skipped_steps"] == 1
    holder = copy.deepcopy({"p": p, "opt": opt})
    twin = holder["opt"]
    assert twin.nonfinite == "skip" and twin.skipped_steps == 1
    holder["p"].grad = torch.tensor([1.0, float("nan"), 0.0])
    twin.step()  # no AttributeError
    assert twin.skipped_steps == 2 and torch.equal(holder["p"], p)


def test_deepcopy_of_temporal_averaging_keeps_its_optimizer_and_beta() -> None:
    p = nn.Parameter(torch.ones(3))
    opt = O.TemporalAveraging(O.Adam([p], lr=0.1), beta=0.8)
    p.grad = torch.ones(3)
    opt.step()
    twin = copy.deepcopy(opt)
    assert twin.beta == 0.8 and isinstance(twin.optimizer, O.Adam)
    assert twin.param_groups is twin.optimizer.param_groups
    twin.optimizer.param_groups[0]["params"][0].grad = torch.ones(3)
    twin.step()
