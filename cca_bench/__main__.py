"""``python -m cca_bench``: the command line lives in :mod:`cca_bench.cli` (one module per command)."""

import sys

from cca_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
