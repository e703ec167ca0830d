"""Accuracy and cost of the CCA fit's two precisions: float32 vs float64 covariance products.

Writes benchmarks/REPORT_precision.md: the largest error of the first 20 canonical correlations against a
float64 textbook solve (centre, covariances, scaled ridge, Cholesky whitening, SVD, all in numpy float64)
on features with cond(Cxx) = 1e4 .. 1e8, for the precision ``cov_precision="auto"`` picks and for each one forced;
and the time of the covariance products in float64 over float32 (interleaved medians: the machine is shared).

    python benchmarks/bench_precision.py            # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONDS = (1e4, 1e6, 1e8)
REGS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)


def ill_conditioned(n: int, dx: int, dy: int, cond: float, seed: int = 0, shift: float = 3.0, signals: int = 10):
    """float32 views sharing ``signals`` latent signals, off-centre by ``shift``; each view's covariance has
    condition number ~``cond`` (the data's singular values spread over sqrt(cond)). The tests use it too."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, signals))

    def view(d):
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        a = rng.standard_normal((n, d))
        a[:, :signals] = 0.7 * a[:, :signals] + 0.7 * z
        return ((a * np.logspace(0, -np.log10(cond) / 2, d)) @ q.T + shift).astype(np.float32)

    return view(dx), view(dy)


def textbook(x, y, reg: float) -> np.ndarray:
    """Every canonical correlation of ridge CCA computed from scratch in float64: centre, covariances, ridge
    scaled by the top eigenvalue, Cholesky whitening, SVD (numpy and scipy only)."""
    import scipy.linalg

    x, y = x.astype(np.float64), y.astype(np.float64)
    x, y = x - x.mean(0), y - y.mean(0)
    cxx, cyy, cxy = (a.T @ b / (len(x) - 1) for a, b in ((x, x), (y, y), (x, y)))
    cxx = cxx + reg * np.linalg.eigvalsh(cxx)[-1] * np.eye(len(cxx))
    cyy = cyy + reg * np.linalg.eigvalsh(cyy)[-1] * np.eye(len(cyy))
    lx, ly = np.linalg.cholesky(cxx), np.linalg.cholesky(cyy)
    w = scipy.linalg.solve_triangular(ly, scipy.linalg.solve_triangular(lx, cxy, lower=True).T, lower=True).T
    return np.linalg.svd(w, compute_uv=False)


def accuracy_rows(n: int, dx: int, dy: int) -> list[str]:
    from cca_bench.errors import UserError
    from cca_bench.methods.cca import RegularizedCCA

    rows = []
    for cond in CONDS:
        x, y = ill_conditioned(n, dx, dy, cond)
        for reg in REGS:
            want = textbook(x, y, reg)[:20]
            cells = []
            for precision in ("auto", "float32", "float64"):
                try:
                    m = RegularizedCCA(n_components=20, reg=reg, cov_precision=precision, device="cpu").fit(x, y)
                    err = f"{np.abs(m.canonical_correlations_ - want).max():.1e}"
                    cells.append(f"{err} ({m.cov_precision_})" if precision == "auto" else err)
                except UserError as e:
                    cells.append(f"refused: {str(e)[:40]}")
            rows.append(f"| {cond:.0e} | {reg:g} | " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def product_times(n: int, dx: int, dy: int, repeats: int) -> dict:
    from cca_bench import linalg

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((n, dx), dtype=np.float32), rng.standard_normal((n, dy), dtype=np.float32)
    times = {"float32": [], "float64": []}
    for _ in range(repeats):
        for name in times:
            chunk = linalg.CHUNK_ROWS if name == "float32" else linalg.CHUNK_ROWS // 2  # as RegularizedCCA does
            t0 = time.perf_counter()
            linalg.paired_moments(x, y, None, chunk, dtype=np.dtype(name))
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dx", type=int, default=200)
    ap.add_argument("--dy", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "REPORT_precision.md")
    args = ap.parse_args(argv)
    from cca_bench.fsio import write_atomic
    from cca_bench.linalg import FLOAT32_MIN_REG

    rows = accuracy_rows(args.n, args.dx, args.dy)
    shape = (40000, 1024, 300)
    t = product_times(*shape, args.repeats)
    text = "\n".join(
        [
            "# Precision of the CCA fit: float32 vs float64 covariance products",
            "",
            "Written by `python benchmarks/bench_precision.py` on "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"{os.cpu_count()} CPUs, numpy {np.__version__}; the machine was shared with other jobs (times are "
            "interleaved medians, read them as a ratio).",
            "",
            "Largest error of the first 20 canonical correlations (10 strong, 10 weak) against a float64 textbook "
            f"solve; {args.n:,} pairs, {args.dx} + {args.dy} dims, 10 shared signals, data off-centre by 3. "
            "`auto` uses float32 products when "
            f"reg >= {FLOAT32_MIN_REG:g}, float64 below.",
            "",
            "| cond(Cxx) | reg | auto (path) | float32 forced | float64 forced |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Covariance products alone ({shape[0]:,} x {shape[1]} + {shape[2]}, `linalg.paired_moments`): float32 "
            f"{t['float32']:.2f} s, float64 {t['float64']:.2f} s: **{t['float64'] / t['float32']:.2f}x** (median of "
            f"{args.repeats}). The solve (Cholesky, SVD) is float64 either way.",
            "",
        ]
    )
    write_atomic(args.out, lambda f: f.write(text.encode()))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
