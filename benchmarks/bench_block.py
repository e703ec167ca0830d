"""How many images a score block should hold: the evaluation's ranks and top-10 lists at COCO 5k by block size.

``metrics.fold_counts`` takes the similarity GEMM in blocks of images (each a fresh (block x captions) float32
array, page faults included) and reads each block once, tile by tile, for both directions. Fewer, larger blocks
mean fewer per-block steps; smaller ones a smaller array to fault in and keep. This benchmark times
``fold_counts(top=10)`` (5,000 x 25,000, k = 128, cosine, as ``bench_eval.py``) at several block sizes,
interleaved in one process, on the easy set (caption noise 2) and the COCO-like one (noise 4), checks that
every size gives the same tie counts and lists, and writes benchmarks/REPORT_block.md.

    python benchmarks/bench_block.py [--rounds 16] [--blocks 2048,1792,1536,1280,1024]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import cca_bench  # noqa: E402, F401, I001  (before numpy, as the CLI imports it: its OpenBLAS setting applies)
import numpy as np  # noqa: E402
from bench_eval import busy_seconds, coco_shape, interleaved, own_seconds  # noqa: E402

from benchmarks import report_section  # noqa: E402


def same(a: list, b: list) -> bool:
    """Equal tie counts, degenerate flags and top lists of two ``fold_counts`` results."""
    for x, y in zip(a[0], b[0]):
        if hasattr(x, "above"):
            if not all(np.array_equal(getattr(x, f), getattr(y, f)) for f in ("above", "tied", "gt_tied")):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--blocks", default="2048,1792,1536,1280,1024")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "REPORT_block.md")
    args = ap.parse_args(argv)
    from cca_bench import metrics

    blocks = [int(b) for b in args.blocks.split(",")]
    lines = [
        "# Score block size: ranks and top-10 lists at COCO 5k",
        "",
        f"Written by `python benchmarks/bench_block.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} CPUs. `metrics.fold_counts(top=10)`, 5,000 images x 25,000 captions, k = 128, cosine, "
        f"{args.rounds} interleaved rounds per set; seconds, median and fastest round. The default block is "
        f"`metrics.DEFAULT_BLOCK` = {metrics.DEFAULT_BLOCK}.",
        "",
        "| caption noise | block (images) | median s | fastest s | x the 2,048 block's median | same results |",
        "|---|---|---|---|---|---|",
    ]
    for noise in (2.0, 4.0):
        ims, txt, idx = coco_shape(noise=noise)
        ref = metrics.fold_counts(ims, txt, idx, top=10, block=2048)
        fns = {b: (lambda b=b: metrics.fold_counts(ims, txt, idx, top=10, block=b)) for b in blocks}
        busy0, own0, t0 = busy_seconds(), own_seconds(), time.perf_counter()
        times = interleaved(fns, args.rounds)
        busy1, own1, t1 = busy_seconds(), own_seconds(), time.perf_counter()
        base = float(np.median(times[2048])) if 2048 in times else float("nan")
        for b in blocks:
            med = float(np.median(times[b]))
            lines.append(
                f"| {noise:g} | {b:,} | {med:.3f} | {times[b].min():.3f} | {med / base:.2f} | "
                f"{'yes' if same(fns[b](), ref) else 'NO'} |"
            )
        if busy0 is not None and busy1 is not None:
            others = max(busy1 - busy0 - (own1 - own0), 0.0)
            lines.append(
                f"| {noise:g} | other processes: {others:.1f} CPU s in {t1 - t0:.0f} s "
                f"({100 * others / (t1 - t0):.0f}% of one core) | | | | |"
            )
    return report_section.write(args.out, lines)


if __name__ == "__main__":
    sys.exit(main())
