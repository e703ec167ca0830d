"""The suite's CUDA paths against its CPU paths, timed in one short run; writes one markdown report.

    python benchmarks/bench_gpu.py [--dry-run] [--out REPORT_gpu_paths.md]

Each check runs the same code on the CPU and on the GPU and says how far the results are apart:
- moments: ``linalg.streamed_moments`` (the pass of cca, kcca, ridge, procrustes, pls) at Flickr30k size,
  29,000 images x 5 captions, 4096-d images, 300-d captions: numpy SYRK on the CPU, torch products on the GPU;
- solve: ``linalg.solve_cca`` of those moments (ridge eigenvalue, Cholesky whitening, SVD in float64);
- ridge, procrustes, pls: each method's ``fit`` (moments + its own solve) with ``device`` cpu and cuda;
- evaluation: ``metrics.ranks`` at COCO-5k size (5,000 images x 25,000 captions, k = 128), whose similarity
  GEMMs run on ``device``; how many ranks differ from the CPU's and by how much (a near-tie in float32 may
  move a rank by one; more is a bug); the bare GEMM is timed beside it;
- dcca: one training epoch over 20,000 pairs on each device (seconds per epoch).
Without a GPU (or with ``--dry-run``) every size is divided by 20 and only the CPU runs: a check that the script
works, not a measurement; ``--full-size`` without a GPU runs the CPU half at full size (what it costs of the GPU
run's time limit). Times are single runs after one warm-up of each device.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_methods import data  # noqa: E402


def timed(fn):
    """(seconds, result) of ``fn()``, CUDA work included."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def moments_rows(split, devices) -> tuple[list, object]:
    from cca_bench import linalg

    rows, ms = [], {}
    for dev in devices:
        s, ms[dev] = timed(
            lambda: linalg.streamed_moments(split.images, split.texts, split.image_index, reg=1e-3, device=dev)
        )
        rows.append(("moments (cca/kcca/ridge/procrustes/pls pass)", dev, s, "-"))
    if len(ms) == 2:
        diff = max(
            float(np.abs(ms["cuda"].cxx - ms["cpu"].cxx).max() / np.abs(ms["cpu"].cxx).max()),
            float(np.abs(ms["cuda"].cxy - ms["cpu"].cxy).max() / np.abs(ms["cpu"].cxy).max()),
        )
        rows[-1] = rows[-1][:3] + (f"max rel. diff of Cxx, Cxy {diff:.1e}",)
    return rows, ms["cpu"]


def solve_rows(m, devices) -> list:
    from cca_bench import linalg

    rows, sols = [], {}
    for dev in devices:
        s, sols[dev] = timed(lambda: linalg.solve_cca(m, 1e-3, dev))
        rows.append(("CCA solve (float64)", dev, s, "-"))
    if len(sols) == 2:
        k = 128
        diff = float(np.abs(sols["cuda"].correlations[:k] - sols["cpu"].correlations[:k]).max())
        rows[-1] = rows[-1][:3] + (f"max |diff| of the top {k} correlations {diff:.1e}",)
    return rows


def method_rows(split, devices) -> list:
    from cca_bench.methods import load_all
    from cca_bench.registry import METHODS

    load_all()
    rows = []
    for name in ("ridge", "procrustes", "pls"):
        fits = {}
        for dev in devices:
            s, fits[dev] = timed(
                lambda: METHODS.get(name)(device=dev).fit(split.images, split.texts, split.image_index)
            )
            rows.append((f"{name} fit", dev, s, "-"))
        if len(fits) == 2:
            q = split.images[:200]
            a, b = fits["cpu"].transform_x(q), fits["cuda"].transform_x(q)
            rows[-1] = rows[-1][:3] + (
                f"max |diff| of 200 image embeddings {float(np.abs(a - b).max()):.1e} "
                f"(scale {float(np.abs(a).max()):.1e})",
            )
    return rows


