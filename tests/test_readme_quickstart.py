"""The README's quickstart numbers are what the current code computes (issue 24 item 5: generated, not typed).

The quickstart block and sentence of README.md are written by ``scripts/results_tables.py`` from a stored run;
these tests run the quickstart's two commands (as the README's set-up block gives them) once in a fresh root and
render the same block with the same script: a change of the fit, the evaluation, the tie rule or the resampling
that moves a published value or interval fails here instead of shipping stale numbers."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from cca_bench.__main__ import main
from cca_bench.results import config_name, load_runs

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "scripts" / "results_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """(the results_tables module, the run record the quickstart's two commands store in a fresh root)."""
    tables, base = _script(), tmp_path_factory.mktemp("quickstart")
    roots = ["--data-root", str(base / "data"), "--results-root", str(base / "results"), "-q"]
    assert main([*tables.QUICKSTART.generate, *roots]) == 0
    assert main([*tables.QUICKSTART.run, *roots]) == 0
    (record,), bad = load_runs(base / "results")
    assert not bad
    return tables, record


def test_readme_quickstart_numbers_equal_the_current_code(quickstart):
    """Planted bugs caught: one digit of the README's quickstart block changed (R-sum 99.8 -> 99.9), and the
    bootstrap seed of the intervals changed from 0 to 1 (the stored intervals move, the README's do not)."""
    tables, record = quickstart
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = tables.QUICKSTART
    setup = f"python -m cca_bench {' '.join(row.generate)} && python -m cca_bench {' '.join(row.run)}"
    assert setup in readme  # the test runs what the README tells a new user to run
    for name in ("quickstart", "quickstart-prose"):
        assert tables.block(readme, name) == tables.render(tables.TABLES[name], [record]), name


def test_the_help_examples_name_the_run_the_quickstart_stores(quickstart):
    """The --help examples of `significance` and `compare --baseline` name the quickstart's run by its
    configuration name; it must be the one run_benchmark stores (planted: the old example's
    ``glove50_efficientnet`` without the image encoder's ``_lite0``, which named no run)."""
    from cca_bench.cli import compare, significance

    _, record = quickstart
    named = re.findall(r"\bcca__\S+", significance.EPILOG + " " + compare.EPILOG)
    assert len(named) == 2 and set(named) == {config_name(record)}
