"""Named factories of one kind (kernel estimators, SR back-ends). Registry names equal the options
of the matching Hydra config group, so ``sr=srmd`` and ``get_backend("srmd")`` are the same word.

A registered class declares its options once, as a dataclass in its ``Options`` attribute (the
Hydra schema is derived from it, ``blindsr.config.stage_schema``); a class whose options are
overrides of named presets also sets ``default_preset``. ``benchmark_only`` marks a stage that
only the ``eval`` verb can use (the ground-truth kernels, kernel scores without SR).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class NoOptions:
    """The options of a stage that has none."""


class Registry:
    def __init__(self, kind: str, package: str, builtin: Sequence[str]):
        self.kind = kind
        self.package = package
        self.builtin = tuple(builtin)
        self._factories: dict[str, Callable[..., Any]] = {}

    def register(self, name: str):
        """Class decorator: register ``factory`` under ``name`` (also set as its ``name``)."""
        def wrap(factory):
            self._factories[name] = factory
            factory.name = name
            return factory
        return wrap

    def _load(self) -> None:
        for module in self.builtin:  # registration happens on import
            importlib.import_module(f"{self.package}.{module}")

    def get(self, name: str, **options: Any) -> Any:
        return self.factory(name)(**options)

    def factory(self, name: str) -> Any:
        """The registered class itself (its ``Options``, ``default_preset``, ``benchmark_only``)."""
        self._load()
        if name not in self._factories:
            raise KeyError(f"unknown {self.kind} {name!r}; choose from {sorted(self._factories)}")
        return self._factories[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._factories)