def eval_rows(n_img: int, devices) -> list:
    import torch

    from cca_bench import metrics

    rng = np.random.default_rng(0)
    ims = rng.standard_normal((n_img, 128)).astype(np.float32)
    index = np.repeat(np.arange(n_img), 5)
    txt = (ims[index] + 2 * rng.standard_normal((len(index), 128))).astype(np.float32)
    rows, ranks = [], {}
    for dev in devices:
        g = torch.from_numpy(txt).to(dev)
        q = torch.from_numpy(ims).to(dev)
        s, _ = timed(lambda: (q @ g.T).sum().item())
        rows.append((f"similarity GEMM {n_img:,} x {len(index):,} x 128", dev, s, "-"))
        s, ranks[dev] = timed(lambda: metrics.ranks(ims, txt, index, device=None if dev == "cpu" else dev))
        rows.append(("evaluation (ranks, both directions)", dev, s, "-"))
    if len(ranks) == 2:
        rows[-1] = rows[-1][:3] + (rank_agreement(ranks["cpu"], ranks["cuda"]),)
    return rows


def rank_agreement(cpu, gpu) -> str:
    """How far the GPU's ranks are from the CPU's, per direction: cuBLAS sums each score in another order, so a
    query whose ground truth ties another item to within float32 rounding may rank one place apart; anything more
    is a bug."""
    said, moved = [], 0
    for what, a, b in zip(("annotation", "search"), cpu, gpu):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            return f"RANKS DIFFER: {what} has {b.shape} ranks on the GPU, {a.shape} on the CPU"
        off = np.abs(a - b)
        moved += int((off > 0).sum())
        said.append(f"{what}: {int((off > 0).sum())} of {off.size:,} queries differ (by at most {off.max():g})")
    return ("ranks identical to the CPU's" if moved == 0 else "ranks vs the CPU's") + ": " + "; ".join(said)


def dcca_rows(split, devices) -> list:
    from cca_bench.methods.dcca import DeepCCA

    rows = []
    n = min(len(split.texts), 20000)
    for dev in devices:
        model = DeepCCA(epochs=1, patience=1, device=dev, progress=False)
        s, _ = timed(lambda: model.fit(split.images, split.texts[:n], split.image_index[:n]))
        rows.append((f"dcca, 1 epoch over {n:,} pairs", dev, s, "-"))
    return rows


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU only, sizes / 20 (what runs without a GPU)")
    ap.add_argument(
        "--full-size", action="store_true", help="without a GPU: the CPU half at full size (how long it takes)"
    )
    ap.add_argument("--out", type=Path, default=Path("REPORT_gpu_paths.md"))
    args = ap.parse_args()
    gpu = torch.cuda.is_available() and not args.dry_run
    devices = ("cpu", "cuda") if gpu else ("cpu",)
    scale = 1 if gpu or args.full_size else 20
    t0 = time.perf_counter()
    split = data(29000 // scale, 5, 4096 // (4 if scale > 1 else 1), 300, 0)
    if gpu:  # warm-up: CUDA context and kernels outside the clock
        torch.ones(8, device="cuda") @ torch.ones(8, device="cuda")
    rows, m = moments_rows(split, devices)
    head = [
        f"# The CUDA paths against the CPU paths (benchmarks/bench_gpu.py{' --dry-run' if args.dry_run else ''})",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; torch {torch.__version__}; "
        + (
            f"GPU: {torch.cuda.get_device_name(0)}"
            if gpu
            else f"NO GPU USED: CPU only, {'full size' if scale == 1 else 'sizes / 20 (a dry run)'}"
        ),
        "",
        f"Train split {len(split.images):,} images x 5 captions, dx = {split.images.shape[1]}, dy = 300.",
        "",
        "| check | device | seconds | agreement |",
        "|---|---|---|---|",
    ]

    def write(rows):
        args.out.write_text(
            "\n".join(head + [f"| {c} | {d} | {s:.3f} | {a} |" for c, d, s, a in rows])
            + f"\n\nTotal {time.perf_counter() - t0:.0f} s.\n"
        )

    write(rows)  # each step's rows are kept if a later one fails or the time limit ends the run
    for step in (
        lambda: solve_rows(m, devices),
        lambda: method_rows(split, devices),
        lambda: eval_rows(5000 // scale, devices),
        lambda: dcca_rows(split, devices),
    ):
        rows += step()
        write(rows)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
