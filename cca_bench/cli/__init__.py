"""Command line: one module per command; ``main`` parses, dispatches and turns user mistakes into one line.

Adding a command = one module + one line of :data:`COMMANDS`. The module (see ``listing.py``, the smallest) has:

- ``HELP``: the one line ``cca_bench --help`` shows; ``DESCRIPTION`` (and optionally ``EPILOG``) for its own help;
- ``add_arguments(p, argv)``: adds its arguments to ``p``, a :class:`~cca_bench.cli.parser.CliParser`, with
  ``p.add_argument``, ``p.group(title)`` (an argument group) and ``p.exclusive()``, and the shared groups of
  :mod:`cca_bench.cli.common` (``add_common(p)`` gives --data-root / --results-root / -q to every command).
  ``argv`` is the command's own arguments, for a parser that depends on them (``generate METHOD`` builds
  METHOD's options); most commands ignore it;
- ``run(args)``: does the work, importing heavy modules inside (``--help`` and ``list`` stay fast); a user
  mistake is a :class:`~cca_bench.errors.UserError`, printed as one line with exit status 2.

Both spellings of a command name are accepted (``run_benchmark`` / ``run-benchmark``); the help shows the key
of :data:`COMMANDS`. A method's options are not added here: a method class declares them in ``CLI_PARAMS``
({param: (type, help[, choices])}) and ``generate METHOD`` offers exactly those (see ``generate.py``).
Only this package prints for the user.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import sys

from cca_bench.cli import (
    compare,
    curve,
    evaluate,
    export_split,
    generate,
    listing,
    power,
    run_benchmark,
    runs,
    search,
    serve,
    significance,
    similarity,
)
from cca_bench.cli.parser import CliParser
from cca_bench.errors import UserError

PROG = "cca_bench"

# command name (as help shows it) -> its module; the order is the order of `cca_bench --help`
COMMANDS = {
    "list": listing,
    "generate": generate,
    "run_benchmark": run_benchmark,
    "search": search,
    "runs": runs,
    "compare": compare,
    "significance": significance,
    "power": power,
    "evaluate": evaluate,
    "export-split": export_split,
    "serve": serve,
    "curve": curve,
    "similarity": similarity,
}

EXAMPLES = """examples:
  python -m cca_bench list
  python -m cca_bench generate cca openmoji glove50_efficientnet
  python -m cca_bench generate cca --help        # the options of one method
  python -m cca_bench run_benchmark cca openmoji test glove50_efficientnet --distance cosine
  python -m cca_bench generate cca flickr8k word2vec_vgg_karpathy --reg 1e-4
  python -m cca_bench generate cca flickr8k word2vec_vgg_karpathy --cv --cv-select medr
  python -m cca_bench generate kcca openmoji glove50_efficientnet --cv --cv-gamma 1,2,4,8,16
  python -m cca_bench run_benchmark cca coco test word2vec_vgg_karpathy --protocol 1k
  python -m cca_bench compare --dataset flickr8k --csv flickr8k.csv --plot
  python -m cca_bench runs --split test           # run ids for significance and compare --baseline
  python -m cca_bench compare --split test --baseline cca__openmoji__glove50_efficientnet_lite0__test__full__cosine
  python -m cca_bench search cca openmoji glove50_efficientnet --text "a smiling cat" --html cats.html
  python -m cca_bench serve            # web app on http://127.0.0.1:8000/
  python -m cca_bench export-split coco test exported/ && python -m cca_bench evaluate coco test \\
      --images img.npy --texts txt.npy --name my_clip --protocol 5k
"""


def _key(name: str) -> str:
    """What both spellings of a command share: ``run-benchmark`` and ``run_benchmark`` -> ``run_benchmark``."""
    return name.replace("-", "_").lower()


def command_name(given: str) -> str:
    """The COMMANDS key that ``given`` spells (either spelling); else a UserError with a did-you-mean."""
    by_key = {_key(name): name for name in COMMANDS}
    if _key(given) in by_key:
        return by_key[_key(given)]
    close = difflib.get_close_matches(_key(given), list(by_key), n=1, cutoff=0.6)
    hint = f"; did you mean {by_key[close[0]]!r}?" if close else ""
    raise UserError(f"unknown command {given!r}{hint} (known: {', '.join(COMMANDS)}; see {PROG} --help)")


def top_parser() -> CliParser:
    """``cca_bench [-h] COMMAND ...``: its help lists the commands and the examples."""
    width = max(map(len, COMMANDS)) + 2
    lines = "\n".join(f"  {name:<{width}}{module.HELP}" for name, module in COMMANDS.items())
    p = CliParser(
        prog=PROG,
        usage=f"{PROG} [-h] COMMAND ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Classical (regularized CCA) and neural baselines for image-text retrieval, with the "
        f"field's metrics.\n\ncommands (`{PROG} COMMAND --help` shows a command's options; '-' and '_' "
        f"are alike in names: run-benchmark = run_benchmark):\n{lines}",
        epilog=EXAMPLES,
    )
    p.add_argument("command", metavar="COMMAND", help=argparse.SUPPRESS)
    return p


def command_parser(name: str, argv: list[str]) -> CliParser:
    """The parser of command ``name`` (a COMMANDS key) for its arguments ``argv``."""
    module = COMMANDS[name]
    p = CliParser(
        prog=f"{PROG} {name}",
        description=module.DESCRIPTION,
        epilog=getattr(module, "EPILOG", None),
        usage=getattr(module, "USAGE", None),
    )
    module.add_arguments(p, argv)
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed arguments, ``command`` = the COMMANDS key. argparse's mistakes exit 2 (SystemExit) with one
    line; an unknown command or method is a UserError."""
    if not argv or argv[0].startswith("-"):
        top_parser().parse_args(argv[:1])  # --help prints and exits; nothing or an option: COMMAND is missing
        top_parser().error("the following arguments are required: COMMAND")
    name = command_name(argv[0])
    args = command_parser(name, argv[1:]).parse_args(argv[1:])
    args.command = name
    return args


# what the machine or the file system refused: one line, exit 1 (other OSErrors are bugs: traceback)
OS_FAILURES = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large",
    errno.EIO: "input/output error",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.ELOOP: "too many levels of symbolic links",
}


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings (ours and the libraries') as ``warning: <message>``: one line, no source excerpt."""
    return "warning: " + " ".join(str(message).split()) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 done, 1 refused by the system, 2 a user mistake, 130
    interrupted). argparse's own mistakes exit 2 through SystemExit."""
    import warnings

    argv = sys.argv[1:] if argv is None else list(argv)
    formatted = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        args = parse(argv)
        COMMANDS[args.command].run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in OS_FAILURES:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{OS_FAILURES[e.errno]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished work is kept (cached features, saved models and runs)", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatted
    return 0
