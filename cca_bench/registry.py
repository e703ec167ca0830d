"""Name -> object registries with "did you mean" hints (datasets, encoders, methods)."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from cca_bench.errors import UserError


class Registry:
    """A mapping from names to objects filled by a decorator.

    >>> REG = Registry("method")
    >>> @REG.register("cca", help="regularized CCA")
    ... def make(): ...
    >>> REG.get("cca") is make
    True
    """

    def __init__(self, kind: str, filled_by: str | None = None):
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._meta: dict[str, dict] = {}
        self._filled_by = filled_by  # the package whose load_all() registers the entries (on first lookup)

    def _fill(self) -> None:
        """Import the package that fills this registry, once, on the first lookup: the registry names the
        package (as plugins name an entry-point group), so no low module imports the encoders to find a name."""
        if self._filled_by is not None:
            package, self._filled_by = self._filled_by, None
            importlib.import_module(package).load_all()

    def register(self, name: str, **meta) -> Callable[[Any], Any]:
        def decorator(obj):
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            self._meta[name] = meta
            return obj

        return decorator

    def __contains__(self, name: str) -> bool:
        self._fill()
        return name in self._items

    def names(self) -> list[str]:
        self._fill()
        return sorted(self._items)

    def meta(self, name: str) -> dict:
        self.get(name)
        return self._meta[name]

    def suggest(self, name: str, extra: list[str] = ()) -> str:
        choices = self.names() + list(extra)
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(choices) or 'none'})"

    def get(self, name: str) -> Any:
        self._fill()
        try:
            return self._items[name]
        except KeyError:
            raise UserError(self.suggest(name)) from None


DATASETS = Registry("dataset", filled_by="cca_bench.datasets")
TEXT_ENCODERS = Registry("text encoder", filled_by="cca_bench.features")
IMAGE_ENCODERS = Registry("image encoder", filled_by="cca_bench.features")
METHODS = Registry("method", filled_by="cca_bench.methods")
