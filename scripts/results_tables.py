"""Regenerate the results tables of README.md and docs/*.md from stored runs: generated, never typed.

Every table is declared below (TABLES): the document and marker it lives between, its rows, and for each row
the `generate` and `run_benchmark` commands that make its run. The text between

    <!-- results-table: NAME -->  ...  <!-- /results-table: NAME -->

(a table, or an inline value or sentence of the prose when the markers share its line: kind ``text``) is
rewritten from the recorded stored run of each row (the run ids are recorded in docs/results_runs.json with the
commands, the date and the seconds the commands took). Commands:

    python scripts/results_tables.py --list                      # the tables, their documents and rows
    python scripts/results_tables.py quickstart --run            # run the commands of a table, then rewrite it
    python scripts/results_tables.py                             # rewrite every table from the recorded runs
    python scripts/results_tables.py --check                     # exit 1 if a document differs (writes nothing)

``--run`` runs each row's commands with ``--results-root`` / ``--data-root`` (default ./results, ./data); a row
whose recorded run is still stored is not run again unless ``--rerun``. Intervals are the ones stored in each run
record; deltas and p-values come from :func:`cca_bench.stats.paired_test` with the one default of resamples and
seed, printed by :func:`cca_bench.stats.format_p`; bold / dagger marks from ``results.significance_marks``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this tree's cca_bench and benchmarks/ (tie_rules renders the ties table)
MANIFEST = ROOT / "docs" / "results_runs.json"


@dataclass(frozen=True)
class Row:
    """One row: its label, the command shown in the table, and the CLI argv (without ``python -m cca_bench``)
    of the ``generate`` and ``run_benchmark`` that make its run."""

    label: str
    shown: str
    generate: tuple[str, ...]
    run: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A block of a document: ``kind`` recipes | wide (tables, one row per run) | ties (one model's runs under the
    three tie rules) | text (``text(rows, records)`` writes an inline value or sentence of the prose; a text
    without rows computes its value from the library's constants)."""

    doc: str  # relative to the repository root
    kind: str
    rows: tuple[Row, ...] = field(default_factory=tuple)
    text: Callable[[tuple[Row, ...], list[dict]], str] | None = None


def _row(label: str, shown: str, method: str, features: str, *options: str, dataset: str = "openmoji") -> Row:
    """A row whose model is ``generate METHOD DATASET FEATURES OPTIONS`` and run ``run_benchmark`` on test with
    the same options (the feature options and --tag must match to reopen the model)."""
    return Row(
        label,
        shown,
        ("generate", method, dataset, features, *options),
        ("run_benchmark", method, dataset, "test", features, *[o for o in options if o != "--cv"]),
    )


def _tagged(
    label: str, shown: str, method: str, features: str, tag: str | None, *options: str, dataset: str = "openmoji"
) -> Row:
    """A variant ``generate METHOD DATASET FEATURES OPTIONS --tag TAG``, scored by its tag alone (run_benchmark
    takes no method options: the tag reopens the model; without a tag, the model's default name does)."""
    named = ("--tag", tag) if tag else ()
    return Row(
        label,
        shown,
        ("generate", method, dataset, features, *options, *named),
        ("run_benchmark", method, dataset, "test", features, *named),
    )


def _rescored(label: str, shown: str, row: Row, *options: str) -> Row:
    """The model of ``row`` (fitted by an earlier row of the same table) scored again with run_benchmark OPTIONS:
    no generate."""
    return Row(label, shown, (), (*row.run, *options))


QUICKSTART = Row(
    "cca, defaults",
    "`cca ... glove50_efficientnet`",
    ("generate", "cca", "openmoji", "glove50_efficientnet"),
    ("run_benchmark", "cca", "openmoji", "test", "glove50_efficientnet", "--distance", "cosine"),
)


