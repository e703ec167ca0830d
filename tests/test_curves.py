"""Data-efficiency curves (issue 28.1): subsets drawn by image, the stored curve and runs, the `all` point equal to
generate + run_benchmark, knobs that need more pairs than a size has, and one-line refusals."""

import json

import numpy as np
import pytest

from cca_bench.__main__ import main
from cca_bench.curves import adapt_params, draw_images, parse_sizes
from cca_bench.errors import UserError

SMALL = ["-D", "n_train=300", "-D", "n_val=40", "-D", "n_test=60", "-q"]
FEATURES = "glove50_tinyimage"


@pytest.fixture
def roots(tmp_path):
    return ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]


def _rsum(metrics: dict) -> float:
    return sum(metrics[t][f"R@{k}"] for t in metrics for k in (1, 5, 10))


def test_draw_images_keeps_captions_with_their_image_and_nests():
    """Planted bug caught: drawing captions instead of images (a subset with part of an image's captions), or a
    per-size random order (subsets of one seed no longer nested)."""
    image_index = np.repeat(np.arange(50), np.arange(50) % 4 + 1)  # 1..4 captions per image
    small, large = draw_images(image_index, 50, 20, seed=3), draw_images(image_index, 50, 60, seed=3)
    order = np.random.default_rng(3).permutation(50)  # the documented draw order
    for images, size in ((small, 20), (large, 60)):
        assert np.array_equal(images, np.sort(order[: len(images)]))
        assert np.isin(image_index, images).sum() >= size > np.isin(image_index, order[: len(images) - 1]).sum()
    assert set(small) <= set(large)
    assert not np.array_equal(small, draw_images(image_index, 50, 20, seed=4))


def test_parse_sizes_refuses_what_is_not_an_increasing_list():
    """Planted bug caught: accepting 'all' before a number or a repeated size."""
    assert parse_sizes("100, 300,all") == [100, 300, "all"]
    for bad in ("300,100", "all,100", "0,10", "10,10", "ten"):
        with pytest.raises(UserError, match="--train-sizes"):
            parse_sizes(bad)


def test_knobs_counted_in_train_rows_are_capped_at_a_small_subset():
    """Planted bug caught: removing the cap (ASIF's default top_k 800 on 30 anchors, kcca's --landmarks 500 on
    20 images then raise instead of adapting)."""
    from cca_bench.methods import load_all
    from cca_bench.registry import METHODS

    load_all()
    params, notes = adapt_params(METHODS.get("asif"), {}, n_images=20, n_pairs=30)
    assert params["top_k"] == 30 and len(notes) == 1 and "top_k 800" in notes[0]
    params, notes = adapt_params(METHODS.get("kcca"), {"landmarks": 500}, n_images=20, n_pairs=30)
    assert params["landmarks"] == 20 and notes
    assert adapt_params(METHODS.get("asif"), {"top_k": 10}, 20, 30) == ({"top_k": 10}, [])


def test_curve_all_point_equals_run_benchmark(roots, tmp_path, capsys, monkeypatch):
    """The `all` point is the method fitted on the whole train split, so its run equals generate + run_benchmark
    with the same options. The curve's evaluations all resample the same test images: drawn once, then read
    from the resample cache. Planted bugs caught: the `all` point fitted on a subset (one image dropped), the
    seed spread computed over captions instead of the seed R-sums, either of the curve's two evaluations not
    given the cache folder (drew again)."""
    from cca_bench import stats

    drawn, draw = [], stats._draw
    monkeypatch.setattr(stats, "_draw", lambda *args: drawn.append(1) or draw(*args))
    argv = ["cca", "shapes", FEATURES, "--train-sizes", "40,120,all", "--seeds", "0,1", *SMALL, *roots]
    assert main(["curve", *argv]) == 0
    assert len(drawn) == stats.PAIRED_RESAMPLES // stats.BLOCK  # one evaluation's blocks, of one fold
    out = capsys.readouterr().out
    assert "| size" in out and "curve stored in" in out
    curve = json.loads(next((tmp_path / "results" / "curves").glob("*.json")).read_text())
    assert [p["size"] for p in curve["points"]] == [40, 120, "all"]
    assert main(["generate", "cca", "shapes", FEATURES, *SMALL, *roots]) == 0
    assert main(["run_benchmark", "cca", "shapes", "test", FEATURES, *SMALL, *roots]) == 0
    runs = tmp_path / "results" / "runs"
    plain = json.loads(next(p for p in runs.glob("*.json") if "@curve" not in p.name).read_text())
    last = curve["points"][-1]
    assert last["n_pairs"] == [curve["train_pairs"]] and last["rsum"] == pytest.approx(
        _rsum(plain["metrics"]), abs=1e-9
    )
    assert json.loads((runs / (last["runs"][0] + ".json")).read_text())["metrics"] == plain["metrics"]
    first = curve["points"][0]
    assert len(first["runs"]) == 2 and min(first["n_pairs"]) >= 40
    assert first["rsum_seed_sd"] == pytest.approx(np.std(first["seed_rsums"], ddof=1))
    assert first["rsum"] == pytest.approx(np.mean(first["seed_rsums"]))
    assert first["rsum_ci"][0] <= first["rsum"] <= first["rsum_ci"][1]


def test_curve_runs_feed_significance_and_plot(roots, tmp_path, capsys):
    """Each point's runs keep their per-query ranks, so `significance` compares two points; --plot writes the
    figure. Planted bug caught: a run written without its ranks (write_run given no ``_ranks``)."""
    argv = ["asif", "shapes", FEATURES, "--train-sizes", "30,all", "--seeds", "0", "--plot", *SMALL, *roots]
    assert main(["curve", *argv]) == 0
    out = capsys.readouterr().out
    assert "note: at 3" in out and "top_k 800" in out  # ASIF's default top-k adapted, said in one line
    assert (tmp_path / "results" / "plots" / "curves__shapes.png").stat().st_size > 1000
    curve = json.loads(next((tmp_path / "results" / "curves").glob("*.json")).read_text())
    a, b = curve["points"][-1]["runs"][0], curve["points"][0]["runs"][0]
    assert main(["significance", a, b, "--resamples", "200", *roots[2:]]) == 0
    assert "A - B" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--train-sizes=100,50", "--train-sizes '100,50': give increasing sizes"),
        ("--train-sizes=all,10", "'all' only last"),
    ],
)
def test_bad_sizes_are_one_line_and_write_nothing(flag, message, roots, tmp_path, capsys):
    """Planted bug caught: sizes checked only after the features are encoded (a cache is then written)."""
    assert main(["curve", "cca", "shapes", FEATURES, flag, *SMALL, *roots]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()
