"""``import cca_bench`` shortens OpenBLAS's idle spin before numpy loads it (cca_bench/__init__.py).

OpenBLAS reads ``OPENBLAS_THREAD_TIMEOUT`` once, when the library loads; its default lets idle worker threads
spin about 0.1 s after every BLAS call, taking the cores from the evaluation's comparisons that follow each
score block's GEMM (benchmarks/REPORT_eval.md). These tests look at the environment at the moment numpy is
first imported, in a fresh interpreter, as the CLI starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Prints the setting as numpy begins to load (the moment OpenBLAS reads it), then imports cca_bench's
# evaluation the way `python -m cca_bench` does.
PROBE = """
import importlib.abc, os, sys
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "numpy":
            print("at numpy:", os.environ.get("OPENBLAS_THREAD_TIMEOUT", "unset"), flush=True)
            sys.meta_path.remove(self)
        return None
sys.meta_path.insert(0, Watch())
import cca_bench
import cca_bench.evaluation
"""


def _probe(env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("at numpy:")]
    assert len(lines) == 1, done.stdout + done.stderr
    return lines[0].split(":", 1)[1].strip()


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env | extra


def test_the_spin_limit_is_set_before_numpy_loads():
    """Planted bugs it caught: the line removed; an import that loads numpy put before it."""
    assert _probe(_env()) == "20"


def test_a_users_own_setting_wins():
    """Planted bug it caught: the setting assigned, not ``setdefault``."""
    assert _probe(_env(OPENBLAS_THREAD_TIMEOUT="24")) == "24"
