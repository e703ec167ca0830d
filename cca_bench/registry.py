"""Name -> object registries with "did you mean" hints (datasets, encoders, methods)."""
from __future__ import annotations

import difflib
from typing import Any, Callable

from cca_bench.errors import UserError


class Registry:
    """A mapping from names to objects filled by a decorator.

    >>> REG = Registry("method")
    >>> @REG.register("cca", help="regularized CCA")
    ... def make(): ...
    >>> REG.get("cca") is make
    True
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._meta: dict[str, dict] = {}

    def register(self, name: str, **meta) -> Callable[[Any], Any]:
        def decorator(obj):
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            self._meta[name] = meta
            return obj

        return decorator

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def names(self) -> list[str]:
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
        try:
            return self._items[name]
        except KeyError:
            raise UserError(self.suggest(name)) from None


DATASETS = Registry("dataset")
TEXT_ENCODERS = Registry("text encoder")
IMAGE_ENCODERS = Registry("image encoder")
METHODS = Registry("method")
