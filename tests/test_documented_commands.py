"""No documented command rots: every ``python -m cca_bench ...`` of README.md and docs/*.md goes through the CLI's
argument parser (``build_parser().parse_args``; nothing runs).

Commands are read from code blocks (with ``\\`` line continuations, several per line joined by ``&&`` or ``;``)
and from inline code spans in the prose (which may wrap across lines). Placeholders are made concrete before
parsing: optional parts in ``[...]`` are dropped, ``a|b|c`` choices give their first choice, ``...`` is
dropped, and an UPPERCASE placeholder (``K``, ``K,K,...``) given to an option with a typed value becomes ``1`` (or
``1,2`` for a list).
"""
import re
import shlex
from pathlib import Path

import pytest

from cca_bench.__main__ import build_parser

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
                found.append(part.removeprefix("$ ")[len(PROGRAM):].strip())
    return found


def concrete(command: str, parser) -> list[str]:
    """The argv of a documented command with its placeholders made concrete (see the module docstring)."""
    while re.search(r"\[[^\[\]]*\]", command):
        command = re.sub(r"\s*\[[^\[\]]*\]", "", command)
    argv = [t for t in shlex.split(command) if t not in ("...", "…")]
    argv = [t.split("|")[0] if "|" in t and not t.startswith("|") else t for t in argv]
    sub = _subparser(parser, argv[0]) if argv else None
    for i, token in enumerate(argv[1:], start=1):
        action = sub._option_string_actions.get(argv[i - 1]) if sub is not None else None
        if action is not None and action.type is not None and PLACEHOLDER.fullmatch(token):
            argv[i] = next((v for v in ("1", "1,2") if _converts(action.type, v)), token)
    return argv


def _subparser(parser, name: str):
    for action in parser._subparsers._group_actions:
        if name in action.choices:
            return action.choices[name]
    return None


PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*([,.][A-Z.]*)*")  # K, R, N, K,K,...


def _converts(convert, value: str) -> bool:
    try:
        convert(value)
        return True
    except Exception:  # argparse's own converters raise ArgumentTypeError, ValueError, UserError...
        return False


DOCUMENTED = [(path.relative_to(ROOT).as_posix(), c) for path in DOCS for c in commands(path.read_text(encoding="utf-8"))]


def test_the_documents_hold_commands():
    """The extraction finds the commands (README's set-up chain, its command list, the docs' examples)."""
    assert len(DOCUMENTED) >= 40
    readme = [c for where, c in DOCUMENTED if where == "README.md"]
    assert "generate cca openmoji glove50_efficientnet" in readme  # joined by && on the set-up line
    assert any(c.startswith("serve") for c in readme)
    assert any("--cv-gamma" in c for _, c in DOCUMENTED)  # a command continued with a backslash


def test_placeholders_are_made_concrete():
    parser = build_parser()
    assert concrete("generate METHOD DATASET FEATURES [--n-components K] [--reg R]", parser) == [
        "generate", "METHOD", "DATASET", "FEATURES"]
    assert concrete("run_benchmark M D S F --distance cosine|dot|euclidean", parser)[-1] == "cosine"
    assert concrete("generate cca flickr8k word2vec_vgg19 --fv-components K", parser)[-1] == "1"


@pytest.mark.parametrize("where, command", DOCUMENTED, ids=[f"{w}:{c[:50]}" for w, c in DOCUMENTED])
def test_documented_command_parses(where, command):
    parser = build_parser()
    argv = concrete(command, parser)
    if "-h" in argv or "--help" in argv:
        return
    try:
        parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `python -m cca_bench {command}` does not parse ({argv})")


def test_a_rotten_command_is_caught(capsys):
    parser = build_parser()
    (command,) = commands("Run `python -m cca_bench generate cca shapes\nglove50_tinyimage --no-such-flag` first.")
    assert command == "generate cca shapes glove50_tinyimage --no-such-flag"
    with pytest.raises(SystemExit):
        parser.parse_args(concrete(command, parser))
