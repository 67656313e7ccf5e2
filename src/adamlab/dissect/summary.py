r"""The monitor's scalars from per-coordinate statistics: medians, means and correlations per row.

A *row* is a set of coordinates summarised together: the whole network (row 0) or one layer. The
per-coordinate quantities (:math:`\eta^2`, :math:`\rho`, ideal and measured :math:`\gamma`) come from
:mod:`adamlab.dissect.stats` and the optimizers' ``pieces`` functions; this module only reduces them,
over the *live* coordinates of each row (not every per-example gradient exactly 0; see
:mod:`adamlab.dissect.monitor`).

The reductions run in NumPy (float64) on the host, after one transfer of the sampled values: on the
CPU, ``numpy.sort`` of a few thousand float64 values per row is about 6-15x faster than ``torch.sort``
and ``kthvalue`` (torch 2.13, measured 2026-12-02), and sorting is most of a record's cost. Every
statistic is a standard sample statistic: NumPy's median (the mean of the two middle values for an
even count), Pearson's correlation, and Spearman's as Pearson's of average ranks (ties share their
mean rank).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from adamlab.dissect.stats import GradientStats, gaussian_sign_agreement, ideal_gamma_grad, ideal_gamma_sign

SAMPLE = 4096  # coordinates per layer behind the medians and the rank correlation

_NAN = float("nan")


@dataclass(frozen=True)
class Layout:
    """Where each row's values sit in the flat vector of sampled coordinates (built once per network).

    Row 0 is the overall row, rows 1.. the layers (in ``layers`` order). ``index`` (rows, width) holds
    positions into the flat vector, padded with its length (a NaN appended there); ``owner`` gives each
    parameter's layer row (for the exact sums)."""

    index: Tensor
    layers: tuple[str, ...]
    owner: Tensor
    index_np: np.ndarray = field(init=False, repr=False, compare=False)
    owner_np: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index_np", self.index.numpy())
        object.__setattr__(self, "owner_np", self.owner.numpy())


_LAYOUTS: dict[tuple[Any, ...], Layout] = {}


def layout_of(sizes: Sequence[int], takes: Sequence[int], groups: Sequence[Sequence[int]],
              layers: Sequence[str]) -> Layout:
    """The :class:`Layout` of parameters with ``sizes`` sampled values each: the overall row takes the
    first ``takes[i]`` of parameter ``i``, layer row ``j`` every value of the parameters ``groups[j]``."""
    key = (tuple(sizes), tuple(takes), tuple(tuple(g) for g in groups), tuple(layers))
    if key not in _LAYOUTS:
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + s)
        rows = [[torch.arange(offsets[i], offsets[i] + t) for i, t in enumerate(takes)]]
        rows += [[torch.arange(offsets[i], offsets[i + 1]) for i in g] for g in groups]
        flat = [torch.cat(r) if r else torch.zeros(0, dtype=torch.long) for r in rows]
        width = max(1, max(r.numel() for r in flat))
        index = torch.full((len(flat), width), offsets[-1], dtype=torch.long)
        for j, r in enumerate(flat):
            index[j, :r.numel()] = r
        owner = torch.zeros(len(sizes), dtype=torch.long)
        for j, g in enumerate(groups):
            owner[list(g)] = j + 1
        if len(_LAYOUTS) > 64:
            _LAYOUTS.clear()
        _LAYOUTS[key] = Layout(index, tuple(layers), owner)
    return _LAYOUTS[key]


_PICKS: dict[int, Tensor] = {}


def sample_order(numel: int) -> Tensor:
    """A fixed random permutation of ``numel`` coordinates (seeded by ``numel``: the same network samples
    the same coordinates in every run). Every prefix of it is a uniform random sample."""
    if numel not in _PICKS:
        _PICKS[numel] = torch.randperm(numel, generator=torch.Generator().manual_seed(numel))
    return _PICKS[numel]


