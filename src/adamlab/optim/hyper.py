"""One declaration per hyperparameter: :class:`Hyper`, and the constructor built from a class's declarations.

An optimizer class lists its hyperparameters once, in constructor order::

    class Adamax(AdamlabOptimizer):
        rule = F.adamax
        hypers = (
            Hyper("lr", 2e-3, V.learning_rate),
            Hyper("betas", (0.9, 0.999), V.beta_pair, unpack=("beta1", "beta2")),
            Hyper("eps", 1e-8, V.nonnegative),
            Hyper("weight_decay", 0.0, V.nonnegative),
            MAXIMIZE,
        )

and :class:`adamlab.optim.base.AdamlabOptimizer` derives from that tuple everything that used to be
written by hand:

- the constructor, ``Adamax(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
  maximize=False, foreach=None, fused=None, differentiable=False, nonfinite="propagate")``, with that
  signature for ``inspect.signature`` and the same positional order (:func:`constructor`);
- the defaults of the param groups (:func:`group_defaults`);
- the checks run on every param group (``hyperparameter_checks``, ``{name: check}``), each raising a
  ``ValueError`` that names the parameter and its allowed range (:mod:`adamlab.optim.validation`);
- the rule's keyword arguments (:meth:`AdamlabOptimizer.rule_kwargs`): each hyperparameter under its own
  name, a pair such as ``betas`` unpacked into ``beta1, beta2``, and nothing for a hyperparameter that
  only the class's per-step coefficients read (``passed=False``).

The documentation of each hyperparameter stays in its class's docstring.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from adamlab.optim import validation as V

Check = Callable[[str, Any], None]


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter of an optimizer class.

    Parameters
    ----------
    name:
        The constructor keyword and the param-group key.
    default:
        The constructor's default; :data:`adamlab.optim.validation.REQUIRED` for none.
    check:
        ``check(name, value)``, run on every param group (defaults and per-group values); raises
        ``ValueError`` naming the parameter and its allowed range.
    keyword_only:
        After the ``*`` of the constructor's signature.
    passed:
        Whether :meth:`~adamlab.optim.base.AdamlabOptimizer.rule_kwargs` passes it to the rule (False:
        only the class reads it, e.g. Adam's ``bias_correction`` in its per-step coefficients).
    unpack:
        The rule's names for the items of a sequence-valued hyperparameter (``betas`` -> ``beta1,
        beta2``); such a value is stored as a tuple.
    """

    name: str
    default: Any
    check: Check
    keyword_only: bool = False
    passed: bool = True
    unpack: tuple[str, ...] = ()

    def stored(self, value: Any) -> Any:
        """The value as the param group holds it (a tuple for an unpacked sequence)."""
        return tuple(value) if self.unpack and value is not V.REQUIRED else value


#: ``maximize``: every class has it, keyword-only (``torch.optim``'s place for it).
MAXIMIZE = Hyper("maximize", False, V.boolean, keyword_only=True)

#: The constructor keywords of the execution machinery, after the hyperparameters: name -> default.
#: ``foreach``, ``fused`` and ``differentiable`` are param-group keys checked by the base class;
#: ``nonfinite`` is an attribute of the optimizer.
OPTIONS: dict[str, Any] = {"foreach": None, "fused": None, "differentiable": False, "nonfinite": "propagate"}

_ANNOTATIONS = {"foreach": "bool | None", "fused": "bool | None", "differentiable": "bool", "nonfinite": "str"}


