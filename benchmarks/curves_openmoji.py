"""Data-efficiency curves of asif and cca on openmoji (MiniLM captions, EfficientNet-Lite0 images): times both
`curve` commands, draws their figure into docs/curves_openmoji.png and writes the tables between the curve
markers of docs/aligners.md and into benchmarks/REPORT_curves.md (issue 28.1's done-when).

    PYTHONPATH=$PWD python benchmarks/curves_openmoji.py [--results-root results]

The feature caches are warmed first (one untimed `generate` per method would do; this script encodes the
splits through the first curve when they are missing and says so in the report).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import time
from pathlib import Path

from cca_bench.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["curve", method, "openmoji", "minilm_efficientnet", "--train-sizes", "100,300,all", "--seeds", "0,1,2", "-q"]
    for method in ("asif", "cca")
]
BEGIN, END = "<!-- curves:begin (benchmarks/curves_openmoji.py) -->", "<!-- curves:end -->"


def run(argv: list[str]) -> tuple[float, str]:
    """Run one command in-process; (seconds, what it printed)."""
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        if main(argv) != 0:
            raise SystemExit(f"failed: {' '.join(argv)}")
    return time.perf_counter() - start, out.getvalue()


def section(results_root: Path, printed: list[str]) -> str:
    """The markdown of docs/aligners.md's curve section, from the stored curves."""
    from cca_bench.curves import curve_markdown, latest_curves, load_curves

    curves = latest_curves(load_curves(results_root, "openmoji"))
    tables = "\n\n".join(curve_markdown(c) for c in curves if c["features"] == "minilm_efficientnet")
    return (
        f"{BEGIN}\n\n![R-sum against training pairs](curves_openmoji.png)\n\n```\n{tables}\n```\n\n"
        "Mean R-sum over the seeds' subsets; seed sd over those subsets; the interval is the 95% image-level "
        "bootstrap interval of the seed-mean R-sum over the 1,000 test images (the `all` point is one fit).\n"
        f"\n{END}"
    )


def main_() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results-root", default="results")
    ap.add_argument("--data-root", default="data")
    args = ap.parse_args()
    roots = ["--results-root", args.results_root, "--data-root", args.data_root]
    timings, printed = [], []
    for argv in COMMANDS:
        seconds, text = run([*argv, *roots])
        timings.append((" ".join(argv), seconds))
        printed.append(text)
    from cca_bench.curves import plot_dataset_curves

    figure = plot_dataset_curves(Path(args.results_root), "openmoji")
    (ROOT / "docs" / "curves_openmoji.png").write_bytes(figure.read_bytes())
    text = section(Path(args.results_root), printed)
    doc = (ROOT / "docs" / "aligners.md").read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    doc = (
        pattern.sub(lambda _: text, doc) if BEGIN in doc else doc.rstrip() + "\n\n## Data efficiency\n\n" + text + "\n"
    )
    (ROOT / "docs" / "aligners.md").write_text(doc)
    load = os.getloadavg()
    report = [
        "# Data-efficiency curves on openmoji (benchmarks/curves_openmoji.py)",
        "",
        f"Machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        "(1 / 5 / 15 min) at the end: shared with other work while timed.",
        "",
        "| command | seconds |",
        "|---|---|",
        *[f"| `{c}` | {s:.0f} |" for c, s in timings],
        f"| both | {sum(s for _, s in timings):.0f} |",
        "",
        *printed,
    ]
    (ROOT / "benchmarks" / "REPORT_curves.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main_()
