"""Search speed: exact chunked top-k vs FAISS flat vs FAISS HNSW on a random gallery; prints a markdown table.

    python -m benchmarks.search_speed --n 100000 --dim 128 --queries 1 100 [--rank 16]

Gaussian rows (the default) are the hardest case for HNSW: their intrinsic dimension is the full width, so its
recall there is a floor. ``--rank r`` draws rows from an r-dimensional subspace plus 10% noise, closer to
learned embeddings (CCA keeps the few strongly correlated directions). Times are the
median of ``--repeat`` runs; the build time is paid once per `search` call (indexes are not saved yet).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cca_bench.search import INDEXES


def _median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def sample(rng, n: int, dim: int, rank: int | None) -> np.ndarray:
    """(n, dim) float32 gaussian rows, or rows of a random rank-``rank`` subspace plus 10% noise."""
    if rank is None:
        return rng.normal(size=(n, dim)).astype(np.float32)
    basis = rng.normal(size=(rank, dim))
    return (rng.normal(size=(n, rank)) @ basis + 0.1 * np.sqrt(rank) * rng.normal(size=(n, dim))).astype(np.float32)


def measure(
    n: int, dim: int, queries: list[int], k: int, repeat: int, rank: int | None = None, seed: int = 0
) -> list[list]:
    """Rows (index, queries, build s, search ms per query, recall@k vs exact)."""
    rng = np.random.default_rng(seed)
    gallery = sample(rng, n, dim, rank)
    rows = []
    for name in INDEXES.names():
        build, index = _median_time(lambda: INDEXES.get(name)(gallery, "cosine"), 1)
        for nq in queries:
            q = sample(np.random.default_rng(seed + nq), nq, dim, rank)
            exact = INDEXES.get("exact")(gallery, "cosine").search(q, k)[1]
            secs, (_, ids) = _median_time(lambda: index.search(q, k), repeat)
            recall = np.mean([len(set(a) & set(e)) / k for a, e in zip(ids, exact)])
            rows.append([name, nq, round(build, 2), round(1000 * secs / nq, 3), round(float(recall), 4)])
    return rows


def main() -> None:
    from tabulate import tabulate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, nargs="+", default=[1, 100])
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--rank", type=int, help="rows from a subspace of this dimension plus noise (default: gaussian)")
    args = p.parse_args()
    rows = measure(args.n, args.dim, args.queries, args.k, args.repeat, args.rank)
    kind = f"rank-{args.rank} + noise" if args.rank else "gaussian"
    print(f"gallery {args.n} x {args.dim} float32 ({kind}), cosine, k={args.k}\n")
    print(tabulate(rows, ["index", "queries", "build s", "ms / query", f"recall@{args.k}"], tablefmt="github"))


if __name__ == "__main__":
    main()
