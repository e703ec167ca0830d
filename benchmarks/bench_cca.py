"""Speed and memory of RegularizedCCA.fit and of the retrieval evaluation, against other libraries.

Writes benchmarks/REPORT.md. Every method runs in its own subprocess (wall time of the fit, peak RSS from
/proc/self/status VmHWM); every figure is also given as a ratio to a quantity measured in the same run (the
machine's float32 GEMM rate, one similarity GEMM), because these machines are shared and absolute times move.

    python benchmarks/bench_cca.py --quick          # small sizes, a minute: checks that everything runs
    python benchmarks/bench_cca.py                  # Flickr30k and COCO sizes (minutes; data on disk)
    python benchmarks/bench_cca.py --before DIR     # also time the cca_bench package found in DIR (a checkout)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LATENT, K, REG, CHUNK = 128, 128, 1e-3, 16384


@dataclass(frozen=True)
class Size:
    name: str
    n: int
    dx: int = 4096
    dy: int = 300


FULL = {
    "flickr30k": Size("flickr30k", 145_000),
    "coco": Size("coco", 566_000),
    "sklearn": Size("sklearn-sub", 20_000, 1024, 300),
}
QUICK = {
    "flickr30k": Size("flickr30k-quick", 8_000, 1024, 300),
    "coco": Size("coco-quick", 16_000, 1024, 300),
    "sklearn": Size("sklearn-quick", 2_000, 256, 64),
}
# which methods run at which size (the others need more memory than this machine has, see PERFORMANCE.md)
PLAN = {"flickr30k": ("ours", "numpy", "cca_zoo", "pyrcca"), "coco": ("ours",), "sklearn": ("ours", "sklearn")}


# --------------------------------------------------------------------------------------------- data
def make_data(size: Size, folder: Path, seed: int = 0) -> Path:
    """x (n, dx), y (n, dy) float32 .npy files sharing a LATENT-d signal plus unit noise, written in chunks
    (a COCO-size x is 9.3 GB: it never exists in memory). Reused when already there."""
    out = folder / f"{size.name}-{size.n}x{size.dx}x{size.dy}"
    if (out / "done").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ax = (rng.standard_normal((LATENT, size.dx)) / np.sqrt(LATENT)).astype(np.float32)
    ay = (rng.standard_normal((LATENT, size.dy)) / np.sqrt(LATENT)).astype(np.float32)
    scale = np.linspace(3, 0.1, LATENT, dtype=np.float32)  # distinct canonical correlations
    xm = np.lib.format.open_memmap(out / "x.npy", mode="w+", dtype=np.float32, shape=(size.n, size.dx))
    ym = np.lib.format.open_memmap(out / "y.npy", mode="w+", dtype=np.float32, shape=(size.n, size.dy))
    for s in range(0, size.n, CHUNK):
        m = min(CHUNK, size.n - s)
        z = rng.standard_normal((m, LATENT), dtype=np.float32) * scale
        xm[s : s + m] = z @ ax + rng.standard_normal((m, size.dx), dtype=np.float32)
        ym[s : s + m] = z @ ay + rng.standard_normal((m, size.dy), dtype=np.float32)
    xm.flush(), ym.flush()
    del xm, ym
    (out / "done").write_text("")
    return out


# ------------------------------------------------------------------------------ worker side (subprocess)
def vm_hwm() -> int:
    """Peak resident set of this process in bytes (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def canon_corrs(zx: np.ndarray, zy: np.ndarray) -> list[float]:
    """Correlation of each pair of canonical variates (n, k): comparable across libraries."""
    zx, zy = zx - zx.mean(0), zy - zy.mean(0)
    num = (zx * zy).sum(0)
    return [float(abs(v)) for v in num / np.sqrt((zx * zx).sum(0) * (zy * zy).sum(0))]


def gemm_rates(reps: int = 3) -> dict:
    """Best-of-``reps`` float32 rates in GFLOP/s: square 4096 GEMM (2 n^3) and SYRK on a 16384 x 4096 block
    (n d^2 useful flops, half a GEMM's)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, 4096), dtype=np.float32)
    blk = rng.standard_normal((CHUNK, 4096), dtype=np.float32)
    best = {"gemm": 1e9, "syrk": 1e9}
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ a
        best["gemm"] = min(best["gemm"], time.perf_counter() - t0)  # noqa: E702
        t0 = time.perf_counter()
        blk.T @ blk
        best["syrk"] = min(best["syrk"], time.perf_counter() - t0)  # noqa: E702
    return {"gemm_gflops": 2 * 4096**3 / best["gemm"] / 1e9, "syrk_gflops": CHUNK * 4096**2 / best["syrk"] / 1e9}


def fit_ours(x, y, device: str = "cpu"):
    from cca_bench.methods.cca import RegularizedCCA

    m = RegularizedCCA(n_components=K, reg=REG, device=device).fit(x, y)
    return lambda: list(map(float, m.canonical_correlations_[:10]))


def fit_ours_cuda(x, y):
    """The same fit with the covariance products and the solve in torch on the GPU (chunks copied there)."""
    return fit_ours(x, y, device="cuda")


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def fit_numpy(x, y):
    """The plain reference: centred in-memory copies, X.T @ X, Cholesky whitening, SVD."""
    import scipy.linalg as sl

    x, y = np.asarray(x), np.asarray(y)
    xc, yc = x - x.mean(0), y - y.mean(0)
    n = len(x) - 1
    cxx, cyy, cxy = ((a.T @ b).astype(np.float64) / n for a, b in ((xc, xc), (yc, yc), (xc, yc)))
    for c in (cxx, cyy):
        c[np.diag_indices_from(c)] += REG * np.linalg.eigvalsh(c)[-1]
    lx, ly = np.linalg.cholesky(cxx), np.linalg.cholesky(cyy)
    w = sl.solve_triangular(ly, sl.solve_triangular(lx, cxy, lower=True).T, lower=True).T
    s = np.linalg.svd(w, compute_uv=False)
    return lambda: list(map(float, s[:10]))


def fit_cca_zoo(x, y):
    from cca_zoo.linear import RidgeCCA

    x, y = np.asarray(x), np.asarray(y)
    m = RidgeCCA(n_components=K, shrinkage=REG).fit([x, y])
    return lambda: canon_corrs(*m.transform([x, y]))[:10]


def fit_pyrcca(x, y):
    import rcca
    import scipy.linalg

    def eigh(a, b=None, eigvals=None, **kw):  # SciPy >= 1.14 renamed eigvals= to subset_by_index=
        return scipy.linalg.eigh(a, b, subset_by_index=eigvals, **kw)

    rcca.rcca.eigh = eigh  # patched in this process only; site-packages is not edited
    x, y = np.asarray(x), np.asarray(y)
    m = rcca.CCA(kernelcca=False, reg=REG * len(x), numCC=K, verbose=False)
    m.train([x - x.mean(0), y - y.mean(0)])
    return lambda: sorted(map(float, np.abs(m.cancorrs)), reverse=True)[:10]


def fit_sklearn(x, y):
    from sklearn.cross_decomposition import CCA

    x, y = np.asarray(x), np.asarray(y)
    m = CCA(n_components=8, max_iter=500).fit(x, y)
    return lambda: canon_corrs(*m.transform(x, y))


FITS = {
    "ours": fit_ours,
    "ours_cuda": fit_ours_cuda,
    "numpy": fit_numpy,
    "cca_zoo": fit_cca_zoo,
    "pyrcca": fit_pyrcca,
    "sklearn": fit_sklearn,
}
# imported before the clock starts: a fit's time should not include a library's first import
IMPORTS = {
    "ours": ("torch", "scipy.sparse.linalg", "cca_bench.methods.cca"),
    "numpy": ("scipy.linalg",),
    "cca_zoo": ("cca_zoo.linear",),
    "pyrcca": ("rcca",),
    "sklearn": ("sklearn.cross_decomposition",),
}
IMPORTS["ours_cuda"] = IMPORTS["ours"]


def worker_fit(method: str, data: Path) -> dict:
    x = np.load(data / "x.npy", mmap_mode="r")
    y = np.load(data / "y.npy", mmap_mode="r")
    import importlib

    for module in IMPORTS[method]:
        importlib.import_module(module)
    rates = gemm_rates() if method == "ours" else {}
    if method == "ours_cuda":  # the CUDA context is created before the clock starts, like an import
        import torch

        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
    base = vm_hwm()
    t0 = time.perf_counter()
    corrs = FITS[method](x, y)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_rss": vm_hwm(), "base_rss": base, "corrs": corrs(), **rates}


def reference_ranks(ims, txt, image_index):
    """The reference evaluation scripts (Kiros et al. / VSE++ ``i2t``, ``t2i``): per query, score the whole
    gallery and argsort it."""
    r_i2t = np.empty(len(ims), dtype=np.int64)
    for i in range(len(ims)):
        inds = np.argsort(ims[i] @ txt.T)[::-1]
        r_i2t[i] = min(np.where(inds == j)[0][0] for j in np.flatnonzero(image_index == i))
    r_t2i = np.empty(len(txt), dtype=np.int64)
    for i in range(len(ims)):  # VSE++ t2i: the captions of one image at a time
        caps = np.flatnonzero(image_index == i)
        d = txt[caps] @ ims.T
        for row, j in zip(d, caps):
            r_t2i[j] = np.where(np.argsort(row)[::-1] == i)[0][0]
    return r_i2t, r_t2i


def _seconds(fn, reps: int = 1):
    """(result of the last call, best wall time of ``reps`` calls)."""
    best = 1e9
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def _traced_peak(fn) -> int:
    """Peak bytes numpy and Python allocated during ``fn()`` (a separate, slower run: tracing costs time)."""
    import tracemalloc

    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _gemm(pi: np.ndarray, pt: np.ndarray, device: str | None):
    """One similarity GEMM ``pi @ pt.T``: numpy, or torch on ``device`` (inputs already there, synchronised)."""
    if not device:
        return lambda: pi @ pt.T
    import torch

    a, b = torch.from_numpy(pi).to(device), torch.from_numpy(pt).to(device)

    def run():
        out = a @ b.T
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        return out

    return run


def worker_eval(n_img: int, per_image: int, reference: bool, device: str | None = None) -> dict:
    """COCO-5k-shaped evaluation: one similarity GEMM vs our ranks vs the per-query argsort loop; with
    ``device`` (e.g. "cuda") the GEMM and ``metrics.ranks`` run in torch there."""
    from cca_bench.metrics import prepare, ranks, summarize

    rng = np.random.default_rng(0)
    ims = rng.standard_normal((n_img, K), dtype=np.float32)
    image_index = np.repeat(np.arange(n_img), per_image)
    txt = ims[image_index] + 2.0 * rng.standard_normal((len(image_index), K), dtype=np.float32)
    pi, pt = prepare(ims, "cosine"), prepare(txt, "cosine")
    gemm_fn = _gemm(pi, pt, device)
    gemm_fn()  # warm-up (CUDA context, kernels)
    _, gemm = _seconds(gemm_fn, 3)
    rank = lambda: ranks(ims, txt, image_index, "optimistic", device=device)  # noqa: E731  (integer ranks, as the
    # reference's argsort gives on these untied scores; the tie counts cost the same under every rule)
    ours, ours_s = _seconds(rank, 3)
    name = None
    if device and device.startswith("cuda"):
        import torch

        name = f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    out = {
        "gemm_s": gemm,
        "ours_s": ours_s,
        "ours_peak": _traced_peak(rank),
        "device": device or "cpu",
        "device_name": name,
        "n_img": n_img,
        "n_txt": len(txt),
        "ours_metrics": [summarize(r) for r in ours],
    }
    if reference:
        ref, ref_s = _seconds(lambda: reference_ranks(pi, pt, image_index))
        out.update(
            ref_s=ref_s,
            ref_metrics=[summarize(r) for r in ref],
            identical=all((a == b).all() for a, b in zip(ours, ref)),
        )
    return out


# ------------------------------------------------------------------------------ driver side
def run_worker(args: list[str], timeout: float, package_root: Path = ROOT) -> dict:
    """One worker subprocess; its last stdout line is its JSON result. A timeout or crash is a result too."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--package-root", str(package_root), "--worker", *args]
    env = dict(os.environ, PYTHONPATH=str(package_root))
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s (killed)"}
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"failed (exit {p.returncode}): {tail[:200]}", "wall": time.perf_counter() - t0}
    return json.loads(p.stdout.strip().splitlines()[-1])