def _aligners(features: str) -> tuple[Row, ...]:
    first = (
        QUICKSTART
        if features == "glove50_efficientnet"
        else _row("cca, defaults", f"`cca ... {features}`", "cca", features)
    )
    return (
        first,
        *(
            _row(f"{m} --cv", f"`{m} ... {features} --cv`", m, features, "--cv", "--tag", "cv")
            for m in ("cca", "kcca", "ridge", "procrustes", "pls", "asif", "dcca")
        ),
    )


def _csa(features: str) -> tuple[Row, ...]:
    """cca at its defaults, at other eig_powers and with CSA's similarity (docs/aligners.md)."""
    return (
        _aligners(features)[0],
        *(
            _tagged(f"eig_power {p}", f"`--eig-power {p}`", "cca", features, f"p{p}", "--eig-power", p)
            for p in ("0", "0.5", "2")
        ),
        _tagged("CSA similarity", "`--similarity csa`", "cca", features, "csa", "--similarity", "csa"),
    )


def _pad(features: str) -> tuple[Row, ...]:
    """PLS at its default width (the narrower view's) and Procrustes with zero-padding (docs/aligners.md)."""
    return (
        _tagged("pls, full width", "`pls ...`", "pls", features, "full"),
        _tagged(
            "procrustes --equalize pad",
            "`procrustes ... --equalize pad`",
            "procrustes",
            features,
            "pad",
            "--equalize",
            "pad",
        ),
    )


KCCA_GLOVE = _row(
    "kernel CCA (rbf Nystroem), mean GloVe-50",
    "`kcca ... glove50_efficientnet --cv`",
    "kcca",
    "glove50_efficientnet",
    "--cv",
    "--tag",
    "cv",
)
KCCA_VARIANTS = (
    KCCA_GLOVE,
    *(
        _tagged(f"kcca {' '.join(o)}", f"`{' '.join(o)}`", "kcca", "glove50_efficientnet", tag, "--cv", *o)
        for tag, o in (
            ("kv-image", ("--kernel-views", "image")),
            ("kv-text", ("--kernel-views", "text")),
            ("chi2-image", ("--kernel", "chi2", "--kernel-views", "image")),
            ("rff", ("--kernel-map", "rff", "--landmarks", "2000")),
        )
    ),
    _row("cca --cv", "`cca ... glove50_efficientnet --cv`", "cca", "glove50_efficientnet", "--cv", "--tag", "cv"),
)


def _plain(label: str, method: str, dataset: str, *options: str, tag: str | None = None) -> Row:
    """``generate METHOD DATASET glove50_efficientnet OPTIONS [--tag TAG]`` scored on test by its name
    (docs/comparison_vse.md)."""
    shown = f"`{method} ... {' '.join(options) or 'defaults'}`"
    return _tagged(label, shown, method, "glove50_efficientnet", tag, *options, dataset=dataset)


VSE_OPENMOJI = (
    QUICKSTART,
    _plain("vse (sum of hinges)", "vse", "openmoji"),
    _plain("vse --max-violation", "vse", "openmoji", "--max-violation", tag="maxviol"),
)
VSE_SHAPES = (
    _plain("cca, defaults", "cca", "shapes"),
    _plain("vse --encoder bow", "vse", "shapes", "--encoder", "bow", tag="bow"),
)
TIES = (
    QUICKSTART,
    _rescored("optimistic", "`--ties optimistic`", QUICKSTART, "--ties", "optimistic"),
    _rescored("pessimistic", "`--ties pessimistic`", QUICKSTART, "--ties", "pessimistic"),
)

