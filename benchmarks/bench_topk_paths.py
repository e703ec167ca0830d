"""ASIF's streamed top-k on the CPU: the floor filter (cca_bench/running_topk.py) against the torch.topk-per-block
path (what the CPU ran before, kept for GPUs), on the same inputs in one process.

Random unit rows: ``--queries`` queries (one query block of 4,096 by default: the cost grows linearly in the
query blocks) against ``--anchors`` anchors, ``--dim`` wide (50: mean GloVe captions against COCO's 414k
train captions), top ``--k``. Both paths run ``--repeats`` times, alternating; the outputs must be identical
(indices and values). Appends a section to benchmarks/REPORT_scale.md.

    PYTHONPATH=$PWD python benchmarks/bench_topk_paths.py --queries 4096 --anchors 414000 --dim 50 --k 800
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.report_section import append, machine_line
from cca_bench.methods.asif import BLOCK, QUERY_BLOCK, _torch_topk, relative_topk

REPORT = Path(__file__).with_name("REPORT_scale.md")


def unit_rows(rng, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=QUERY_BLOCK)
    ap.add_argument("--anchors", type=int, default=414_000)
    ap.add_argument("--dim", type=int, default=50)
    ap.add_argument("--k", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    q, a = unit_rows(rng, args.queries, args.dim), unit_rows(rng, args.anchors, args.dim)
    paths = {
        "floor filter (numpy, the CPU path)": lambda: relative_topk(q, a, args.k, "cpu"),
        "torch.topk per block (the GPU path, on the CPU)": lambda: _torch_topk(q, a, args.k, "cpu"),
    }
    times: dict = {name: [] for name in paths}
    out: dict = {}
    for _ in range(args.repeats):
        for name, fn in paths.items():
            start = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - start)
            print(f"{name}: {times[name][-1]:.1f} s", flush=True)
    (v1, i1), (v2, i2) = out.values()
    same = bool(np.array_equal(i1, i2) and np.array_equal(v1, v2))
    start = time.perf_counter()
    for s in range(0, len(a), BLOCK):
        q @ a[s : s + BLOCK].T
    gemm = time.perf_counter() - start
    write(args, times, same, gemm)


def write(args, times: dict, same: bool, gemm: float) -> None:
    """Append this run's section to the report."""
    best = {name: min(t) for name, t in times.items()}
    floor, torch_path = best.values()
    lines = [
        "",
        "## ASIF's streamed top-k on the CPU: floor filter against torch.topk per block (bench_topk_paths.py)",
        "",
        f"`PYTHONPATH=$PWD python benchmarks/bench_topk_paths.py --queries {args.queries} --anchors {args.anchors} "
        f"--dim {args.dim} --k {args.k} --repeats {args.repeats}` {machine_line()}.",
        "",
        f"Random unit rows: {args.queries:,} queries x {args.anchors:,} anchors, {args.dim}-d, top {args.k}; blocks "
        f"of {BLOCK:,} anchors. Best of {args.repeats}, the paths alternating.",
        "",
        "| path | seconds |",
        "|---|---:|",
        *(f"| {name} | {sec:.1f} |" for name, sec in best.items()),
        f"| the score blocks' GEMMs alone | {gemm:.1f} |",
        "",
        f"Same neighbours and values on both paths: {'yes' if same else 'NO'}. The floor filter takes "
        f"{torch_path / floor:.1f}x less time than torch.topk per block, {floor / gemm:.1f}x its GEMMs.",
        "",
    ]
    append(args.report, lines)


if __name__ == "__main__":
    main()
