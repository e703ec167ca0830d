"""How long the web app takes to reopen a saved model whose features are cached: its examples page, timed.

Writes benchmarks/REPORT_web.md. Needs a results root with a stored run of the model (``run_benchmark`` put its
features in DATA/cache). The first page in the process pays the imports and the word-vector table; the reopen
rows use a fresh app in the same process (what happens when a model drops out of the app's kept models): the
model file is read, the pipelines reopened through the same code and cache keys as the CLI, the cached features
memory-mapped, and the examples ranked.

    python benchmarks/bench_web_reopen.py --data-root DATA --results-root RESULTS \
        --run "cca__openmoji__glove50_efficientnet_lite0+gmm32@cv__test__full__cosine"
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def page_seconds(data_root: str, results_root: str, run: str) -> float:
    """Wall seconds from the first request of a new app to its complete examples page (following the
    'loading' page the app shows while the model opens)."""
    from cca_bench.web import create_app

    client = create_app(Path(data_root), Path(results_root)).test_client()
    t0 = time.perf_counter()
    while True:
        page = client.get(f"/run/{run}/examples").get_data(as_text=True)
        if "<h1>Loading</h1>" not in page:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    if "Image annotation" not in page:
        raise SystemExit(f"the examples page of {run} did not render: {page[:300]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--results-root", required=True)
    ap.add_argument("--run", required=True, help="a run file stem under RESULTS/runs")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    first = page_seconds(args.data_root, args.results_root, args.run)
    again = sorted(page_seconds(args.data_root, args.results_root, args.run) for _ in range(args.repeats))
    report = "\n".join(
        [
            f"# Reopening a model in the web app ({date.today()})",
            "",
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}; "
            f"load average {os.getloadavg()[0]:.1f} at the end. Run `{args.run}` (its features cached).",
            "",
            "| what | seconds |",
            "|---|---|",
            "| first examples page in a new process (imports, word-vector table, model, cached features) "
            f"| {first:.2f} |",
            f"| reopened by a fresh app in the same process, median of {args.repeats} | {again[len(again) // 2]:.2f} |",
            f"| reopened, slowest of {args.repeats} | {again[-1]:.2f} |",
            "",
            "The issue's bar: reopening any model whose features are cached takes under 2 s at openmoji size.",
            "",
        ]
    )
    (ROOT / "benchmarks" / "REPORT_web.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
