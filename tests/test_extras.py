"""Optional dependencies: every import of one goes through cca_bench.extras.require, and a missing one is one line
naming the extra to install (simulated by blocking the module's import)."""

import ast
import configparser
import sys
from pathlib import Path

import numpy as np
import pytest

from cca_bench import extras
from cca_bench.__main__ import main
from cca_bench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_no_optional_module_is_imported_outside_require():
    """An ``import flask`` (or ``from pyarrow import ...``) anywhere in the package would crash with a traceback on a
    light install. Planted: a plain ``import faiss`` restored in search._faiss is listed here."""
    found = []
    # the web app's modules import Flask freely: they run only inside the app that create_app builds after its
    # require("flask", ...), the one way in (serve and the tests go through it)
    for path in (p for p in (ROOT / "cca_bench").rglob("*.py") if "web" not in p.relative_to(ROOT).parts[1:-1]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in extras.EXTRAS]
    assert found == []


def test_every_extra_named_exists_in_setup_cfg():
    """The extras the messages name are the ones setup.cfg defines, each listing the distribution named.
    Planted: renaming setup.cfg's ``formats`` extra fails here."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    defined = cfg["options.extras_require"]
    for extra, dist in extras.EXTRAS.values():
        assert extra in defined, extra
        assert dist.split("[")[0] in defined[extra], (extra, dist)
    assert {"builtin", "onnx", "formats", "plots", "web", "faiss", "dask", "sentence", "all"} <= set(defined)


def test_missing_module_is_one_line_naming_the_extra(monkeypatch):
    """sys.modules[name] = None makes ``import name`` raise ImportError, as on a light install. Planted: require
    catching ImportError and re-raising it bare gives an ImportError, not this UserError."""
    from cca_bench import search

    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(UserError) as e:
        search.FaissIndex(np.eye(3, dtype=np.float32))
    assert str(e.value) == "FAISS indexes needs faiss-cpu: pip install 'cca_bench[faiss]' (or pip install 'faiss-cpu')"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    from cca_bench import plots

    with pytest.raises(UserError, match=r"pip install 'cca_bench\[plots\]'"):
        plots.recall_figure({"image_annotation": [1.0], "image_search": [1.0]}, "t")


def test_a_command_needing_a_missing_extra_says_which_in_one_line(monkeypatch, tmp_path, capsys):
    """``serve`` without Flask: exit 2 and one line naming the web extra, no traceback. Planted: web's create_app
    importing flask directly gives a ModuleNotFoundError traceback here."""
    monkeypatch.setitem(sys.modules, "flask", None)
    code = main(["serve", "--data-root", str(tmp_path / "d"), "--results-root", str(tmp_path / "r"), "--port", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    line = "error: the web app needs flask: pip install 'cca_bench[web]' (or pip install 'flask')"
    assert code == 2 and err == [line]


def test_import_cca_bench_is_light():
    """``import cca_bench`` imports neither numpy, torch nor scikit-learn, nor any method; a public name imports its
    module on first use.
    Planted: an eager ``from cca_bench.methods.cca import RegularizedCCA`` in __init__ fails the first assert."""
    import subprocess

    code = (
        "import sys, cca_bench; heavy = {'numpy', 'torch', 'sklearn', 'scipy', 'cca_bench.methods'} & "
        "set(sys.modules); print(sorted(heavy)); "
        "cca_bench.RegularizedCCA; print('cca_bench.methods.cca' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    ).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True"
    import cca_bench

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        cca_bench.Nope  # noqa: B018
