"""Every method fitted from sums, here and on a Dask LocalCluster of 1 and 2 worker processes; writes a report.

    python benchmarks/bench_scale.py [--images 29000] [--per 5] [--dx 4096] [--dy 300]
        [--methods cca,ridge,procrustes,pls,kcca,asif] [--asif-queries 1000] [--workdir /tmp/cca_bench_scale]
        [--out benchmarks/REPORT_scale.md]

Data: :func:`benchmarks.bench_methods.data` (Flickr30k size by default: 29,000 images x 5 captions = 145k pairs,
4096-d non-negative "CNN" images, 300-d captions), saved once as .npy files in ``--workdir`` and opened as
memmaps, as the feature cache hands them to a fit: on Dask each task then reads its rows from the file on the
worker (a shared file system; here the local disk), so what travels is the tasks' partial sums.
Each (method, backend) runs in its own subprocess with a fresh cluster:
- ``local``: the numpy backend in that process (BLAS on every core);
- ``dask-1``, ``dask-2``: ``backend="dask"`` on a LocalCluster of 1 or 2 worker processes, 1 thread each.
Measured: fit time (asif: both views' top-k of ``--asif-queries`` test images and 5x as many captions against
every train pair as an anchor: asif's fit only stores them), peak RSS (``ru_maxrss``) of the local process
and of each worker, bytes the workers sent each other and the client (``transfer_outgoing_bytes_total``,
partial sums and results) and the loopback interface's byte counter over the fit (an upper bound: the
client's graph too, and any other process on this machine). ``dask-*`` rows check that the fit equals the
local one (largest absolute difference of the weights, or asif's neighbours).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_methods import data  # noqa: E402

PARAMS = {
    "cca": {},
    "ridge": {},
    "procrustes": {},
    "pls": {},
    "kcca": {"landmarks": 1000, "kernel_views": "text"},
    "asif": {"top_k": 800, "exponent": 8.0},
}
BACKENDS = ("local", "dask-1", "dask-2")


def prepare(args) -> Path:
    """Write the train (and asif's test) split as .npy files once; returns the folder."""
    folder = Path(args.workdir) / f"{args.images}x{args.per}_{args.dx}_{args.dy}"
    if not (folder / "done").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for name, split in (
            ("train", data(args.images, args.per, args.dx, args.dy, 0)),
            ("test", data(args.asif_queries, 5, args.dx, args.dy, 1)),
        ):
            for field in ("images", "texts", "image_index"):
                np.save(folder / f"{name}_{field}.npy", getattr(split, field))
        (folder / "done").write_text("")
    return folder


def load(folder: Path, name: str):
    return tuple(np.load(folder / f"{name}_{f}.npy", mmap_mode="r") for f in ("images", "texts", "image_index"))


def lo_bytes() -> int:
    import psutil

    return psutil.net_io_counters(pernic=True)["lo"].bytes_sent


def fit(method: str, backend: str, folder: Path):
    """(seconds, result arrays) of one fit; asif: the top-k of the test split's both views."""
    from cca_bench.methods import load_all
    from cca_bench.registry import METHODS

    load_all()
    import scipy.sparse.linalg  # noqa: F401  (imports outside the clock, as a warm process has them)
    import torch  # noqa: F401

    x, y, index = load(folder, "train")
    params = {**PARAMS[method], "backend": "numpy" if backend == "local" else "dask"}
    model = METHODS.get(method)(**params)
    t = time.perf_counter()
    if method == "asif":
        model.fit(x, y, np.asarray(index))
        qx, qy, _ = load(folder, "test")
        ti, tt = model.topk_images(np.asarray(qx), model.top_k), model.topk_texts(np.asarray(qy), model.top_k)
        return time.perf_counter() - t, {"image_neighbours": ti[1], "text_neighbours": tt[1]}
    model.fit(x, y, np.asarray(index))
    out = {k: getattr(model, k) for k in ("x_weights_", "y_weights_") if getattr(model, k, None) is not None}
    return time.perf_counter() - t, out


def run_one(method: str, backend: str, folder: Path) -> dict:
    """One row, in this (fresh) process; the arrays are saved for the equality check."""
    row = {"method": method, "backend": backend}
    if backend == "local":
        row["seconds"], arrays = fit(method, backend, folder)
        row["peak_rss_gb"] = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2]
    else:
        from dask.distributed import Client, LocalCluster

        workers = int(backend.split("-")[1])
        with (
            LocalCluster(
                n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None, memory_limit=0
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(lambda: __import__("cca_bench.linalg") and __import__("torch"))  # imports before the clock
            lo = lo_bytes()
            row["seconds"], arrays = fit(method, backend, folder)
            row["loopback_mb"] = (lo_bytes() - lo) / 1e6
            stats = client.run(
                lambda dask_worker: (
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                    dask_worker.transfer_outgoing_bytes_total,
                )
            )
            row["peak_rss_gb"] = [v[0] / 1024**2 for v in stats.values()]
            row["worker_sent_mb"] = sum(v[1] for v in stats.values()) / 1e6
    np.savez(folder / f"{method}_{backend}.npz", **arrays)
    return row


def compare(folder: Path, row: dict) -> None:
    """Largest absolute difference of this row's arrays from the local fit's (asif: neighbours that differ)."""
    got = np.load(folder / f"{row['method']}_{row['backend']}.npz")
    want = np.load(folder / f"{row['method']}_local.npz")
    if row["method"] == "asif":
        row["vs_local"] = f"{sum(int((got[k] != want[k]).sum()) for k in want.files)} neighbours differ"
    else:
        row["vs_local"] = f"max |diff| {max(float(np.abs(got[k] - want[k]).max()) for k in want.files):.1e}"


def leading_agreement(folder: Path, methods: list[str], k: int = 10) -> str:
    """A markdown table: per method and Dask row, the largest difference of the leading ``k`` columns of the
    weights from the local fit's, relative to their largest entry (the trailing components of a wide fit are
    near-degenerate: float32 moments summed in another order turn them, so the all-column figure overstates)."""
    lines = [f"| method | backend | leading {k} components: max abs diff / max abs weight |", "|---|---|---|"]
    for method in methods:
        want = folder / f"{method}_local.npz"
        for backend in BACKENDS[1:]:
            got = folder / f"{method}_{backend}.npz"
            if method == "asif" or not (want.is_file() and got.is_file()):
                continue
            a, b = np.load(want), np.load(got)
            rel = max(float(np.abs(b[f][:, :k] - a[f][:, :k]).max() / np.abs(a[f][:, :k]).max()) for f in a.files)
            lines.append(f"| {method} | {backend} | {rel:.1e} |")
    return "\n".join(lines) + "\n"


def report(rows: list[dict], args, seconds: float) -> str:
    import os

    lines = [
        "# Methods fitted from sums: here and on a Dask LocalCluster (benchmarks/bench_scale.py)",
        "",
        f"Command: `python benchmarks/bench_scale.py {' '.join(sys.argv[1:])}`; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end (a machine shared with other jobs: compare within a row group). "
        f"Total {seconds:.0f} s.",
        "",
        f"Train split: {args.images:,} images x {args.per} captions = {args.images * args.per:,} pairs, "
        f"dx = {args.dx}, dy = {args.dy}, as .npy memmaps (Dask workers read their rows from the files). asif: "
        f"top-k (k = 800) of {args.asif_queries:,} test images and {5 * args.asif_queries:,} captions over every "
        "train pair as an anchor. local: numpy backend, BLAS on every core; dask-N: N worker processes x 1 "
        "thread.",
        "",
        "| method | backend | fit s | peak RSS per process GB | worker bytes sent MB | loopback MB | vs local |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rss = " / ".join(f"{v:.2f}" for v in r["peak_rss_gb"])
        lines.append(
            f"| {r['method']} | {r['backend']} | {r['seconds']:.1f} | {rss} | "
            f"{r.get('worker_sent_mb', 0):.1f} | {r.get('loopback_mb', 0):.1f} | {r.get('vs_local', '-')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=29000)
    ap.add_argument("--per", type=int, default=5)
    ap.add_argument("--dx", type=int, default=4096)
    ap.add_argument("--dy", type=int, default=300)
    ap.add_argument("--methods", default="cca,ridge,procrustes,pls,kcca,asif")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--asif-queries", type=int, default=1000)
    ap.add_argument("--workdir", default="/tmp/cca_bench_scale")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "REPORT_scale.md")
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "BACKEND"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--agreement-only",
        action="store_true",
        help="append the leading components' agreement of the stored fits to --out, fit nothing",
    )
    args = ap.parse_args()
    folder = prepare(args)
    if args.agreement_only:
        table = leading_agreement(folder, args.methods.split(","))
        args.out.write_text(args.out.read_text() + "\n" + table)
        print(table)
        return
    if args.one:
        print(json.dumps(run_one(*args.one, folder)))
        return
    t0, rows = time.perf_counter(), []
    for method in args.methods.split(","):
        for backend in args.backends.split(","):
            argv = [sys.executable, __file__, *sys.argv[1:], "--one", method, backend]
            out = subprocess.run(argv, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            if backend != "local" and (folder / f"{method}_local.npz").is_file():
                compare(folder, rows[-1])
            print(rows[-1], flush=True)
            args.out.write_text(report(rows, args, time.perf_counter() - t0))  # nothing measured is lost
    args.out.write_text(args.out.read_text() + "\n" + leading_agreement(folder, args.methods.split(",")))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
