"""Encoder similarity against retrieval after alignment on openmoji: GloVe mean, GloVe Fisher vectors (GMM) and
MiniLM captions, each against EfficientNet-Lite0 images. For each text encoder: `similarity openmoji test ...`
(every measure with its calibrated score) and linear CCA fitted on train and scored on test (`generate` +
`run_benchmark`, defaults); writes the table between the similarity markers of docs/similarity.md and into
benchmarks/REPORT_similarity.md.

    PYTHONPATH=$PWD python benchmarks/similarity_openmoji.py [--results-root results] [--data-root data]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import time
from pathlib import Path

from cca_bench.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
ENCODERS = {
    "GloVe mean": ("glove50_efficientnet", []),
    "GloVe Fisher vector (gmm)": ("glove50_efficientnet", ["--pooling", "gmm"]),
    "MiniLM": ("minilm_efficientnet", []),
}
MEASURES = ("cka", "unbiased_cka", "mutual_knn", "cknna", "svcca", "pwcca")
BEGIN, END = "<!-- similarity:begin (benchmarks/similarity_openmoji.py) -->", "<!-- similarity:end -->"


def quiet(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if main(argv) != 0:
            raise SystemExit(f"failed: {' '.join(argv)}")
    return out.getvalue()


def rsum_of_run(printed: str) -> float:
    """R-sum of the run whose file ``run_benchmark`` named in what it printed."""
    path = re.search(r"^run stored in (.+)$", printed, re.M).group(1)
    m = json.loads(Path(path).read_text())["metrics"]
    return sum(m[t][f"R@{k}"] for t in m for k in (1, 5, 10))


def main_() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results-root", default="results")
    ap.add_argument("--data-root", default="data")
    args = ap.parse_args()
    roots = ["--results-root", args.results_root, "--data-root", args.data_root, "-q"]
    rows, seconds = [], {}
    for label, (features, options) in ENCODERS.items():
        start = time.perf_counter()
        out = Path(args.results_root) / "similarity" / f"openmoji_test_{label.split()[0]}_{len(options)}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        quiet(["similarity", "openmoji", "test", features, *options, "--json", str(out), *roots])
        seconds[label] = time.perf_counter() - start
        quiet(["generate", "cca", "openmoji", features, *options, *roots])
        printed = quiet(["run_benchmark", "cca", "openmoji", "test", features, *options, *roots])
        rows.append((label, json.loads(out.read_text()), rsum_of_run(printed)))
    write(rows, seconds)


def write(rows, seconds) -> None:
    head = "| text encoder (vs EfficientNet-Lite0) | CCA R-sum | " + " | ".join(MEASURES) + " |"
    lines = [head, "|" + "---|" * (len(MEASURES) + 2)]
    for label, result, rsum in sorted(rows, key=lambda r: r[2]):
        cells = [f"{result[m]['score']:.3f} ({result[m]['calibrated']:.3f})" for m in MEASURES]
        lines.append(f"| {label} | {rsum:.1f} | " + " | ".join(cells) + " |")
    order = {m: [r[0] for r in sorted(rows, key=lambda r: r[1][m]["calibrated"])] for m in MEASURES}
    by_rsum = [r[0] for r in sorted(rows, key=lambda r: r[2])]
    agree = [m for m in MEASURES if order[m] == by_rsum]
    perms = rows[0][1]["cka"]["permutations"]
    text = (
        f"{BEGIN}\n\n" + "\n".join(lines) + "\n\nEach cell: raw score (calibrated score against "
        f"{perms} row permutations; every p-value was {min(r[1][m]['p_value'] for r in rows for m in MEASURES):.4f}"
        f" or less, the floor of {perms} permutations being {1 / (perms + 1):.4f}). Rows in increasing CCA "
        f"R-sum (openmoji test, 1,000 images, CCA at its defaults fitted on train).\n\nOrder by R-sum: "
        f"{' < '.join(by_rsum)}. Measures whose calibrated scores order the three encoders the same way: "
        f"{', '.join(agree) or 'none'}; the others: "
        + "; ".join(f"{m}: {' < '.join(order[m])}" for m in MEASURES if m not in agree)
        + ".\n\n"
        + END
    )
    doc_path = ROOT / "docs" / "similarity.md"
    doc = doc_path.read_text()
    doc_path.write_text(re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S).sub(lambda _: text, doc))
    report = [
        "# Encoder similarity on openmoji (benchmarks/similarity_openmoji.py)",
        "",
        *[f"- `similarity` for {k}: {v:.0f} s (shared 2-core machine)" for k, v in seconds.items()],
        "",
        text,
    ]
    (ROOT / "benchmarks" / "REPORT_similarity.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main_()
