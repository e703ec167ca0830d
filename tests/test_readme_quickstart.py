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


def test_the_tie_rule_table_of_protocols_md_equals_the_current_code(quickstart):
    """docs/protocols.md's table of the three tie rules (scripts/results_tables.py ``ties``) is what the quickstart's
    model scores now under each rule. Planted bug caught: one cell of the table edited (Image Search R@1 under
    the optimistic rule 7.9 -> 7.8)."""
    tables, record = quickstart
    root = Path(record["_file"]).parents[1]
    roots = ["--data-root", record["config"]["data_root"], "--results-root", str(root), "-q"]
    for row in tables.TIES[1:]:
        assert main([*row.run, *roots]) == 0
    runs, _ = load_runs(root)
    by_rule = {r["ties"]: r for r in runs}
    doc = (ROOT / "docs" / "protocols.md").read_text(encoding="utf-8")
    rendered = tables.render(
        tables.TABLES["ties"], [by_rule[rule] for rule in ("expected", "optimistic", "pessimistic")]
    )
    assert tables.block(doc, "ties") == rendered


def test_check_fails_when_a_generated_number_is_edited(quickstart, tmp_path, monkeypatch, capsys):
    """``results_tables.py --check`` against a stored run: exit 0 on README.md as committed, exit 1 (and no write)
    once one digit of a generated block is edited. Planted bug caught: ``_rewrite`` rendering the blocks but not
    putting them into the text it compares (every edited number then passes)."""
    tables, record = quickstart
    manifest = {n: {"rows": [{"run_id": record["run_id"]}]} for n in ("quickstart", "quickstart-prose")}
    results_root = Path(record["_file"]).parents[1]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    assert tables._rewrite(list(manifest), manifest, results_root, check=True) == 0
    block = tables.block(readme, "quickstart-prose")
    edited = re.sub(r"\d(?=\])", lambda m: str((int(m.group(0)) + 1) % 10), block, count=1)
    assert edited != block
    (tmp_path / "README.md").write_text(readme.replace(block, edited), encoding="utf-8")
    assert tables._rewrite(list(manifest), manifest, results_root, check=True) == 1
    assert "would change: README.md" in capsys.readouterr().out
    assert edited in (tmp_path / "README.md").read_text(encoding="utf-8")  # --check writes nothing