RECIPES = (
    _row(
        "mean GloVe-50, linear CCA",
        "`cca ... glove50_efficientnet --cv`",
        "cca",
        "glove50_efficientnet",
        "--cv",
        "--tag",
        "cv",
    ),
    *(
        _row(
            f"{label} Fisher vectors, K = 32",
            f"`--pooling {p}`",
            "cca",
            "glove50_efficientnet",
            "--cv",
            "--pooling",
            p,
            "--tag",
            "cv",
        )
        for label, p in (("GMM", "gmm"), ("HGLMM", "hglmm"), ("GMM+HGLMM", "gmm+hglmm"))
    ),
    _row(
        "all-MiniLM-L6-v2 sentence embeddings",
        "`cca ... minilm_efficientnet --cv`",
        "cca",
        "minilm_efficientnet",
        "--cv",
        "--tag",
        "cv",
    ),
    KCCA_GLOVE,
    _row(
        "kernel CCA, MiniLM captions",
        "`kcca ... minilm_efficientnet --cv`",
        "kcca",
        "minilm_efficientnet",
        "--cv",
        "--tag",
        "cv",
    ),
)


# ------------------------------------------------------------------------------------------------ rendering


def _value(record: dict, task: str | None, metric: str, ci: bool = True) -> str:
    """``7.7 [6.1, 9.4]``: a metric (task None: R-sum) with the interval stored in the run record."""
    from cca_bench.results import fmt_value, rsum, with_ci

    if task is None:
        return with_ci(rsum(record["metrics"]), (record.get("ci") or {}).get("rsum") if ci else None)
    interval = (record.get("ci") or {}).get(task, {}).get(metric) if ci else None
    return (
        with_ci(record["metrics"][task].get(metric), interval, metric)
        if ci
        else fmt_value(record["metrics"][task].get(metric), metric)
    )


def _marks(records: list[dict]) -> dict:
    """``{run file: "best" | "tied" | "untested"}`` of the R-sum column (results.significance_marks over these
    runs)."""
    from cca_bench.results import compare_frame, significance_marks

    marks = significance_marks(compare_frame(records), records) if len(records) > 1 else {}
    return {f: m for (f, column), m in marks.items() if column == "R-sum"}


def _delta(record: dict, first: dict) -> str:
    """``+24.1 [+14.8, +33.9], p < 0.0001``: the paired R-sum difference from the first row."""
    from cca_bench.stats import format_p

    t = _paired(record, first)
    return f"{t['delta']:+.1f} [{t['ci'][0]:+.1f}, {t['ci'][1]:+.1f}], {format_p(t['p_value'], t['resamples'])}"


def _flags(row: Row) -> str:
    """The options of a row's ``generate`` without its ``--tag`` (``--cv --kernel-views image``), or
    ``defaults``."""
    options = list(row.generate[4:])
    if "--tag" in options:
        del options[options.index("--tag") : options.index("--tag") + 2]
    return " ".join(options) or "defaults"


def render(table: Table, records: list[dict]) -> str:
    """The markdown of a table from one run record per row (same order as ``table.rows``)."""
    from cca_bench.marks import render as render_mark

    if table.kind == "text":
        assert table.text is not None, "a text table names its text function"
        return table.text(table.rows, records)
    if table.kind == "ties":
        from benchmarks.tie_rules import RULES
        from benchmarks.tie_rules import table as ties_table

        return "\n".join(ties_table(dict(zip(RULES, records))))
    marks = _marks(records)
    if table.kind == "wide":
        head = [
            "method",
            "flags",
            "chosen / params",
            "i2t R@1",
            "R@5",
            "R@10",
            "MedR",
            "t2i R@1",
            "R@5",
            "R@10",
            "MedR",
            "R-sum",
        ]
        body = [
            [
                r["method"],
                _flags(row),
                r.get("params_label") or "-",
                *[
                    _value(r, t, m, ci=False)
                    for t in ("image_annotation", "image_search")
                    for m in ("R@1", "R@5", "R@10", "median_rank")
                ],
                render_mark(_value(r, None, "rsum", ci=False), marks.get(r["_file"])),
            ]
            for row, r in zip(table.rows, records)
        ]
    else:
        head = ["recipe", "command", "i2t R@1", "i2t R@10", "t2i R@1", "t2i R@10", "i2t / t2i medR", "R-sum"]
        head += ["vs first row: delta R-sum, p"] if len(records) > 1 else []
        body = [
            [
                row.label,
                row.shown,
                *[_value(r, t, m) for t in ("image_annotation", "image_search") for m in ("R@1", "R@10")],
                f"{_value(r, 'image_annotation', 'median_rank', False)} / "
                f"{_value(r, 'image_search', 'median_rank', False)}",
                render_mark(_value(r, None, "rsum"), marks.get(r["_file"])),
            ]
            + ([_delta(r, records[0]) if i else ""] if len(records) > 1 else [])
            for i, (row, r) in enumerate(zip(table.rows, records))
        ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])


