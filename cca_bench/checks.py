"""Range checks of numeric hyper-parameters and flags: one rule per value, used by an estimator's fit and the CLI.

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
        num = (lambda v: str(int(v))) if self.integer else (lambda v: f"{v:g}")
        low = "" if self.low is None else f" {'>' if self.strict else '>='} {num(self.low)}"
        high = "" if self.high is None else f"{' and' if low else ''} <= {num(self.high)}"
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

# the ranges every command shares (the CLI's converters in cli/common.py are these bounds' .cli())
SEED = Bound(integer=True, low=0, high=2**32 - 1)  # what numpy's SeedSequence and torch.manual_seed both take
RESAMPLES = Bound(integer=True, low=1, high=10**6)  # bootstrap resamples and permutations
LAYERS = Bound(integer=True, low=0, high=1000)  # hidden layers of a network (each is one module to build)
PORT = Bound(integer=True, low=0, high=65535)  # 0: the system picks a free one


TAG = r"[A-Za-z0-9_.-]+"  # a --tag names model and run files: no separator, no markup


def check_tag(tag: str) -> str:
    """``tag`` when it is a valid ``--tag`` (TAG), else a UserError naming it."""
    import re

    if not re.fullmatch(TAG, tag):
        raise UserError(f"--tag {tag!r} may hold only letters, digits, '_', '.' and '-'")
    return tag


def check_memory(need: float, what: str) -> None:
    """A UserError naming ``what`` (e.g. "--bootstrap 1000000000 on 1,000 images") when ``need`` bytes exceed the
    memory available now (:func:`cca_bench.config.available_memory`): refused before anything is allocated."""
    from cca_bench.config import available_memory

    free = available_memory()
    if need > free:
        raise UserError(
            f"{what} needs about {need / 2**30:.1f} GiB of memory but {free / 2**30:.1f} GiB is "
            "available: choose a smaller value"
        )
