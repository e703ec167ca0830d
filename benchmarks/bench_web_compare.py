"""How fast the web app's compare page answers for 5 runs of one split: first request, until its paired tests
are shown, and a repeated request; and what its 44 paired tests cost one by one against one batch.

Writes benchmarks/REPORT_web_compare.md. Fits 5 models on openmoji (glove50_tinyimage: fast features) and stores
their test runs under RESULTS (skipped where the run files are already there), then:
- the page's 44 paired tests (4 later runs against the first, 11 metrics, ``stats.PAIRED_RESAMPLES``) as 44
  lone ``stats.paired_test`` calls (the page's way before the batch) and as one ``stats.paired_tests`` batch
  (its way now), asserting that both give every number bit for bit;

and, in a fresh app per row (the first with its tests made one by one as before, then two with the batch):
- the first request of a new app (the app's own wait for the paired tests, ``LOADING_WAIT_S``, then the page
  with values and deltas, reloading itself while the tests of every metric are computed in the background);
- the time until the page shows every paired test (polling as the page's reload does);
- a repeated request of the same set of runs (the kept tests, the kept ranks and labels).

    python benchmarks/bench_web_compare.py --data-root data --results-root /tmp/compare_bench
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FEATURES = "glove50_tinyimage"
CONFIGS = [("cca", []), ("cca", ["--reg", "0.1", "--tag", "reg01"]), ("ridge", []), ("procrustes", []), ("pls", [])]


def make_runs(data_root: str, results_root: str) -> list[str]:
    """The 5 run stems, fitted and scored once (generate + run_benchmark through the CLI)."""
    from cca_bench.__main__ import main

    roots = ["--data-root", data_root, "--results-root", results_root, "-q"]
    stems = []
    for method, opts in CONFIGS:
        tag = opts[opts.index("--tag") + 1] if "--tag" in opts else ""
        model = f"{method}__openmoji__{FEATURES}" + (f"@{tag}" if tag else "")
        stem = f"{model}__test__full__cosine"
        if not (Path(results_root) / "runs" / f"{stem}.json").is_file():
            if not (Path(results_root) / "models" / f"{model}.json").is_file():
                assert main(["generate", method, "openmoji", FEATURES, *opts, *roots]) == 0
            assert (
                main(["run_benchmark", method, "openmoji", "test", FEATURES, *(["--tag", tag] if tag else []), *roots])
                == 0
            )
        stems.append(stem)
    return stems


def lone_and_batch(results_root: str, stems: list[str]) -> dict:
    """Seconds of the page's 44 paired tests as lone paired_test calls and as one paired_tests batch (the
    numbers asserted equal, dict for dict)."""
    from cca_bench.results import COLUMN_METRIC, load_ranks, load_runs
    from cca_bench.stats import PAIRED_RESAMPLES, PAIRED_SEED, paired_test, paired_tests

    by_stem = {Path(r["_file"]).stem: r for r in load_runs(results_root)[0]}
    ranks = [load_ranks(by_stem[s]) for s in stems]
    metrics, pairs = list(COLUMN_METRIC.values()), [(i, 0) for i in range(1, len(ranks))]
    paired_test(ranks[1], ranks[0], "rsum", 10, PAIRED_SEED)  # imports (scipy.stats) paid before the clocks
    t0 = time.perf_counter()
    lone = [{m: paired_test(ranks[i], ranks[j], m, PAIRED_RESAMPLES, PAIRED_SEED) for m in metrics} for i, j in pairs]
    t1 = time.perf_counter()
    batch = paired_tests(ranks, pairs, metrics, PAIRED_RESAMPLES, PAIRED_SEED)
    t2 = time.perf_counter()
    assert batch == lone, "the batch and the lone tests disagree"
    return {"lone": t1 - t0, "batch": t2 - t1, "tests": len(pairs) * len(metrics)}


@contextlib.contextmanager
def one_by_one():
    """The app's ``stats.paired_tests`` made as the page made its tests before the batch: one lone test (one
    pair, one metric, its own draws) after another."""
    from cca_bench import stats

    batch = stats.paired_tests

    def lone(runs, pairs, metrics, *args):
        return [{m: batch(runs, [pair], [m], *args)[0][m] for m in metrics} for pair in pairs]

    stats.paired_tests = lone
    try:
        yield
    finally:
        stats.paired_tests = batch


def timings(data_root: str, results_root: str, stems: list[str], lone: bool = False) -> dict:
    """Seconds of: the first request of a fresh app, until the tests are shown, a repeated request (median of 5);
    ``lone``: the tests made one by one (:func:`one_by_one`)."""
    from cca_bench.web import create_app

    with one_by_one() if lone else contextlib.nullcontext():
        return _timings(create_app(Path(data_root), Path(results_root)).test_client(), stems)


def _timings(client, stems: list[str]) -> dict:
    url = "/compare?" + "&".join(f"run={s}" for s in stems)
    t0 = time.perf_counter()
    page = client.get(url).get_data(as_text=True)
    first = time.perf_counter() - t0
    assert "Compare 5 runs" in page, page[:300]
    while 'id="tests-pending"' in page:
        time.sleep(0.2)
        page = client.get(url).get_data(as_text=True)
    complete = time.perf_counter() - t0
    assert page.count("Run ") >= 4 and "resamples)" in page, "the paired tests did not render"
    repeated = []
    for _ in range(5):
        t = time.perf_counter()
        again = client.get(url).get_data(as_text=True)
        repeated.append(time.perf_counter() - t)
        assert again.count("resamples)") == page.count("resamples)")
    return {
        "first": first,
        "complete": complete,
        "repeated": statistics.median(repeated),
        "repeated_max": max(repeated),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--results-root", required=True)
    parser.add_argument("--report", default=str(ROOT / "benchmarks" / "REPORT_web_compare.md"))
    parser.add_argument("--note", default="", help="what else ran on the machine meanwhile (written to the report)")
    args = parser.parse_args()
    stems = make_runs(args.data_root, args.results_root)
    load_start = os.getloadavg()[0]
    tests = lone_and_batch(args.results_root, stems)
    rows = [timings(args.data_root, args.results_root, stems, lone) for lone in (True, False, False)]
    load = os.getloadavg()[0]
    lines = [
        f"# The compare page for 5 runs ({date.today().isoformat()})",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
        f"{load_start:.1f} at the start, {load:.1f} at the end (the machine is shared with other jobs: times "
        "vary by tens of percent; compare within this run)"
        + (f"; {args.note}" if args.note else "")
        + f". openmoji test (1,000 images), {FEATURES}; runs: "
        + ", ".join(f"`{s}`" for s in stems)
        + ".",
        "",
        f"The page's {tests['tests']} paired tests (4 later runs against the first, 11 metrics, 10,000 resamples), "
        "every number equal bit for bit (asserted):",
        "",
        "| | seconds |",
        "|---|---|",
        f"| one by one: {tests['tests']} lone `stats.paired_test` calls (the page before the batch) | "
        f"{tests['lone']:.1f} |",
        f"| one batch: `stats.paired_tests` (the page now) | {tests['batch']:.1f} |",
        f"| ratio | {tests['lone'] / tests['batch']:.1f}x |",
        "",
        "The page, each row a fresh app in the same process (imports paid once, before the first row); the first "
        "row makes its tests one by one, as the page did before the batch:",
        "",
        "| row | tests | first request (s) | until every paired test is shown (s) | repeated request, median of 5 (s) "
        "| repeated, slowest (s) |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        how = "one by one (before)" if i == 1 else "one batch (now)"
        lines.append(
            f"| {i} | {how} | {r['first']:.2f} | {r['complete']:.2f} | {r['repeated']:.3f} | {r['repeated_max']:.3f} |"
        )
    lines += [
        "",
        "The first request answers within the app's wait (LOADING_WAIT_S) plus the page; until the 44 paired "
        "tests (4 pairs x 11 metrics, 10,000 resamples each) are done it shows values and deltas and "
        "reloads itself. The issue's bars: a repeated request under 1 s, a first one under 5 s.",
        "",
        f"Command: `python benchmarks/bench_web_compare.py --data-root {args.data_root} --results-root "
        f"{args.results_root}" + (f" --note '{args.note}'" if args.note else "") + "`",
    ]
    Path(args.report).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