def bound_seconds(size: Size, gemm_gflops: float) -> float:
    """Covariance-GEMM lower bound: n (dx + dy)^2 useful flops (SYRK for Cxx, Cyy; GEMM for Cxy) at the
    machine's square-GEMM rate."""
    return size.n * (size.dx + size.dy) ** 2 / (gemm_gflops * 1e9)


def memory_budget(size: Size, base_rss: int) -> int:
    """Target peak: the process before the fit + the float32 input + 4 (dx+dy)^2 float64 + one float32 chunk."""
    d = size.dx + size.dy
    return base_rss + 4 * size.n * d + 4 * d * d * 8 + 4 * CHUNK * d


def plan(key: str, methods: set[str] | None, gpu: bool) -> tuple[str, ...]:
    """The methods run at size ``key``: PLAN's, plus ``ours_cuda`` beside ``ours`` when a GPU is present,
    kept to ``methods`` when given."""
    names = PLAN[key] + (("ours_cuda",) if gpu and key != "sklearn" else ())
    return tuple(m for m in names if methods is None or m in methods)


def fit_rows(
    key: str, size: Size, data: Path, timeout: float, before: Path | None, methods: tuple[str, ...]
) -> list[dict]:
    rows = []
    for method in methods:
        res = run_worker(["fit", method, str(data)], timeout if not method.startswith("ours") else 3600)
        rows.append({"size": size, "method": method, **res})
        print(f"  {size.name} {method}: {res.get('seconds', res.get('error'))}", file=sys.stderr, flush=True)
    if before is not None and key == "flickr30k":
        res = run_worker(["fit", "ours", str(data)], 3600, package_root=before)
        rows.append({"size": size, "method": "ours (before)", **res})
    return rows


