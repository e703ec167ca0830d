"""CCA grid search: one covariance pass, one solve per reg, and a best model identical to a direct fit."""

from unittest import mock

import numpy as np
import pytest

from cca_bench import linalg
from cca_bench.cv import SELECT, clip_components, grid_search
from cca_bench.errors import UserError
from cca_bench.features.store import FeatureSet
from cca_bench.methods.cca import RegularizedCCA


def feature_set(n_img, seed):
    """Images with 5 captions each; captions see 6 latent dimensions of their image through noise."""
    rng = np.random.default_rng(seed)
    mix_x, mix_y = np.random.default_rng(99).standard_normal((2, 6, 30))
    z = rng.standard_normal((n_img, 6))
    index = np.repeat(np.arange(n_img), 5)
    images = z @ mix_x + 0.5 * rng.standard_normal((n_img, 30))
    texts = z[index] @ mix_y[:, :20] + rng.standard_normal((5 * n_img, 20))
    return FeatureSet(images.astype(np.float32), texts.astype(np.float32), index)


GRID = {"n_components": [2, 6, 40], "reg": [1.0, 0.01], "eig_power": [0, 1, 4]}


def test_grid_reuses_one_covariance_pass_and_one_solve_per_reg():
    train, val = feature_set(400, 0), feature_set(50, 1)
    with (
        mock.patch.object(linalg, "paired_moments", wraps=linalg.paired_moments) as moments,
        mock.patch.object(linalg, "solve_cca", wraps=linalg.solve_cca) as solve,
    ):
        best, report = grid_search(RegularizedCCA, train, val, GRID, {})
    assert moments.call_count == 1 and solve.call_count == len(GRID["reg"])
    # 40 > min(30, 20): clipped to 20, with a note; 3 x 2 x 3 grid points scored
    assert report["grid"]["n_components"] == [2, 6, 20] and "clipped to 20" in report["notes"][0]
    assert len(report["rows"]) == 18
    chosen = {k: report["best"][k] for k in ("n_components", "reg", "eig_power")}
    direct = RegularizedCCA(**chosen).fit(train.images, train.texts, x_index=train.image_index)
    np.testing.assert_array_equal(best.embed_images(val), direct.embed_images(val))
    np.testing.assert_array_equal(best.embed_texts(val), direct.embed_texts(val))
    assert best.get_params() == direct.get_params()
    # the best row is the best: no row has a higher R-sum
    assert report["best"]["rsum"] == max(r["rsum"] for r in report["rows"])


def test_selection_rules_and_tie_breaks():
    rows = [{"rsum": 300.0, "medr_sum": 4.0}, {"rsum": 310.0, "medr_sum": 6.0}, {"rsum": 300.0, "medr_sum": 3.0}]
    assert min(rows, key=SELECT["rsum"]) is rows[1]
    assert min(rows, key=SELECT["medr"]) is rows[2]
    assert min(rows[:1] + rows[2:], key=SELECT["rsum"]) is rows[2]  # equal R-sum: fewer median ranks wins


def test_medr_selection_and_bad_grids():
    train, val = feature_set(300, 2), feature_set(40, 3)
    _, report = grid_search(
        RegularizedCCA, train, val, {"n_components": [3, 6], "reg": [0.1], "eig_power": [1]}, {}, select="medr"
    )
    assert report["best"]["medr_sum"] == min(r["medr_sum"] for r in report["rows"])
    with pytest.raises(UserError, match="cv-select"):
        grid_search(RegularizedCCA, train, val, GRID, {}, select="best")
    with pytest.raises(UserError, match=">= 0"):
        grid_search(RegularizedCCA, train, val, {"reg": [-1]}, {})


def test_clip_components_dedupes():
    assert clip_components([75, 100, 300, 10], 50) == (
        [10, 50],
        "n_components 75, 100, 300 exceed min(dx, dy) = 50: clipped to 50",
    )
    assert clip_components([5, 10], 50) == ([5, 10], None)


