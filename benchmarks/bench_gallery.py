"""Evaluation of a gallery whose score matrix is larger than memory, in bounded memory, with the same ranks.

    python benchmarks/bench_gallery.py [--images 100000] [--captions 1000000] [--dim 128] [--check 200]
        [--out benchmarks/REPORT_gallery.md]

Random features generated here (no file): images (n_images, dim) standard normal, captions = their image plus
noise (so ranks spread over the gallery), unit rows. The suite's evaluation (:func:`cca_bench.metrics.tie_counts`,
both directions, expected-rank ties) runs in score blocks cut to ``metrics.SCORE_BLOCK_BYTES``; the report
gives the score matrix's size against this machine's memory, the peak RSS of the run (``ru_maxrss``: the inputs
included), its time, and a check on ``--check`` random captions and ``--check`` random images: their counts
recomputed by brute force (one row of scores each, float32 as the evaluation, strictly-above and equal counted
directly) must equal the evaluation's.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def features(n_img: int, n_txt: int, dim: int):
    rng = np.random.default_rng(0)
    ims = rng.standard_normal((n_img, dim), dtype=np.float32)
    index = np.sort(rng.integers(0, n_img, n_txt))
    txt = np.empty((n_txt, dim), np.float32)
    for s in range(0, n_txt, 65536):  # in blocks: no second n_txt x dim temporary
        e = min(s + 65536, n_txt)
        txt[s:e] = ims[index[s:e]] + 2.0 * rng.standard_normal((e - s, dim), dtype=np.float32)
    for a in (ims, txt):
        a /= np.linalg.norm(a, axis=1, keepdims=True)
    return ims, txt, index


def brute(ims, txt, index, n_check: int):
    """(caption ids, their (above, tied)), (image ids, their (above, tied)) by direct counting on score rows."""
    rng = np.random.default_rng(1)
    caps = np.sort(rng.choice(len(txt), n_check, replace=False))
    cap_counts = []
    for j in caps:
        row = ims @ txt[j]  # float32 scores of caption j against every image
        gt = row[index[j]]
        cap_counts.append((int((row > gt).sum()), int((row == gt).sum()) - 1))
    queries = np.unique(index)
    imgs = np.sort(rng.choice(queries, n_check, replace=False))
    img_counts = []
    for i in imgs:
        row = txt @ ims[i]
        pos = index == i
        gt = row[pos].max()
        img_counts.append((int((row > gt).sum()), int((row[~pos] == gt).sum())))
    return caps, np.array(cap_counts), imgs, np.array(img_counts)


def main() -> None:
    from cca_bench import metrics

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100000)
    ap.add_argument("--captions", type=int, default=1000000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--check", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "REPORT_gallery.md")
    args = ap.parse_args()
    ims, txt, index = features(args.images, args.captions, args.dim)
    rss_inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    t = time.perf_counter()
    i2t, t2i, _, _ = metrics.tie_counts(ims, txt, index)
    seconds = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    caps, cap_counts, imgs, img_counts = brute(ims, txt, index, args.check)
    queries = np.unique(index)  # i2t counts are over the images with captions, in image order
    pos = np.searchsorted(queries, imgs)
    same_t2i = int(((t2i.above[caps] == cap_counts[:, 0]) & (t2i.tied[caps] == cap_counts[:, 1])).sum())
    same_i2t = int(((i2t.above[pos] == img_counts[:, 0]) & (i2t.tied[pos] == img_counts[:, 1])).sum())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    block = max(1, min(2048, metrics.SCORE_BLOCK_BYTES // (4 * len(txt))))
    summary = metrics.summarize(t2i)
    matrix = 4 * args.images * args.captions / 1024**3
    lines = [
        "# A gallery larger than memory (benchmarks/bench_gallery.py)",
        "",
        f"Command: `python benchmarks/bench_gallery.py {' '.join(sys.argv[1:])}`; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, {mem:.0f} GB memory, "
        f"load average {os.getloadavg()[0]:.1f} at the end (a shared machine).",
        "",
        f"- {args.images:,} images x {args.captions:,} captions, {args.dim}-d: the score matrix is "
        f"{matrix:,.0f} GB of float32, {matrix / mem:.1f}x this machine's memory;",
        f"- evaluated in score blocks of {block} images ({block * len(txt) * 4 / 1024**2:.0f} MB; "
        f"SCORE_BLOCK_BYTES = {metrics.SCORE_BLOCK_BYTES / 1024**2:.0f} MB): {seconds:.0f} s, peak RSS "
        f"{rss:.2f} GB, of which {rss_inputs:.2f} GB the inputs as generated;",
        f"- image search R@1 {summary['R@1']:.2f}, median rank {summary['median_rank']:g} (expected-rank ties);",
        f"- brute-force check: {same_t2i} / {len(caps)} random captions and {same_i2t} / {len(imgs)} random "
        "images have the same (above, tied) counts as the evaluation.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
