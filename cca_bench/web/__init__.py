"""Local web app: leaderboard, run pages, qualitative examples and search over the data and results roots.

``python -m cca_bench serve`` starts it on 127.0.0.1:8000. It is a thin layer: tables come from
:mod:`cca_bench.results` (the frame ``compare`` renders), figures from :mod:`cca_bench.plots`, retrieval from
:mod:`cca_bench.search` and :mod:`cca_bench.metrics`; :mod:`cca_bench.web.library` is its read-only view of
the roots, :mod:`cca_bench.web.app` its routes, ``templates/`` (Jinja2, autoescaped) and ``static/`` its pages.

Why Flask: every request is synchronous CPU work (numpy, torch, PIL) for one local user, so an async
framework buys nothing here; Flask 3 is small and well kept, escapes templates by default, limits uploads
with one setting (``MAX_CONTENT_LENGTH``), parses multipart uploads without an extra package, ships the test
client the route tests use, and Werkzeug's threaded server needs no separate ASGI server. It is the ``web``
extra (``pip install -e ".[web]"``).
"""

from __future__ import annotations

from pathlib import Path

from cca_bench.errors import UserError
from cca_bench.extras import require


def create_app(data_root: Path, results_root: Path, device: str = "auto", host: str = "127.0.0.1"):
    """The Flask application over the two roots (nothing is written under them). Served on a loopback
    ``host``, it answers only requests addressed to a loopback name (localhost, 127.0.0.0/8, ::1)."""
    require("flask", "the web app")
    require("matplotlib", "the web app's figures")
    from cca_bench.web.app import build_app

    return build_app(Path(data_root), Path(results_root), device, host)


def serve(app, host: str = "127.0.0.1", port: int = 8000, log=lambda msg: None, quiet: bool = False) -> None:
    """Serve ``app`` with Werkzeug's threaded server until Ctrl-C, then log one line and return.

    The socket is bound here, so a taken port or an unknown host is one UserError (Werkzeug would print its
    own lines and exit)."""
    import logging
    import socket

    from werkzeug.serving import make_server

    from cca_bench.web.app import is_loopback

    if quiet:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # --host ::1 binds an IPv6 socket
    try:
        sock = socket.create_server((host.strip("[]"), port), family=family)
    except (OSError, OverflowError) as e:
        raise UserError(f"cannot listen on {host}:{port}: {_reason(e)} (choose another --host or --port)") from None
    _stop_on_signals()
    with sock:
        server = make_server(host.strip("[]"), sock.getsockname()[1], app, threaded=True, fd=sock.fileno())
        shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
        log(f"serving http://{shown}:{server.port}/ (Ctrl-C stops)")
        if not is_loopback(host):
            log(f"warning: listening on {host}: whoever reaches this machine can read the results and datasets")
        try:
            server.serve_forever()  # Werkzeug's returns on Ctrl-C
        finally:
            server.server_close()
    log("stopped")


def _reason(e: Exception) -> str:
    """The OS's words for a failed bind, without the "(while attempting to bind ...)" that Python appends."""
    return str(getattr(e, "strerror", None) or e).split(" (while attempting")[0]


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop the server, also where a shell started it with SIGINT ignored."""
    import signal
    import threading

    def stop(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
