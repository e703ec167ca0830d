"""The typed run record (runrecord.py): one writer, one reader that validates every field readers use, run ids
that commands find by id, short id, prefix or configuration name, and compare --baseline's Holm column. Fast:
records with hand-made ranks, no model is fitted."""

import json
import os

import numpy as np
import pytest

from cca_bench.__main__ import main
from cca_bench.errors import UserError
from cca_bench.results import add_baseline, compare_frame, find_run, load_runs, read_run, resolve_run, run_id, short_id
from cca_bench.runrecord import SCHEMA_VERSION, write_run
from cca_bench.stats import bootstrap_ci, point_metrics, query_ranks
from cca_bench.ties import DEFAULT


def fake_record(
    seed: int, method: str = "cca", model: str | None = None, split: str = "test", created: str = ""
) -> dict:
    """A run record of 40 images x 2 captions with random ranks; metrics and intervals computed from them."""
    rng = np.random.default_rng(seed)
    image_index = np.repeat(np.arange(40), 2)
    ranks = query_ranks(rng.integers(0, 20, 40), rng.integers(0, 30, 80), image_index)
    return {
        "method": method,
        "dataset": "shapes",
        "split": split,
        "features": "glove50_tinyimage",
        "distance": "cosine",
        "protocol": "full",
        "model": model or f"{method}__shapes__glove50_tinyimage",
        "metrics": point_metrics(ranks),
        "ci": bootstrap_ci(ranks, 50),
        "n_images": 40,
        "n_captions": 80,
        "folds": 1,
        "params_label": "k=2",
        "split_fingerprint": "fp",
        "created": created or f"2026-12-06T0{seed}",
        "ties": DEFAULT,
        "_ranks": ranks,
    }


@pytest.fixture
def root(tmp_path):
    """Three good runs: cca twice (same configuration), kcca once."""
    for seed, method in ((1, "cca"), (2, "cca"), (3, "kcca")):
        write_run(tmp_path, fake_record(seed, method))
    return tmp_path


def test_written_records_carry_their_id_and_schema_version(root):
    runs, bad = load_runs(root)
    assert not bad and len(runs) == 3
    for r in runs:
        assert r["schema_version"] == SCHEMA_VERSION and r["run_id"] == run_id(r)
        assert r["ranks_file"] == run_id(r) + ".ranks.npz" and (root / "runs" / r["ranks_file"]).is_file()
        assert run_id(r).startswith(f"{r['model']}__test__full__cosine__")


def test_find_run_by_id_short_id_prefix_or_configuration(root):
    """Planted bugs caught: a configuration name resolving to the oldest run; a prefix shared by two runs
    resolving to one of them silently; suggestions missing."""
    runs, _ = load_runs(root)
    cca = sorted((r for r in runs if r["method"] == "cca"), key=lambda r: r["created"])
    kcca = next(r for r in runs if r["method"] == "kcca")
    assert find_run(runs, run_id(cca[0])) is cca[0]
    assert find_run(runs, short_id(run_id(cca[0]))) is cca[0]
    assert find_run(runs, "cca__shapes__glove50_tinyimage__test__full__cosine") is cca[1]  # the newest
    assert find_run(runs, "kcca__") is kcca  # a unique prefix
    with pytest.raises(UserError, match=r"matches 2 runs .*: give more of the run id"):
        find_run(runs, "cca__shapes")
    with pytest.raises(UserError, match=r"no run named 'kcca__shapes__glove50_tinyimag__test' in .*; closest: kcca__"):
        find_run(runs, "kcca__shapes__glove50_tinyimag__test")


def test_a_path_is_used_as_given_or_refused(root, tmp_path_factory):
    """Planted bug caught: the old resolve_run, which appended .json and looked under RESULTS/runs for a path
    that was not a file (``other/runs/A`` silently became ``RESULTS/runs/A.json``)."""
    runs, _ = load_runs(root)
    path = runs[0]["_file"]
    assert resolve_run(root, path)["_file"] == path
    other = tmp_path_factory.mktemp("other")
    for spec in (
        str(other / "runs" / run_id(runs[0])),
        str(other / "runs" / (run_id(runs[0]) + ".json")),
        f"no/such/dir/../../{run_id(runs[0])}",
    ):
        with pytest.raises(UserError, match="no such run file"):
            resolve_run(root, spec)


