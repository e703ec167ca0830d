"""The contract of issue 27 through the command line: `significance` reports se / mdd / seed_aware and runs
TOST with --equivalence; the seed-aware test for runs with several seeds and the note for a seed-dependent run
with one; the `power` command. On a small shapes set."""

import json

import pytest

from cca_bench.__main__ import main

SMALL = ["-D", "n_train=200", "-D", "n_val=30", "-D", "n_test=60", "-q"]
FEAT = "glove50_tinyimage"
DS = "shapes[n_test=60,n_train=200,n_val=30]"
CCA = f"cca__{DS}__{FEAT}__test__full__cosine"
KCCA_ONE = f"kcca__{DS}__{FEAT}@seed0__test__full__cosine"
KCCA_SEEDS = f"kcca__{DS}__{FEAT}@seeds0-1-2__test__full__cosine"
KCCA = ["--kernel-map", "rff", "--landmarks", "64"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """cca (deterministic) and kcca with random Fourier features fitted with seeds 0, 1, 2 on shapes, scored as
    one run per seed 0 alone and as one three-seed run."""
    base = tmp_path_factory.mktemp("power")
    roots = ["--data-root", str(base / "data"), "--results-root", str(base / "results")]
    assert main(["generate", "cca", "shapes", FEAT, *SMALL, *roots]) == 0
    assert main(["run_benchmark", "cca", "shapes", "test", FEAT, *SMALL, *roots]) == 0
    assert main(["generate", "kcca", "shapes", FEAT, *KCCA, "--seeds", "0,1,2", *SMALL, *roots]) == 0
    assert main(["run_benchmark", "kcca", "shapes", "test", FEAT, "--seeds", "0,1,2", *SMALL, *roots]) == 0
    assert main(["run_benchmark", "kcca", "shapes", "test", FEAT, "--tag", "seed0", *SMALL, *roots]) == 0
    return base, roots


def _significance(roots, tmp_path, capsys, *argv):
    capsys.readouterr()
    out = tmp_path / "sig.json"
    assert main(["significance", *argv, "--json", str(out), "--resamples", "2000", *roots]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def test_significance_reports_se_mdd_and_equivalence(roots, tmp_path, capsys):
    """se and mdd are in the JSON and printed; TOST says equivalent for a margin far above the difference and
    not for one far below it. Planted bug caught: compare_runs dropping the equivalence record (the TOST
    never run) fails the key check."""
    _, r = roots
    printed, result = _significance(r, tmp_path, capsys, KCCA_ONE, CCA, "--equivalence", "500")
    assert {"se", "mdd", "seed_aware", "equivalence"} <= set(result) and result["seed_aware"] is False
    assert result["mdd"] == pytest.approx(2.8016 * result["se"], rel=1e-3)
    assert f"{result['mdd']:.2f}" in printed and "equivalent within +-500" in printed
    assert result["equivalence"]["equivalent"] is True
    printed, result = _significance(r, tmp_path, capsys, KCCA_ONE, CCA, "--equivalence", "0.01")
    assert "NOT shown equivalent within +-0.01" in printed and result["equivalence"]["equivalent"] is False


def test_seed_dependent_single_seed_gets_a_note_and_several_seeds_a_seed_aware_test(roots, tmp_path, capsys):
    """kcca (random features) with one seed against cca: the verdict says seed variance is not included and how
    to include it. The three-seed kcca run against cca: the seed-aware test (seed_aware true, 3 vs 1 seeds).
    Planted bugs caught: seed_stats.compare always taking the image-level test leaves seed_aware false; calling
    cca seed-dependent (its random_state only starts a power iteration) names both runs in the note."""
    _, r = roots
    printed, result = _significance(r, tmp_path, capsys, KCCA_ONE, CCA)
    assert result["seed_aware"] is False and "seed variance" in printed and "--seeds" in printed
    assert "run A is a seed-dependent method" in printed  # cca (run B) takes no seed that changes its result
    printed, result = _significance(r, tmp_path, capsys, KCCA_SEEDS, CCA)
    assert result["seed_aware"] is True and result["seeds"] == [3, 1] and "seed-aware" in result["test"]
    assert result["ci"][0] <= result["delta"] <= result["ci"][1] and "seed variance is" not in printed


def test_power_command_answers_images_needed(roots, tmp_path, capsys):
    """`power` from one run (assumed correlation) and with --versus (measured); the images needed shrink as
    the difference to detect grows. Planted bug caught: images_needed without the square (linear in SD/D)
    breaks the 4x ratio between --delta 5 and --delta 10."""
    _, r = roots
    answers = {}
    for delta in ("5", "10"):
        out = tmp_path / f"p{delta}.json"
        assert main(["power", "shapes", "test", "--run", CCA, "--delta", delta, "--json", str(out), *r]) == 0
        answers[delta] = json.loads(out.read_text())
    assert "test images like these" in capsys.readouterr().out
    five, ten = answers["5"]["images_needed"], answers["10"]["images_needed"]
    assert 3.5 < five / ten < 4.5 and "assumed" in answers["5"]["model"]
    out = tmp_path / "v.json"
    assert main(["power", "shapes", "test", "--run", CCA, "--versus", KCCA_ONE, "--json", str(out), *r]) == 0
    measured = json.loads(out.read_text())
    assert "measured" in measured["model"] and measured["images_needed"] is None and measured["mdd"] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["significance", CCA, KCCA_ONE, "--equivalence", "-1"], "expected a positive number"),
        (["power", "openmoji", "test", "--run", CCA], "not openmoji/test"),
        (["power", "shapes", "test", "--run", CCA, "--metric", "t2i:median_rank"], "median rank"),
        (["power", "shapes", "test", "--run", CCA, "--versus", KCCA_ONE, "--correlation", "0.3"], "--correlation"),
        (["power", "shapes", "test", "--run", CCA, "--correlation", "1.5"], "--correlation"),
    ],
)
def test_bad_requests_are_one_line(argv, message, roots, tmp_path, capsys):
    """One line naming the flag, non-zero exit, no JSON written. Planted bug caught: a --equivalence parser that
    lets negative margins through (the margin check in power.tost then words it differently)."""
    _, r = roots
    capsys.readouterr()
    try:
        code = main([*argv, "--json", str(tmp_path / "o.json"), *r])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o.json").exists()


def test_compare_marks_legend_names_each_columns_test(roots, capsys):
    """`compare --significance --columns all`: the legend names each column's test and the untested mark, and
    the best R-sum is bold. Planted bug caught: the old fixed legend ("paired sign-flip permutation test" for
    every column) lacks the median-rank columns' paired bootstrap."""
    _, r = roots
    capsys.readouterr()
    assert main(["compare", "--significance", "--split", "test", "--columns", "all", *r]) == 0
    table = capsys.readouterr().out
    assert "t2i MedR: paired bootstrap" in table and "‡ = untested" in table and "**" in table