# ------------------------------------------------------------------------------------------------ prose (kind text)

ALPHA = 0.05  # of the Holm-corrected verdicts


def _quickstart_sentence(rows: tuple[Row, ...], records: list[dict]) -> str:
    """``R-sum is 99.4 with a 95% interval of [88.4, 110.8], and its image-annotation R@1 of 7.6 is [6.0, 9.2]``."""
    r = records[0]
    return (
        f"R-sum is {_value(r, None, 'rsum').replace(' [', ' with a 95% interval of [')}, and its "
        f"image-annotation R@1 of {_value(r, 'image_annotation', 'R@1').replace(' [', ' is [')}"
    )


def _recorded_seconds(rows: tuple[Row, ...], records: list[dict]) -> str:
    """``55 s of recorded steps (image features 49.8 s)``: the model's and the run's own step timings
    (``model_config.timings`` + ``timings``) of the first row, and the longest step."""
    r = records[0]
    steps = {**r["model_config"]["timings"], **r["timings"]}
    longest = max(steps, key=steps.get)
    return f"{sum(steps.values()):.0f} s of recorded steps (the longest, {longest}, {steps[longest]:.1f} s)"


def _dates(rows: tuple[Row, ...], records: list[dict]) -> str:
    """The day the rows' runs were made (``2026-12-06``), or the first and last day (``2026-12-03 to ...``)."""
    days = sorted({r["created"][:10] for r in records})
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


def _binomial_se(rows: tuple[Row, ...], records: list[dict]) -> str:
    """The standard error of a recall near 50% over 1,000 independent images, sqrt(p (1 - p) / n) in points, and
    the half-width of its normal 95% interval (1.96 SE): what a single cell of a 1,000-image table can hold."""
    se = 100 * math.sqrt(0.5 * 0.5 / 1000)
    return (
        f"an R@1 near 50% over 1,000 independent images has a standard error of {se:.1f} points, a 95% interval "
        f"of about +-{1.96 * se:.0f}"
    )


def _verdict(rows: tuple[Row, ...], records: list[dict]) -> str:
    """Which rows differ from the first in R-sum: each row's paired test against the first
    (:func:`cca_bench.stats.paired_test`, the one default of resamples and seed), Holm-corrected over the rows
    (:func:`cca_bench.stats.holm`), at ALPHA; a significant row is named with its difference and adjusted p."""
    from cca_bench.stats import format_p, holm

    tests = [_paired(r, records[0]) for r in records[1:]]
    adjusted = holm([t["p_value"] for t in tests])
    groups: dict[str, list[str]] = {"above": [], "below": [], "not shown to differ": []}
    for row, t, p in zip(rows[1:], tests, adjusted):
        if p >= ALPHA:
            groups["not shown to differ"].append(f"`{row.label}`")
        else:
            groups["above" if t["delta"] > 0 else "below"].append(
                f"`{row.label}` ({t['delta']:+.1f}, Holm {format_p(p, t['resamples'])})"
            )
    return (
        f"against `{rows[0].label}`, Holm-corrected over the {len(tests)} paired R-sum "
        f"difference{'s' if len(tests) != 1 else ''} (alpha {ALPHA}): "
        + "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in groups.items())
    )


