"""Helpers of the web app's tests: the real server in a subprocess (imported by name; tests/web is on sys.path)."""

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_server(data_root, results_root, timeout: float = 60, host: str = "127.0.0.1"):
    """``python -m cca_bench serve`` on a free loopback port in a subprocess: yields (base URL, process, queue of
    its stderr lines after the first); stops it with Ctrl-C (SIGINT) on exit."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cca_bench",
            "serve",
            "--host",
            host,
            "--port",
            "0",
            "-q",
            "--data-root",
            str(data_root),
            "--results-root",
            str(results_root),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
        assert line.startswith(f"serving http://{f'[{host}]' if ':' in host else host}:"), line
        yield line.split()[1].rstrip("/"), proc, lines
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
