"""The optimizer registry: names declared by the modules of ``adamlab.optim``, discovered by package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import adamlab.optim
from adamlab.optim import registry
from adamlab.util.registry import RegistryImportError

BUILT_IN = {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "amsgrad", "adamw", "adam-nobc", "adamax",
            "ssd", "msgd", "mssd", "svag", "msvag", "mssdva", "ndadam"}


def test_every_built_in_name_is_declared_next_to_its_class() -> None:
    assert set(registry.names()) == BUILT_IN
    for name in registry.names():
        entry = registry.OPTIMIZERS.get(name)
        module = sys.modules[registry.optimizer_class(name).__module__]
        assert module.__name__.startswith("adamlab.optim."), name
        assert entry.description, name
    assert registry.presets("adamw") == {"decoupled_weight_decay": True, "weight_decay": 1e-2}
    assert registry.describe("MSVAG") == "momentum variance-adapted SGD (Balles & Hennig)"


def test_errors_keep_their_messages() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'nope'; known optimizers: .*adam"):
        registry.presets("nope")
    with pytest.raises(ValueError, match="optimizer name 'Adam' is already registered"):
        registry.register("Adam", torch.optim.Adam)


def test_register_a_path_and_unregister() -> None:
    registry.register("torch-adam", "torch.optim:Adam", {"lr": 0.01}, "torch's Adam")
    try:
        opt = registry.make_optimizer("torch-adam", [torch.zeros(2, requires_grad=True)])
        assert type(opt) is torch.optim.Adam and opt.param_groups[0]["lr"] == 0.01
    finally:
        registry.unregister("torch-adam")
    assert "torch-adam" not in registry.names()


@pytest.fixture
def extra_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder added to ``adamlab.optim``'s package path, and a fresh discovery of the package."""
    monkeypatch.setattr(adamlab.optim, "__path__", [*adamlab.optim.__path__, str(tmp_path)])
    monkeypatch.setattr(registry.OPTIMIZERS, "_discovered", False)
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("adamlab.optim.zz_")]:
        del sys.modules[name]


def test_a_new_module_is_discovered(extra_module: Path) -> None:
    (extra_module / "zz_heavy.py").write_text(
        "import torch\n"
        "from adamlab.optim.registry import declare\n"
        "declare('zz-heavy', torch.optim.SGD, {'momentum': 0.9}, 'heavy ball, from its own module')\n")
    try:
        assert "zz-heavy" in registry.names()
        assert registry.presets("zz-heavy") == {"momentum": 0.9}
    finally:
        registry.unregister("zz-heavy")


def test_a_module_that_fails_to_import_is_a_loud_error(extra_module: Path) -> None:
    (extra_module / "zz_broken.py").write_text("raise RuntimeError('no such kernel')\n")
    with pytest.raises(RegistryImportError, match="adamlab.optim.zz_broken failed to import: RuntimeError: no such kernel"):
        registry.names()


def test_optimizer_kwargs_turns_json_lists_into_tuples() -> None:
    assert registry.optimizer_kwargs({"betas": [0.9, 0.99], "lr": 0.1}) == {"betas": (0.9, 0.99), "lr": 0.1}
