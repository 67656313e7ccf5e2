"""The one registry mechanism (adamlab.util.registry): discovery by package, order, and loud failures.

A module of a registry's package that fails to import is an error naming that module, for the
problems, the recipes and the CLI's command modules alike: never a silently missing entry.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

import adamlab.commands
import adamlab.problems
import adamlab.problems.base
import adamlab.reproduce.base
import adamlab.reproduce.recipes
from adamlab import cli, problems, reproduce
from adamlab.util.registry import Registry, RegistryImportError


@pytest.fixture
def plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package ``toyplugins`` on sys.path whose modules register into ``toyplugins.REGISTRY``."""
    pkg = tmp_path / "toyplugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from adamlab.util.registry import Registry
        REGISTRY = Registry("plugin", package="toyplugins")
    """))
    (pkg / "alpha.py").write_text("from toyplugins import REGISTRY\nREGISTRY.add('alpha', 1, order=20)\n")
    (pkg / "beta.py").write_text("from toyplugins import REGISTRY\nREGISTRY.add('beta', 2, order=10)\n")
    (pkg / "gamma.py").write_text("from toyplugins import REGISTRY\nREGISTRY.add('gamma', 3)\n")
    (pkg / "_private.py").write_text("raise RuntimeError('a private module is not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg
    for name in [m for m in sys.modules if m == "toyplugins" or m.startswith("toyplugins.")]:
        del sys.modules[name]


def test_discovers_every_module_in_order(plugin_package: Path) -> None:
    registry = importlib.import_module("toyplugins").REGISTRY
    assert registry.names() == ["beta", "alpha", "gamma"]  # by order; no order: last
    assert registry.get("alpha") == 1 and "gamma" in registry and len(registry) == 3
    assert list(registry.items()) == [("beta", 2), ("alpha", 1), ("gamma", 3)]
    with pytest.raises(ValueError, match="unknown plugin 'delta'; known plugins: beta, alpha, gamma"):
        registry.get("delta")


def test_a_module_that_fails_to_import_is_named(plugin_package: Path) -> None:
    (plugin_package / "broken.py").write_text("import no_such_module_for_adamlab_tests\n")
    registry = importlib.import_module("toyplugins").REGISTRY
    with pytest.raises(RegistryImportError, match=r"module toyplugins\.broken failed to import: "
                                                  r"ModuleNotFoundError: .*no_such_module_for_adamlab_tests"):
        registry.names()
    with pytest.raises(RegistryImportError, match=r"toyplugins\.broken"):  # every use, not only the first
        registry.get("alpha")


def test_a_replaced_entry_keeps_its_place() -> None:
    registry: Registry[int] = Registry("thing")
    registry.add("late", 1)
    registry.add("early", 2, order=1)
    registry.add("early", 3, replace=True)
    assert list(registry.items()) == [("early", 3), ("late", 1)]


def test_sorted_names() -> None:
    registry: Registry[int] = Registry("thing", sort_names=True)
    for name in ("b", "c", "a"):
        registry.add(name, 0, order=-ord(name))
    assert registry.names() == ["a", "b", "c"]


def broken_module(package: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Add a module that fails to import to ``package`` (through a temporary folder on its path)."""
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "broken_toy.py").write_text("raise ImportError('the toy module is broken')\n")
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    return f"{package.__name__}.broken_toy"


def test_cli_does_not_drop_a_broken_command_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = broken_module(adamlab.commands, tmp_path, monkeypatch)
    monkeypatch.setattr(cli, "COMMANDS", Registry("command", package="adamlab.commands"))  # not yet discovered
    with pytest.raises(RegistryImportError, match=rf"module {name} failed to import: ImportError: the toy"):
        cli.main(["list"])


def test_a_broken_problem_module_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = broken_module(adamlab.problems, tmp_path, monkeypatch)
    monkeypatch.setattr(adamlab.problems.base, "REGISTRY", Registry("problem", package="adamlab.problems"))
    with pytest.raises(RegistryImportError, match=rf"module {name} failed to import"):
        problems.get("quadratic.noisy")


def test_a_broken_recipe_module_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = broken_module(adamlab.reproduce.recipes, tmp_path, monkeypatch)
    monkeypatch.setattr(adamlab.reproduce.base, "REGISTRY", Registry("recipe", package="adamlab.reproduce.recipes"))
    with pytest.raises(RegistryImportError, match=rf"module {name} failed to import"):
        reproduce.names()
