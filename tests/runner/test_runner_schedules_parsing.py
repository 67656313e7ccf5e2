import math

import numpy as np
import pytest

from adamlab.runs.parsing import parse_assignments, parse_lr_grid
from adamlab.runs.schedules import Schedule, make_schedule


def test_constant_schedule():
    s = Schedule("constant")
    assert [s.factor(t) for t in (1, 2, 100)] == [1.0, 1.0, 1.0]


def test_inv_sqrt_schedule_matches_adam_paper():
    s = Schedule("inv_sqrt")
    for t in (1, 2, 4, 10, 1000):
        assert s.factor(t) == pytest.approx(1.0 / np.sqrt(np.float64(t)), rel=1e-15)


def test_step_decay():
    s = Schedule("step", gamma=0.5, every=3)
    assert [s.factor(t) for t in range(1, 10)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]


def test_make_schedule_defaults_and_errors():
    s = make_schedule("step", steps=90)
    assert (s.gamma, s.every) == (0.1, 30)
    assert make_schedule(None, default="inv_sqrt").name == "inv_sqrt"
    with pytest.raises(ValueError, match="schedule must be one of"):
        make_schedule("cosine")
    with pytest.raises(ValueError, match="gamma"):
        Schedule("step", gamma=1.5, every=2)
    with pytest.raises(ValueError, match="every"):
        Schedule("step", gamma=0.5, every=0)
    with pytest.raises(ValueError, match="t must be >= 1"):
        Schedule().factor(0)


def test_lr_grid_logspace():
    assert parse_lr_grid("1e-3:1e0:4") == [0.001, 0.01, 0.1, 1.0]
    grid = parse_lr_grid("1e-4:1e0:9")
    assert len(grid) == 9 and grid[0] == 1e-4 and grid[-1] == 1.0
    ratios = np.diff(np.log10(grid))
    assert np.allclose(ratios, 0.5)


def test_lr_grid_list_and_single():
    assert parse_lr_grid("0.1, 0.3,1") == [0.1, 0.3, 1.0]
    assert parse_lr_grid("0.01") == [0.01]
    assert parse_lr_grid("0.5:0.5:1") == [0.5]


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("1e-3:1", "START:STOP:COUNT"),
        ("a:b:3", "must be numbers"),
        ("0:1:3", "> 0"),
        ("1e-3:1:0", "COUNT must be >= 1"),
        ("1e-3:1:2.5", "COUNT an integer"),
        ("0.1,x", "comma list"),
        ("0.1,-1", "> 0"),
        ("nan", "> 0"),
    ],
)
def test_lr_grid_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_lr_grid(text)


def test_assignments():
    out = parse_assignments(["a=1", "b=0.5", "c=ill", "d=true", "e=[0.9, 0.999]"])
    assert out == {"a": 1, "b": 0.5, "c": "ill", "d": True, "e": [0.9, 0.999]}
    assert math.isclose(parse_assignments(["lr=1e-3"])["lr"], 1e-3)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_assignments(["novalue"], "hparam")
