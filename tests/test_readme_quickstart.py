"""The README's quickstart numbers are what the current code computes (issue 24 item 5: generated, not typed).

The quickstart block and sentence of README.md are written by ``scripts/results_tables.py`` from a stored run;
this test runs the quickstart's two commands (as the README's set-up block gives them) in a fresh root and
renders the same block with the same script: a change of the fit, the evaluation or the resampling that moves a
published value or interval fails here instead of shipping stale numbers."""
import importlib.util
import sys
from pathlib import Path

from cca_bench.__main__ import main
from cca_bench.results import load_runs

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "scripts" / "results_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


def test_readme_quickstart_numbers_equal_the_current_code(tmp_path):
    """Planted bugs caught: one digit of the README's quickstart block or sentence changed (99.8 -> 99.9 in
    R-sum, 111.4 -> 111.5 in its interval), and the bootstrap seed of the intervals changed from 0 to 1 (the
    stored intervals move, the README's do not)."""
    tables = _script()
    row = tables.QUICKSTART
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = f"python -m cca_bench {' '.join(row.generate)} && python -m cca_bench {' '.join(row.run)}"
    assert setup in readme  # the test runs what the README tells a new user to run
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results"), "-q"]
    assert main([*row.generate, *roots]) == 0
    assert main([*row.run, *roots]) == 0
    (record,), bad = load_runs(tmp_path / "results")
    assert not bad
    for name in ("quickstart", "quickstart-prose"):
        assert tables.block(readme, name) == tables.render(tables.TABLES[name], [record]), name
