"""The one figure set-up (layer ``plotting``, just above ``util``: it imports only util, numpy, matplotlib).

Its one job: every figure adamlab draws starts, looks and is saved the same way.

- :func:`pyplot`: ``matplotlib.pyplot`` after the one backend choice (Agg unless the user chose one);
- :func:`save_figure` / :func:`write_figure`: PNG and PDF written atomically, Type 42 fonts;
- :data:`METRIC_LABELS` / :func:`metric_label`, :func:`method_styles` (a fixed colour, line style and
  marker per method in every figure: :func:`method_colors`, :func:`method_linestyles`, :func:`method_markers`),
  :func:`stacked_styles` (curves that may overlap: hollow markers, drawn last-on-top by rank),
  :data:`LOG_FLOOR`, :data:`LOG_RANGE`, :func:`log_scale` (plain tick labels on a narrow log axis),
  :func:`seed_band` (mean and min-max band over seeds), and the
  QUICK stamp of reduced-budget runs (:func:`quick_stamp`, :func:`quick_prefix`).

Matplotlib is imported only when a figure is drawn, so importing this package stays cheap.
"""

from adamlab.plotting.backend import DEFAULT_BACKEND, pyplot, use_backend
from adamlab.plotting.save import FONT_RC, FORMATS, save_figure, write_figure
from adamlab.plotting.style import (
    LINESTYLES,
    LOG_FLOOR,
    LOG_RANGE,
    METRIC_LABELS,
    QUICK,
    QUICK_PREFIX,
    draw_stacked_curves,
    log_scale,
    method_colors,
    method_linestyles,
    method_markers,
    method_styles,
    metric_label,
    quick_prefix,
    quick_stamp,
    seed_band,
    stacked_styles,
)

__all__ = [
    "DEFAULT_BACKEND", "FONT_RC", "FORMATS", "LINESTYLES", "LOG_FLOOR", "LOG_RANGE", "METRIC_LABELS", "QUICK",
    "QUICK_PREFIX", "log_scale", "method_colors", "method_linestyles", "method_markers", "method_styles", "metric_label", "pyplot", "quick_prefix", "quick_stamp",
    "save_figure", "seed_band", "stacked_styles", "draw_stacked_curves", "use_backend", "write_figure",
]
