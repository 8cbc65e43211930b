"""Registries: what the toolkit can do is found, not listed.

Corpus adapters, source stages and fixture writers register themselves with a
decorator when their module is imported. A registry imports every module of its
home package on first use (so a new module in ``streamaudio/sources/`` is found
without editing anything else) and then whatever third-party packages publish
under its entry-point group, e.g. in a plugin's pyproject.toml::

    [project.entry-points."streamaudio.adapters"]
    mycorpus = "my_package.my_adapter"

Recipes are registered by folder instead (see streamaudio.plan.recipes).
"""
from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class RegistryError(ValueError):
    pass


class Registry(Generic[T]):
    def __init__(self, what: str, home_packages: str | tuple[str, ...], entry_point_group: str):
        self.what = what
        self.home_packages = (home_packages,) if isinstance(home_packages, str) else tuple(home_packages)
        self.group = entry_point_group
        self._items: dict[str, T] = {}
        self._origin: dict[str, str] = {}
        self._discovered = False

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@ADAPTERS.register()`` on a class with a ``name``-giving attribute,
        or ``@REGISTRY.register("name")``."""
        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or getattr(obj, "corpus", None)
            if not key:
                raise RegistryError(f"{obj!r}: a registered {self.what} needs a name")
            where = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"
            if key in self._items and self._origin[key] != where:
                raise RegistryError(f"{self.what} {key!r} registered twice: {self._origin[key]} and {where}")
            self._items[key] = obj
            self._origin[key] = where
            return obj

        return deco

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for home in self.home_packages:
            pkg = importlib.import_module(home)
            for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{home}.{info.name}")
        for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
            ep.load()  # importing the module registers what it defines

    def get(self, name: str) -> T:
        self._discover()
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(f"unknown {self.what} {name!r}; known: {', '.join(sorted(self._items))}") from None

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self._discover()
        return iter(sorted(self._items.items()))

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._items
