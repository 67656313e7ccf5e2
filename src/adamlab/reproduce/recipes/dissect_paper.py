"""Shared definition of Balles & Hennig 2018's deep-learning comparisons (sec. 6, fig. 5, P1-P4):
the four corners of the 2x2 grid -- M-SGD, M-SSD, M-SVAG, M-SSD-VA (momentum beta = 0.9) -- at tuned
constant learning rates. Ordering by final training loss (the paper compares training loss and
test accuracy).
"""

from __future__ import annotations

from adamlab.reproduce.base import Claim, Protocol, Recipe, Setting, Variant
from adamlab.reproduce.recipes.common import group_wins

SIGN = ("mssd", "mssdva")
NON_SIGN = ("msgd", "msvag")


def dissect_recipe(
    *,
    name: str,
    title: str,
    setting: Setting,
    dataset: str,
    sign_wins: bool | None,
    full: Protocol,
    quick: Protocol,
    doc: str,
) -> Recipe:
    """A recipe of the four corners on one problem; ``sign_wins`` states the paper's finding
    (True: the sign methods win, False: the non-sign methods win, None: no clear winner claimed)."""
    claims = []
    if sign_wins is not None:
        winners, losers = (SIGN, NON_SIGN) if sign_wins else (NON_SIGN, SIGN)
        claims.append(Claim(
            f"The {'sign' if sign_wins else 'non-sign'}-based methods ({', '.join(winners)}) reach a lower "
            f"training loss than the {'non-sign' if sign_wins else 'sign'}-based ones ({', '.join(losers)})",
            group_wins(setting.label, winners, losers, "train_loss", "min")))
        claims.append(Claim(
            "... and a higher test accuracy",
            group_wins(setting.label, winners, losers, "test_accuracy", "max")))
    return Recipe(
        name=name,
        title=title,
        settings=[setting],
        variants=[Variant(v, v) for v in ("msgd", "mssd", "msvag", "mssdva")],
        full=full,
        quick=quick,
        criterion="min:train_loss",
        metrics=["train_loss", "test_loss", "test_accuracy"],
        plot_metrics=["train_loss", "test_accuracy"],
        claims=claims,
        datasets=[dataset],
        doc=doc,
    )
