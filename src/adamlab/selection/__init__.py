"""Learning-rate selection from stored results (layer ``selection``): :mod:`adamlab.selection.lr`.

Its one job: the papers' tuning rule (criterion, score, tie-break), read from a store through its
queries (:meth:`adamlab.store.Store.final_metrics`).
"""