def test_generate_refuses_cv_for_a_method_without_a_grid_and_without_val():
    from cca_bench.benchmark import Options, fit_model

    class NoGrid:
        def __init__(self, **params):
            pass

    train = feature_set(20, 4)
    train.meta["dataset"] = "toy"
    with pytest.raises(UserError, match="no --cv grid search"):
        fit_model(NoGrid, "nogrid", train, train, {}, {"grid": {}}, Options())
    with pytest.raises(UserError, match="toy has none"):
        fit_model(RegularizedCCA, "cca", train, None, {}, {"grid": {}}, Options())


def test_edge_notes_name_every_searched_knob_on_the_edge_of_its_grid():
    from cca_bench.cv import CV_FLAGS, edge_notes

    grid = {
        "gamma_scale": [1.0, 4.0],
        "landmarks": [100],
        "n_components": [2, 6, 20],
        "reg": [1.0, 0.01],
        "eig_power": [0, 1, 4],
    }
    best = {"gamma_scale": 4.0, "landmarks": 100, "n_components": 20, "reg": 0.01, "eig_power": 1}
    flags = {**CV_FLAGS, "gamma_scale": "--cv-gamma"}
    # n_components = 20 = min(dx, dy) has nothing above it; eig_power 1 is inside; one landmark value is no search
    assert edge_notes(grid, best, flags, k_max=20) == [
        "gamma_scale = 4 is the largest value of the grid: extend --cv-gamma above it",
        "reg = 0.01 is the smallest value of the grid: extend --cv-reg below it",
    ]
    assert edge_notes(grid, {**best, "eig_power": 4}, flags, k_max=50)[1:] == [
        "n_components = 20 is the largest value of the grid: extend --cv-components above it",
        "reg = 0.01 is the smallest value of the grid: extend --cv-reg below it",
        "eig_power = 4 is the largest value of the grid: extend --cv-eig-power above it",
    ]
    # nothing lies below 0: eig_power = 0 (unweighted) and reg = 0 (plain CCA) are no edge to extend
    assert not [
        n
        for n in edge_notes({**grid, "reg": [0, 1.0]}, {**best, "eig_power": 0, "reg": 0}, flags, 20)
        if "eig_power" in n or "reg" in n
    ]


def test_edges_are_in_the_report_and_its_markdown():
    from cca_bench.results import cv_markdown

    train, val = feature_set(300, 5), feature_set(40, 6)
    _, report = grid_search(
        RegularizedCCA, train, val, {"n_components": [3, 6], "reg": [10.0, 1.0], "eig_power": [1]}, {}
    )
    assert report["best"]["reg"] == 1.0 and "reg = 1 is the smallest value of the grid" in report["edges"][-1]
    assert "**edge of the grid**: reg = 1 is the smallest" in cv_markdown(report, "toy")


def test_kernel_cca_outer_grid_one_pass_per_gamma_and_a_best_model_equal_to_a_direct_fit():
    from cca_bench.methods.kcca import KernelCCA

    train, val = feature_set(200, 7), feature_set(40, 8)
    grid = {
        "gamma_scale": [0.5, 2.0],
        "landmarks": [40, 80],
        "n_components": [3, 6],
        "reg": [0.1, 0.01],
        "eig_power": [1],
    }
    with (
        mock.patch.object(linalg, "paired_moments", wraps=linalg.paired_moments) as moments,
        mock.patch.object(linalg, "solve_cca", wraps=linalg.solve_cca) as solve,
    ):
        best, report = grid_search(KernelCCA, train, val, grid, {})
    assert moments.call_count == 4 and solve.call_count == 8 and len(report["rows"]) == 16
    chosen = {k: report["best"][k] for k in grid}
    direct = KernelCCA(**chosen).fit(train.images, train.texts, x_index=train.image_index)
    np.testing.assert_array_equal(best.embed_images(val), direct.embed_images(val))
    np.testing.assert_array_equal(best.embed_texts(val), direct.embed_texts(val))
    with pytest.raises(UserError, match="above the 200 train images"):
        grid_search(KernelCCA, train, val, {"landmarks": [40, 201]}, {})
