"""The leaderboard's aggregate views as pure functions of compare frames (cca_bench.web.tables)."""
from cca_bench.results import compare_frame
from cca_bench.web.tables import model_matrix


def run(method: str, dataset: str, split: str, rsum: float) -> dict:
    """A run record whose R-sum is ``rsum`` (all of it in i2t R@1, for simplicity)."""
    metrics = {t: {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "median_rank": 1.0, "mean_rank": 1.0}
               for t in ("image_annotation", "image_search")}
    metrics["image_annotation"]["R@1"] = rsum
    return {"method": method, "dataset": dataset, "split": split, "features": "f", "distance": "cosine",
            "protocol": "full", "metrics": metrics, "params_label": "", "_file": f"{method}-{dataset}-{split}.json"}


def test_models_by_datasets_averages_test_splits_every_row_has():
    """The issue's case: model B on 3 test datasets (one the easy `shapes`), model A beats it by 73 on the only one
    they share; a val run must not enter. A ranks first, both averages are over that one shared dataset.
    Planted bugs it caught: averaging each row over its own datasets (B first, 3 of 3), and keeping val columns
    (openmoji / val in the columns and in B's average)."""
    runs = [run("A", "openmoji", "test", 173.0), run("B", "openmoji", "test", 100.0), run("B", "shapes", "test", 450.0),
            run("B", "other", "test", 120.0), run("B", "openmoji", "val", 300.0), run("A", "openmoji", "val", 10.0)]
    m = model_matrix(compare_frame(runs))
    assert m["columns"] == ["openmoji / full", "other / full", "shapes / full"]
    assert m["common"] == ["openmoji / full"]
    assert [(r["key"][0], r["average"], r["n"]) for r in m["rows"]] == [("A", 173.0, 1), ("B", 100.0, 3)]
    assert m["rows"][1]["cells"] == [100.0, 120.0, 450.0]


def test_models_by_datasets_without_a_shared_dataset_has_no_average():
    """Planted bug it caught: falling back to each row's own average when nothing is shared."""
    m = model_matrix(compare_frame([run("A", "openmoji", "test", 50.0), run("B", "shapes", "test", 400.0)]))
    assert m["common"] == [] and [r["average"] for r in m["rows"]] == [None, None]
