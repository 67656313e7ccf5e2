"""The per-layer figure of docs/dissect.md: one real run of the 2c2d CNN on Fashion-MNIST, dissected live.

``ADAMLAB_DATA=/work/shared/data python -m scripts.dissect_layers_figure`` trains DeepOBS's ``fmnist_2c2d``
(adamlab's ``fmnist.cnn``, batch 64 as in Balles & Hennig's P1) with Adam for ``--steps`` steps in a plain
PyTorch loop, with a :class:`adamlab.dissect.Monitor` every ``--every`` steps, and writes the per-layer
dashboard (:func:`adamlab.plotting.dissect.layer_dashboard`) and the monitor's CSV next to it.
``--replot`` redraws the figure from that CSV without training.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import adamlab.problems as problems
from adamlab.dissect.monitor import Monitor
from adamlab.optim.registry import make_optimizer
from adamlab.plotting import pyplot, write_figure
from adamlab.plotting.dissect import layer_dashboard

DEFAULT_OUT = Path("docs/figures/dissect_layers_2c2d.png")


def train(args: argparse.Namespace, table: Path) -> list[tuple[int, str, str, float]]:
    """Train with the monitor on; its rows (step, layer, quantity, value), also written to ``table``."""
    problem = problems.get("fmnist.cnn")
    model = problem.make_model(0)
    optimizer = make_optimizer(args.optimizer, model.parameters(), lr=args.lr)
    batches = problem.train_batches(0)
    monitor = Monitor(model, optimizer, every=args.every)
    model.train()
    for step in range(1, args.steps + 1):
        optimizer.zero_grad()
        loss = problem.loss(model, next(batches))
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step}: loss {float(loss.detach()):.3f}", flush=True)
    monitor.close()
    monitor.write_csv(table)
    return monitor.rows()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.dissect_layers_figure", description=__doc__)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--replot", action="store_true", help="redraw from the CSV next to --out")
    args = parser.parse_args(argv)
    table = args.out.with_suffix(".csv")
    if args.replot:
        with open(table, newline="") as f:
            rows = [(int(r["step"]), r["layer"], r["quantity"], float(r["value"])) for r in csv.DictReader(f)]
    else:
        rows = train(args, table)
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for step, layer, quantity, value in rows:
        key = quantity if layer == "all" else f"{quantity}/{layer}"
        steps, values = curves.setdefault(key, ([], []))
        steps.append(step)
        values.append(value)
    ideal = "gamma_sign_ideal_median" if args.optimizer in ("adam", "mssd", "mssdva") else "gamma_grad_ideal_median"
    fig = layer_dashboard(curves, ideal=ideal, title=f"Fashion-MNIST 2c2d, {args.optimizer} (lr {args.lr:g}, "
                          f"batch 64, seed 0): per-layer dissection every {args.every} steps")
    write_figure(fig, args.out, dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    print(f"wrote {args.out}" + ("" if args.replot else f" and {table}"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
