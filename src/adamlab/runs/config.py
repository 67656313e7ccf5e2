"""Run configurations: what defines one training run, and its stable hash (the run id).

A :class:`RunConfig` is plain data (JSON-serialisable), so backends can ship it to other processes
or machines. Its :attr:`RunConfig.run_id` is the first 16 hex digits of the SHA-256 of the canonical
JSON of :meth:`RunConfig.to_dict`. The hash covers everything that changes the result (problem and its
options, optimizer and hyperparameters, seed, steps, batch size, eval cadence, schedule, hooks) and
nothing else: package versions are stored next to a run, never hashed. Nor is the device a run trains
on (``--device``, :mod:`adamlab.runs.device`): it is how a run is executed, recorded in the store's
``execution`` record, so a sweep resumed on a GPU skips the runs a CPU has done and the other way round.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adamlab.problems import Problem
from adamlab.runs.parsing import MAX_INT, integer_range
from adamlab.runs.schedules import make_schedule

ProblemSpec = str | tuple[str, Mapping[str, Any]] | Problem
"""A problem: a registered name, ``(name, options)``, or a :class:`~adamlab.problems.Problem`."""


def _canonical(value: Any) -> Any:
    """JSON-normal form: tuples -> lists, numpy/torch scalars -> numbers, floats to 12 digits."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise ValueError(f"config value {_digits(value)} is too large: integers in a run config are at "
                             f"most 2**63 - 1 = {MAX_INT} (SQLite's INTEGER); write a float such as 1e30")
        return int(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalar
        return _canonical(value.item())
    if isinstance(value, float):
        return round_float(value)
    raise ValueError(f"config value {value!r} of type {type(value).__name__} is not JSON-serialisable")


def _digits(value: int) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} digits)"


def check_count(name: str, value: Any, low: int = 1) -> int:
    """``value`` as an ``int`` in ``low`` .. :data:`MAX_INT`, else ``ValueError`` naming ``name`` (a bool, a
    float such as ``10.5`` -- never truncated -- or a huge integer is refused)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {integer_range(low)}; got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            number = int(value)
        else:
            raise ValueError(f"{name} must be {integer_range(low)}; got {value!r}") from None
    if not low <= number <= MAX_INT:
        raise ValueError(f"{name} must be {integer_range(low)}; got {_digits(number)}")
    return number


def round_float(x: float) -> float:
    """Round to 12 significant digits so that e.g. ``np.logspace`` values hash the same as typed ones."""
    x = float(x)
    if not math.isfinite(x) or x == 0.0:
        return x
    return float(f"{x:.12g}")


def canonical_json(obj: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces) used for hashing and storage."""
    return json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Budget:
    """A training budget: ``steps`` optimizer steps, or ``epochs`` passes over the training set.

    ``Budget()`` means the problem's default protocol. Epochs need ``problem.steps_per_epoch``.
    """

    steps: int | None = None
    epochs: float | None = None

    def __post_init__(self) -> None:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("budget takes steps or epochs, not both")
        if self.steps is not None:
            check_count("budget steps", self.steps)
        if self.epochs is not None:
            if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float)) \
                    or (isinstance(self.epochs, int) and abs(self.epochs) > MAX_INT) \
                    or not (math.isfinite(float(self.epochs)) and float(self.epochs) > 0):
                raise ValueError(f"budget epochs must be a finite number > 0; got {self.epochs!r}")

    @classmethod
    def of(cls, budget: Budget | int | Mapping[str, Any] | None) -> Budget:
        """Coerce ``None`` (protocol default), an int (steps) or a dict to a :class:`Budget`."""
        if budget is None:
            return cls()
        if isinstance(budget, Budget):
            return budget
        if isinstance(budget, bool):
            raise ValueError(f"budget must be a step count, a Budget or a dict; got {budget!r}")
        if isinstance(budget, int):
            return cls(steps=budget)
        if isinstance(budget, Mapping):
            return cls(**budget)
        raise ValueError(f"budget must be a step count, a Budget or a dict; got {budget!r}")

    def resolve(self, problem: Problem, batch_size: int) -> int:
        """Number of optimizer steps for ``problem`` at ``batch_size``."""
        if self.steps is not None:
            return check_count("budget steps", self.steps)
        if self.epochs is None:
            return int(problem.protocol.steps)
        n_train = train_set_size(problem)
        if n_train is None:
            raise ValueError(f"problem {problem.name!r} has no epochs (synthetic stream); give steps instead")
        steps = float(self.epochs) * n_train / min(batch_size, n_train)  # a larger batch is the whole set
        if not steps <= MAX_INT:
            raise ValueError(f"budget epochs {self.epochs!r} is {steps:.3g} steps at batch size {batch_size}, "
                             f"more than {MAX_INT}")
        return max(1, math.ceil(steps))


