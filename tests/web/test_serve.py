"""`python -m cca_bench serve`: starts on a loopback port, answers, stops on Ctrl-C with one line and exit 0."""

import socket
import subprocess
import sys
import urllib.request

import flask  # noqa: F401  (the web extra, in the test extra)
from web_helpers import REPO, running_server


def test_serve_answers_and_stops_cleanly_on_ctrl_c(web_roots):
    with running_server(*web_roots) as (url, proc, lines):
        with urllib.request.urlopen(url + "/") as r:
            assert r.status == 200 and b"shapes" in r.read()
    assert proc.returncode == 0
    assert lines.get(timeout=5) == "stopped\n" and lines.empty()


def test_a_taken_port_is_a_one_line_error(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "cca_bench", "serve", "--port", str(port), "--results-root", str(tmp_path)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={"PYTHONPATH": str(REPO), "PATH": ""},
            timeout=60,
        )
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use (choose another --host or --port)"
    ]
