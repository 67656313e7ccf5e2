"""Shared definition of the Adam paper's comparisons (Kingma & Ba 2015, sec. 6): Adam against SGD with
Nesterov momentum, AdaGrad (and RMSProp where the paper has it), each at its tuned learning rate.

Claim (sec. 6.1-6.3): Adam converges as fast as or faster than the other methods, measured here as
the mean final training loss at the selected lr (within 5%).
"""

from __future__ import annotations

from collections.abc import Sequence

from adamlab.reproduce.base import Claim, Protocol, Recipe, Setting, Variant
from adamlab.reproduce.recipes.common import as_good_as


def adam_paper_recipe(
    *,
    name: str,
    title: str,
    setting: Setting,
    dataset: str,
    others: Sequence[str],
    full: Protocol,
    quick: Protocol,
    doc: str,
    cpu: Protocol | None = None,
) -> Recipe:
    """A recipe: ``adam`` vs ``others`` on one problem, selection by final training loss."""
    variants = [Variant("adam", "adam")] + [Variant(o, o) for o in others]
    return Recipe(
        name=name,
        title=title,
        settings=[setting],
        variants=variants,
        full=full,
        quick=quick,
        cpu=cpu,
        criterion="min:train_loss",
        metrics=["train_loss", "test_loss", "test_accuracy"],
        plot_metrics=["train_loss", "test_accuracy"],
        claims=[Claim(f"Adam is as fast as or faster than {', '.join(others)} (final training loss)",
                      as_good_as(setting.label, "adam", list(others), "train_loss", "min"))],
        datasets=[dataset],
        doc=doc,
    )
