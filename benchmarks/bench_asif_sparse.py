"""ASIF with COCO-size anchors scored through the suite's evaluation path (sparse relative representations).

Random features stand in for the encoders: ``--anchors`` anchor captions (``--per`` per anchor image, so
anchors / per anchor images) of widths ``--dx`` (images) and ``--dy`` (captions); a test split of ``--images``
images with ``--per`` captions each. ASIF is fitted on the anchors, the test split embedded (CSR above
``asif.MAX_DENSE_BYTES``, as ``run_benchmark`` embeds it) and scored by ``evaluation.score``, the function
``run_benchmark`` calls, without intervals (``--bootstrap``: resamples, default none). Appends a section to
benchmarks/REPORT_scale.md with the times, the peak resident memory (ru_maxrss) after each step and the bytes the
dense relative representations would have taken.

    PYTHONPATH=$PWD python benchmarks/bench_asif_sparse.py --anchors 414000 --dx 1280 --dy 384
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from benchmarks.report_section import append, machine_line
from cca_bench.evaluation import RunOptions, score
from cca_bench.methods import asif
from cca_bench.methods.asif import ASIF

REPORT = Path(__file__).with_name("REPORT_scale.md")


def peak_gb() -> float:
    """Peak resident memory of this process so far, GB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def features(rng, n: int, d: int) -> np.ndarray:
    return rng.standard_normal((n, d), dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--anchors", type=int, default=414_000)
    ap.add_argument("--per", type=int, default=5)
    ap.add_argument("--dx", type=int, default=1280)
    ap.add_argument("--dy", type=int, default=384)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--top-k", type=int, default=800)
    ap.add_argument("--exponent", type=float, default=8.0)
    ap.add_argument("--bootstrap", type=int, default=None)
    ap.add_argument("--budget-gb", type=float, default=None, help="asif.MAX_DENSE_BYTES in GB (default: as is)")
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()
    if args.budget_gb is not None:
        asif.MAX_DENSE_BYTES = int(args.budget_gb * 1024**3)
    rng = np.random.default_rng(0)
    n_anchor_images = args.anchors // args.per
    steps, t0 = [], time.perf_counter()

    def step(name, fn):
        start = time.perf_counter()
        out = fn()
        steps.append((name, time.perf_counter() - start, peak_gb()))
        print(f"{name}: {steps[-1][1]:.1f} s, peak RSS {steps[-1][2]:.2f} GB", flush=True)
        return out

    ax, ay = features(rng, n_anchor_images, args.dx), features(rng, n_anchor_images * args.per, args.dy)
    tx, ty = features(rng, args.images, args.dx), features(rng, args.images * args.per, args.dy)
    ty += 0.5 * np.repeat(tx[:, : args.dy], args.per, axis=0)  # captions near their image: not all chance
    ay += 0.5 * np.repeat(ax[:, : args.dy], args.per, axis=0)
    anchor_index, image_index = (np.repeat(np.arange(n), args.per) for n in (n_anchor_images, args.images))
    model = step(
        "fit (store anchors)",
        lambda: ASIF(top_k=args.top_k, exponent=args.exponent, device="cpu").fit(ax, ay, anchor_index),
    )
    ax = ay = None  # the anchors' features: the model holds its own normalised copies
    ei = step("embed_images (top-k)", lambda: model.embed_images(tx))
    et = step("embed_texts (top-k)", lambda: model.embed_texts(ty))
    timings: dict = {}
    run = RunOptions(bootstrap=args.bootstrap)
    out = step("evaluation.score", lambda: score([(ei, et)], image_index, "cosine", 1, run, timings, "cpu"))
    dense_gb = 4 * (ei.shape[0] + et.shape[0]) * ei.shape[1] / 1024**3
    sparse_gb = (
        sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes if hasattr(m, "indptr") else m.nbytes for m in (ei, et))
        / 1024**3
    )
    write(args, steps, time.perf_counter() - t0, out, type(ei).__name__, dense_gb, sparse_gb, timings)


def write(args, steps, total, out, kind, dense_gb, sparse_gb, timings: dict) -> None:
    """Append this run's section to the report."""
    m = out["metrics"]
    lines = [
        "",
        f"## ASIF with {args.anchors:,} anchors through the evaluation path (bench_asif_sparse.py)",
        "",
        f"`PYTHONPATH=$PWD python benchmarks/bench_asif_sparse.py --anchors {args.anchors} --per {args.per} "
        f"--dx {args.dx} --dy {args.dy} --images {args.images} --top-k {args.top_k} --exponent {args.exponent:g}"
        f"{'' if args.budget_gb is None else f' --budget-gb {args.budget_gb:g}'}`"
        f" {machine_line()}.",
        "",
        f"Random features: {args.anchors // args.per:,} anchor images x {args.dx}-d, {args.anchors:,} anchor "
        f"captions x {args.dy}-d; test split {args.images:,} images, {args.images * args.per:,} captions. "
        f"Embeddings came back as `{kind}` (budget `asif.MAX_DENSE_BYTES` = {asif.MAX_DENSE_BYTES / 1024**3:g} GB):"
        f" {sparse_gb:.2f} GB as returned against {dense_gb:.1f} GB dense. Intervals: "
        f"{'none' if args.bootstrap is None else f'{args.bootstrap} resamples'}.",
        "",
        "| step | seconds | peak RSS so far (GB) |",
        "|---|---:|---:|",
        *(f"| {name} | {sec:.1f} | {rss:.2f} |" for name, sec, rss in steps),
        f"| total (with feature generation) | {total:.1f} | {steps[-1][2]:.2f} |",
        "",
        "Inside evaluation.score: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items() if isinstance(v, (int, float)))
        + ".",
        "",
        f"R@1 image search {m['image_search']['R@1']:.3f}, annotation {m['image_annotation']['R@1']:.3f} (random "
        "features with captions near their image: only a check that the pass ran, not a quality number).",
        "",
    ]
    append(args.report, lines)


if __name__ == "__main__":
    main()
