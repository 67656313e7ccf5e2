"""``adamlab list``: the registered problems with their descriptions and default protocols;
``adamlab list --optimizers``: the optimizer names, what each is, and its hyperparameters (required
ones marked)."""

from __future__ import annotations

import argparse

from adamlab.commands import COMMANDS
from adamlab.problems.base import entry, names

EPILOG = """examples:
  adamlab list                 every problem, its description and default protocol
  adamlab list --names         just the names, one per line
  adamlab list quadratic.noisy one problem, with its options and their defaults
  adamlab list --optimizers    every optimizer name, its hyperparameters and which are required
"""


def describe(name: str) -> str:
    """A few lines about problem ``name``: description, protocol and options."""
    registered = entry(name)
    lines = [f"{name}", f"    {registered.description}"]
    proto = registered.protocol
    if proto is not None:
        lines.append(
            f"    batch {proto.batch_size}, {proto.steps} steps, eval every {proto.eval_every}, "
            f"lr schedule {proto.lr_schedule}"
        )
        if proto.source:
            lines.append(f"    source: {proto.source}")
    defaults = getattr(registered.factory, "default_options", None)
    if defaults:
        opts = ", ".join(f"{k}={v!r}" for k, v in sorted(defaults.items()))
        lines.append(f"    options: {opts}")
    return "\n".join(lines)


#: Constructor keywords that choose an implementation, not the method (not listed).
IMPLEMENTATION = frozenset({"foreach", "fused", "differentiable", "capturable", "nonfinite"})


def describe_optimizer(name: str) -> str:
    """Two lines about optimizer ``name``: its description, and its constructor's hyperparameters with
    their defaults (presets included; ``REQUIRED`` for one without a default, which ``--lr`` /
    ``--hparam`` must give; the implementation switches of :data:`IMPLEMENTATION` left out)."""
    import inspect

    from adamlab.optim import registry
    from adamlab.optim.validation import REQUIRED

    cls = registry.optimizer_class(name)
    presets = registry.presets(name)
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # after self, params
    items = [(p.name, presets.get(p.name, REQUIRED if p.default is inspect.Parameter.empty else p.default))
             for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in IMPLEMENTATION]
    required = [k for k, v in items if v is REQUIRED]
    shown = ", ".join(f"{k}=REQUIRED" if v is REQUIRED else f"{k}={v!r}" for k, v in items)
    lines = [f"{name:<14} {registry.describe(name) or cls.__name__}", f"{'':<15}{shown}"]
    if required:
        flags = ", ".join("--lr (sweep: --lr-grid)" if k == "lr" else f"--hparam {k}=..." for k in required)
        lines.append(f"{'':<15}required: {flags}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    if args.optimizers:
        from adamlab.optim import registry

        if args.problems:
            raise ValueError("--optimizers lists every optimizer; give no PROBLEM with it")
        print("\n".join(registry.names()) if args.names else "\n".join(describe_optimizer(n) for n in registry.names()))
        return 0
    known = names()
    selected = args.problems or known
    unknown = [p for p in selected if p not in known]
    if unknown:
        raise ValueError(f"unknown problem(s) {', '.join(unknown)}; known problems: {', '.join(known)}")
    if args.names:
        print("\n".join(selected))
    else:
        print("\n\n".join(describe(p) for p in selected))
    return 0


@COMMANDS.register("problems", order=40)
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``list`` subcommand."""
    parser = subparsers.add_parser(
        "list",
        help="list the test problems and their default protocols",
        description="List the registered test problems with their description, default protocol "
        "(batch size, steps, eval cadence, lr schedule, source) and options.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("problems", nargs="*", metavar="PROBLEM", help="only these problems (default: all)")
    parser.add_argument("--names", action="store_true", help="print only the names")
    parser.add_argument("--optimizers", action="store_true",
                        help="list the optimizers instead: names, hyperparameters, which are required")
    parser.set_defaults(func=_run)
