"""Capture the figures a module saves (drawn, before they are closed), for image-level tests."""

from __future__ import annotations

from typing import Any


def capture_figures(monkeypatch: Any, module: Any) -> dict[str, Any]:
    """Patch ``module.save_figure`` so that each figure is drawn and kept by name, then saved as usual."""
    captured: dict[str, Any] = {}
    original = module.save_figure

    def keep(fig: Any, out_dir: Any, name: str, **kwargs: Any) -> Any:
        fig.canvas.draw()
        captured[name] = fig
        return original(fig, out_dir, name, **kwargs)

    monkeypatch.setattr(module, "save_figure", keep)
    return captured
