"""Runs and models are never lost (issue 24 item 1): every run_benchmark and evaluate stores a new run under its
own id, generate never replaces a model fitted with other hyper-parameters, run_benchmark --model finds a model
by its name, compare shows the newest run of each configuration unless --all-runs, and compare --baseline
gives each row the same paired numbers as `significance`."""

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from cca_bench.__main__ import main
from cca_bench.results import find_run, load_ranks, load_runs, read_run, run_id, short_id

SMALL = ["-D", "n_train=200", "-D", "n_val=30", "-D", "n_test=60", "-q"]
FEAT = "glove50_tinyimage"
MODEL = "cca__shapes[n_test=60,n_train=200,n_val=30]__glove50_tinyimage"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """One results root after every way a run or model used to be replaced: run_benchmark rerun with changed
    options, generate with other hyper-parameters (refused, then --tag, then --overwrite), evaluate --name X
    twice. Returns (base, roots, what happened)."""
    base = tmp_path_factory.mktemp("kept")
    roots = ["--data-root", str(base / "data"), "--results-root", str(base / "results")]
    models = base / "results" / "models"
    seen = {}
    assert main(["generate", "cca", "shapes", FEAT, "--reg", "1e-2", *SMALL, *roots]) == 0
    seen["model_sha"] = _sha(models / f"{MODEL}.safetensors")
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, *SMALL, *roots]) == 0
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, "--bootstrap", "50", *SMALL, *roots]) == 0
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, "--distance", "dot", *SMALL, *roots]) == 0
    seen["refused"] = main(["generate", "cca", "shapes", FEAT, "--reg", "0.1", *SMALL, *roots])
    seen["model_sha_after_refusal"] = _sha(models / f"{MODEL}.safetensors")
    assert main(["generate", "cca", "shapes", FEAT, "--reg", "0.1", "--tag", "r1", *SMALL, *roots]) == 0
    assert main(["run_benchmark", "--model", f"{MODEL}@r1", "test", *roots, "-q"]) == 0
    before = {p.name: _sha(p) for p in (base / "results" / "runs").iterdir()}
    assert main(["generate", "cca", "shapes", FEAT, "--reg", "0.1", "--overwrite", *SMALL, *roots]) == 0
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, *SMALL, *roots]) == 0
    seen["before_overwrite"] = before
    n_captions = json.loads(next((base / "results" / "runs").glob("*.json")).read_text())["n_captions"]
    rng = np.random.default_rng(0)
    np.save(base / "img.npy", rng.standard_normal((60, 8)).astype(np.float32))
    np.save(base / "txt.npy", rng.standard_normal((n_captions, 8)).astype(np.float32))
    for _ in range(2):
        assert (
            main(
                [
                    "evaluate",
                    "shapes",
                    "test",
                    "--images",
                    str(base / "img.npy"),
                    "--texts",
                    str(base / "txt.npy"),
                    "--name",
                    "X",
                    *SMALL,
                    *roots,
                ]
            )
            == 0
        )
    return base, roots, seen


def test_every_earlier_run_record_and_ranks_file_stays_readable(kept, capsys):
    """Planted bug caught: run files named by the configuration alone (the old ``run_path``): the rerun with
    --bootstrap 50, the run after --overwrite and the second evaluate --name X replace earlier files, so 4
    records remain instead of 7, and the files seen before --overwrite change."""
    base, roots, seen = kept
    runs, bad = load_runs(base / "results")
    assert not bad and len(runs) == 7 and len({run_id(r) for r in runs}) == 7
    for r in runs:
        assert load_ranks(r) is not None and r["schema_version"] == 2 and r["run_id"] == run_id(r)
    for name, sha in seen["before_overwrite"].items():  # nothing written before was replaced or removed
        assert _sha(base / "results" / "runs" / name) == sha
    capsys.readouterr()
    assert main(["compare", "--all-runs", "--csv", str(base / "all.csv"), *roots[2:]]) == 0
    listed = [row["run"] for row in csv.DictReader((base / "all.csv").open()) if row["run"]]
    assert sorted(listed) == sorted(run_id(r) for r in runs)
    printed = capsys.readouterr().out
    assert all(short_id(run_id(r)) in printed for r in runs)


def test_compare_shows_the_newest_run_of_each_configuration(kept):
    """Planted bug caught: compare without --all-runs showing every run (or the oldest of a configuration)."""
    base, roots, _ = kept
    assert main(["compare", "--csv", str(base / "latest.csv"), *roots[2:], "-q"]) == 0
    listed = [row["run"] for row in csv.DictReader((base / "latest.csv").open()) if row["run"]]
    runs, _ = load_runs(base / "results")
    newest = {}
    for r in sorted(runs, key=lambda r: r["created"] + run_id(r)):
        newest[r["run_id"].rsplit("__", 1)[0]] = run_id(r)
    assert sorted(listed) == sorted(newest.values()) and len(listed) == 4  # cosine, dot, @r1, X


