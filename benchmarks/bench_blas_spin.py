"""How long OpenBLAS's idle threads should spin: the evaluation's passes against LAPACK's short BLAS bursts.

OpenBLAS reads ``OPENBLAS_THREAD_TIMEOUT`` (log2 of the cycles an idle worker thread spins before it sleeps;
default 28, about 0.1 s) once, when it loads. A long spin takes the cores from the numpy work that follows a
BLAS call (the evaluation compares each score block right after its GEMM); a short one makes the threads sleep
between calls that come in quick bursts (LAPACK's ``eigh`` on a small matrix). ``import cca_bench`` sets 20
unless the user set a value. This benchmark runs each setting in fresh interpreters, interleaved (rounds of
all settings, so a change of load hits them alike), and writes benchmarks/REPORT_blas_spin.md:

- ``fold_counts``: ranks and top-10 lists of a COCO-5k-size evaluation (5,000 x 25,000, k = 128, caption
  noise 4 as ``bench_eval.py --noise 4``), median of 5 calls after one warm-up;
- ``eigh 256``: 200 eigendecompositions of a 256 x 256 symmetric matrix;
- ``eigh 1024``: 3 of a 1024 x 1024 one.

    python benchmarks/bench_blas_spin.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("28", "24", "20", "16")

CHILD = """
import json, os, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import numpy as np
from bench_eval import coco_shape
from cca_bench import metrics
ims, txt, idx = coco_shape(noise=4.0)
metrics.fold_counts(ims, txt, idx, top=10)
fc = []
for _ in range(5):
    t = time.perf_counter(); metrics.fold_counts(ims, txt, idx, top=10); fc.append(time.perf_counter() - t)
rng = np.random.default_rng(0)
a = rng.standard_normal((256, 256)); a = a @ a.T
t = time.perf_counter()
for _ in range(200):
    np.linalg.eigh(a)
e256 = time.perf_counter() - t
b = rng.standard_normal((1024, 1024)); b = b @ b.T
t = time.perf_counter()
for _ in range(3):
    np.linalg.eigh(b)
e1024 = (time.perf_counter() - t) / 3
print(json.dumps({{"fold_counts": float(np.median(fc)), "eigh 256": e256, "eigh 1024": e1024}}))
"""


def run(setting: str) -> dict:
    env = os.environ | {"OPENBLAS_THREAD_TIMEOUT": setting}
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "benchmarks"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "REPORT_blas_spin.md")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from benchmarks import report_section

    load0 = os.getloadavg()
    got = {s: [] for s in SETTINGS}
    for _ in range(args.rounds):
        for s in SETTINGS:
            got[s].append(run(s))
    load1 = os.getloadavg()
    keys = ("fold_counts", "eigh 256", "eigh 1024")
    med = {s: {k: sorted(r[k] for r in got[s])[len(got[s]) // 2] for k in keys} for s in SETTINGS}
    lines = [
        "# OpenBLAS idle spin: the evaluation's passes against LAPACK's short BLAS bursts",
        "",
        f"Written by `python benchmarks/bench_blas_spin.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} CPUs; load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end. Each setting "
        f"in a fresh interpreter, {args.rounds} interleaved rounds; the median of the rounds (seconds), and in "
        "brackets the ratio to the OpenBLAS default (28).",
        "",
        "| OPENBLAS_THREAD_TIMEOUT | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for s in SETTINGS:
        cells = [f"{med[s][k]:.3f} ({med[s][k] / med['28'][k]:.2f}x)" for k in keys]
        lines.append(f"| {s}{' (OpenBLAS default)' if s == '28' else ''} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "`fold_counts`: ranks and top-10 lists at COCO 5k (5,000 x 25,000, k = 128, caption noise 4), median of 5 "
        "calls per interpreter; `eigh 256`: 200 eigendecompositions of a 256 x 256 symmetric matrix; "
        "`eigh 1024`: one of a 1024 x 1024 matrix (mean of 3). `import cca_bench` sets 20 before numpy loads "
        "unless the user set a value (cca_bench/__init__.py).",
    ]
    return report_section.write(args.out, lines)


if __name__ == "__main__":
    sys.exit(main())