def gb(b: float) -> str:
    return f"{b / 2**30:.2f} GB"


def ours_by_size(rows: list[dict]) -> dict:
    """Our CPU fit per size name (the row every other row of that size is compared with)."""
    return {r["size"].name: r for r in rows if r["method"] == "ours" and "seconds" in r}


def fit_table(rows: list[dict]) -> str:
    ours = ours_by_size(rows)
    lines = [
        "| size (n x dx + dy) | method | fit s | x ours | x covariance-GEMM bound | peak RSS | "
        "peak / target | max abs diff of first 10 canonical corr. vs ours |",
        "|---" * 8 + "|",
    ]
    for r in rows:
        s, o = r["size"], ours.get(r["size"].name)
        shape = f"{s.name} ({s.n:,} x {s.dx} + {s.dy})"
        if "seconds" not in r:
            lines.append(f"| {shape} | {r['method']} | {r['error']} | | | | | |")
            continue
        rel = f"{r['seconds'] / o['seconds']:.2f}" if o else ""
        bound = f"{r['seconds'] / bound_seconds(s, o['gemm_gflops']):.2f}" if o else ""
        target = f"{r['peak_rss'] / memory_budget(s, r['base_rss']):.2f}"
        diff = f"{max(abs(a - b) for a, b in zip(r['corrs'], o['corrs'])):.1e}" if o else ""
        lines.append(
            f"| {shape} | {r['method']} | {r['seconds']:.1f} | {rel} | {bound} | {gb(r['peak_rss'])} "
            f"| {target} | {diff} |"
        )
    return "\n".join(lines)


