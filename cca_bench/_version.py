"""The package version: its one source (setup.cfg reads it, ``cca_bench.__version__`` re-exports it)."""

__version__ = "0.2.4"
