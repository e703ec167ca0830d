"""Cost of the retrieval evaluation against one similarity GEMM, at COCO 5k size, and the exact tie rule.

Writes benchmarks/REPORT_eval.md. 5,000 images x 25,000 captions, k = 128, cosine, both directions, as
``metrics.ranks`` runs them; every timing is interleaved with the GEMM's in one process and given as the
median of ``--repeats`` rounds, so the ratio holds on a shared, loaded machine where absolute times move.

    python benchmarks/bench_eval.py                          # ratio, tie check, REPORT_eval.md
    python benchmarks/bench_eval.py --before old_metrics.py  # also time another metrics.py (e.g. from git show)
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
K = 128


def coco_shape(n_img: int = 5000, per_image: int = 5, seed: int = 0):
    """Embeddings shaped like COCO 5k: images (n, K), captions near their image (5 per image)."""
    rng = np.random.default_rng(seed)
    ims = rng.standard_normal((n_img, K), dtype=np.float32)
    image_index = np.repeat(np.arange(n_img), per_image)
    txt = ims[image_index] + 2.0 * rng.standard_normal((len(image_index), K), dtype=np.float32)
    return ims, txt, image_index


def load_metrics(path: Path):
    spec = importlib.util.spec_from_file_location("metrics_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def interleaved(fns: dict, repeats: int) -> dict:
    """Median wall time of each function, the functions taking turns in every round."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def tie_check(metrics) -> dict:
    """Image-search R@1 on 200 exact copies of one image among 300 others, under both tie rules."""
    rng = np.random.default_rng(0)
    ims = rng.standard_normal((500, K)).astype(np.float32)
    ims[:200] = ims[0]
    ims = ims[rng.permutation(500)]
    txt = ims + 0.05 * rng.standard_normal(ims.shape).astype(np.float32)
    copies = np.flatnonzero((ims == ims[np.argmax((ims == ims[0]).all(1))]).all(1))
    out = {}
    for ties in ("optimistic", "pessimistic"):
        try:
            out[ties] = metrics.evaluate_retrieval(ims, txt[copies], copies, ties=ties)["image_search"]["R@1"]
        except Exception as e:  # noqa: BLE001 (an old metrics.py may not know the ties argument)
            out[ties] = f"n/a ({type(e).__name__})"
    return out


def report(times: dict, ties: dict, ties_before: dict | None, repeats: int, shape: tuple) -> str:
    gemm = times["gemm"]
    lines = ["# Evaluation cost and exact ties", "",
             f"Written by `python benchmarks/bench_eval.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{os.cpu_count()} CPUs, numpy {np.__version__}. The machine was shared with other jobs: absolute "
             f"times move a lot, so every figure is a median of {repeats} interleaved rounds and read as a ratio "
             "to the GEMM timed in the same rounds.", "",
             f"{shape[0]:,} images x {shape[1]:,} captions, k = {K}, cosine, both directions.", "",
             "| what | median s | x one similarity GEMM |", "|---|---|---|",
             f"| one similarity GEMM ({shape[0]} x {shape[1]}, float32) | {gemm:.3f} | 1.00 |",
             f"| `metrics.ranks` (2,048-image blocks, exact ties) | {times['ours']:.3f} | "
             f"**{times['ours'] / gemm:.2f}** |"]
    if "before" in times:
        lines.append(f"| `ranks` of the --before metrics.py | {times['before']:.3f} | {times['before'] / gemm:.2f} |")
    lines += ["", f"Target: at most 2x one GEMM: {'met' if times['ours'] / gemm <= 2 else 'missed'}.", "",
              "Exact ties: 200 bit-identical images among 300 others, each with one caption close to it; image "
              "search R@1 of the copies' captions (the rule gives 100 optimistic, 0 pessimistic):", "",
              "| code | optimistic | pessimistic |", "|---|---|---|",
              f"| this checkout | {ties['optimistic']} | {ties['pessimistic']} |"]
    if ties_before:
        lines.append(f"| --before | {ties_before['optimistic']} | {ties_before['pessimistic']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--before", type=Path, help="another metrics.py to time beside this checkout's")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "REPORT_eval.md")
    args = ap.parse_args(argv)
    from cca_bench import metrics
    from cca_bench.fsio import write_atomic

    ims, txt, image_index = coco_shape()
    pi, pt = metrics.prepare(ims, "cosine"), metrics.prepare(txt, "cosine")
    fns = {"gemm": lambda: pi @ pt.T, "ours": lambda: metrics.ranks(ims, txt, image_index)}
    before = load_metrics(args.before) if args.before else None
    if before is not None:
        fns["before"] = lambda: before.ranks(ims, txt, image_index)
        pairs = zip(metrics.ranks(ims, txt, image_index), before.ranks(ims, txt, image_index))
        same = all((a == b).all() for a, b in pairs)
        print(f"identical ranks to --before on untied data: {same}", file=sys.stderr)
    times = interleaved(fns, args.repeats)
    text = report(times, tie_check(metrics), tie_check(before) if before else None, args.repeats, (len(ims), len(txt)))
    write_atomic(args.out, lambda f: f.write(text.encode()))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