def eval_section(ev: dict, before: dict | None) -> str:
    lines = [
        f"{ev['n_img']:,} images x {ev['n_txt']:,} captions, k = {K}, cosine, both directions.",
        "",
        "| what | s | x one similarity GEMM | peak traced memory |",
        "|---|---|---|---|",
        f"| one similarity GEMM ({ev['n_img']} x {ev['n_txt']}) | {ev['gemm_s']:.3f} | 1.00 | |",
        f"| ours: `metrics.ranks` (2,048-image blocks) | {ev['ours_s']:.3f} | {ev['ours_s'] / ev['gemm_s']:.2f} "
        f"| {gb(ev['ours_peak'])} |",
    ]
    if before and "ours_s" in before:
        lines.append(
            f"| before: `metrics.ranks` of the --before checkout | {before['ours_s']:.3f} | "
            f"{before['ours_s'] / before['gemm_s']:.2f} (its own GEMM) | {gb(before['ours_peak'])} |"
        )
    if "ref_s" in ev:
        lines.append(
            f"| reference scripts: argsort per query | {ev['ref_s']:.2f} | {ev['ref_s'] / ev['gemm_s']:.1f} "
            "| one query's scores (not traced: tracing slows its Python loop) |"
        )
        lines += [
            "",
            f"Reference / ours: **{ev['ref_s'] / ev['ours_s']:.1f}x**. Identical ranks in both "
            f"directions: {ev['identical']}.",
        ]
    return "\n".join(lines)


