"""One name per quantity: the dissection metrics' names and the old names still read from older stores.

A recorded metric is ``<instrument prefix><quantity>[/<layer>]``. The prefix says which instrument measured
it (``dx_``: :class:`~adamlab.dissect.integrations.MonitorHook`, the step's own backward pass; ``gs_``:
:class:`~adamlab.dissect.hooks.GradientStatsHook`, a separate pass with per-example gradients); the
quantity has one name everywhere (API, store, docs; table in docs/dissect.md):

- ``rho_empirical``: the counted sign agreement of resampled mini-batch means (``GradientStats.rho_empirical``);
- ``rho_gaussian``: the same probability under the Gaussian model;
- ``gamma_sign_ideal``: 2 rho_gaussian - 1, ``gamma_sign_empirical``: 2 rho_empirical - 1,
  ``gamma_grad_ideal``: 1/(1+eta^2);
- M-SVAG's rho(beta, t) (:func:`adamlab.functional.common.msvag_rho`) is another quantity: the factor by
  which an exponential moving average shrinks a variance, called ``msvag_rho`` in the docs.
"""

from __future__ import annotations

#: Old metric names (stores written before the names were unified) -> today's names. Older stores' ``gs_``
#: medians were over every coordinate and their ``gs_gamma_sign_ideal_median``, ``gs_gamma_abs_error_median``
#: and ``gs_gamma_corr`` used 2 rho_empirical - 1; those keep their names (the quantity's definition changed,
#: not its name: see docs/dissect.md).
RENAMED: dict[str, str] = {
    "gs_sign_agreement_mean": "gs_rho_empirical_mean",
    "gs_sign_agreement_gaussian_mean": "gs_rho_gaussian_mean",
}

_OLD: dict[str, list[str]] = {}
for _old, _new in RENAMED.items():
    _OLD.setdefault(_new, []).append(_old)


def canonical(name: str) -> str:
    """Today's name of a metric ``name`` (itself unless it is an old name)."""
    return RENAMED.get(name, name)


def spellings(names: list[str] | tuple[str, ...]) -> list[str]:
    """``names`` and every old name that means one of them (to find them in an older store)."""
    out = list(names)
    for n in names:
        out.extend(_OLD.get(n, []))
    return out