def _middles(rows: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two middle values ``(lo, hi)`` of the ``count`` smallest entries of each row (``lo == hi`` for
    an odd count; NaN where the count is 0), from one sort of all rows (``numpy.sort`` of a few thousand
    values is faster than a two-element ``numpy.partition``, and it is one call for every row).
    Entries left out must be +inf; the rows are (..., width)."""
    ordered = np.sort(rows, axis=-1)
    middle = np.stack([(count - 1) // 2, count // 2], -1).clip(0, rows.shape[-1] - 1)
    lo, hi = np.moveaxis(np.take_along_axis(ordered, middle, -1), -1, 0)
    return np.where(count > 0, lo, _NAN), np.where(count > 0, hi, _NAN)


def _ranks(ordered: np.ndarray, order: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Average ranks (0-based; ties share their mean rank) of each row, from the sorted rows and the
    sorting permutation (entries left out sort last, so the ``count`` others rank 0 .. count - 1; the
    ranks of the entries left out are meaningless).

    Ties are rare (a few float32 collisions in thousands of values), so the sorted positions are taken
    as they are and only the runs of equal values are set to their mean position."""
    width = ordered.shape[-1]
    sorted_ranks = np.empty(ordered.shape)
    sorted_ranks[...] = np.arange(width, dtype=np.float64)
    tied = np.zeros(ordered.shape, dtype=bool)  # equal to the entry before it, and counted
    np.equal(ordered[..., 1:], ordered[..., :-1], out=tied[..., 1:])
    tied &= sorted_ranks < count[..., None]
    flat = sorted_ranks.reshape(-1)
    at = np.flatnonzero(tied)  # runs never cross rows: a row's first entry is never tied
    if at.size:
        breaks = np.flatnonzero(np.diff(at) != 1) + 1
        for start, stop in zip(np.concatenate(([0], breaks)).tolist(), np.concatenate((breaks, [at.size])).tolist(),
                               strict=True):
            first, last = int(at[start]) - 1, int(at[stop - 1])
            flat[first:last + 1] = 0.5 * (flat[first] + flat[last])
    ranks = np.empty_like(sorted_ranks)
    np.put_along_axis(ranks, order, sorted_ranks, -1)
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray, valid: np.ndarray) -> np.ndarray:
    r"""Pearson correlation of ``x`` and ``y`` row by row over the ``valid`` entries (centred first;
    NaN for fewer than 2 values or a constant row): :math:`\sum dx\,dy / (\|dx\|\,\|dy\|)`."""
    count = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_x = np.where(valid, x, 0.0).sum(-1) / count
        mean_y = np.where(valid, y, 0.0).sum(-1) / count
        dx = np.where(valid, x - mean_x[..., None], 0.0)
        dy = np.where(valid, y - mean_y[..., None], 0.0)
        sxx, syy, sxy = (np.einsum("...i,...i->...", a, b) for a, b in ((dx, dx), (dy, dy), (dx, dy)))
        den = np.sqrt(sxx * syy)
        out = sxy / den
    return np.where((count >= 2) & (den > 0), out, _NAN)


def _gamma_sign_of_eta2(eta2: np.ndarray) -> np.ndarray:
    """The Gaussian sign factor :math:`2\\rho - 1` at :math:`|\\bar g| = 1`, :math:`\\sigma^2 = \\eta^2`
    (the functions of :mod:`adamlab.dissect.stats`, on a few values)."""
    std = torch.from_numpy(np.sqrt(eta2))
    return ideal_gamma_sign(gaussian_sign_agreement(torch.ones_like(std), std)).numpy()


