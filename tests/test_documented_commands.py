"""No documented command rots: every ``python -m cca_bench ...`` of README.md and docs/*.md goes through the CLI's
argument parser (``cca_bench.cli.parse``: the command's own parser, ``generate METHOD``'s built for METHOD; nothing
runs), and so does every example of the ``--help`` texts (the top-level examples and each command's epilog).

Commands are read from code blocks (with ``\\`` line continuations, several per line joined by ``&&`` or ``;``)
and from inline code spans in the prose (which may wrap across lines). Placeholders are made concrete before
parsing: optional parts in ``[...]`` are dropped, ``a|b|c`` choices give their first choice, ``...`` is
dropped, METHOD becomes ``cca`` (generate reads it to build its options), and an UPPERCASE placeholder (``K``,
``K,K,...``) given to an option with a typed value becomes ``1`` (or ``1,2`` for a list).
"""

import re
import shlex
from pathlib import Path

import pytest

from cca_bench.cli import COMMANDS, EXAMPLES, command_name, command_parser, parse
from cca_bench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGRAM = "python -m cca_bench"


def code_lines(text: str) -> list[str]:
    """The lines of the fenced code blocks, continuations joined."""
    lines, out, inside = text.splitlines(), [], False
    for line in lines:
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if inside:
            if out and out[-1].endswith("\\"):
                out[-1] = out[-1][:-1] + " " + line.strip()
            else:
                out.append(line.strip())
    return out


def inline_spans(text: str) -> list[str]:
    """The inline code spans of the prose (fenced blocks removed; a span may wrap across lines)."""
    prose = re.sub(r"(?ms)^\s*```.*?^\s*```", "", text)
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]


def commands(text: str) -> list[str]:
    """Every ``python -m cca_bench`` command of a markdown text, as written (comments stripped)."""
    found = []
    for chunk in code_lines(text) + inline_spans(text):
        chunk = re.sub(r"\s#\s.*$", "", chunk)  # a shell comment
        for part in re.split(r"\s&&\s|;\s|\s\|\s", chunk):
            part = part.strip()
            if part.startswith(PROGRAM + " ") or part.startswith("$ " + PROGRAM + " "):
                found.append(part.removeprefix("$ ")[len(PROGRAM) :].strip())
    return found


def concrete(command: str) -> list[str]:
    """The argv of a documented command with its placeholders made concrete (see the module docstring)."""
    while re.search(r"\[[^\[\]]*\]", command):
        command = re.sub(r"\s*\[[^\[\]]*\]", "", command)
    argv = [t for t in shlex.split(command) if t not in ("...", "…")]
    argv = [t.split("|")[0] if "|" in t and not t.startswith("|") else t for t in argv]
    argv = ["cca" if t == "METHOD" else t for t in argv]  # generate reads METHOD first to build its options
    types = _option_types(argv)
    for i, token in enumerate(argv[1:], start=1):
        convert = types.get(argv[i - 1])
        if convert is not None and PLACEHOLDER.fullmatch(token):
            argv[i] = next((v for v in ("1", "1,2") if _converts(convert, v)), token)
    return argv


def _option_types(argv: list[str]) -> dict:
    """{flag: type converter} of the parser that reads ``argv`` (the recorded options of ``CliParser``)."""
    try:
        return command_parser(command_name(argv[0]), argv[1:]).options if argv else {}
    except Exception:  # an unknown command or method: nothing to make concrete; parse() reports it
        return {}


PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*([,.][A-Z.]*)*")  # K, R, N, K,K,...


def _converts(convert, value: str) -> bool:
    try:
        convert(value)
        return True
    except Exception:  # argparse's own converters raise ArgumentTypeError, ValueError, UserError...
        return False


DOCUMENTED = [
    (path.relative_to(ROOT).as_posix(), c) for path in DOCS for c in commands(path.read_text(encoding="utf-8"))
]


def test_the_documents_hold_commands():
    """The extraction finds the commands (README's set-up chain, its command list, the docs' examples)."""
    assert len(DOCUMENTED) >= 40
    readme = [c for where, c in DOCUMENTED if where == "README.md"]
    assert "generate cca openmoji glove50_efficientnet" in readme  # joined by && on the set-up line
    assert any(c.startswith("serve") for c in readme)
    assert any("--cv-gamma" in c for _, c in DOCUMENTED)  # a command continued with a backslash


def test_placeholders_are_made_concrete():
    assert concrete("generate METHOD DATASET FEATURES [--n-components K] [--reg R]") == [
        "generate",
        "cca",
        "DATASET",
        "FEATURES",
    ]
    assert concrete("run_benchmark M D S F --distance cosine|dot|euclidean")[-1] == "cosine"
    assert concrete("generate cca flickr8k word2vec_vgg19 --fv-components K")[-1] == "1"
    # kcca's own grid flag, offered by kcca's parser only
    assert concrete("generate kcca openmoji glove50_efficientnet --cv --cv-gamma S,S,...")[-1] == "1"


def parses(argv: list[str]) -> bool:
    """Whether the CLI's parser takes ``argv`` (``--help`` is not run: it prints and exits 0)."""
    if "-h" in argv or "--help" in argv:
        return True
    try:
        parse(argv)
    except (SystemExit, UserError):
        return False
    return True


@pytest.mark.parametrize("where, command", DOCUMENTED, ids=[f"{w}:{c[:50]}" for w, c in DOCUMENTED])
def test_documented_command_parses(where, command):
    argv = concrete(command)
    assert parses(argv), f"{where}: `python -m cca_bench {command}` does not parse ({argv})"


HELP_EXAMPLES = [("cca_bench --help", c) for c in commands(f"```\n{EXAMPLES}\n```")] + [
    (f"{name} --help", c)
    for name, module in COMMANDS.items()
    for c in commands(f"```\n{(getattr(module, 'EPILOG', None) or '').removeprefix('example:')}\n```")
]


def test_the_help_texts_hold_examples():
    """The top-level examples and the epilogs are found (planted: an extraction that misses the epilogs)."""
    assert len(HELP_EXAMPLES) >= 12
    assert any(where == "significance --help" for where, _ in HELP_EXAMPLES)
    assert any(where == "generate --help" for where, _ in HELP_EXAMPLES)


@pytest.mark.parametrize("where, command", HELP_EXAMPLES, ids=[f"{w}:{c[:50]}" for w, c in HELP_EXAMPLES])
def test_help_example_parses(where, command):
    """Every example a --help text shows parses (planted: an epilog example with a flag the command lacks)."""
    assert parses(concrete(command)), f"{where}: `python -m cca_bench {command}` does not parse"


def test_a_rotten_command_is_caught(capsys):
    (command,) = commands("Run `python -m cca_bench generate cca shapes\nglove50_tinyimage --no-such-flag` first.")
    assert command == "generate cca shapes glove50_tinyimage --no-such-flag"
    assert not parses(concrete(command))
    assert not parses(concrete("generate cca shapes glove50_tinyimage --epochs 3"))  # another method's option
