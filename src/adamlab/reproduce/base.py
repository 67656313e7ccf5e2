"""What a recipe is: problem settings x optimizer variants x a tuning protocol, plus the paper's claims.

A :class:`Recipe` is plain data. :func:`adamlab.reproduce.engine.execute` runs it with the runner's
sweep and selection (:mod:`adamlab.runner`), and :mod:`adamlab.reproduce.summary` turns the store into
the JSON summary. Each module of :mod:`adamlab.reproduce.recipes` defines one ``RECIPE`` and registers
it (:func:`register`); the registry imports those modules on first use, so there is no list to edit.

Tuning protocol (DESIGN.md, "Tuning protocol"): every (setting, variant) sweeps ``lr_grid`` with
``tune_seeds``; the lr with the best ``criterion`` (the runner's rule,
:meth:`adamlab.runner.sweep.Criterion.describe`) is rerun with ``seeds``. A variant with a fixed ``lr``
skips tuning.

Each recipe has four protocols (:data:`PROTOCOLS`): ``full`` (the recipe's own, the paper's budget
where it fits at all; the default), ``quick`` (a smoke test: at most 3 minutes on 2 idle cores; its
numbers are not results), ``deepobs`` (DeepOBS's: the 36 log-spaced lrs of :data:`DEEPOBS_GRID` in
[1e-5, 1e2], tune on 1 seed, rerun the best on 10 seeds, the full budget) and ``cpu`` (the budget the
results page was measured with: at most 30 minutes of wall time on this project's 2-core CPU
machine, idle, with DeepOBS's tuning rule -- tune on one seed, rerun the best lr on at least 5 seeds --
on a narrower grid that contains every method's selected lr; a recipe without one uses ``full``,
which then fits such a machine already).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from adamlab.reproduce.effects import Effect
from adamlab.selection.lr import Criterion
from adamlab.util.registry import Registry

#: The protocols every recipe has; ``full`` is the default.
PROTOCOLS = ("full", "quick", "deepobs", "cpu")

#: DeepOBS's learning-rate grid: 36 log-spaced values from 1e-5 to 1e2 (both included).
DEEPOBS_GRID: tuple[float, ...] = tuple(float(f"{10 ** (-5 + 7 * k / 35):.12g}") for k in range(36))
DEEPOBS_TUNE_SEEDS: tuple[int, ...] = (0,)
DEEPOBS_SEEDS: tuple[int, ...] = tuple(range(10))


@dataclass(frozen=True)
class Variant:
    """One optimizer configuration of a recipe: a registry name plus fixed hyperparameters.

    ``lr`` set means "do not tune, use this lr". ``label`` names the curve and the JSON entry.
    """

    label: str
    optimizer: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    lr: float | None = None


@dataclass(frozen=True)
class Setting:
    """One problem configuration of a recipe (a panel of its figure)."""

    label: str
    problem: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    """Budget and tuning protocol of a recipe (full or quick).

    Attributes
    ----------
    lr_grid:
        Learning rates swept for tuning.
    tune_seeds, seeds:
        Seeds used to tune, and seeds of the final reruns at the selected lr.
    steps:
        Optimizer steps per run.
    eval_every:
        Evaluate every this many steps (None: the problem's default).
    batch_size:
        None: the problem's default.
    problem_options:
        Extra options for every setting (e.g. a smaller ``eval_size`` in quick mode).
    replicate_option:
        When set (e.g. ``"data_seed"``), a "seed" is realised as this problem option (a new data draw),
        and the training seed stays 0: for deterministic problems such as full-batch least squares.
    hook_every:
        Dissection hook cadence in steps (recipes with a hook only).
    hook_seeds:
        Seeds whose final reruns record the hook (None: all of ``seeds``, on the final runs
        themselves). When set, the hooked runs are extra runs of those seeds, and the final reruns
        carry no hook, so that they can be batched (a hook needs a single run's model).
    note:
        Extra text for :meth:`describe` (e.g. the noise levels, a data subset).
    settings, variants:
        When set, replace the recipe's settings / variants under this protocol (e.g. fewer noise levels).
    """

    lr_grid: Sequence[float]
    tune_seeds: Sequence[int]
    seeds: Sequence[int]
    steps: int
    eval_every: int | None = None
    batch_size: int | None = None
    problem_options: Mapping[str, Any] = field(default_factory=dict)
    replicate_option: str | None = None
    hook_every: int | None = None
    hook_seeds: Sequence[int] | None = None
    note: str = ""
    settings: Sequence[Setting] | None = None
    variants: Sequence[Variant] | None = None

    def describe(self) -> str:
        """One line: grid, seeds, budget (used in output, JSON and figures)."""
        parts = [
            _describe_grid(self.lr_grid),
            f"tune on {_count(len(self.tune_seeds), self.replicate_option)}, rerun best lr on "
            f"{_count(len(self.seeds), self.replicate_option)}",
            f"{self.steps} steps",
        ]
        if self.batch_size is not None:
            parts.append(f"batch {self.batch_size}")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)


def deepobs_protocol(full: Protocol, **overrides: Any) -> Protocol:
    """DeepOBS's protocol on the budget of ``full``: :data:`DEEPOBS_GRID`, tune on seed 0, rerun the best
    lr on seeds 0..9 (data draws for a replicated recipe). ``overrides`` replace further fields."""
    note = "; ".join(x for x in (full.note, "DeepOBS protocol") if x)
    fields: dict[str, Any] = dict(lr_grid=list(DEEPOBS_GRID), tune_seeds=list(DEEPOBS_TUNE_SEEDS),
                                  seeds=list(DEEPOBS_SEEDS), note=note)
    return replace(full, **{**fields, **overrides})


def _describe_grid(grid: Sequence[float]) -> str:
    """``lr grid {a, b, ...}``; a long log-spaced grid as ``lr grid of n log-spaced values in [a, b]``."""
    lrs = [float(x) for x in grid]
    if len(lrs) > 12 and all(x > 0 for x in lrs):
        steps = [math.log(b / a) for a, b in zip(lrs, lrs[1:], strict=False)]
        if all(abs(st - steps[0]) <= 1e-6 * abs(steps[0]) for st in steps) and steps[0] > 0:
            return f"lr grid of {len(lrs)} log-spaced values in [{lrs[0]:.3g}, {lrs[-1]:.3g}]"
    return "lr grid {" + ", ".join(f"{x:.3g}" for x in lrs) + "}"


def _count(n: int, replicate: str | None) -> str:
    word = ("data draw" if replicate else "seed") + ("s" if n != 1 else "")
    return f"{n} {word}"


@dataclass(frozen=True)
class Verdict:
    """The check of a claim: its :class:`~adamlab.reproduce.effects.Effect` and what we measured.

    ``agree`` is ``effect.agrees``: the bootstrap interval excludes zero on the paper's side.
    Unpacks (and indexes) as the pair ``agree, measured`` of the older checks.
    """

    effect: Effect
    measured: str

    @property
    def agree(self) -> bool:
        return self.effect.agrees

    def __iter__(self) -> Iterator[Any]:
        return iter((self.agree, self.measured))

    def __getitem__(self, i: int) -> Any:
        return (self.agree, self.measured)[i]


@dataclass(frozen=True)
class Claim:
    """A claim of the paper and the check of it on a summary.

    ``check(summary) -> Verdict`` (an effect with its interval over the seeds, and a sentence of what
    we measured; a plain ``(agree, measured)`` pair is accepted too and reported without an effect);
    ``summary`` is the JSON dict of :func:`adamlab.reproduce.summary.build_summary`
    (``summary["settings"][label]["variants"][v]``, with the per-seed values in ``"per_seed"``).
    """

    text: str
    check: Callable[[dict[str, Any]], Verdict | tuple[bool, str]]


@dataclass(frozen=True)
class Recipe:
    """A paper figure or table as problem settings x optimizer variants x protocol.

    Attributes
    ----------
    name:
        Command-line name (``adamlab reproduce NAME``).
    title:
        What the recipe reproduces (paper, figure).
    settings, variants:
        Panels of the figure and the curves in each.
    full, quick:
        The protocols of a normal and a ``--quick`` run.
    deepobs:
        The ``--protocol deepobs`` protocol (default: :func:`deepobs_protocol` of ``full``).
    cpu:
        The ``--protocol cpu`` protocol: what ``make results`` runs for a data recipe (default: ``full``).
    criterion:
        Selection rule (``"min:train_loss"``, ``"max:test_accuracy"``...).
    metrics:
        Final metrics reported in the summary table (the first one orders the methods).
    claims:
        The paper's claims, checked against the summary.
    datasets:
        Datasets the recipe needs (empty for synthetic problems).
    hook:
        Optional factory ``(problem, every) -> RunHook`` recording extra statistics.
    hook_metrics:
        The hook's metrics summarised in the JSON (mean over the second half of each run).
    plot_metrics:
        Metrics drawn as learning curves (default: the first of ``metrics``).
    figure_cols:
        Panels per row when one metric is drawn per setting.
    order:
        ``"min:metric"`` or ``"max:metric"`` ordering the methods in the summary (default: ``criterion``).
    extra_figures:
        Optional ``(execution, summary, out_dir) -> list[Path]`` drawing more figures.
    """

    name: str
    title: str
    settings: Sequence[Setting]
    variants: Sequence[Variant]
    full: Protocol
    quick: Protocol
    criterion: str
    metrics: Sequence[str]
    claims: Sequence[Claim] = ()
    datasets: Sequence[str] = ()
    hook: Callable[..., Any] | None = None
    hook_metrics: Sequence[str] = ()
    plot_metrics: Sequence[str] = ()
    figure_cols: int = 4
    extra_figures: Callable[..., Any] | None = None
    order: str | None = None
    doc: str = ""
    deepobs: Protocol | None = None
    cpu: Protocol | None = None

    def protocol(self, which: bool | str = False) -> Protocol:
        """The protocol ``which``: a name of :data:`PROTOCOLS`, or a bool (True: quick, False: full)."""
        name = protocol_name(which)
        if name == "quick":
            return self.quick
        if name == "deepobs":
            return self.deepobs if self.deepobs is not None else deepobs_protocol(self.full)
        if name == "cpu":
            return self.cpu if self.cpu is not None else self.full
        return self.full

    def settings_for(self, which: bool | str = False) -> list[Setting]:
        """The settings run under protocol ``which``."""
        proto = self.protocol(which)
        return list(proto.settings if proto.settings is not None else self.settings)

    def variants_for(self, which: bool | str = False) -> list[Variant]:
        """The optimizer variants run under protocol ``which``."""
        proto = self.protocol(which)
        return list(proto.variants if proto.variants is not None else self.variants)

    def budget(self, which: bool | str = False) -> tuple[int, int]:
        """``(runs, steps)`` of protocol ``which``: tuning, final reruns and hooked runs, and the sum of
        their steps (the size ``reproduce --list`` and ``--dry-run`` show)."""
        proto = self.protocol(which)
        settings, variants = self.settings_for(which), self.variants_for(which)
        tuned = sum(1 for v in variants if v.lr is None)
        runs = len(settings) * (tuned * len(proto.lr_grid) * len(proto.tune_seeds) + len(variants) * len(proto.seeds))
        if self.hook is not None and proto.hook_every and proto.hook_seeds is not None:
            runs += len(settings) * len(variants) * len(proto.hook_seeds)
        return runs, runs * int(proto.steps)

    def selection(self) -> Criterion:
        """The tuning criterion (parsed by the runner, the one parser)."""
        return Criterion.parse(self.criterion)

    def order_metric(self) -> tuple[str, str]:
        """``(metric, mode)`` that orders the methods: ``order`` (default: the criterion)."""
        crit = Criterion.parse(self.order or self.criterion)
        return crit.metric, crit.mode


def protocol_name(which: bool | str) -> str:
    """``"quick"`` for True, ``"full"`` for False, else a name of :data:`PROTOCOLS` (ValueError otherwise)."""
    if isinstance(which, bool):
        return "quick" if which else "full"
    if which not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {which!r}")
    return which


#: The recipes by name, registered by the modules of :mod:`adamlab.reproduce.recipes` (each module
#: registers its ``RECIPE`` with an ``order``: the order of ``reproduce --list``).
REGISTRY: Registry[Recipe] = Registry("recipe", package="adamlab.reproduce.recipes")


def register(recipe: Recipe, *, order: float | None = None) -> Recipe:
    """Add ``recipe`` to the registry (names are unique); ``order`` places it in :func:`names`
    (smaller first; ``None``: after the built-in recipes)."""
    return REGISTRY.add(recipe.name, recipe, order=order)


def names() -> list[str]:
    """Registered recipe names, in their listing order."""
    return REGISTRY.names()


def get(name: str) -> Recipe:
    """The recipe ``name``; ``ValueError`` listing the known names otherwise."""
    return REGISTRY.get(name)