def summarise_flat(fields: dict[str, Tensor], layout: Layout, *, measured: Tensor | None = None,
                   ideal: Tensor | None = None, exact: Tensor | None = None) -> dict[str, float]:
    r"""The monitor's scalars from flat per-coordinate values, overall and per layer.

    One transfer of the sampled values to the host, then a few batched NumPy passes: one sort of the
    rows for the medians of :math:`\eta^2` and of the error, one sort of the measured and ideal
    :math:`\gamma` rows for the ranks (and the measured median).

    Parameters
    ----------
    fields:
        ``mean``, ``variance``, ``eta2``, ``rho_gaussian`` (and optionally ``gamma_grad``,
        ``gamma_sign_gaussian``): flat float64 values at the sampled coordinates
        (:func:`~adamlab.dissect.stats.stats_from_moments`).
    layout:
        Which values make up each row (:func:`layout_of`).
    measured, ideal:
        The optimizer's :math:`\gamma` and the ideal one of its kind at the same coordinates (None: no
        measured-:math:`\gamma` metrics).
    exact:
        Per parameter ``[numel, zero-gradient count, |g|^2, |step|^2]`` (P, 4), summed over every
        coordinate (the last NaN when unknown); None: no ``frac_zero_grad``, ``grad_norm``, ``step_norm``.
    """
    have_measured = measured is not None and ideal is not None
    columns = [fields["mean"], fields["variance"], fields["eta2"], fields["rho_gaussian"]]
    if have_measured:
        columns += [measured, ideal]
    host = torch.stack([c.detach().double() for c in columns]).cpu().numpy()  # the one transfer
    mean, variance, eta2, rho = host[:4]
    alive = (mean != 0) | (variance != 0)
    pad = layout.index_np  # (R, S) positions, padded with the flat length (a NaN there)

    def rows(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        x = np.where(mask, x, _NAN)
        x = np.concatenate([x, np.full((*x.shape[:-1], 1), _NAN)], -1)
        return np.take(x, pad, axis=-1)

    eta2_rows, rho_rows = rows(np.stack([eta2, rho]), alive)
    alive_rows = ~np.isnan(eta2_rows)
    count = alive_rows.sum(-1)
    # Left-out coordinates (NaN) are +inf for the sorts: they come last, and NumPy
    # sorts NaN-free rows 3-4x faster. Only eta^2 has valid infinities; a middle value that is inf is
    # read as inf either way.
    lo, hi = _middles(np.where(alive_rows, eta2_rows, np.inf), count)
    # 1/(1+eta^2) and 2 rho - 1 = erf(1/(sqrt(2) eta)) fall as eta^2 grows: their middle values are those
    # of eta^2's middle coordinates
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma_grad = ideal_gamma_grad(torch.from_numpy(np.stack([lo, hi]))).numpy()
        gamma_sign = _gamma_sign_of_eta2(np.stack([lo, hi]))
        out = [0.5 * (lo + hi), np.where(alive_rows, rho_rows, 0.0).sum(-1) / count,
               0.5 * gamma_grad.sum(0), 0.5 * gamma_sign.sum(0)]
    keys = ["eta2_median", "rho_gaussian_mean", "gamma_grad_ideal_median", "gamma_sign_ideal_median"]
    if exact is not None:
        e = exact.detach().double().cpu().numpy()
        sums = np.zeros((len(layout.layers) + 1, 4))
        sums[0] = e.sum(0)
        in_layer = layout.owner_np > 0
        np.add.at(sums, layout.owner_np[in_layer], e[in_layer])
        with np.errstate(invalid="ignore", divide="ignore"):
            out += [sums[:, 1] / sums[:, 0], np.sqrt(sums[:, 2]), np.sqrt(sums[:, 3])]
        keys += ["frac_zero_grad", "grad_norm", "step_norm"]
    if have_measured:
        m_all, i_all = host[4], host[5]
        live = alive & np.isfinite(m_all) & np.isfinite(i_all)
        m_rows, i_rows, err_rows = rows(np.stack([m_all, i_all, np.abs(m_all - i_all)]), live)
        valid = ~np.isnan(m_rows)
        count_live = valid.sum(-1)
        both = np.where(valid, np.stack([m_rows, i_rows]), np.inf)
        order = np.argsort(both, axis=-1)  # for the ranks (and the measured median)
        ordered = np.take_along_axis(both, order, -1)
        ranks = _ranks(ordered[0], order[0], count_live), _ranks(ordered[1], order[1], count_live)
        middle = np.stack([(count_live - 1) // 2, count_live // 2], -1).clip(0, ordered.shape[-1] - 1)
        m_lo, m_hi = np.moveaxis(np.take_along_axis(ordered[0], middle, -1), -1, 0)  # already sorted
        m_lo, m_hi = np.where(count_live > 0, m_lo, _NAN), np.where(count_live > 0, m_hi, _NAN)
        out += [0.5 * (m_lo + m_hi), 0.5 * np.add(*_middles(np.where(valid, err_rows, np.inf), count_live)),
                _pearson(m_rows, i_rows, valid), _pearson(*ranks, valid)]
        keys += ["gamma_measured_median", "gamma_abs_error_median", "gamma_corr", "gamma_rank_corr"]
    table = np.stack(out).tolist()  # (metrics, rows)
    result: dict[str, float] = {}
    for j, layer in enumerate(("", *layout.layers)):
        for key, row in zip(keys, table, strict=True):
            if key == "step_norm" and not math.isfinite(row[j]):
                continue
            result[f"{key}/{layer}" if layer else key] = row[j]
    return result


def summarise(stats: GradientStats, groups: dict[str, list[str]], *, measured: dict[str, Tensor] | None = None,
              kinds: dict[str, str] | None = None, exact: dict[str, Tensor] | None = None,
              take: dict[str, int] | None = None) -> dict[str, float]:
    """The monitor's scalars (see :mod:`adamlab.dissect.monitor`) for each group of parameters and overall.

    ``stats`` holds, per parameter, flat values at sampled coordinates (or at all of them); medians,
    means and correlations are taken over the live ones among those. ``exact`` holds, per parameter,
    sums over all its coordinates, ``[numel, zero-gradient count, |g|^2, |step|^2]`` (the last NaN when
    unknown), behind ``frac_zero_grad``, ``grad_norm`` and ``step_norm``. (:class:`Monitor` calls
    :func:`summarise_flat` directly, on values it never splits per parameter.)

    Parameters
    ----------
    stats:
        The step's statistics (flat per parameter).
    groups:
        ``{layer: [parameter names]}`` (``{}``: overall values only).
    measured, kinds:
        The optimizer's :math:`\\gamma` at the same coordinates and the kind (``"sign"`` / ``"grad"``) of
        its direction, per parameter (absent or incomplete: no measured-:math:`\\gamma` metrics).
    exact:
        The exact sums above (absent or incomplete: those three metrics are left out).
    take:
        How many of each parameter's leading values enter the overall values (default: all), so that
        parameters enter in proportion to their sizes.
    """
    measured, kinds, exact, take = measured or {}, kinds or {}, exact or {}, take or {}
    names = [n for n in stats.names if n in stats.mean]
    if not names:
        return {}
    position = {n: i for i, n in enumerate(names)}
    sizes = [stats.mean[n].numel() for n in names]
    layers = [(layer, [position[n] for n in ns if n in position]) for layer, ns in groups.items()]
    layers = [(layer, g) for layer, g in layers if g]
    layout = layout_of(sizes, [take.get(n, s) for n, s in zip(names, sizes, strict=True)],
                       [g for _, g in layers], [layer for layer, _ in layers])

    def cat(values: dict[str, Tensor]) -> Tensor:
        return torch.cat([values[n].reshape(-1).double() for n in names])

    fields = {k: cat(getattr(stats, k)) for k in ("mean", "variance", "eta2", "rho_gaussian")}
    m = i = None
    if all(n in measured for n in names):
        m = cat(measured)
        i = torch.cat([(stats.gamma_sign_gaussian if kinds.get(n) == "sign" else stats.gamma_grad)[n]
                       .reshape(-1).double() for n in names])
    e = torch.stack([exact[n].double() for n in names]) if all(n in exact for n in names) else None
    return summarise_flat(fields, layout, measured=m, ideal=i, exact=e)
