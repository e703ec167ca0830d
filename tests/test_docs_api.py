"""docs/api.md runs: every python block executes as it stands (the worked example included)."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_its_examples():
    """One block per estimator, the evaluation functions and the worked example. Planted: a page without the
    worked example (its heading removed) fails here."""
    text = "\n".join(BLOCKS)
    for name in (
        "RegularizedCCA",
        "KernelCCA",
        "RidgeMap",
        "Procrustes",
        "PLSSVD",
        "ASIF",
        "DeepCCA",
        "evaluate_retrieval",
        "bootstrap_intervals",
        "paired_test",
        "GridSearchCV",
    ):
        assert f"{name}(" in text, name
    assert "## A worked example" in DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_block_runs(code, capsys):
    """Each block runs in a fresh namespace and prints what it says. Planted: ``paired_test`` taking the
    embeddings tuple without unpacking it (``retrieval_ranks(x)``) fails the paired-test block with a TypeError."""
    exec(compile(code, str(DOC), "exec"), {"__name__": "__docs__"})