def _same_digits(rows: tuple[Row, ...], records: list[dict]) -> str:
    """For each pair of rows (PLS at full width, Procrustes with padding; one pair per feature set): both R-sums
    and how many of the ten printed metrics agree."""
    from cca_bench.results import METRIC_COLUMNS, TASKS

    parts = []
    for a, b in zip(records[::2], records[1::2]):
        same = sum(_value(a, t, k, ci=False) == _value(b, t, k, ci=False) for t, _ in TASKS for k, _ in METRIC_COLUMNS)
        parts.append(
            f"`{a['features']}`: R-sum {_value(a, None, 'rsum', ci=False)} and {_value(b, None, 'rsum', ci=False)}, "
            f"{same} of {len(TASKS) * len(METRIC_COLUMNS)} printed metrics equal"
        )
    return "; ".join(parts)


def _val_rsum(rows: tuple[Row, ...], records: list[dict]) -> str:
    """Each row's val R-sum at its chosen grid point (the model's ``cv.val_rsum``), labelled."""
    return ", ".join(f"`{row.label}` {r['model_config']['cv']['val_rsum']:.1f}" for row, r in zip(rows, records))


def _fit_seconds(rows: tuple[Row, ...], records: list[dict]) -> str:
    """Each row's fit time as its model recorded it (``timings.fit``, seconds), labelled."""
    return ", ".join(f"`{row.label}` {r['model_config']['timings']['fit']:.1f} s" for row, r in zip(rows, records))


_PAIRED: dict[tuple[str, str], dict] = {}


def _paired(record: dict, first: dict) -> dict:
    """The paired R-sum test of ``record`` against ``first`` (stats.paired_test with its one default of resamples
    and seed), once per pair of run files."""
    from cca_bench.results import load_ranks
    from cca_bench.stats import PAIRED_RESAMPLES, PAIRED_SEED, paired_test

    key = (str(record["_file"]), str(first["_file"]))
    if key not in _PAIRED:
        _PAIRED[key] = paired_test(load_ranks(record), load_ranks(first), "rsum", PAIRED_RESAMPLES, PAIRED_SEED)
    return _PAIRED[key]


TABLES = {
    "quickstart": Table("README.md", "recipes", (QUICKSTART,)),
    "quickstart-prose": Table("README.md", "text", (QUICKSTART,), _quickstart_sentence),
    "quickstart-time": Table("README.md", "text", (QUICKSTART,), _recorded_seconds),
    "recipes-date": Table("README.md", "text", RECIPES, _dates),
    "recipes": Table("README.md", "recipes", RECIPES),
    "aligners-minilm": Table("README.md", "recipes", _aligners("minilm_efficientnet")),
    "aligners-glove": Table("README.md", "recipes", _aligners("glove50_efficientnet")),
    "aligners-minilm-verdict": Table("README.md", "text", _aligners("minilm_efficientnet"), _verdict),
    "aligners-glove-verdict": Table("README.md", "text", _aligners("glove50_efficientnet"), _verdict),
    "binomial-se": Table("README.md", "text", (), _binomial_se),
    "aligners-wide-minilm": Table("docs/aligners.md", "wide", _aligners("minilm_efficientnet")),
    "aligners-wide-glove": Table("docs/aligners.md", "wide", _aligners("glove50_efficientnet")),
    "aligners-wide-minilm-verdict": Table("docs/aligners.md", "text", _aligners("minilm_efficientnet"), _verdict),
    "aligners-wide-glove-verdict": Table("docs/aligners.md", "text", _aligners("glove50_efficientnet"), _verdict),
    "csa-minilm": Table("docs/aligners.md", "recipes", _csa("minilm_efficientnet")),
    "csa-glove": Table("docs/aligners.md", "recipes", _csa("glove50_efficientnet")),
    "procrustes-pad": Table(
        "docs/aligners.md", "text", _pad("minilm_efficientnet") + _pad("glove50_efficientnet"), _same_digits
    ),
    "features-captions": Table("docs/features.md", "recipes", (RECIPES[0], RECIPES[4])),
    "kcca-variants": Table("docs/methods.md", "wide", KCCA_VARIANTS),
    "kcca-variants-verdict": Table("docs/methods.md", "text", KCCA_VARIANTS, _verdict),
    "kcca-views-val": Table("docs/methods.md", "text", KCCA_VARIANTS[:3], _val_rsum),
    "ties": Table("docs/protocols.md", "ties", TIES),
    "vse-openmoji": Table("docs/comparison_vse.md", "wide", VSE_OPENMOJI),
    "vse-openmoji-verdict": Table("docs/comparison_vse.md", "text", VSE_OPENMOJI, _verdict),
    "vse-openmoji-fit": Table("docs/comparison_vse.md", "text", VSE_OPENMOJI, _fit_seconds),
    "vse-shapes": Table("docs/comparison_vse.md", "wide", VSE_SHAPES),
    "vse-shapes-verdict": Table("docs/comparison_vse.md", "text", VSE_SHAPES, _verdict),
    "vse-shapes-fit": Table("docs/comparison_vse.md", "text", VSE_SHAPES, _fit_seconds),
}


