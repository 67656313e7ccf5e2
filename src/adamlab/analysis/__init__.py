"""Analysis of a results store (layer ``analysis``): figures, the benchmark report, tidy tables.

Its one job: turn what a store holds into things people read. Every module reads runs and curves
through the store's read queries (:mod:`adamlab.store`) and draws with the one figure set-up
(:mod:`adamlab.plotting`):

- :mod:`adamlab.analysis.plots`: learning curves and lr sensitivity per problem (``adamlab plot``);
- :mod:`adamlab.analysis.report`: DeepOBS / AlgoPerf scores (the numbers of ``adamlab report``);
- :mod:`adamlab.analysis.report_page`: the report's figures and HTML page (imports ``report``, never the
  reverse);
- :mod:`adamlab.analysis.export`: the runs and metrics tables as CSV or Parquet (``adamlab export``).
"""
