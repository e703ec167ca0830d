"""The leaderboard's aggregate views as pure functions of compare frames (cca_bench.web.tables)."""

from cca_bench.results import compare_frame
from cca_bench.web.tables import model_matrix


def run(method: str, dataset: str, split: str, rsum: float) -> dict:
    """A run record whose R-sum is ``rsum`` (all of it in i2t R@1, for simplicity)."""
    metrics = {
        t: {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "median_rank": 1.0, "mean_rank": 1.0}
        for t in ("image_annotation", "image_search")
    }
    metrics["image_annotation"]["R@1"] = rsum
    return {
        "method": method,
        "dataset": dataset,
        "split": split,
        "features": "f",
        "distance": "cosine",
        "protocol": "full",
        "metrics": metrics,
        "params_label": "",
        "_file": f"{method}-{dataset}-{split}.json",
    }


def test_models_by_datasets_averages_test_splits_every_row_has():
    """The issue's case: model B on 3 test datasets (one the easy `shapes`), model A beats it by 73 on the only one
    they share; a val run must not enter. A ranks first, both averages are over that one shared dataset.
    Planted bugs it caught: averaging each row over its own datasets (B first, 3 of 3), and keeping val columns
    (openmoji / val in the columns and in B's average)."""
    runs = [
        run("A", "openmoji", "test", 173.0),
        run("B", "openmoji", "test", 100.0),
        run("B", "shapes", "test", 450.0),
        run("B", "other", "test", 120.0),
        run("B", "openmoji", "val", 300.0),
        run("A", "openmoji", "val", 10.0),
    ]
    m = model_matrix(compare_frame(runs))
    assert m["columns"] == ["openmoji / full", "other / full", "shapes / full"]
    assert m["common"] == ["openmoji / full"]
    assert [(r["key"][0], r["average"], r["n"]) for r in m["rows"]] == [("A", 173.0, 1), ("B", 100.0, 3)]
    assert m["rows"][1]["cells"] == [100.0, 120.0, 450.0]


def test_models_by_datasets_without_a_shared_dataset_has_no_average():
    """Planted bug it caught: falling back to each row's own average when nothing is shared."""
    m = model_matrix(compare_frame([run("A", "openmoji", "test", 50.0), run("B", "shapes", "test", 400.0)]))
    assert m["common"] == [] and [r["average"] for r in m["rows"]] == [None, None]


def test_chance_rsum_is_what_random_rankings_score():
    """chance_rsum against random rankings (2,000 draws of a shuffled gallery, 30 images x 4 captions, and with 3
    folds). Planted bug it caught: image annotation's chance as K / n_captions (one caption per image)."""
    import numpy as np

    from cca_bench.web.tables import chance_rsum

    rng = np.random.default_rng(0)
    for n_img, per, folds in ((30, 4, 1), (30, 4, 3)):
        n_f, image_index = n_img // folds, np.repeat(np.arange(n_img // folds), per)
        total = 0.0
        for _ in range(2000):
            t2i = rng.permutation(n_f)[0]  # rank of one caption's image in a random order
            order = rng.permutation(n_f * per)  # a random order of the captions for one image
            i2t = np.flatnonzero(image_index[order] == 0)[0]
            total += sum(100.0 * (int(t2i < k) + int(i2t < k)) for k in (1, 5, 10))
        assert abs(total / 2000 - chance_rsum(n_img, n_img * per, folds)) < 4.0


def test_leaderboard_marks_untested_runs_with_a_double_dagger(tmp_path):
    """Issue 27 item 3 on the web leaderboard: a run no paired test could reach is marked untested (‡), not left
    unmarked beside the best (where it reads as "significantly worse"), and a tied run keeps its †. Planted bug it
    caught: the template without its ``untested`` branch (the page rendered the value bare)."""
    from flask import render_template

    from cca_bench.web.tables import leaderboard_groups

    runs = [
        run("A", "openmoji", "test", 150.0),
        run("B", "openmoji", "test", 140.0),
        run("C", "openmoji", "test", 90.0),
    ]
    frame = compare_frame(runs)
    marks = {
        ("A-openmoji-test.json", "R-sum"): "best",
        ("B-openmoji-test.json", "R-sum"): "tied",
        ("C-openmoji-test.json", "R-sum"): "untested",
    }
    (group,) = leaderboard_groups(frame, marks)
    col = group["columns"].index("R-sum")
    by_run = {r["run"]: r["cells"][col] for r in group["rows"]}
    assert by_run["C-openmoji-test"]["untested"] and not by_run["C-openmoji-test"]["tied"]
    assert by_run["B-openmoji-test"]["tied"] and not by_run["B-openmoji-test"]["untested"]
    from cca_bench.web import create_app

    app = create_app(tmp_path / "data", tmp_path / "results", "cpu", "127.0.0.1")
    with app.test_request_context():
        cell = (
            render_template(
                "leaderboard.html",
                groups=[group],
                n_runs=3,
                bad=[],
                marks_note=None,
                runs_dir="runs",
                matrix=None,
                query="",
                choices={"method": [], "features": []},
                state={
                    "method": None,
                    "features": None,
                    "published": False,
                    "sort": "R-sum",
                    "order": "desc",
                    "view": "runs",
                },
            )
            .split('data-value="90.0"')[1]
            .split("</td>")[0]
        )
    assert "&Dagger;" in cell or "‡" in cell