def block(text: str, name: str) -> str:
    """The text between a table's markers in a document (UserError-free: ValueError when they are missing)."""
    m = re.search(_marker_re(name), text, flags=re.S)
    if m is None:
        raise ValueError(f"no <!-- results-table: {name} --> ... <!-- /results-table: {name} --> markers")
    return m.group(2).strip("\n")


def replace_block(text: str, name: str, content: str) -> str:
    inline = "\n" not in content
    body = content if inline else f"\n{content}\n"
    return re.sub(_marker_re(name), lambda m: m.group(1) + body + m.group(3), text, count=1, flags=re.S)


def _marker_re(name: str) -> str:
    return rf"(<!-- results-table: {re.escape(name)} -->)(.*?)(<!-- /results-table: {re.escape(name)} -->)"


# ------------------------------------------------------------------------------------------------ running


def run_row(row: Row, roots: list[str], fit: bool = True) -> tuple[str, float]:
    """Run a row's generate (unless ``fit`` is false: the saved model is scored again, or the row has none: it
    scores an earlier row's model) and run_benchmark (stdout kept quiet); returns (the new run's id, seconds)."""
    from cca_bench.__main__ import main

    runs = Path(roots[roots.index("--results-root") + 1]) / "runs"
    before = set(runs.glob("*.json")) if runs.is_dir() else set()
    start = time.perf_counter()
    for argv in (row.generate, row.run) if fit and row.generate else (row.run,):
        with contextlib.redirect_stdout(io.StringIO()):
            code = main([*argv, *roots, "-q"])
        if code:
            raise SystemExit(f"{' '.join(argv)} failed (exit {code})")
    new = sorted(set(runs.glob("*.json")) - before)
    if len(new) != 1:
        raise SystemExit(f"{' '.join(row.run)} stored {len(new)} runs, expected 1")
    return new[0].name[: -len(".json")], time.perf_counter() - start


