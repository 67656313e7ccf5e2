"""What a run is (layer ``runs``): its identity, its result and its status, nothing that executes it.

One job: :class:`~adamlab.runs.config.RunConfig` (a run's configuration and its stable hash, the run
id) and :func:`~adamlab.runs.config.problem_key`; :class:`~adamlab.runs.result.RunResult` and the one
:class:`~adamlab.runs.result.RunStatus`; learning-rate schedules (:mod:`adamlab.runs.schedules`); and
the parsing of lr grids, assignments and numbers shared by the CLI and the report
(:mod:`adamlab.runs.parsing`). The store, the selection and the runner build on these.

Layers, bottom to top (imports only go down; docs/architecture.md): util < plotting < functional
< optim < dissect < data < problems < runs < store < selection < runner < analysis < claims < reproduce
< commands < cli.
"""
