"""The ``serial`` backend: every run in this process, one after another."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from adamlab.data.errors import DataIntegrityError, DataNotFoundError
from adamlab.runner.backends import RunContext, failed_result
from adamlab.runs.config import RunConfig
from adamlab.runs.result import RunResult, utcnow


class SerialBackend:
    """Runs the configs in order in the calling process (deterministic, the reference backend)."""

    name = "serial"

    def run(self, configs: Sequence[RunConfig], context: RunContext) -> Iterator[RunResult]:
        from adamlab.runner.train import execute

        for config in configs:
            context.start([config])
            started = utcnow()
            try:
                result = execute(
                    config,
                    context.problem_for(config),
                    hooks=context.hooks,
                    checkpoint_path=context.checkpoint_path(config),
                    checkpoint_every=context.checkpoint_every,
                    progress=context.progress,
                    sink=context.metrics_sink,
                    chunk=context.chunk,
                    device=context.device,
                    checkpoint_seconds=context.checkpoint_seconds,
                )
            except (KeyboardInterrupt, DataIntegrityError, DataNotFoundError):
                raise  # missing or corrupt data is bad input for every run: it stops the sweep
            except Exception as err:  # noqa: BLE001 - a run's error must not stop the sweep
                result = failed_result(config, err, started)
            yield result


def make_backend(**options: Any) -> SerialBackend:
    """Build the serial backend (it takes no options)."""
    if options:
        raise ValueError(f"the serial backend takes no options; got {sorted(options)}")
    return SerialBackend()
