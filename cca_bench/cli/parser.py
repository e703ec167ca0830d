"""The CLI's argument parser: one-line errors with a did-you-mean, and a record of its own options.

argparse keeps its options in private attributes; hints and the documented-commands test need them, so
:class:`CliParser` records every option it is given through public calls (``add_argument``, :meth:`group`,
:meth:`exclusive`) in ``options`` (flag -> type converter or None).
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable


class CliParser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: <prog>: <what> (see <prog> --help)``, exit 2).

    ``help_hint``: the command whose ``--help`` an error points at (default: ``prog``). ``refuse``: a callable
    ``flag -> reason or None`` that explains an unknown option (e.g. "--epochs is not an option of cca (vse,
    dcca take it)"); without a reason the closest recorded option is suggested.
    """

    def __init__(
        self,
        *args,
        help_hint: str | None = None,
        refuse: Callable[[str], str | None] | None = None,
        check_values: bool = True,
        **kwargs,
    ):
        self.options: dict[str, Callable | None] = {}
        self.check_values = check_values  # False: a first pass that reads positionals, values unconverted
        super().__init__(*args, **kwargs)
        self.help_hint = help_hint or self.prog
        self.refuse = refuse

    def add_argument(self, *flags, **kwargs):
        return super().add_argument(*flags, **self.record(flags, kwargs))

    def record(self, flags: tuple, kwargs: dict) -> dict:
        """Note the option's flags and type; returns the keyword arguments argparse gets (without value checks
        when ``check_values`` is False)."""
        for flag in flags:
            if flag.startswith("-"):
                self.options[flag] = kwargs.get("type")
        if self.check_values:
            return kwargs
        return {k: v for k, v in kwargs.items() if k not in ("type", "choices", "required")}

    def group(self, title: str, description: str | None = None) -> _Recording:
        """``add_argument_group`` whose options are recorded in ``options``."""
        return _Recording(self.add_argument_group(title, description), self)

    def exclusive(self, required: bool = False) -> _Recording:
        """``add_mutually_exclusive_group`` whose options are recorded in ``options``."""
        return _Recording(self.add_mutually_exclusive_group(required=required), self)

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.help_hint} --help)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but leftover arguments are one line: the reason ``refuse`` gives for the first
        unknown option, else the closest option of this parser (``--n-componets``: did you mean
        --n-components?)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.exit(2, self.unrecognized(extras))
        return parsed

    def unrecognized(self, extras: list[str]) -> str:
        """The one error line for arguments this parser does not take."""
        flags = [e.split("=", 1)[0] for e in extras if e.startswith("--")]
        reasons = [r for r in (self.refuse(f) for f in flags) if r] if self.refuse else []
        if reasons:
            return f"error: {self.prog}: {reasons[0]} (see {self.help_hint} --help)\n"
        hints = [f"did you mean {close}?" for close in map(self.closest, flags) if close]
        return (
            f"error: {self.prog}: unrecognized arguments: {' '.join(extras)}"
            f"{'; ' + ' '.join(hints) if hints else ''} (see {self.help_hint} --help)\n"
        )

    def closest(self, flag: str) -> str | None:
        """The recorded ``--option`` closest to a misspelled one, or None."""
        options = [o for o in self.options if o.startswith("--")]
        close = difflib.get_close_matches(flag, options, n=1, cutoff=0.75)
        return close[0] if close else None


class _Recording:
    """An argument group (or mutually exclusive group) that records the options added to it."""

    def __init__(self, group, parser: CliParser):
        self._group, self._parser = group, parser

    def add_argument(self, *flags, **kwargs):
        return self._group.add_argument(*flags, **self._parser.record(flags, kwargs))

    def exclusive(self, required: bool = False) -> _Recording:
        return _Recording(self._group.add_mutually_exclusive_group(required=required), self._parser)
