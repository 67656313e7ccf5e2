"""The one registry mechanism: names -> entries, filled by the modules of one package.

Optimizers, problems, recipes and CLI commands are each a :class:`Registry`. A registry knows the
package whose modules register its entries (with :meth:`Registry.register`, usually as a decorator at
import time). On first use it imports every module of that package, so adding an entry means adding a
module: there is no hand-kept import list. A module that fails to import is an error that names it
(:class:`RegistryImportError`), never a silently missing entry. Code outside the package (a test, a
user's plug-in) registers with :meth:`Registry.register` too.

Names are listed sorted (``sort_names=True``, e.g. problems) or by each entry's ``order`` (a number
given when it registers; entries without one come last), ties in registration order: so the order in
which a package's modules happen to be imported never decides what ``--help`` or a listing shows.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryImportError(ImportError):
    """A module of a registry's package failed to import (its entries would be missing)."""


def import_package_modules(package: str) -> list[str]:
    """Import every module below ``package`` (recursively, sorted by name); returns their names.

    Raises :class:`RegistryImportError` naming the first module that fails to import.
    """
    pkg = importlib.import_module(package)
    names: list[str] = []
    paths = getattr(pkg, "__path__", None)
    if paths is None:
        return names
    for info in sorted(pkgutil.walk_packages(paths, prefix=package + "."), key=lambda m: m.name):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as err:
            raise RegistryImportError(f"{package}: module {info.name} failed to import: "
                                      f"{type(err).__name__}: {err}") from err
        names.append(info.name)
    return names


class Registry(Generic[T]):
    """Entries of one ``kind`` by name, registered by the modules of ``package``.

    Parameters
    ----------
    kind:
        What an entry is, for messages ("optimizer", "problem", ...).
    package:
        The package whose modules register the built-in entries; imported (all of its modules) on
        first use. ``None``: only explicit registrations.
    normalize:
        Maps a name to its key (e.g. ``str.lower`` for case-insensitive names).
    sort_names:
        List names sorted; otherwise by each entry's ``order``, then in registration order.
    """

    def __init__(self, kind: str, package: str | None = None,
                 normalize: Callable[[str], str] | None = None, *, sort_names: bool = False) -> None:
        self.kind = kind
        self.package = package
        self.sort_names = sort_names
        self._normalize = normalize or (lambda name: name)
        self._entries: dict[str, T] = {}
        self._order: dict[str, float] = {}
        self._discovered = package is None
        self._discovering = False

    # -- discovery ---------------------------------------------------------------------------------
    def discover(self) -> None:
        """Import the package's modules once (re-entrant: a module may use the registry while it loads)."""
        if self._discovered or self._discovering:
            return
        self._discovering = True
        try:
            import_package_modules(self.package)  # type: ignore[arg-type]
            self._discovered = True
        finally:
            self._discovering = False

    # -- writing -----------------------------------------------------------------------------------
    def add(self, name: str, entry: T, *, replace: bool = False, order: float | None = None) -> T:
        """Register ``entry`` under ``name``; a taken name is a ``ValueError`` unless ``replace``.

        ``order`` places the name in :meth:`names` (smaller first; ``None``: after every ordered entry,
        or where it was for a replaced entry).
        """
        key = self._normalize(name)
        if key in self._entries and not replace:
            raise ValueError(f"{self.kind} name {name!r} is already registered")
        self._entries[key] = entry
        if order is not None or key not in self._order:
            self._order[key] = math.inf if order is None else float(order)
        return entry

    def register(self, name: str, *, replace: bool = False,
                 order: float | None = None) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@REGISTRY.register("name", order=10)``."""

        def decorate(entry: T) -> T:
            return self.add(name, entry, replace=replace, order=order)

        return decorate

    def remove(self, name: str) -> None:
        """Remove ``name`` (for tests that register their own)."""
        key = self.key(name)
        del self._entries[key]
        self._order.pop(key, None)

    @property
    def entries(self) -> dict[str, T]:
        """The live mapping key -> entry (after discovery), for tests that patch an entry in place."""
        self.discover()
        return self._entries

    # -- reading -----------------------------------------------------------------------------------
    def key(self, name: str) -> str:
        """The key of ``name``; a ``ValueError`` listing the known names if there is none."""
        self.discover()
        key = self._normalize(name)
        if key not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}")
        return key

    def get(self, name: str) -> T:
        """The entry of ``name``; a ``ValueError`` listing the known names if there is none."""
        return self._entries[self.key(name)]

    def names(self) -> list[str]:
        """Registered names: sorted (``sort_names``), else by ``order``, then registration order."""
        self.discover()
        if self.sort_names:
            return sorted(self._entries)
        return sorted(self._entries, key=lambda key: self._order.get(key, math.inf))

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, entry)`` pairs in the order of :meth:`names`."""
        return iter([(key, self._entries[key]) for key in self.names()])

    def __contains__(self, name: object) -> bool:
        self.discover()
        return isinstance(name, str) and self._normalize(name) in self._entries

    def __len__(self) -> int:
        self.discover()
        return len(self._entries)