def records_of(name: str, results_root: Path, manifest: dict) -> list[dict]:
    """The run record of every row of a table, by the run ids the manifest recorded for it."""
    from cca_bench.results import find_run, load_runs

    ids = [r["run_id"] for r in manifest.get(name, {}).get("rows", [])]
    if len(ids) != len(TABLES[name].rows):
        raise SystemExit(
            f"{name}: no recorded runs in {MANIFEST.name}: run `python scripts/results_tables.py {name} --run` first"
        )
    runs, _ = load_runs(results_root)
    return [find_run(runs, i, folder=results_root / "runs") for i in ids]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", nargs="*", help=f"tables to rewrite (default all): {', '.join(TABLES)}")
    p.add_argument(
        "--run",
        action="store_true",
        help="run each row's commands first (rows with a recorded, still stored run are kept unless --rerun)",
    )
    p.add_argument("--rerun", action="store_true", help="with --run: run every row again")
    p.add_argument(
        "--rescore",
        action="store_true",
        help="with --run: score every row's saved model again "
        "(run_benchmark only: after a change of scoring, e.g. resampling or the tie rule, no refit)",
    )
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a document would change")
    p.add_argument("--list", action="store_true", help="list the tables and their rows' commands")
    p.add_argument("--results-root", default="results")
    p.add_argument("--data-root", default="data")
    args = p.parse_args(argv)
    names = args.tables or list(TABLES)
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        p.error(f"unknown table {unknown[0]!r} (known: {', '.join(TABLES)})")
    if args.list:
        for n in names:
            print(f"{n} ({TABLES[n].doc}):")
            for row in TABLES[n].rows:
                fit = f"python -m cca_bench {' '.join(row.generate)} && " if row.generate else ""
                print(f"  {row.label}: {fit}python -m cca_bench {' '.join(row.run)}")
        return 0
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
    results_root = Path(args.results_root)
    if args.run:
        _run_tables(
            names,
            manifest,
            ["--results-root", str(results_root), "--data-root", args.data_root],
            args.rerun or args.rescore,
            fit=not args.rescore,
        )
    return _rewrite(names, manifest, results_root, args.check)


def _run_tables(names: list[str], manifest: dict, roots: list[str], rerun: bool, fit: bool = True) -> None:
    """Run the rows of each table (a run recorded for one table serves every table with the same row's commands),
    record each in the manifest as soon as it is made (a table with fewer recorded rows than rows is unfinished:
    ``records_of`` refuses it, and the next ``--run`` keeps the recorded rows)."""
    from cca_bench.results import load_runs, run_id

    stored = {run_id(r) for r in load_runs(Path(roots[1]))[0]}
    done: dict = {}
    recorded = {tuple(r["commands"]): r for t in manifest.values() for r in t.get("rows", [])}
    for n in names:
        old = recorded | {tuple(r["commands"]): r for r in manifest.get(n, {}).get("rows", [])}
        rows = []
        for row in TABLES[n].rows:
            key = (" ".join(row.generate), " ".join(row.run))
            kept = old.get(key)
            if key not in done:
                done[key] = (
                    (kept["run_id"], kept.get("seconds"))
                    if kept and kept["run_id"] in stored and not rerun
                    else run_row(row, roots, fit)
                )
                print(f"{n}: {row.label}: run {done[key][0]} ({done[key][1] or 0:.0f} s)", file=sys.stderr)
            seconds = None if done[key][1] is None else round(done[key][1], 1)
            rows.append({"label": row.label, "commands": list(key), "run_id": done[key][0], "seconds": seconds})
            manifest[n] = {
                "doc": TABLES[n].doc,
                "rows": rows,
                "made": time.strftime("%Y-%m-%d", time.gmtime()),
                "seconds": round(sum(r["seconds"] or 0 for r in rows), 1),
            }  # of its rows' commands
            MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")  # after every row: a kill loses no run


def _rewrite(names: list[str], manifest: dict, results_root: Path, check: bool) -> int:
    changed = []
    for doc in sorted({TABLES[n].doc for n in names}):
        path = ROOT / doc
        text = original = path.read_text(encoding="utf-8")
        for n in (n for n in names if TABLES[n].doc == doc):
            block(text, n)  # the markers must be there
            text = replace_block(text, n, render(TABLES[n], records_of(n, results_root, manifest)))
        if text != original:
            changed.append(doc)
            if not check:
                path.write_text(text, encoding="utf-8")
    print(("would change: " if check else "rewrote: ") + (", ".join(changed) or "nothing"))
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