class _Unset:
    """The default of a renamed (deprecated) keyword: not given."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


def _annotation(hyper: Hyper) -> str:
    value = hyper.default
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "str"
    if isinstance(value, tuple):
        return f"tuple[{', '.join('float' for _ in value)}]"
    return "float"


def signature(hypers: tuple[Hyper, ...], options: tuple[str, ...], renamed: Mapping[str, str],
              fixed: Mapping[str, Any]) -> inspect.Signature:
    """``(self, params, <positional hypers>, *, <keyword-only hypers>, <options>, <renamed>)``, without ``fixed``."""
    kinds = inspect.Parameter
    parameters = [kinds("self", kinds.POSITIONAL_OR_KEYWORD), kinds("params", kinds.POSITIONAL_OR_KEYWORD,
                                                                      annotation="ParamsT")]
    for hyper in hypers:
        if hyper.name in fixed:
            continue
        kind = kinds.KEYWORD_ONLY if hyper.keyword_only else kinds.POSITIONAL_OR_KEYWORD
        parameters.append(kinds(hyper.name, kind, default=hyper.default, annotation=_annotation(hyper)))
    for name in options:
        parameters.append(kinds(name, kinds.KEYWORD_ONLY, default=OPTIONS[name], annotation=_ANNOTATIONS[name]))
    for old, new in renamed.items():
        if new not in fixed:
            parameters.append(kinds(old, kinds.KEYWORD_ONLY, default=UNSET, annotation="Any"))
    return inspect.Signature(parameters, return_annotation="None")


def constructor(cls: type, base_init: Callable[..., None]) -> Callable[..., None]:
    """The ``__init__`` of an optimizer class, built from its ``hypers``, ``preset``, ``options`` and ``renamed``.

    It binds the arguments to :func:`signature` (``TypeError`` for a wrong call, as Python's own), refuses
    a hyperparameter the class's ``preset`` fixes (``TypeError`` naming the class that chooses it),
    takes a ``renamed`` keyword for its new name (through the class's ``renamed_value``, which warns),
    and calls ``base_init(self, params, defaults, nonfinite=...)`` (``AdamlabOptimizer.__init__``) with
    the defaults of :func:`group_defaults`, completed by the class's ``complete_defaults``.
    """
    hypers: tuple[Hyper, ...] = cls.hypers  # type: ignore[attr-defined]
    preset: dict[str, Any] = dict(cls.preset)  # type: ignore[attr-defined]
    renamed: dict[str, str] = dict(cls.renamed)  # type: ignore[attr-defined]
    options: tuple[str, ...] = tuple(cls.options)  # type: ignore[attr-defined]
    sig = signature(hypers, options, renamed, preset)
    fixed = sorted({*preset, *(old for old, new in renamed.items() if new in preset)})
    chooser = next((base.__name__ for base in cls.__mro__[1:] if "hypers" in vars(base)), "another class")

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        given = sorted(set(kwargs) & set(fixed))
        if given:
            raise TypeError(f"{type(self).__name__} fixes {', '.join(given)}; use {chooser} to choose it")
        try:
            bound = sig.bind(self, *args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{type(self).__name__}(): {err}") from None
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        for old, new in renamed.items():
            value = arguments.pop(old, UNSET)
            if value is not UNSET:
                arguments[new] = self.renamed_value(old, value)
        defaults = group_defaults(hypers, {**arguments, **preset})
        for name in options:
            if name != "nonfinite":
                defaults[name] = arguments[name]
        self.complete_defaults(defaults)
        base_init(self, arguments["params"], defaults, nonfinite=arguments.get("nonfinite", OPTIONS["nonfinite"]))

    __init__.__signature__ = sig  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__module__ = cls.__module__
    __init__.__doc__ = f"Build {cls.__name__} over ``params``; the hyperparameters are those of the class docstring."
    return __init__


def group_defaults(hypers: tuple[Hyper, ...], values: Mapping[str, Any]) -> dict[str, Any]:
    """``{name: stored value}`` of every hyperparameter, from ``values`` (the constructor's arguments)."""
    return {hyper.name: hyper.stored(values[hyper.name]) for hyper in hypers}


def checks(hypers: tuple[Hyper, ...]) -> dict[str, Check]:
    """``{name: check}`` of every hyperparameter (``AdamlabOptimizer.hyperparameter_checks``)."""
    return {hyper.name: hyper.check for hyper in hypers}