def targets(rows: list[dict], ev: dict) -> str:
    out = []
    for r in rows:
        if r["method"] == "ours" and "seconds" in r and r["size"].dx == 4096:
            ratio = r["seconds"] / bound_seconds(r["size"], r["gemm_gflops"])
            mem = r["peak_rss"] / memory_budget(r["size"], r["base_rss"])
            out.append(
                f"- {r['size'].name}: fit {ratio:.2f}x the covariance-GEMM bound (target <= 1.5: "
                f"{'met' if ratio <= 1.5 else 'missed'}); peak RSS {mem:.2f}x the memory target "
                f"({'met' if mem <= 1 else 'missed'})."
            )
    e = ev["ours_s"] / ev["gemm_s"]
    out.append(
        f"- evaluation: {e:.2f}x one similarity GEMM (target <= 2: {'met' if e <= 2 else 'missed'})"
        + (
            f"; {ev['ref_s'] / ev['ours_s']:.0f}x faster than the argsort loop (target >= 20: "
            f"{'met' if ev['ref_s'] / ev['ours_s'] >= 20 else 'missed'})"
            if "ref_s" in ev
            else ""
        )
        + "."
    )
    return "\n".join(out)


def gpu_section(rows: list[dict], ev_gpu: dict | None) -> str:
    """Fit and evaluation on the GPU beside the CPU rows, or a sentence saying no GPU was present."""
    cuda = [r for r in rows if r["method"] == "ours_cuda"]
    if not cuda and not ev_gpu:
        return (
            "No GPU was available for this run: the torch CUDA paths (covariance products in "
            "`linalg._products_torch`, the similarity GEMM in `metrics.ranks(device=...)`) are tested on the "
            "CPU through the same code, but their GPU speed-up is not measured here."
        )
    lines = [
        f"GPU: {(ev_gpu or {}).get('device_name') or 'a CUDA device'}. The `ours_cuda` rows of the fit "
        'table run the same fit with `device="cuda"` (chunks of the memory-mapped inputs copied to the GPU); '
        "their 'x ours' column is GPU time / CPU time.",
        "",
    ]
    ours = ours_by_size(rows)
    for r in cuda:
        o = ours.get(r["size"].name)
        if "seconds" in r and o:
            lines.append(
                f"- {r['size'].name}: fit {r['seconds']:.1f} s on the GPU against {o['seconds']:.1f} s on "
                f"the CPU ({o['seconds'] / r['seconds']:.1f}x faster); canonical correlations within "
                f"{max(abs(a - b) for a, b in zip(r['corrs'], o['corrs'])):.1e}."
            )
        else:
            lines.append(f"- {r['size'].name}: {r.get('error', 'no CPU row to compare with')}")
    if ev_gpu and "ours_s" in ev_gpu:
        lines.append(
            f"- evaluation ({ev_gpu['n_img']:,} x {ev_gpu['n_txt']:,}): one similarity GEMM "
            f'{ev_gpu["gemm_s"] * 1e3:.1f} ms, `metrics.ranks(device="cuda")` {ev_gpu["ours_s"] * 1e3:.1f} ms '
            f"({ev_gpu['ours_s'] / ev_gpu['gemm_s']:.2f}x one GEMM)."
        )
    elif ev_gpu:
        lines.append(f"- evaluation: {ev_gpu.get('error')}")
    return "\n".join(lines)