def test_significance_suggests_the_closest_ids_in_one_line(root, capsys):
    assert (
        main(["significance", "kcca__shapes__glove50_tinyimage__tst", "cca__shapes", "--results-root", str(root)]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "closest: kcca__shapes__glove50_tinyimage__test__full__cosine" in err[0], err


def test_holm_column_adjusts_the_planted_p_values(root, monkeypatch):
    """p_holm is Holm across the rows compared, p_value each pair's own. Planted bugs caught: p_holm = p_value
    (Holm removed), Bonferroni instead of Holm (0.03 * 3 = 0.09 != 0.06), or the baseline counted as a row."""
    import cca_bench.stats as stats

    for seed in (4, 5):
        write_run(root, fake_record(seed, f"m{seed}"))
    runs, _ = load_runs(root)
    base = next(r for r in runs if r["method"] == "kcca")
    planted = {"cca": 0.01, "m4": 0.04, "m5": 0.03}
    by_ranks = {}

    def fake_tests(ranks, pairs, metrics, resamples, seed):
        assert (resamples, seed) == (stats.PAIRED_RESAMPLES, stats.PAIRED_SEED)
        return [
            {m: {"delta": 1.0, "ci": [0.0, 2.0], "p_value": by_ranks[id(ranks[i])]} for m in metrics} for i, _ in pairs
        ]

    import cca_bench.results as results

    real_load = results.load_ranks

    def load(record):
        ranks = real_load(record)
        by_ranks[id(ranks)] = planted.get(record["method"], 0.5)
        return ranks

    monkeypatch.setattr(stats, "paired_tests", fake_tests)
    monkeypatch.setattr(results, "load_ranks", load)
    one_cca = [r for r in runs if r["method"] != "cca"] + [next(r for r in runs if r["method"] == "cca")]
    frame = add_baseline(compare_frame(one_cca), one_cca, base)
    got = {m: (p, h) for m, p, h in zip(frame["Method"], frame["p_value"], frame["p_holm"])}
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04)
    assert got["cca"] == (0.01, pytest.approx(0.03))
    assert got["m5"] == (0.03, pytest.approx(0.06)) and got["m4"] == (0.04, pytest.approx(0.06))
    assert np.isnan(got["kcca"][0]) and frame.loc[frame["Method"] == "kcca", "note"].item() == "baseline"


def test_rows_that_cannot_be_paired_get_a_reason(root, capsys):
    """A run on another split, and one whose ranks file is gone, get a note; the other rows their numbers."""
    write_run(root, fake_record(6, "val_run", split="val"))
    runs, _ = load_runs(root)
    gone = next(r for r in runs if r["method"] == "cca")
    os.remove(root / "runs" / gone["ranks_file"])
    kcca = next(r for r in runs if r["method"] == "kcca")
    assert (
        main(
            [
                "compare",
                "--all-runs",
                "--baseline",
                short_id(run_id(kcca)),
                "--csv",
                str(root / "b.csv"),
                "--results-root",
                str(root),
                "-q",
            ]
        )
        == 0
    )
    import csv

    notes = [(r["Method"], r["note"]) for r in csv.DictReader((root / "b.csv").open()) if r["run"]]
    assert ("kcca", "baseline") in notes and ("val_run", "other split than the baseline") in notes
    cca = sorted(n for m, n in notes if m == "cca")
    assert cca[0] == "" and cca[1].startswith("ranks not comparable:") and "is missing" in cca[1]
    assert "| ranks not comparable " in capsys.readouterr().out


BAD_FIELDS = {
    "ci has one task as a list": ({"ci": {"image_annotation": [0, 1]}}, "ci"),
    "ci holds only rsum": ({"ci": {"rsum": [1.0, 2.0]}}, "ci.image_annotation"),
    "ci interval reversed": ({"ci": "REVERSED"}, "ci.image_annotation.R@1"),
    "seed_sd.rsum a string": ({"seed_sd": {"rsum": "abc"}}, "seed_sd.rsum"),
    "seed_sd a list": ({"seed_sd": [1]}, "seed_sd.rsum"),
    "params_label a number": ({"params_label": 5}, "params_label"),
    "model a number": ({"model": 5}, "model"),
    "R@1 above 100": ({"metrics": "R@1=150"}, "image_annotation R@1"),
    "schema from the future": ({"schema_version": 99}, "schema_version"),
    "folds zero": ({"folds": 0}, "folds"),
    "recall curve of strings": ({"recall_curve": {"image_annotation": ["a"], "image_search": [1.0]}}, "recall_curve"),
    "seed_metrics malformed": ({"seed_metrics": [{"image_annotation": {}}]}, "seed_metrics[0]"),
}


@pytest.mark.parametrize("case", list(BAD_FIELDS) + ["200 KB of nested brackets", "5 MB record"])
def test_each_malformed_record_is_skipped_with_one_warning_naming_it(case, root, capsys):
    """Planted bugs caught (each case): the field's check removed from runrecord.OPTIONAL / NESTED makes compare a
    traceback or table the bad run; without the depth check the nested file is a RecursionError."""
    runs, _ = load_runs(root)
    good = json.loads(open(runs[0]["_file"]).read())
    bad = root / "runs" / "bad.json"
    if case == "200 KB of nested brackets":
        bad.write_text("[" * 100_000 + "]" * 100_000)
        field = "nested deeper"
    elif case == "5 MB record":
        bad.write_text(json.dumps(good | {"timings": {"x": "y" * 5_000_000}}))
        field = "larger than"
    else:
        change, field = BAD_FIELDS[case]
        if change.get("ci") == "REVERSED":
            change = {"ci": good["ci"] | {"image_annotation": good["ci"]["image_annotation"] | {"R@1": [9.0, 1.0]}}}
        if change.get("metrics") == "R@1=150":
            change = {
                "metrics": good["metrics"] | {"image_annotation": good["metrics"]["image_annotation"] | {"R@1": 150.0}}
            }
        bad.write_text(json.dumps(good | change))
    _, why = read_run(bad)
    assert why is not None and field in why, why
    capsys.readouterr()
    assert main(["compare", "--results-root", str(root), "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: skipped run file bad.json:") and field in err[0], err
    a, b = (run_id(r) for r in runs[:2])
    assert main(["significance", a, b, "--results-root", str(root), "--resamples", "200"]) == 0
    assert main(["significance", "bad", b, "--results-root", str(root)]) == 2
    assert f"bad.json: {why}" in capsys.readouterr().err


def test_old_records_without_schema_version_read_as_version_1(root):
    runs, _ = load_runs(root)
    old = json.loads(open(runs[0]["_file"]).read())
    for key in ("schema_version", "run_id"):
        del old[key]
    (root / "runs" / "cca__shapes__glove50_tinyimage__test__full__cosine.json").write_text(json.dumps(old))
    record, why = read_run(root / "runs" / "cca__shapes__glove50_tinyimage__test__full__cosine.json")
    assert why is None and record["schema_version"] == 1
    assert short_id(run_id(record)) == run_id(record)  # no stamp: its whole name is its id


def test_a_tie_rule_other_than_the_default_is_another_configuration():
    """Planted bug caught: config_name without the tie rule (an optimistic rerun would hide the default run in
    compare, and a configuration name would resolve to either)."""
    from cca_bench.runrecord import config_name

    record = fake_record(1)
    assert config_name(record) == "cca__shapes__glove50_tinyimage__test__full__cosine"
    assert config_name(record | {"ties": "optimistic"}).endswith("__cosine__ties-optimistic")
    old = {k: v for k, v in record.items() if k != "ties"}  # stored before the field: optimistic
    assert config_name(old).endswith("__ties-optimistic")
