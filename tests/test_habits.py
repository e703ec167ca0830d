"""Project habits that users rely on: one version, a licence, run records that name their own revision only."""

import configparser
import re
import subprocess
from pathlib import Path

import cca_bench
from cca_bench import results

ROOT = Path(__file__).resolve().parents[1]


def test_version_has_one_source():
    """setup.cfg reads cca_bench/_version.py (re-exported as cca_bench.__version__); no other file of the package
    or its metadata states a version.
    Planted: a literal ``version = 0.2.0`` back in setup.cfg fails the first assert."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["version"] == "attr: cca_bench._version.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", cca_bench.__version__)
    assert f"## {cca_bench.__version__} " in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    stated = [
        p
        for p in [*(ROOT / "cca_bench").rglob("*.py"), ROOT / "CITATION.cff", ROOT / "pyproject.toml"]
        if p.name != "_version.py"
        and re.search(r"(^|\n)\s*(__version__|version)\s*[=:]\s*['\"]?\d", p.read_text(encoding="utf-8"))
    ]
    assert stated == []
    assert "the cca_bench authors" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert cfg["metadata"]["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")


def test_versions_lists_what_shapes_a_result():
    """Planted: dropping scikit-learn from versions() fails here."""
    v = results.versions()
    assert v["cca_bench"] == cca_bench.__version__
    assert {"numpy", "scipy", "torch", "scikit-learn", "onnxruntime"} <= set(v)


def _repo(where: Path, setup_cfg: str | None) -> None:
    where.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(where)], check=True)
    if setup_cfg is not None:
        (where / "setup.cfg").write_text(setup_cfg)
    (where / "x").write_text("x")
    subprocess.run(["git", "-C", str(where), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(where), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], check=True
    )


def test_git_revision_only_from_the_projects_own_checkout(tmp_path, monkeypatch):
    """A package installed inside an unrelated repository (a venv in someone's project) records no revision; in
    this project's checkout (top level = the package's parent, with its setup.cfg) it records HEAD. Planted: the
    old ``git rev-parse HEAD`` from the package folder records the unrelated repository's HEAD here."""
    unrelated = tmp_path / "other"
    _repo(unrelated, None)
    (unrelated / "venv" / "site-packages" / "cca_bench").mkdir(parents=True)
    monkeypatch.setattr(results, "__file__", str(unrelated / "venv" / "site-packages" / "cca_bench" / "results.py"))
    assert results.git_revision() is None
    own = tmp_path / "own"
    _repo(own, "[metadata]\nname = cca_bench\n")
    (own / "cca_bench").mkdir()
    monkeypatch.setattr(results, "__file__", str(own / "cca_bench" / "results.py"))
    head = subprocess.run(["git", "-C", str(own), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert results.git_revision() == head
    (own / "setup.cfg").write_text("[metadata]\nname = something_else\n")
    assert results.git_revision() is None
