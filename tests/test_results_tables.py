"""The numbers of README.md and docs/*.md are generated, not typed (scripts/results_tables.py).

Every block between ``<!-- results-table: NAME -->`` markers is declared in the script's TABLES (and every
declared block is in its document), so ``results_tables.py --check`` covers all of them; a value computed from
the library's constants alone is checked here against its code; and no result-looking number (a decimal, a
percentage, a ratio such as ``1.3x``) stands in the prose outside a generated block unless the paragraph cites
the benchmark report that holds that very number, or it is one of the few settings and conventions listed in
ALLOWED. The blocks computed from stored runs are checked against the current code by
tests/test_readme_quickstart.py (which fits the quickstart's model again)."""

import re
from pathlib import Path

import pytest
from test_readme_quickstart import _script  # the script loaded as a module, once

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- (/?)results-table: ([\w.-]+) -->")
GENERATED = re.compile(
    r"<!-- results-table: ([\w.-]+) -->.*?<!-- /results-table: \1 -->"  # results_tables.py
    r"|<!-- (\w+):begin \((benchmarks/\w+\.py)\) -->.*?<!-- \2:end -->",  # written by that benchmark script
    re.S,
)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
NUMBER = re.compile(r"(?<![\w.@/-])[+-]?\d+(?:\.\d+)?(?:\s?%|x\b)|(?<![\w.@/-])[+-]?\d+\.\d+(?![\w.])")
REPORT = re.compile(r"\bbenchmarks/(REPORT\w*\.md)")

# Numbers that are settings, conventions or limits, not results (document -> {number: why}). Papers' numbers
# live in docs/published_sources.md, which cites each.
ALLOWED = {
    "README.md": {
        "95%": "the interval level",
        "0.05": "alpha",
        "2.1": "a torch version",
        "0.1": "chance R@1 on 1,000 images (1 / 1,000)",
    },
    "docs/aligners.md": {"95%": "the interval level", "0.1": "a grid value of --cv-reg"},
    "docs/api.md": {"95%": "the interval level"},
    "docs/comparison_vse.md": {"0.2": "the VSE margin (a setting)"},
    "docs/features.md": {"95%": "the interval level"},
    "docs/onnx.md": {"0.875": "timm's crop_pct setting"},
    "docs/protocols.md": {
        "2204.03359": "an arXiv id",
        "95%": "the interval level",
        "100%": "the optimistic rule's collapse, a property tests/test_ties.py checks",
        "0.1": "a grid value / chance R@1",
        "0.01": "a grid value",
        "0.001": "a grid value",
        "0.5": "the expected rule's R@1 for 200 identical images (1 in 200 x 100)",
    },
    "docs/search.md": {"0.95": "tests/test_search.py's recall threshold"},
    "docs/similarity.md": {"95%": "the null quantile"},
    "docs/speed.md": {"0.999": "the cosine bound the tests check for bf16 features"},
    "docs/statistics.md": {
        "95%": "the interval level",
        "0.95": "the interval level",
        "0.05": "alpha",
        "80%": "the power convention",
        "90%": "TOST's interval level",
        "1.96": "a normal quantile",
        "0.84": "a normal quantile",
        "0.5": "the default RHO",
        "0.72": "tests/test_power.py's tolerance",
        "98%": "tests/test_stats.py's tolerance band",
        "8%": "tests/test_seed_stats.py's tolerance",
    },
    "docs/web.md": {"95%": "the interval level", "4.5": "the WCAG AA contrast ratio"},
}
CITED = {"docs/published_sources.md"}  # every number there is a paper's, with its citation


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_every_marked_block_is_declared_and_every_declared_block_is_marked():
    """Planted bugs caught: a TABLES entry removed (its document's markers are then checked by nothing), and a
    marker renamed in docs/aligners.md (the declared block is then missing from its document)."""
    tables = _script().TABLES
    found: dict[tuple[str, str], list[str]] = {}
    for path in DOCS:
        for close, name in MARKER.findall(path.read_text(encoding="utf-8")):
            found.setdefault((_rel(path), name), []).append(close)
    declared = {(t.doc, name) for name, t in tables.items()}
    assert set(found) == declared, (set(found) - declared, declared - set(found))
    assert all(sorted(v) == ["", "/"] for v in found.values()), {k: v for k, v in found.items() if len(v) != 2}


def test_values_computed_from_constants_equal_their_code():
    """A block with no rows (README's standard error of a 50% recall over 1,000 images) is what its function
    computes now. Planted bug caught: README's "1.6 points" edited to "1.7 points"."""
    rt = _script()
    for name, table in rt.TABLES.items():
        if not table.rows:
            text = (ROOT / table.doc).read_text(encoding="utf-8")
            assert rt.block(text, name) == rt.render(table, []), name


def _unbacked(path: Path) -> list[str]:
    """The result-looking numbers of ``path`` outside generated blocks, fenced and inline code that neither
    occur in a report their paragraph (or the paragraph that introduces it with a colon) cites nor are
    ALLOWED."""
    text = FENCE.sub(" ", GENERATED.sub(" ", path.read_text(encoding="utf-8")))
    allowed = ALLOWED.get(_rel(path), {})
    out, inherited = [], []
    for para in re.split(r"\n\s*\n", text):
        reports = REPORT.findall(para) + inherited
        inherited = reports if para.rstrip().endswith(":") or (inherited and para.lstrip().startswith("-")) else []
        body = "\n".join((ROOT / "benchmarks" / r).read_text(encoding="utf-8") for r in set(reports))
        for number in NUMBER.findall(INLINE_CODE.sub(" ", para)):
            bare = number.strip().lstrip("+-").rstrip("%x").strip()
            if number.strip() in allowed or bare in allowed:
                continue
            if not re.search(rf"(?<![\d.]){re.escape(bare)}(?![\d])", body):
                out.append(f"{_rel(path)}: {number!r} in {para.strip()[:90]!r}")
    return out


@pytest.mark.parametrize("path", [p for p in DOCS if _rel(p) not in CITED], ids=_rel)
def test_no_typed_result_number_outside_the_generated_blocks(path):
    """Planted bugs caught: "R-sum 142.5" typed into the prose of docs/aligners.md (not generated, no report);
    README's "20.0% of seed-only pairs" changed to "21.0%" (not what benchmarks/REPORT_stats_figures.md
    holds). Not checked: whole numbers without a % or x (counts such as "1,000 images")."""
    assert _unbacked(path) == []
