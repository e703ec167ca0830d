"""kcca through the command line: generate with --cv over gamma and landmarks, run_benchmark, search, errors."""

import json
from unittest import mock

import pytest

from cca_bench import linalg
from cca_bench.__main__ import main

SMALL = ["-D", "n_train=300", "-D", "n_val=40", "-D", "n_test=60", "-q"]
GEN = ["generate", "kcca", "shapes", "glove50_tinyimage"]


@pytest.fixture
def roots(tmp_path):
    return ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]


def test_generate_cv_run_benchmark_and_search(roots, tmp_path, capsys):
    cv = [
        "--kernel-views",
        "image",
        "--cv",
        "--cv-gamma",
        "1,4",
        "--cv-landmarks",
        "50,120",
        "--cv-reg",
        "0.01,0.1",
        "--cv-components",
        "10",
        "--cv-eig-power",
        "1",
    ]
    with mock.patch.object(linalg, "paired_moments", wraps=linalg.paired_moments) as moments:
        assert main([*GEN, *cv, *SMALL, *roots]) == 0
    assert moments.call_count == 4  # one covariance pass per (gamma, landmarks), reused across reg
    out = capsys.readouterr().out
    assert "CV (8 grid points, by rsum): chose {'gamma_scale':" in out and "image kernel map: rbf nystroem" in out
    name = "kcca__shapes[n_test=60,n_train=300,n_val=40]__glove50_tinyimage"
    report = json.loads((tmp_path / "results" / "cv" / f"{name}.json").read_text())
    assert report["grid"]["gamma_scale"] == [1.0, 4.0] and report["grid"]["landmarks"] == [50, 120]
    assert {(r["gamma_scale"], r["landmarks"]) for r in report["rows"]} == {(1, 50), (1, 120), (4, 50), (4, 120)}
    # every searched knob sits on an edge of a two-value grid: each one is reported, printed and in the .md
    assert len(report["edges"]) == 3 and all(f"CV edge of the grid: {e}" in out for e in report["edges"])
    assert "extend --cv-gamma" in " ".join(report["edges"])
    md = (tmp_path / "results" / "cv" / f"{name}.md").read_text()
    assert "edge of the grid" in md and "| gamma_scale |" in md.replace("   ", " ").replace("  ", " ")
    config = json.loads((tmp_path / "results" / "models" / f"{name}.json").read_text())
    assert config["method"] == "kcca" and config["kernel_x"] == {"kind": "nystroem", "kernel": "rbf"}
    assert {k: config["params"][k] for k in report["grid"]} == config["cv"]["chosen"]

    assert main(["run_benchmark", "kcca", "shapes", "val", "glove50_tinyimage", *SMALL, *roots]) == 0
    run = json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text())
    assert run["metrics"] == report["best"]["metrics"]  # the saved model reproduces its CV row exactly
    assert run["params_label"].startswith("rbf nystroem(image) M=")
    capsys.readouterr()
    assert (
        main(["search", "kcca", "shapes", "glove50_tinyimage", "--text", "a red circle", "-k", "3", *SMALL, *roots])
        == 0
    )
    assert "top 3" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--landmarks", "301"], "landmarks=301 is above the 300 train images"),
        (["--gamma", "0"], "gamma must be positive"),
        (["--gamma", "-1"], "gamma must be positive"),
        (["--gamma-scale", "0"], "gamma_scale must be positive"),
        (["--kernel", "poly", "--kernel-map", "rff"], "rbf kernel only"),
        (["--cv", "--cv-landmarks", "100,400"], "landmarks=400 is above the 300 train images"),
        # the poly kernel's parameters (issue 18 item 8): --degree -1 used to fit and save a model of a non-kernel
        (["--kernel", "poly", "--degree", "0"], "degree (of the poly kernel) must be a whole number >= 1 and <= 10"),
        (["--kernel", "poly", "--degree", "-1"], "degree (of the poly kernel) must be a whole number >= 1"),
        (["--kernel", "poly", "--degree", "1000"], "got 1000"),
        (["--kernel", "poly", "--coef0", "nan"], "coef0 (of the poly kernel) must be a finite number, got nan"),
        (["--kernel", "poly", "--coef0=-inf"], "coef0 (of the poly kernel) must be a finite number, got -inf"),
        (["--gamma", "inf"], "gamma must be positive and finite"),
        (["--gamma-scale", "nan"], "gamma_scale must be positive and finite"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(argv, message, roots, tmp_path, capsys):
    assert main([*GEN, *argv, *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_chi2_on_signed_word_vectors_is_a_one_line_error(roots, tmp_path, capsys):
    assert main([*GEN, "--kernel", "chi2", "--kernel-views", "text", *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-negative" in err[0]
    assert not (tmp_path / "results").exists()


def test_kernel_grids_do_not_apply_to_linear_cca(roots, capsys):
    """Refused when parsing: generate cca offers only cca's grid flags (cv.grid_search's own check stays for
    Python callers)."""
    with pytest.raises(SystemExit) as e:
        main(["generate", "cca", "shapes", "glove50_tinyimage", "--cv", "--cv-gamma", "1,2", *SMALL, *roots])
    assert e.value.code == 2
    assert "--cv-gamma is not an option of cca (kcca takes it)" in capsys.readouterr().err


def _one_line_nothing_stored(rc, tmp_path, capsys, message):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "results").exists()


def test_poly_kernel_overflow_is_one_line(roots, tmp_path, capsys):
    """In range but absurd: (1e40 <x, y> + 1)^10 is not finite in float64 (it used to reach the covariance pass
    as 'input features contains NaN or infinite values')."""
    rc = main([*GEN, "--kernel", "poly", "--degree", "10", "--gamma", "1e40", *SMALL, *roots])
    _one_line_nothing_stored(rc, tmp_path, capsys, "poly kernel, gamma=1e+40, degree=10, coef0=1 overflows")


def test_eigen_solves_that_do_not_converge_are_one_line(roots, tmp_path, capsys, monkeypatch):
    """LAPACK's failure to converge (numpy's eigh of the landmark kernel, torch's SVD of the CCA solve) is
    simulated: finite inputs that make it fail are machine-specific."""
    import numpy as np
    import torch

    def no_eigh(*a, **k):
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    with monkeypatch.context() as m:
        m.setattr(np.linalg, "eigh", no_eigh)
        rc = main([*GEN, "--kernel-views", "text", *SMALL, *roots])
    _one_line_nothing_stored(
        rc, tmp_path, capsys, "the eigen-solve of the 1500 x 1500 landmark kernel matrix (rbf kernel, gamma="
    )

    def no_svd(*a, **k):
        raise torch.linalg.LinAlgError("linalg.svd: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "svd", no_svd)
    rc = main(["generate", "cca", "shapes", "glove50_tinyimage", *SMALL, *roots])
    _one_line_nothing_stored(
        rc,
        tmp_path,
        capsys,
        "the CCA solve (ridge eigenvalue, Cholesky whitening, SVD) did "
        "not converge (linalg.svd: The algorithm failed to converge)",
    )