def test_generate_never_replaces_a_model_fitted_with_other_hyper_parameters(kept):
    """Planted bug caught: generate without the identity check: --reg 0.1 without --tag exits 0 and replaces the
    saved --reg 1e-2 model (its bytes change)."""
    base, _, seen = kept
    assert seen["refused"] == 2
    assert seen["model_sha_after_refusal"] == seen["model_sha"]
    saved = json.loads((base / "results" / "models" / f"{MODEL}.json").read_text())
    assert saved["identity"]["params"]["reg"] == 0.1  # replaced only by --overwrite
    tagged = json.loads((base / "results" / "models" / f"{MODEL}@r1.json").read_text())
    assert tagged["identity"]["hash"] == saved["identity"]["hash"]  # the same configuration, the same identity


def test_the_refusal_is_one_line_before_any_work(kept, tmp_path, capsys):
    base, roots, _ = kept
    capsys.readouterr()
    assert main(["generate", "cca", "shapes", FEAT, "--reg", "0.5", *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already saved with other hyper-parameters (reg 0.1 -> 0.5)" in err[0], err
    assert "--tag" in err[0] and "--overwrite" in err[0]


def test_run_benchmark_model_name_reopens_a_tagged_model(kept):
    """Planted bug caught: --model ignoring the saved tag (the untagged model scored instead)."""
    base, _, _ = kept
    runs, _ = load_runs(base / "results")
    tagged = [r for r in runs if r["model"] == f"{MODEL}@r1"]
    assert len(tagged) == 1 and tagged[0]["params"]["reg"] == 0.1


def test_a_missing_model_lists_the_saved_names(kept, capsys):
    base, roots, _ = kept
    capsys.readouterr()
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, "--tag", "nope", *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{MODEL}@r1" in err[0] and "--model NAME" in err[0], err
    assert main(["run_benchmark", "--model", f"{MODEL}@r2", "test", *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "closest" in err[0] and f"{MODEL}@r1" in err[0], err


def test_baseline_p_values_equal_significance_to_the_printed_digit(kept, capsys):
    """Planted bugs caught: add_baseline with another number of resamples or seed than significance's defaults
    (the p-value or interval differs), or baseline - row instead of row - baseline (the delta's sign)."""
    from cca_bench.stats import PAIRED_RESAMPLES, format_p

    base, roots, _ = kept
    runs, _ = load_runs(base / "results")
    first = min((r for r in runs if r["method"] == "cca" and r["distance"] == "cosine"), key=lambda r: r["created"])
    capsys.readouterr()
    assert (
        main(
            [
                "compare",
                "--baseline",
                short_id(run_id(first)),
                "--all-runs",
                "--csv",
                str(base / "b.csv"),
                *roots[2:],
                "-q",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    with (base / "b.csv").open() as f:
        header = next(csv.reader(f))
        rows = [r for r in csv.DictReader((base / "b.csv").open()) if r["run"]]
    assert header[:6] == ["run", "delta", "delta_lo", "delta_hi", "p_value", "p_holm"]
    compared = [r for r in rows if r["p_value"]]
    assert len(compared) >= 4  # the other cosine/dot/@r1/X runs on the same test images
    for row in compared[:3]:
        capsys.readouterr()
        assert main(["significance", row["run"], run_id(first), "--json", str(base / "s.json"), *roots[2:]]) == 0
        printed = capsys.readouterr().out
        sig = json.loads((base / "s.json").read_text())
        assert format_p(float(row["p_value"]), PAIRED_RESAMPLES) == format_p(sig["p_value"], sig["resamples"])
        assert format_p(sig["p_value"], sig["resamples"]) in printed
        assert f"{float(row['delta']):+.2f}" == f"{sig['delta']:+.2f}"
        assert f"{float(row['delta_lo']):+.2f}" == f"{sig['ci'][0]:+.2f}"
        assert f"{float(row['delta_hi']):+.2f}" == f"{sig['ci'][1]:+.2f}"
    assert max(len(line) for line in table.splitlines() if line.startswith("|")) <= 120


def test_compare_columns_picks_and_refuses(kept, capsys):
    base, roots, _ = kept
    capsys.readouterr()
    assert main(["compare", "--columns", "run,R-sum", *roots[2:], "-q"]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| run"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["run", "R-sum"]
    assert main(["compare", "--columns", "run,R-sun", *roots[2:], "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'R-sum'" in err[0]


def test_runs_lists_every_run_newest_first_within_120_columns(kept, capsys):
    base, roots, _ = kept
    capsys.readouterr()
    assert main(["runs", "--split", "test", *roots[2:]]) == 0
    lines = capsys.readouterr().out.splitlines()
    runs, _ = load_runs(base / "results")
    order = [short_id(run_id(r)) for r in sorted(runs, key=lambda r: (r["created"], run_id(r)), reverse=True)]
    assert [line.split()[0] for line in lines[1:]] == order
    assert lines[0].split() == ["run", "dataset", "split", "method", "features", "tag", "dist", "R-sum", "date"]
    assert max(map(len, lines)) <= 120 and " r1 " in "\n".join(lines)


def test_every_stored_record_passes_the_schema_it_is_read_with(kept):
    base, _, _ = kept
    for path in sorted((base / "results" / "runs").glob("*.json")):
        record, why = read_run(path)
        assert why is None, (path.name, why)
        assert find_run(load_runs(base / "results")[0], short_id(run_id(record)))["_file"] == str(path)
