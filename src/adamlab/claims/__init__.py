"""The seeds' claims, measured on real runs (layer ``claims``; the ``adamlab verify`` command).

:func:`verify` runs the property checks of :mod:`adamlab.claims.properties` (rescaling invariance, the
step bound, cautiousness, ...) and the records of :mod:`adamlab.claims.seed_claims` on any registered
optimizer, and reports the measured number next to what theory predicts. It builds on the toolkit in
:mod:`adamlab.dissect`, the problems and the optimizers.
"""

from adamlab.claims.properties import PROPERTIES, Record, verify

__all__ = ["PROPERTIES", "Record", "verify"]
