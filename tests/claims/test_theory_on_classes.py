"""The claim checks ask the optimizer (its class's ``theory`` table), never its registry name."""

from __future__ import annotations

import ast
import inspect
from typing import Any

import pytest
import torch

from adamlab.claims import properties as P
from adamlab.claims import records, seed_claims
from adamlab.optim import registry
from adamlab.optim.theory import StepBound
from tests.optim.test_new_optimizer import Toy

CLAIM_MODULES = (P, seed_claims, records)


def _tree(module: Any) -> ast.Module:
    return ast.parse(inspect.getsource(module))


@pytest.mark.parametrize("module", CLAIM_MODULES, ids=lambda m: m.__name__)
def test_no_check_compares_registry_names(module: Any) -> None:
    known = set(registry.names())
    found = []
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                for leaf in ast.walk(side):
                    if isinstance(leaf, ast.Constant) and leaf.value in known:
                        found.append((node.lineno, leaf.value))
    assert not found, f"{module.__name__} compares optimizer names: {found}"


def test_claim_modules_import_each_other_one_way() -> None:
    """properties -> seed_claims -> records, counting imports inside functions (no cycle)."""
    def imported(module: Any) -> set[str]:
        out = set()
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.ImportFrom) and node.module:
                out.add(node.module)
            elif isinstance(node, ast.Import):
                out.update(alias.name for alias in node.names)
        return out

    assert "adamlab.claims.properties" not in imported(seed_claims) | imported(records)
    assert "adamlab.claims.seed_claims" not in imported(records)


class Bounded(Toy):
    """The toy sign method, with a step bound and a reason of its own."""

    theory = {**Toy.theory, "step_bound.value": lambda g: StepBound(1.0, "a toy's sign step"),
              "constant_gradient_ratio": False, "constant_gradient_ratio.why": "a toy's own reason"}


@pytest.fixture
def bounded() -> Any:
    registry.register("bounded-toy", Bounded)
    yield "bounded-toy"
    registry.unregister("bounded-toy")


def test_a_new_class_brings_its_bound_and_its_reasons(bounded: str) -> None:
    record = P.check_step_bound(bounded)
    assert record.theory is True and record.holds is True
    assert record.expected == "<= 1 (a toy's sign step)" and record.measured == pytest.approx(1.0)
    ratio = P.check_constant_gradient_ratio(bounded)
    assert ratio.theory is False and "a toy's own reason" in ratio.expected


def test_theory_values_of_the_built_in_classes() -> None:
    def fact(name: str, key: str) -> Any:
        return records.theory_fact(records.probe(name), key)

    assert fact("adam", "step_bound.value").value == pytest.approx(0.1 / 0.001 ** 0.5)
    assert "assumes bias correction" in fact("adam-nobc", "step_bound.value").why
    assert fact("adamax", "step_bound.value").rtol == 1e-2
    assert fact("rmsprop", "step_bound.value").value == pytest.approx(10.0)
    assert fact("msvag", "step_bound.value") is None and fact("mssd", "step_bound.value").value == 1.0
    assert [n for n in registry.names() if fact(n, "constant_gradient_ratio.noise_std")] == ["adam", "amsgrad",
                                                                                           "adam-nobc"]
    assert records.predicted("ndadam", "ill_conditioning_normalized") is True
    assert records.predicted("adam", "ill_conditioning_normalized") is None  # the record reads None as False
    assert getattr(registry.optimizer_class("ndadam"), "normalize_key", None) == "normalized"
    assert records.theory_fact(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), "step_bound") is None