def report(rows: list[dict], ev: dict, ev_before: dict | None, quick: bool, ev_gpu: dict | None = None) -> str:
    o = next((r for r in rows if r["method"] == "ours" and "gemm_gflops" in r), {})
    return "\n".join(
        [
            "# cca_bench performance report",
            "",
            f"Written by `python benchmarks/bench_cca.py{' --quick' if quick else ''}` on "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs, numpy {np.__version__}. "
            "Data: float32, a shared 128-d latent plus unit noise (see `make_data`). Each method ran in its own "
            "subprocess; fit time excludes loading; peak RSS is the subprocess's VmHWM (inputs are memory-mapped "
            "`.npy` files: the pages read count as resident).",
            "",
            f"Machine rates measured in the first `ours` worker just before its fit (each size's bound uses the rate "
            f"measured in its own `ours` worker): float32 GEMM "
            f"{o.get('gemm_gflops', float('nan')):.0f} GFLOP/s, SYRK on a 16,384 x 4,096 block "
            f"{o.get('syrk_gflops', float('nan')):.0f} GFLOP/s (useful flops). The covariance-GEMM bound is "
            "n (dx + dy)^2 flops at the GEMM rate. The memory target is the process before the fit + the float32 "
            "input + 4 (dx + dy)^2 float64 matrices + one float32 chunk.",
            "",
            "## Fit",
            "",
            fit_table(rows),
            "",
            "## Evaluation (COCO 5k shape)",
            "",
            eval_section(ev, ev_before),
            "",
            "## Targets",
            "",
            targets(rows, ev),
            "",
            "## GPU",
            "",
            gpu_section(rows, ev_gpu),
            "",
        ]
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, for checking that everything runs")
    p.add_argument("--sizes", default="sklearn,flickr30k,coco", help="comma-separated: sklearn, flickr30k, coco")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/cca_bench_data"), help="generated .npy data")
    p.add_argument("--timeout", type=float, default=None, help="seconds per competitor fit (default 600; quick 60)")
    p.add_argument("--before", type=Path, help="a checkout whose cca_bench is timed too (before/after)")
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated subset of: " + ", ".join(FITS) + " (default: all that PLAN runs at each "
        "size; ours_cuda joins ours when a GPU is present)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "REPORT.md")
    p.add_argument("--package-root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sys.path.insert(0, str(args.package_root))
    if args.worker:
        kind, *rest = args.worker
        res = (
            worker_fit(rest[0], Path(rest[1]))
            if kind == "fit"
            else worker_eval(*map(int, rest[:2]), rest[2] == "1", rest[3] if len(rest) > 3 else None)
        )
        print(json.dumps(res))
        return 0
    sizes = QUICK if args.quick else FULL
    timeout = args.timeout or (60 if args.quick else 600)
    methods = set(args.methods.split(",")) if args.methods else None
    unknown = sorted((methods or set()) - set(FITS))
    if unknown:
        p.error(f"--methods: unknown {', '.join(unknown)} (known: {', '.join(FITS)})")
    gpu = cuda_available()
    rows = []
    for key in args.sizes.split(","):
        todo = plan(key, methods, gpu)
        if not todo:
            continue
        data = make_data(sizes[key], args.workdir)
        rows += fit_rows(key, sizes[key], data, timeout if key != "sklearn" else min(timeout, 120), args.before, todo)
    shape = ["1000", "5"] if args.quick else ["5000", "5"]
    ev = run_worker(["eval", *shape, "1"], 1800)
    ev_before = run_worker(["eval", *shape, "0"], 600, args.before) if args.before else None
    ev_gpu = run_worker(["eval", *shape, "0", "cuda"], 600) if gpu else None
    args.out.write_text(report(rows, ev, ev_before, args.quick, ev_gpu))
    if args.out.name == "REPORT.md":  # the other benchmarks' reports follow it (benchmarks/report_index.py)
        from report_index import fold

        args.out.write_text(fold(args.out))
    print(f"written {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
