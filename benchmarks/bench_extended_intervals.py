"""Cost of COCO 5k's ECCV Caption / CxC intervals: per-image sums in one product per block of resample counts
(``coco_extended._intervals``) against weighting every query by its image's count in a (resamples x queries)
float64 matrix (what the code did before 0.2.3; here as the reference formula, on the same documented draws).

Writes benchmarks/REPORT_extended_intervals.md. Synthetic per-query values shaped like the real benchmark:
5,000 images, 25,000 captions; ECCV's 1,261 image and 1,332 caption queries, CxC's 5,000 and 24,972; three
metrics each; the default 10,000 resamples. Times are wall seconds of one call, peak memory numpy's allocations
traced by tracemalloc during it; "cached": the counts read from the resample cache, as after the run's own
intervals stored them. The two ways agree to float rounding (asserted).

    python benchmarks/bench_extended_intervals.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import cca_bench  # noqa: E402, F401, I001  (before numpy, as the CLI imports it)
import numpy as np  # noqa: E402

from benchmarks.report_section import machine_line, write  # noqa: E402

N_IMAGES, CAPTIONS = 5000, 5
QUERIES = {"eccv": (1261, 1332), "cxc": (5000, 24972)}
METRICS = {"eccv": ("map_at_r", "rprecision", "r1"), "cxc": ("r1", "r5", "r10")}


def per_task(seed: int = 0) -> dict:
    """{metric: {task: (owner image of each query, its value)}} shaped like the real ECCV/CxC queries."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (n_img_q, n_cap_q) in QUERIES.items():
        images = np.sort(rng.choice(N_IMAGES, n_img_q, replace=False))
        captions = np.repeat(np.arange(N_IMAGES), CAPTIONS)[np.sort(rng.choice(N_IMAGES * CAPTIONS, n_cap_q, False))]
        for m in METRICS[name]:
            out[f"{name}_{m}"] = {
                "image_annotation": (images, rng.random(n_img_q)),
                "image_search": (captions, rng.random(n_cap_q)),
            }
    return out


def by_query_weights(tasks: dict, resamples: int, seed: int) -> dict:
    """The reference: the documented draws' (resamples x images) counts, each query weighed by its image's."""
    from cca_bench import stats

    rng = np.random.default_rng(seed)
    blocks = [stats._draw(rng, N_IMAGES, min(stats.BLOCK, resamples - s)) for s in range(0, resamples, stats.BLOCK)]
    counts = np.concatenate([stats._counts(b) for b in blocks])
    out: dict = {}
    for m, by_task in tasks.items():
        for t, (owner, values) in by_task.items():
            w = counts[:, owner]
            reps = 100 * (w @ values) / w.sum(1)
            out.setdefault(m, {})[t] = [float(x) for x in np.percentile(reps, [2.5, 97.5])]
    return out


def measured(fn) -> tuple[float, float, dict]:
    """(wall seconds, peak traced MB, result) of one call."""
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        out = fn()
        wall = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    return wall, peak, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resamples", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "REPORT_extended_intervals.md")
    args = ap.parse_args(argv)
    from cca_bench.coco_extended import _intervals

    tasks, r = per_task(), args.resamples
    with tempfile.TemporaryDirectory() as cache:
        rows = {
            "per-image sums, one product per block (drawn)": measured(lambda: _intervals(tasks, N_IMAGES, r, 0)),
            "the same, counts stored first (drawn and stored)": measured(
                lambda: _intervals(tasks, N_IMAGES, r, 0, Path(cache))
            ),
            "the same, counts read from the resample cache": measured(
                lambda: _intervals(tasks, N_IMAGES, r, 0, Path(cache))
            ),
            "each query weighed in a (resamples x queries) matrix (before 0.2.3)": measured(
                lambda: by_query_weights(tasks, r, 0)
            ),
        }
    results = [out for _, _, out in rows.values()]
    for other in results[1:]:
        for m in results[0]:
            for t in results[0][m]:
                np.testing.assert_allclose(other[m][t], results[0][m][t], rtol=1e-9, err_msg=f"{m} {t}")
    lines = [
        "# COCO 5k's ECCV Caption / CxC intervals",
        "",
        f"Written by `python benchmarks/bench_extended_intervals.py` {machine_line()}.",
        "",
        f"{N_IMAGES:,} images, {N_IMAGES * CAPTIONS:,} captions; ECCV {QUERIES['eccv'][0]:,} image and "
        f"{QUERIES['eccv'][1]:,} caption queries, CxC {QUERIES['cxc'][0]:,} and {QUERIES['cxc'][1]:,}; "
        f"{len(tasks)} metrics x 2 directions; {r:,} resamples of the documented draw order (seed 0). Every way "
        "gave the same interval bounds to float rounding (asserted).",
        "",
        "| how | wall s | peak traced MB |",
        "|---|---|---|",
        *(f"| {name} | {wall:.2f} | {peak:,.0f} |" for name, (wall, peak, _) in rows.items()),
    ]
    return write(args.out, lines)


if __name__ == "__main__":
    sys.exit(main())
