"""Intervals, per-query ranks files, seeds and paired tests through the command line (issue: is the difference
real?), on a small shapes set."""

import json
import os

import numpy as np
import pytest

from cca_bench import metrics
from cca_bench.__main__ import main

SMALL = ["-D", "n_train=200", "-D", "n_val=30", "-D", "n_test=60", "-q"]
FEAT = "glove50_tinyimage"
RUN_A = "cca__shapes[n_test=60,n_train=200,n_val=30]__glove50_tinyimage__test__full__cosine"
RUN_B = "cca__shapes[n_test=60,n_train=200,n_val=30]__glove50_tinyimage@k2__test__full__cosine"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Two cca variants on shapes test (and one on val), each run stored with its ranks file."""
    base = tmp_path_factory.mktemp("stats")
    roots = ["--data-root", str(base / "data"), "--results-root", str(base / "results")]
    assert main(["generate", "cca", "shapes", FEAT, "--reg", "1e-2", *SMALL, *roots]) == 0
    assert (
        main(["generate", "cca", "shapes", FEAT, "--reg", "1e-2", "--n-components", "2", "--tag", "k2", *SMALL, *roots])
        == 0
    )
    for tag in ([], ["--tag", "k2"]):
        assert main(["run_benchmark", "cca", "shapes", "test", FEAT, *tag, *SMALL, *roots]) == 0
    assert main(["run_benchmark", "cca", "shapes", "val", FEAT, *SMALL, *roots]) == 0
    return base, roots


def _file(results, name: str, suffix: str = ".json"):
    """The newest stored run of configuration ``name`` (runs are stored under ``<name>__<stamp>``)."""
    from pathlib import Path

    from cca_bench.results import find_run, load_runs

    path = Path(find_run(load_runs(results)[0], name)["_file"])
    return path.with_name(path.name[: -len(".json")] + suffix)


def _record(base, name):
    return json.loads(_file(base / "results", name).read_text())


def test_ranks_file_reproduces_the_metrics_and_is_named_with_its_sha256(stored):
    import hashlib

    base, _ = stored
    record = _record(base, RUN_A)
    path = base / "results" / "runs" / record["ranks_file"]
    assert path.name == _file(base / "results", RUN_A).name[: -len(".json")] + ".ranks.npz"
    assert path.name.startswith(RUN_A + "__")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record["ranks_sha256"]
    with np.load(path, allow_pickle=False) as z:
        i2t, t2i, idx = z["image_annotation"], z["image_search"], z["image_index"]
        assert i2t.dtype.kind == t2i.dtype.kind == idx.dtype.kind == "i"
    assert i2t.shape == (record["n_images"],) and t2i.shape == idx.shape == (record["n_captions"],)
    assert record["metrics"] == {
        "image_annotation": metrics.summarize(i2t[i2t >= 0]),
        "image_search": metrics.summarize(t2i),
    }


def test_every_metric_has_an_interval_around_it(stored):
    base, _ = stored
    record = _record(base, RUN_A)
    assert record["ci_method"] == {
        "resamples": 10000,
        "level": 0.95,
        "seed": 0,
        "unit": "image",
        "method": record["ci_method"]["method"],
        "mc_error": record["ci_method"]["mc_error"],
    }
    assert all(0 <= e < 5 for e in record["ci_method"]["mc_error"]["rsum"])
    for task in ("image_annotation", "image_search"):
        for metric, value in record["metrics"][task].items():
            lo, hi = record["ci"][task][metric]
            assert lo <= value <= hi, (task, metric)
    rsum = sum(record["metrics"][t][f"R@{k}"] for t in ("image_annotation", "image_search") for k in (1, 5, 10))
    assert record["ci"]["rsum"][0] <= rsum <= record["ci"]["rsum"][1]


def test_ci_none_and_bootstrap_n(stored, tmp_path, capsys):
    _, roots = stored
    out = ["--results-root", str(tmp_path / "r"), *roots[:2]]
    import shutil

    shutil.copytree(stored[0] / "results" / "models", tmp_path / "r" / "models")
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, *SMALL, *out, "--ci", "none"]) == 0
    record = json.loads(_file(tmp_path / "r", RUN_A).read_text())
    assert "ci" not in record and "ci_method" not in record and record["ranks_file"]
    assert "[" not in capsys.readouterr().out.split("### Image Search")[1].splitlines()[4]
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, *SMALL, *out, "--bootstrap", "50"]) == 0
    assert json.loads(_file(tmp_path / "r", RUN_A).read_text())["ci_method"]["resamples"] == 50


def test_significance_prints_and_writes_the_contract(stored, tmp_path, capsys):
    _, roots = stored
    capsys.readouterr()
    out = tmp_path / "sig.json"
    assert main(["significance", RUN_A, RUN_B, "--json", str(out), "--resamples", "2000", *roots]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert {"delta", "ci", "p_value", "test", "n_images", "resamples", "metric"} <= set(result)
    assert result["n_images"] == 60 and result["resamples"] == 2000 and result["metric"] == "rsum"
    assert result["ci"][0] <= result["delta"] <= result["ci"][1] and 0 < result["p_value"] <= 1
    from cca_bench.stats import format_p

    assert f"{result['delta']:+.2f}" in printed and format_p(result["p_value"], 2000) in printed
    a, b = (_record(stored[0], n) for n in (RUN_A, RUN_B))
    rsum = lambda r: sum(r["metrics"][t][f"R@{k}"] for t in ("image_annotation", "image_search") for k in (1, 5, 10))
    assert result["delta"] == pytest.approx(rsum(a) - rsum(b))
    # a run JSON path works as well as a name, and one direction's metric
    path = str(_file(stored[0] / "results", RUN_A))
    assert main(["significance", path, RUN_B, "--metric", "t2i:median_rank", *roots]) == 0


def test_compare_significance_marks_and_csv_bounds(stored, tmp_path, capsys):
    _, roots = stored
    capsys.readouterr()
    assert main(["compare", "--significance", "--split", "test", "--csv", str(tmp_path / "t.csv"), *roots]) == 0
    table = capsys.readouterr().out
    assert "**" in table and "† = not significantly worse" in table and "R-sum" in table
    import csv

    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    own = [r for r in rows if r["Source"] == "this suite"]
    assert len(own) == 2 and all(float(r["R-sum lo"]) <= float(r["R-sum"]) <= float(r["R-sum hi"]) for r in own)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["significance", RUN_A, RUN_A.replace("__test__", "__val__")], "different splits"),
        (["significance", RUN_A, "nope"], "no run named 'nope'"),
        (["significance", RUN_A, RUN_B, "--metric", "R@2"], "unknown metric"),
        (["run_benchmark", "cca", "shapes", "test", FEAT, "--bootstrap", "0"], "must be a whole number >= 1"),
        (["run_benchmark", "cca", "shapes", "test", FEAT, "--ci", "none", "--bootstrap", "5"], "--ci none"),
        (["run_benchmark", "cca", "shapes", "test", FEAT, "--seeds", "0,x"], "comma-separated seeds"),
        (["generate", "cca", "shapes", FEAT, "--seeds", "1.5"], "comma-separated seeds"),
    ],
)
def test_bad_requests_are_one_line_and_write_nothing(argv, message, stored, tmp_path, capsys):
    base, roots = stored
    before = sorted(p.name for p in (base / "results" / "runs").iterdir())
    capsys.readouterr()
    extra = ["--json", str(tmp_path / "o.json")] if argv[0] == "significance" else [*SMALL]
    try:
        code = main([*argv, *extra, *roots])
    except SystemExit as e:  # argparse's own one-line errors
        code = e.code
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in (base / "results" / "runs").iterdir()) == before
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("damage", ["altered", "missing"])
def test_altered_or_missing_ranks_file_is_refused(damage, stored, tmp_path, capsys):
    import shutil

    base, roots = stored
    shutil.copytree(base / "results", tmp_path / "results")
    ranks = _file(tmp_path / "results", RUN_B, ".ranks.npz")
    if damage == "missing":
        ranks.unlink()
    else:
        data = bytearray(ranks.read_bytes())
        data[-30] ^= 1
        ranks.write_bytes(bytes(data))
    capsys.readouterr()
    assert (
        main(
            [
                "significance",
                RUN_A,
                RUN_B,
                "--json",
                str(tmp_path / "o.json"),
                "--results-root",
                str(tmp_path / "results"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("sha256 differs" if damage == "altered" else "is missing") in err[0]
    assert not (tmp_path / "o.json").exists()


def test_a_kill_while_storing_leaves_the_previous_ranks_file_whole(stored, tmp_path, monkeypatch):
    """os.replace is the commit point of the atomic writer: interrupted before it, the ranks file on disk is
    still the previous one, bit for bit, and no temporary file stays behind."""
    import shutil

    base, roots = stored
    shutil.copytree(base / "results", tmp_path / "results")
    runs = tmp_path / "results" / "runs"
    before = _file(tmp_path / "results", RUN_A, ".ranks.npz").read_bytes()
    files = sorted(p.name for p in runs.iterdir())
    real_replace = os.replace

    def killed(src, dst):
        if str(dst).endswith(".ranks.npz"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    assert (
        main(
            [
                "run_benchmark",
                "cca",
                "shapes",
                "test",
                FEAT,
                *SMALL,
                "--bootstrap",
                "20",
                "--data-root",
                str(base / "data"),
                "--results-root",
                str(tmp_path / "results"),
            ]
        )
        == 130
    )
    assert _file(tmp_path / "results", RUN_A, ".ranks.npz").read_bytes() == before
    assert sorted(p.name for p in runs.iterdir()) == files  # the new run left nothing, replaced nothing
    assert not list(runs.glob("*.tmp"))
    monkeypatch.setattr(os, "replace", real_replace)
    assert main(["significance", RUN_A, RUN_B, "--results-root", str(tmp_path / "results")]) == 0


def test_seeds_fit_one_model_each_and_score_into_one_run(tmp_path, capsys):
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]
    kcca = ["--landmarks", "40", "--n-components", "8", "--reg", "1e-2"]
    assert main(["generate", "kcca", "shapes", FEAT, *kcca, "--seeds", "0,1,2", *SMALL, *roots]) == 0
    models = sorted(p.name for p in (tmp_path / "results" / "models").glob("*.safetensors"))
    assert [m.rsplit("@", 1)[1] for m in models] == ["seed0.safetensors", "seed1.safetensors", "seed2.safetensors"]
    capsys.readouterr()
    assert main(["run_benchmark", "kcca", "shapes", "test", FEAT, "--seeds", "0,1,2", *SMALL, *roots]) == 0
    out = capsys.readouterr().out
    record = json.loads(next((tmp_path / "results" / "runs").glob("*@seeds0-1-2__*.json")).read_text())
    per_seed = record["seed_metrics"]
    assert len(per_seed) == 3 and record["seeds"]["list"] == [0, 1, 2]
    for task in ("image_annotation", "image_search"):
        for m in ("R@1", "mean_rank"):
            assert record["metrics"][task][m] == pytest.approx(np.mean([s[task][m] for s in per_seed]))
            assert record["seed_sd"][task][m] == pytest.approx(np.std([s[task][m] for s in per_seed], ddof=1))
    assert len({json.dumps(s, sort_keys=True) for s in per_seed}) > 1  # landmarks differ between seeds
    assert "over 3 seeds" in out and "R-sum sd" in out
    with np.load(tmp_path / "results" / "runs" / record["ranks_file"], allow_pickle=False) as z:
        assert z["image_annotation"].shape == (3, 60)


def test_seeds_of_a_method_without_randomness_are_said_once(tmp_path, capsys):
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]
    assert main(["generate", "cca", "shapes", FEAT, "--reg", "1e-2", "--seeds", "0,1", *SMALL, *roots]) == 0
    capsys.readouterr()
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, "--seeds", "0,1", *SMALL, *roots]) == 0
    captured = capsys.readouterr()
    # cca has no random_state (its fit is deterministic): one model, scored once, and the note said once
    (run,) = (tmp_path / "results" / "runs").glob("*.json")
    record = json.loads(run.read_text())
    assert "seed_sd" not in record and "random_state" not in record["params"]
    assert (captured.out + captured.err).count("takes no random seed") == 1


def test_cv_reports_how_many_grid_points_lie_within_the_val_interval(tmp_path, capsys):
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]
    assert (
        main(
            [
                "generate",
                "cca",
                "shapes",
                FEAT,
                "--cv",
                "--cv-components",
                "2,8",
                "--cv-reg",
                "0.1,0.01",
                "--cv-eig-power",
                "1",
                *SMALL,
                *roots,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    report = json.loads(next((tmp_path / "results" / "cv").glob("*.json")).read_text())
    summary = report["val_interval"]
    lo, hi = summary["ci"]
    assert summary["of"] == 4 and lo <= report["best"]["rsum"] <= hi
    assert summary["within"] == sum(row["rsum"] >= lo for row in report["rows"]) >= 1
    assert f"CV uncertainty: {summary['within']} of 4 grid points" in out
    assert "uncertainty:" in next((tmp_path / "results" / "cv").glob("*.md")).read_text()


def test_a_ranks_file_whose_header_claims_149_gib_is_one_line(stored, tmp_path, capsys):
    """A ranks file rewritten together with its run's sha256 (a user's run JSON is read from any path): numpy
    allocates what a member's .npy header claims before reading, so the headers are checked first (issue 18,
    item 6: it was a MemoryError traceback)."""
    import hashlib
    import io
    import shutil
    import zipfile

    base, roots = stored
    shutil.copytree(base / "results", tmp_path / "results")
    ranks = _file(tmp_path / "results", RUN_B, ".ranks.npz")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (20_000_000_000,)})
    with zipfile.ZipFile(ranks, "w") as zf:
        for name in ("image_annotation", "image_search", "image_index", "fold"):
            zf.writestr(f"{name}.npy", header.getvalue() + bytes(64))
    run = _file(tmp_path / "results", RUN_B)
    record = json.loads(run.read_text())
    record["ranks_sha256"] = hashlib.sha256(ranks.read_bytes()).hexdigest()
    run.write_text(json.dumps(record))
    capsys.readouterr()
    assert (
        main(
            [
                "significance",
                RUN_A,
                RUN_B,
                "--json",
                str(tmp_path / "o.json"),
                "--results-root",
                str(tmp_path / "results"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "member image_annotation.npy: its header claims a 20000000000 int64 array (149.0 GiB)" in err[0]
    ), err
    assert not (tmp_path / "o.json").exists()


def test_run_benchmark_keeps_the_resample_counts_unless_told_not_to_cache(stored, tmp_path, monkeypatch):
    """The runs of the fixture stored one entry of resample counts per split size (test: 60 images, val: 30)
    in DATA/cache/resamples, which later runs read (cca_bench.resample_cache); ``--no-cache`` stores none and
    prints the same intervals. The COCO 5k ECCV/CxC fields get the same cache folder (they resample the same
    images). Planted bugs it caught: run_benchmark not handing its cache folder to the evaluation (no
    entries); the cache folder handed on under --no-cache (an entry); run_benchmark not handing it to the
    ECCV/CxC fields."""
    import shutil

    import cca_bench.coco_extended

    handed, fields = [], cca_bench.coco_extended.record_fields
    monkeypatch.setattr(
        cca_bench.coco_extended, "record_fields", lambda *a, **k: handed.append(a[6:] or k) or fields(*a, **k)
    )
    base, roots = stored
    shutil.copytree(base / "results" / "models", tmp_path / "r0" / "models")
    first = [*roots[:2], "--results-root", str(tmp_path / "r0"), "--bootstrap", "50"]
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, *SMALL, *first]) == 0
    assert handed == [(base / "data" / "cache",)]
    keys = [json.loads(p.read_text()) for p in (base / "data" / "cache" / "resamples").glob("*.json")]
    assert sorted(k["fold_sizes"] for k in keys if k["resamples"] == 10000) == [[30], [60]]  # others: --bootstrap
    shutil.copytree(base / "results" / "models", tmp_path / "r" / "models")
    out = ["--results-root", str(tmp_path / "r"), "--data-root", str(tmp_path / "d")]
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, *SMALL, *out, "--no-cache"]) == 0
    assert not (tmp_path / "d" / "cache").exists() and handed[1:] == [(None,)]
    assert json.loads(_file(tmp_path / "r", RUN_A).read_text())["ci"] == _record(base, RUN_A)["ci"]
