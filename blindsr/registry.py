"""Named factories of one kind (kernel estimators, SR back-ends). Registry names equal the options
of the matching Hydra config group, so ``sr=srmd`` and ``get_backend("srmd")`` are the same word."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence


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
        self._load()
        if name not in self._factories:
            raise KeyError(f"unknown {self.kind} {name!r}; choose from {sorted(self._factories)}")
        return self._factories[name](**options)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._factories)
