"""Range checks of numeric hyper-parameters: one rule per parameter, used by an estimator's fit and the CLI.

A :class:`Bound` states what a parameter may be (finite, integer, lowest value); ``bound.check(name, v)``
raises a UserError naming the parameter, and ``bound.cli()`` is the same check as an argparse ``type``,
so a bad value is refused where it is typed (``--eig-power inf``) as well as where it is used (``fit``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from cca_bench.errors import UserError


@dataclass(frozen=True)
class Bound:
    """A finite number, optionally a whole one, at least ``low`` (or above it when ``strict``), at most ``high``."""

    integer: bool = False
    low: float | None = None
    strict: bool = False
    high: float | None = None

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a finite number"
        low = "" if self.low is None else f" {'>' if self.strict else '>='} {self.low:g}"
        high = "" if self.high is None else f"{' and' if low else ''} <= {self.high:g}"
        return kind + low + high

    def ok(self, value) -> bool:
        if isinstance(value, bool) or not hasattr(value, "__float__"):
            return False
        v = float(value)
        if not math.isfinite(v) or (self.integer and v != int(v)) or (self.high is not None and v > self.high):
            return False
        return self.low is None or (v > self.low if self.strict else v >= self.low)

    def check(self, name: str, value):
        """``value`` unchanged when it is in range, else a UserError naming ``name``."""
        if not self.ok(value):
            raise UserError(f"{name} must be {self.describe()}, got {value!r}")
        return value

    def cli(self):
        """An argparse ``type``: text -> int/float, or an ArgumentTypeError (argparse names the flag)."""
        import argparse

        cast = int if self.integer else float

        def parse(text: str):
            try:
                value = cast(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}") from None
            if not self.ok(value):
                raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}")
            return value

        parse.__name__ = cast.__name__  # argparse shows "invalid int value" style messages by this name
        return parse


FINITE = Bound()
NON_NEGATIVE = Bound(low=0)
POSITIVE = Bound(low=0, strict=True)
COUNT = Bound(integer=True, low=1)
