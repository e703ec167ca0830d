"""`serve`: the local web app over DATA and RESULTS."""

from __future__ import annotations

from cca_bench.cli.common import add_common, log, port

HELP = "local web app: leaderboard, run pages, qualitative examples, search"
DESCRIPTION = (
    "Serve the leaderboard, run pages, qualitative examples and search over DATA and RESULTS (read-only) "
    'until Ctrl-C. Needs the web extra: pip install -e ".[web]"'
)


def add_arguments(p, argv: list[str]) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    add_common(p)  # its -q also silences the request log


def run(args) -> None:
    from cca_bench.config import data_root, results_root
    from cca_bench.web import create_app, serve

    app = create_app(data_root(args.data_root), results_root(args.results_root), args.device, args.host)
    serve(app, args.host, args.port, log=log, quiet=args.quiet)
