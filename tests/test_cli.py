"""The command line end to end on a small shapes set: generate, run_benchmark, compare, list, errors."""

import json

import pytest

from cca_bench.__main__ import main

SMALL = ["-D", "n_train=300", "-D", "n_val=40", "-D", "n_test=60", "-q"]


@pytest.fixture
def roots(tmp_path):
    return ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]


def test_generate_run_compare(roots, tmp_path, capsys):
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--reg", "1e-2", *SMALL, *roots]) == 0
    models = list((tmp_path / "results" / "models").glob("*.safetensors"))
    assert len(models) == 1 and models[0].with_suffix(".json").is_file()
    assert models[0].with_name(models[0].stem + ".spectrum.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["run_benchmark", "cca", "shapes", "test", "glove50_tinyimage", *SMALL, *roots]) == 0
    out = capsys.readouterr().out
    assert "### Image Annotation" in out and "### Image Search" in out and "Median Rank" in out
    runs = list((tmp_path / "results" / "runs").glob("*.json"))
    assert len(runs) == 1
    record = json.loads(runs[0].read_text())
    for key in (
        "method",
        "dataset",
        "split",
        "features",
        "distance",
        "protocol",
        "params",
        "metrics",
        "n_images",
        "n_captions",
        "timings",
        "versions",
        "created",
    ):
        assert key in record
    assert record["n_images"] == 60 and record["n_captions"] == 300
    ann = record["metrics"]["image_annotation"]
    assert set(ann) == {"R@1", "R@5", "R@10", "median_rank", "mean_rank"}
    # the shapes captions name colours and shapes that tiny images see: far better than chance (R@10 = 16.7)
    assert record["metrics"]["image_search"]["R@10"] > 30
    # features are cached: a second run reads them and gives identical numbers
    assert list((tmp_path / "data" / "cache").glob("*.npy"))
    assert main(["run_benchmark", "cca", "shapes", "test", "glove50_tinyimage", *SMALL, *roots]) == 0
    assert json.loads(runs[0].read_text())["metrics"] == record["metrics"]
    capsys.readouterr()
    assert main(["compare", *roots]) == 0
    table = capsys.readouterr().out
    assert "shapes" in table and "cca" in table and "i2t R@1" in table
    assert (tmp_path / "results" / "RESULTS.md").read_text() + "\n" == table


def test_list_shows_datasets_and_encoders(roots, capsys):
    assert main(["list", *roots]) == 0
    out = capsys.readouterr().out
    for name in (
        "openmoji",
        "shapes",
        "flickr8k",
        "coco",
        "glove50",
        "word2vec",
        "efficientnet_lite0",
        "vgg_karpathy",
        "cca",
    ):
        assert name in out
    assert "dataset_flickr8k.json" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "cca", "shapez", "glove50_tinyimage"], "did you mean 'shapes'"),
        (["generate", "cca", "shapes", "glove5_tinyimage"], "did you mean 'glove50'"),
        (["generate", "cca", "shapes", "glove50_tinyimag"], "did you mean 'tinyimage'"),
        (["generate", "ccca", "shapes", "glove50_tinyimage"], "did you mean 'cca'"),
        (["generate", "cca", "flickr8k", "glove50_vgg_karpathy"], "dataset_flickr8k.json"),
        (["generate", "cca", "shapes", "word2vec_tinyimage", "-D", "n_train=20"], "GoogleNews-vectors-negative300.bin"),
        (["run_benchmark", "cca", "shapes", "test", "glove50_tinyimage", "-D", "n_train=20"], "run `generate` first"),
        (["run_benchmark", "cca", "shapes", "tset", "glove50_tinyimage"], "no split 'tset'"),
        (["generate", "cca", "shapes", "glove50_tinyimage", "-D", "n_trian=3"], "unknown option 'n_trian'"),
    ],
)
def test_user_mistakes_are_one_line_errors(argv, message, roots, capsys):
    assert main([*argv, "-q", *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_rank_deficient_fit_suggests_a_ridge(roots, capsys):
    # 300 train images of 768-d tiny-image features: the image covariance is singular without a ridge
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--reg", "0", *SMALL, *roots]) == 2
    assert "--reg" in capsys.readouterr().err


def test_protocol_needs_matching_image_count(roots, capsys):
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", *SMALL, *roots]) == 0
    assert (
        main(["run_benchmark", "cca", "shapes", "test", "glove50_tinyimage", "--protocol", "1k", *SMALL, *roots]) == 2
    )
    assert "multiple of 1000" in capsys.readouterr().err


def test_same_command_twice_gives_the_same_numbers(roots, tmp_path):
    run = ["run_benchmark", "cca", "shapes", "test", "glove50_tinyimage", "--no-cache", *SMALL, *roots]
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--no-cache", *SMALL, *roots]) == 0
    records = []
    for _ in range(2):
        assert main(run) == 0
        records.append(json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text()))
    assert not (tmp_path / "data" / "cache").exists()
    a, b = records
    assert a["metrics"] == b["metrics"] and a["recall_curve"] == b["recall_curve"]
    # what the run records to be repeated: configuration, seeds, versions, feature cache keys
    assert a["config"]["protocol"] == "full" and a["config"]["dataset_options"] == {
        "n_train": "300",
        "n_val": "40",
        "n_test": "60",
    }
    assert a["seeds"]["model"] is None and "random_state" not in a["params"]  # cca's fit is deterministic
    assert {"numpy", "torch", "git_revision"} <= set(a["versions"])
    assert a["feature_cache"]["image"].startswith("shapes_test_tinyimage-") and a["feature_cache"]["text"].endswith(
        ".npy"
    )
    assert len(a["recall_curve"]["image_annotation"]) == 50


def test_generate_with_cv_saves_grid_best_model_and_spectrum(roots, tmp_path, capsys):
    cv = ["--cv", "--cv-components", "10,100", "--cv-reg", "0,0.01", "--cv-eig-power", "0,1", "--cv-select", "medr"]
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", *cv, *SMALL, *roots]) == 0
    assert "CV (4 grid points, by medr): chose" in capsys.readouterr().out
    results = tmp_path / "results"
    name = "cca__shapes[n_test=60,n_train=300,n_val=40]__glove50_tinyimage"
    report = json.loads((results / "cv" / f"{name}.json").read_text())
    # 100 > min(768, 50) is clipped to 50; reg=0 is singular on 300 tiny images and skipped, not fatal
    assert report["grid"]["n_components"] == [10, 50] and len(report["rows"]) == 4
    assert any("clipped to 50" in n for n in report["notes"]) and any("reg=0 skipped" in n for n in report["notes"])
    assert "n_components |" in (results / "cv" / f"{name}.md").read_text()
    config = json.loads((results / "models" / f"{name}.json").read_text())
    chosen = config["cv"]["chosen"]
    assert chosen["reg"] == 0.01 and {k: config["params"][k] for k in chosen} == chosen
    assert (results / "models" / f"{name}.spectrum.png").stat().st_size > 1000
    # the saved best model is an ordinary model: run_benchmark needs nothing new
    assert main(["run_benchmark", "cca", "shapes", "val", "glove50_tinyimage", *SMALL, *roots]) == 0
    run = json.loads(next((results / "runs").glob("*.json")).read_text())
    best = next(r for r in report["rows"] if {k: r[k] for k in chosen} == chosen)
    assert run["metrics"] == best["metrics"] and run["model_config"]["cv"]["select"] == "medr"


def test_cv_flags_without_cv_are_an_error(roots, capsys):
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--cv-reg", "1", *SMALL, *roots]) == 2
    assert "need --cv" in capsys.readouterr().err


def test_tagged_variants_do_not_overwrite_each_other(roots, tmp_path, capsys):
    for tag, reg in (("r.1", "1e-2"), ("r.2", "10")):  # dotted names must not collide on a suffix
        argv_tag = ["--tag", tag] if tag else []
        assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--reg", reg, *argv_tag, *SMALL, *roots]) == 0
        assert main(["run_benchmark", "cca", "shapes", "test", "glove50_tinyimage", *argv_tag, *SMALL, *roots]) == 0
    models = sorted(p.name for p in (tmp_path / "results" / "models").glob("*.safetensors"))
    assert len(models) == 2 and any("@r.2" in m for m in models)
    runs = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert sorted(r["params"]["reg"] for r in runs) == [1e-2, 10.0]
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--tag", "a/b", *SMALL, *roots]) == 2
    assert "--tag" in capsys.readouterr().err
