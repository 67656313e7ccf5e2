"""The results store (layer ``store``): the one place where runs and their metrics are kept and read.

Its one job: keep every run's config, status and metrics in one SQLite file, safe for several
processes at once, and answer the read queries that tables, reports, figures and summaries need.
Nothing outside this package touches the store's SQLite connection; every reader goes through the
queries below, every writer through the :class:`Store` methods.

Write contract
--------------
Who may write what, and when (each write is one short ``BEGIN IMMEDIATE`` transaction):

- **Config: written once.** A run's row (``run_id``, the hash of its config, and the config columns:
  problem, options, optimizer, hyperparameters, lr, seed, budget, schedule, hooks, ``config``) is
  inserted by the first process that plans, claims or records it (:meth:`Store.plan`,
  :meth:`Store.claim_many`, :meth:`Store.record_many`; ``INSERT OR IGNORE``) and never changed after.
  ``created_at`` is set then, too.
- **Training needs a claim.** A process trains a run only after claiming it (:meth:`Store.claim_many`:
  status ``running``, one more attempt, its pid, host and a heartbeat). While it trains, only it
  writes the run's start time, heartbeat (:meth:`Store.keep_alive`) and staged metrics
  (:meth:`Store.stage`), and it may give the claim back (:meth:`Store.release`). A claim of a dead
  process, or one without a heartbeat for ``claim_timeout`` seconds, may be taken over.
- **Metrics land at the run's commit.** :meth:`Store.record_many` writes a run's metrics into
  ``metrics`` together with its status (``finished``, ``diverged`` or ``failed``), wall time and
  versions, in ONE transaction (one for a whole batched block). Staged rows move into ``metrics`` then;
  before, no reader sees them. A ``kill -9`` leaves the whole commit or none of it.
- **Final is final.** A ``finished`` or ``diverged`` run is never changed again by anyone: claims
  refuse it and a second result for it is discarded (the first final result recorded wins).
- **Failed runs may be retried.** A ``failed`` run keeps what its attempt recorded until a retry
  commits (replacing those metrics) or the run stays failed.

What readers may assume
-----------------------
- Every row of ``metrics`` belongs to a committed attempt, never to a run in progress.
- The config of a run, and everything about a finished or diverged run (status, metrics, wall time),
  is immutable: it may be cached.
- ``pending``, ``running`` and ``failed`` runs may change at any moment (another process may be
  training them); a sequence of queries may see a run finish between two of them (each query sees
  one committed state).
- The *final value* of a metric is its value at the largest step where the run recorded it.
- Stores written by earlier adamlab versions stay readable (opened read-only they are read as they
  are; opened for writing they are migrated, :mod:`adamlab.store.schema`).

Read queries
------------
Methods of :class:`Store` (:class:`~adamlab.store.reads.StoreReads`):

- runs: :meth:`~StoreReads.runs` (rows, filtered by problem, status or ids),
  :meth:`~StoreReads.run_table` (rows with their final values and last step: the runs table),
  :meth:`~StoreReads.statuses`, :meth:`~StoreReads.config`, :meth:`~StoreReads.problems`;
- metrics: :meth:`~StoreReads.curves` (curves of many runs at once), :meth:`~StoreReads.metrics`
  (one run), :meth:`~StoreReads.final_metrics` (final values of many runs),
  :meth:`~StoreReads.final_values` (one metric of finished runs, None otherwise),
  :meth:`~StoreReads.final_metric`, :meth:`~StoreReads.last_steps`, :meth:`~StoreReads.metric_names`,
  :meth:`~StoreReads.metric_rows` (the whole long table), :meth:`~StoreReads.staged_count`.

Open a store, or use the one given, with :func:`borrowed`.

Modules: :mod:`~adamlab.store.schema` (tables, versions, migration), :mod:`~adamlab.store.core`
(:class:`Store`: opening, writing, claims), :mod:`~adamlab.store.reads` (the read queries),
:mod:`~adamlab.store.sql` (the transaction and chunked ``IN`` lists).
"""

from adamlab.store.core import DEFAULT_STORE, Claims, Store, borrowed
from adamlab.store.reads import Curve, StoreReads
from adamlab.store.schema import SCHEMA_VERSION

__all__ = ["DEFAULT_STORE", "SCHEMA_VERSION", "Claims", "Curve", "Store", "StoreReads", "borrowed"]
