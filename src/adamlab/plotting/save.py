"""The one figure saver: atomic files, TrueType (Type 42) fonts in PDF and PostScript."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adamlab.util.files import atomic_path

#: Matplotlib settings for every file :func:`write_figure` writes: TrueType (Type 42) fonts in PDF and
#: PostScript instead of matplotlib's default Type 3 bitmaps-as-glyphs, which many venues reject.
FONT_RC: dict[str, Any] = {"pdf.fonttype": 42, "ps.fonttype": 42}

#: The formats :func:`save_figure` writes.
FORMATS: tuple[str, ...] = ("png", "pdf")


def write_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 150, fmt: str | None = None,
                 **savefig: Any) -> Path:
    """Save ``fig`` to ``path`` atomically (:func:`adamlab.util.files.atomic_path`) with :data:`FONT_RC`.

    The format is ``fmt``, by default the suffix of ``path`` (PNG without one); ``savefig`` goes to
    ``Figure.savefig`` (e.g. ``bbox_inches="tight"``). The global matplotlib settings are left as they
    are. Returns ``path``.
    """
    import matplotlib

    target = Path(path)
    fmt = fmt or target.suffix.lstrip(".").lower() or "png"
    with matplotlib.rc_context(FONT_RC), atomic_path(target) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, **savefig)
    return target


def save_figure(fig: Any, out_dir: str | os.PathLike[str], stem: str, dpi: int = 150,
                formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` (``formats``) into ``out_dir`` (created if missing).

    The one writer of the package's figures (runner, report, demo, reproduce, scripts): each file lands
    atomically, PDFs embed Type 42 fonts, the bounding box is tight. Returns the paths in ``formats``'
    order.
    """
    out = Path(out_dir)
    return [write_figure(fig, out / f"{stem}.{ext}", dpi=dpi, bbox_inches="tight") for ext in formats]
