"""ridge, procrustes, pls, asif and dcca through the command line: generate (--cv), run_benchmark, search, errors."""

import json

import pytest

from cca_bench.__main__ import main

SMALL = ["-D", "n_train=300", "-D", "n_val=40", "-D", "n_test=60", "-q"]
FEATURES = "glove50_tinyimage"
NAME = "shapes[n_test=60,n_train=300,n_val=40]__glove50_tinyimage"


@pytest.fixture
def roots(tmp_path):
    return ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]


@pytest.mark.parametrize(
    "method, argv, knobs",
    [
        ("ridge", ["--direction", "text2image", "--cv-reg", "0.001,0.1"], {"reg"}),
        ("procrustes", ["--cv-components", "16,64"], {"n_components"}),
        ("pls", ["--scale", "--cv-components", "8,32"], {"n_components"}),
        ("asif", ["--cv-top-k", "20,5000", "--cv-exponent", "1,8"], {"top_k", "exponent"}),
    ],
)
def test_generate_cv_then_run_benchmark_reproduces_the_cv_row(method, argv, knobs, roots, tmp_path, capsys):
    assert main(["generate", method, "shapes", FEATURES, "--cv", *argv, *SMALL, *roots]) == 0
    assert "CV (" in capsys.readouterr().out
    report = json.loads((tmp_path / "results" / "cv" / f"{method}__{NAME}.json").read_text())
    assert set(report["grid"]) == knobs and report["rows"]
    config = json.loads((tmp_path / "results" / "models" / f"{method}__{NAME}.json").read_text())
    assert config["method"] == method and config["cv"]["chosen"] == {k: report["best"][k] for k in knobs}
    assert main(["run_benchmark", method, "shapes", "val", FEATURES, *SMALL, *roots]) == 0
    run = json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text())
    assert run["metrics"] == report["best"]["metrics"]  # the saved model reproduces its CV row exactly
    assert run["metrics"]["image_search"]["R@10"] > 100 * 10 / 40  # better than chance on 40 val images
    capsys.readouterr()
    assert main(["search", method, "shapes", FEATURES, "--text", "a red circle", "-k", "3", *SMALL, *roots]) == 0
    assert "top 3" in capsys.readouterr().out


def test_asif_top_k_grid_is_clipped_to_the_anchors(roots, tmp_path):
    assert (
        main(
            [
                "generate",
                "asif",
                "shapes",
                FEATURES,
                "--cv",
                "--cv-top-k",
                "20,5000",
                "--cv-exponent",
                "1",
                *SMALL,
                *roots,
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "results" / "cv" / f"asif__{NAME}.json").read_text())
    assert report["grid"]["top_k"] == [20, 1500]  # 300 train images x 5 captions = 1500 anchor pairs


def test_dcca_generate_cv_and_run_benchmark(roots, tmp_path, capsys):
    argv = [
        "--cv",
        "--cv-dim",
        "4,8",
        "--hidden",
        "32",
        "--train-batch-size",
        "500",
        "--epochs",
        "2",
        "--num-threads",
        "1",
    ]
    assert main(["generate", "dcca", "shapes", FEATURES, *argv, *SMALL, *roots]) == 0
    report = json.loads((tmp_path / "results" / "cv" / f"dcca__{NAME}.json").read_text())
    assert [r["dim"] for r in report["rows"]] == [4, 8]
    config = json.loads((tmp_path / "results" / "models" / f"dcca__{NAME}.json").read_text())
    assert config["params"]["dim"] == report["best"]["dim"] and 1 <= config["best_epoch_"] <= 2
    assert main(["run_benchmark", "dcca", "shapes", "val", FEATURES, *SMALL, *roots]) == 0
    run = json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text())
    assert run["params_label"].startswith(f"d={report['best']['dim']} h=32x1")
    assert run["metrics"] == report["best"]["metrics"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["asif", "--top-k", "1501"], "top_k=1501 exceeds the number of anchors (1500)"),
        (["asif", "--top-k", "11", "--anchors", "10"], "top_k=11 exceeds the number of anchors (10)"),
        (["asif", "--top-k", "0"], "argument --top-k: must be a whole number >= 1"),
        (["asif", "--exponent", "0"], "argument --exponent: must be a finite number > 0"),
        (["asif", "--exponent", "-2"], "argument --exponent: must be a finite number > 0"),
        (["asif", "--cv", "--cv-exponent", "0,1"], "exponent must be a finite number > 0"),
        (["dcca", "--dim", "64", "--train-batch-size", "64"], "train_batch_size=64 must exceed dim=64"),
        (["dcca", "--cv", "--cv-dim", "8,600"], "train_batch_size=512 must exceed dim=600"),
        (["ridge", "--cv", "--cv-top-k", "5"], "--cv-top-k is not an option of ridge (asif takes it)"),
        (["procrustes", "--equalize", "pad", "--n-components", "4"], "n_components needs equalize='pca'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(argv, message, roots, tmp_path, capsys):
    try:
        code = main(["generate", argv[0], "shapes", FEATURES, *argv[1:], *SMALL, *roots])
    except SystemExit as e:  # argparse refuses a value where it is typed
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_procrustes_above_the_narrower_width_writes_no_model(roots, tmp_path, capsys):
    # the feature widths are known once the features are encoded (and cached); no model is written
    assert main(["generate", "procrustes", "shapes", FEATURES, "--n-components", "51", *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_components=51 exceeds the narrower view's width 50" in err[0]
    assert not list((tmp_path / "results").rglob("*.safetensors"))