def train_set_size(problem: Problem) -> int | None:
    """Training-set size implied by ``steps_per_epoch`` at the protocol's batch size, or None."""
    spe = problem.steps_per_epoch
    if spe is None:
        return None
    return int(spe) * int(problem.protocol.batch_size)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run. Plain data; see :meth:`to_dict` for the hashed fields."""

    problem: str
    optimizer: str
    hparams: Mapping[str, Any]
    seed: int
    steps: int
    batch_size: int
    eval_every: int
    schedule: Mapping[str, Any]
    problem_options: Mapping[str, Any] = field(default_factory=dict)
    hooks: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The hashed fields, in canonical JSON form (a fresh top-level dict; computed once per config)."""
        return dict(self._canonical_dict)

    @functools.cached_property
    def _canonical_dict(self) -> dict[str, Any]:
        return _canonical(
            {
                "problem": self.problem,
                "problem_options": dict(self.problem_options),
                "optimizer": self.optimizer,
                "hparams": dict(self.hparams),
                "seed": int(self.seed),
                "steps": int(self.steps),
                "batch_size": int(self.batch_size),
                "eval_every": int(self.eval_every),
                "schedule": dict(self.schedule),
                "hooks": list(self.hooks),
            }
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        return cls(
            problem=d["problem"],
            optimizer=d["optimizer"],
            hparams=dict(d["hparams"]),
            seed=int(d["seed"]),
            steps=int(d["steps"]),
            batch_size=int(d["batch_size"]),
            eval_every=int(d["eval_every"]),
            schedule=dict(d["schedule"]),
            problem_options=dict(d.get("problem_options", {})),
            hooks=tuple(d.get("hooks", ())),
        )

    def __hash__(self) -> int:
        return hash(self.run_id)

    @functools.cached_property
    def json_columns(self) -> dict[str, str]:
        """Canonical JSON of ``problem_options``, ``hparams``, ``schedule``, ``hooks`` and the whole config
        (``config``): the store's JSON columns, computed once per config."""
        d = self._canonical_dict
        out = {key: canonical_json(d[key]) for key in ("problem_options", "hparams", "schedule", "hooks")}
        out["config"] = canonical_json(d)
        return out

    @functools.cached_property
    def run_id(self) -> str:
        """Stable 16-hex-digit hash of :meth:`to_dict` (independent of package versions; computed once)."""
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:16]

    @property
    def lr(self) -> float | None:
        lr = self.hparams.get("lr")
        return None if lr is None else float(lr)

    def label(self) -> str:
        """Short human-readable label, e.g. ``quadratic.noisy adam lr=0.01 seed=0``."""
        lr = f" lr={self.lr:g}" if self.lr is not None else ""
        return f"{self.problem} {self.optimizer}{lr} seed={self.seed}"


def hook_name(hook: Any) -> str:
    """Name of a hook in a config: its ``name`` attribute or class name, plus ``@every``."""
    name = getattr(hook, "name", None) or type(hook).__name__
    return f"{name}@{int(hook.every)}"


def problem_name_and_options(spec: ProblemSpec) -> tuple[str, dict[str, Any]]:
    """Split a problem spec into its registered name and options."""
    if isinstance(spec, Problem):
        cfg = dict(spec.config())
        return str(cfg.pop("problem", spec.name)), cfg
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        return spec[0], dict(spec[1])
    raise ValueError(f"problem must be a name, a (name, options) pair or a Problem; got {spec!r}")


def make_config(
    problem: Problem,
    optimizer: str,
    hparams: Mapping[str, Any] | None,
    seed: int,
    budget: Budget | int | Mapping[str, Any] | None = None,
    *,
    batch_size: int | None = None,
    eval_every: int | None = None,
    schedule: Any = None,
    hooks: Sequence[Any] = (),
) -> RunConfig:
    """Resolve protocol defaults of ``problem`` into a full :class:`RunConfig`.

    Raises ``ValueError`` for an unknown optimizer or out-of-range settings.
    """
    from adamlab.optim import registry

    registry.presets(optimizer)  # ValueError naming the known optimizers
    if (hparams or {}).get("differentiable") not in (None, False):
        raise ValueError("hparam differentiable must be False in a run: the runner never differentiates "
                         "through optimizer steps (differentiable=True is for the optimizer classes in "
                         "your own code)")
    try:
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError
        check_count("seed", seed, 0)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(f"seed must be {integer_range(0)}; got "
                         f"{_digits(seed) if isinstance(seed, int) else repr(seed)}") from None
    protocol = problem.protocol
    bs = check_count("batch_size", batch_size if batch_size is not None else protocol.batch_size)
    steps = check_count("steps", Budget.of(budget).resolve(problem, bs))
    ev = check_count("eval_every", eval_every if eval_every is not None else protocol.eval_every)
    sched = make_schedule(schedule, default=protocol.lr_schedule, steps=steps)
    name, options = problem_name_and_options(problem)
    for hook in hooks:
        if int(getattr(hook, "every", 0)) < 1:
            raise ValueError(f"hook {hook!r} must have an integer attribute every >= 1")
    return RunConfig(
        problem=name,
        optimizer=optimizer.lower(),
        hparams=_canonical(dict(hparams or {})),
        seed=int(seed),
        steps=steps,
        batch_size=bs,
        eval_every=ev,
        schedule=sched.to_dict(),
        problem_options=_canonical(options),
        hooks=tuple(hook_name(h) for h in hooks),
    )


def problem_key(name: str, options: Mapping[str, Any]) -> str:
    """The one key of a problem instance: its name and options in canonical JSON.

    A config's problem is ``problem_key(config.problem, config.problem_options)``; an instance's is
    ``problem_key(*problem_name_and_options(problem))``. Options are canonicalised as in the run id
    (floats to 12 digits, tuples as lists), so both give the same key. Used by the backends (problem
    cache, blocks) and by :func:`adamlab.selection.lr.select_best` (its keys). Never stored.
    """
    return canonical_json({"problem": name, "options": dict(options)})
