"""compare: own runs beside the published reference rows, grouped by dataset / split / protocol; CSV; plots."""

import json

import pandas as pd
import pytest

from cca_bench.__main__ import main
from cca_bench.results import published_frame, write_json


def fake_run(dataset="flickr8k", protocol="full", method="cca", split="test", r1=30.0):
    task = {"R@1": r1, "R@5": 60.0, "R@10": 70.0, "median_rank": 4.0, "mean_rank": 20.0}
    curve = [min(100.0, r1 + 2 * k) for k in range(50)]
    return {
        "method": method,
        "dataset": dataset,
        "split": split,
        "features": "glove50_tinyimage",
        "distance": "cosine",
        "protocol": protocol,
        "params_label": "k=10 reg=0.1 p=1",
        "model": f"{method}__{dataset}__glove50_tinyimage",
        "metrics": {"image_annotation": task, "image_search": task},
        "recall_curve": {"image_annotation": curve, "image_search": curve},
    }


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for run in (
        fake_run(),
        fake_run("coco", "1k"),
        fake_run("coco", "5k", r1=20.0),
        fake_run("shapes"),
        fake_run(method="vse", r1=10.0),
    ):
        write_json(root / "runs" / f"{run['model']}__{run['split']}__{run['protocol']}.json", run)
    return root


def test_published_rows_are_data_with_citations():
    frame = published_frame()
    assert len(frame) == 20 and frame["Citation"].str.len().min() > 10
    klein = frame[(frame["Method"] == "CCA mean vec (Klein 2015)") & (frame["Dataset"] == "flickr8k")].iloc[0]
    assert (klein["i2t R@1"], klein["t2i MedR"], klein["Source"]) == (22.6, 7.0, "Klein et al. CVPR 2015")
    assert pd.isna(klein["i2t MeanR"])  # mean rank was not published
    assert set(frame["Protocol"]) == {"full", "1k"} and set(frame["Family"]) == {"cca", "vse"}


def test_compare_groups_by_protocol_and_shows_published_beside_own_runs(results, tmp_path, capsys):
    assert (
        main(["compare", "--results-root", str(results), "--csv", str(tmp_path / "out.csv"), "--columns", "all"]) == 0
    )
    text = capsys.readouterr().out
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## coco / test / protocol 1k",
        "## coco / test / protocol 5k",
        "## flickr8k / test / protocol full",
        "## shapes / test / protocol full",
        "## Sources",
    ]
    coco_1k = text.split("## coco / test / protocol 1k")[1].split("##")[0]
    assert "| this suite" in coco_1k and "Klein et al. CVPR 2015" in coco_1k and "VSE (Kiros repo code)" in coco_1k
    assert "Klein" not in text.split("## coco / test / protocol 5k")[1].split("##")[0]  # nothing published for 5k
    assert "| -" in coco_1k  # the median rank Klein et al. did not publish
    assert "Flickr30k" not in text and "flickr30k" not in text  # no own flickr30k runs: no published rows
    assert "Faghri" not in text
    csv = pd.read_csv(tmp_path / "out.csv")
    assert csv.equals(pd.read_csv(results / "RESULTS.csv"))
    assert (csv["Source"] == "this suite").sum() == 5 and len(csv) == 5 + 8 + 2  # flickr8k: 8 published, coco 1k: 2
    assert csv.loc[csv["Source"] == "this suite", "Citation"].isna().all()


def test_compare_published_flag_and_filters(results, capsys):
    assert main(["compare", "--results-root", str(results), "--published", "--method", "vse", "--columns", "all"]) == 0
    text = capsys.readouterr().out
    assert "Faghri et al. BMVC 2018" in text and "CCA mean vec" not in text
    assert text.count("| this suite") == 1  # the vse run
    assert main(["compare", "--results-root", str(results), "--dataset", "coco"]) == 0
    text = capsys.readouterr().out
    assert "flickr8k" not in text and "protocol 5k" in text


def test_compare_plot_writes_one_png_per_shown_run(results, capsys):
    old = json.loads(next((results / "runs").glob("cca__shapes*.json")).read_text())
    del old["recall_curve"]
    write_json(next((results / "runs").glob("cca__shapes*.json")), old)
    assert main(["compare", "--results-root", str(results), "--plot"]) == 0
    pngs = sorted(p.name for p in (results / "plots").glob("*.png"))
    assert pngs == [
        "cca__coco__glove50_tinyimage__test__1k.png",
        "cca__coco__glove50_tinyimage__test__5k.png",
        "cca__flickr8k__glove50_tinyimage__test__full.png",
        "flickr8k__test__full.png",
        "vse__flickr8k__glove50_tinyimage__test__full.png",
    ]
    assert (results / "plots" / pngs[0]).read_bytes()[:4] == b"\x89PNG"
    assert "no recall_curve" in capsys.readouterr().err


def _tied_run(tmp_path, ties: str) -> dict:
    """A run scored under ``ties`` on small integer scores full of ties, stored by write_run and read back as
    load_runs gives it."""
    import numpy as np

    from cca_bench import metrics, stats
    from cca_bench.results import read_run, write_run

    rng = np.random.default_rng(0)
    ims = rng.integers(-1, 2, size=(30, 3)).astype(np.float32)
    idx = np.sort(rng.integers(0, 30, size=90))
    txt = rng.integers(-1, 2, size=(90, 3)).astype(np.float32)
    ims[~ims.any(1), 0], txt[~txt.any(1), 0] = 1, 1
    ranks = stats.from_fold_ranks(metrics.fold_counts(ims, txt, idx, "dot"), idx, 30, ties)
    record = fake_run() | {"distance": "dot", "ties": ties, "metrics": stats.point_metrics(ranks), "_ranks": ranks}
    record, why = read_run(write_run(tmp_path / "results", record))
    assert why is None
    return record


@pytest.mark.parametrize("ties", ["expected", "optimistic", "pessimistic"])
def test_a_ranks_file_keeps_the_tie_counts_and_reproduces_the_metrics_exactly(ties, tmp_path):
    """The file holds s, t (and m for annotation) per query; load_ranks gives them back under the run's rule
    and its exact metrics check passes; a run under another rule than the default gets its own file name.
    Planted bug it caught: load_ranks ignoring the tie members (expected and pessimistic runs refused)."""
    import numpy as np

    from cca_bench import stats
    from cca_bench.results import load_ranks

    record = _tied_run(tmp_path, ties)
    ranks = load_ranks(record)
    assert ranks.ties == ties and stats.point_metrics(ranks) == record["metrics"]
    with np.load(tmp_path / "results" / "runs" / record["ranks_file"], allow_pickle=False) as z:
        assert {"image_annotation_tied", "image_annotation_gt_tied", "image_search_tied"} <= set(z.files)
        assert z["image_search_tied"].any() and (z["image_annotation_gt_tied"] > 1).any()
    assert ("ties-" in record["ranks_file"]) == (ties != "expected")


def _rewrite_ranks(record: dict, drop_ties: bool, **fields) -> dict:
    """The record's ranks file rewritten without its tie members (as files were kept before them), the JSON's
    sha256 and ``fields`` updated: what an old run, or a tampered new one, looks like."""
    import hashlib
    import io

    import numpy as np

    path = __import__("pathlib").Path(record["_file"]).with_name(record["ranks_file"])
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files if not (drop_ties and k.endswith("_tied"))}
    buf = io.BytesIO()
    np.savez(buf, **members)
    path.write_bytes(buf.getvalue())
    return record | {"ranks_sha256": hashlib.sha256(buf.getvalue()).hexdigest()} | fields


def test_an_old_ranks_file_without_tie_counts_loads_under_its_stored_rule(tmp_path):
    """Files kept before the tie counts hold the optimistic ranks (s) and their run says optimistic in
    ``config.ties`` (no top-level ``ties``): they load and reproduce their metrics. Planted bug it caught: a
    record without ``ties`` read as the new default (refused: its ranks do not give its metrics)."""
    from cca_bench.results import load_ranks

    record = _tied_run(tmp_path, "optimistic")
    old = _rewrite_ranks(record, drop_ties=True, config={"ties": "optimistic"})
    del old["ties"]
    ranks = load_ranks(old)
    assert ranks.ties == "optimistic" and not ranks.i2t.tied.any() and not ranks.t2i.tied.any()


def test_a_ranks_file_stripped_of_its_tie_counts_is_refused_in_one_line(tmp_path):
    """Under the default rule the tie counts change the metrics: without them (sha256 made to match) the file
    no longer reproduces the JSON and is refused. Planted bug it caught: load_ranks without its exact metrics
    check (the stripped file was accepted)."""
    from cca_bench.errors import UserError
    from cca_bench.results import load_ranks

    stripped = _rewrite_ranks(_tied_run(tmp_path, "expected"), drop_ties=True)
    with pytest.raises(UserError, match="do not give the metrics") as e:
        load_ranks(stripped)
    assert "\n" not in str(e.value)


def test_compare_carries_a_coco_5k_runs_eccv_and_cxc_metrics(tmp_path, capsys):
    """Issue 28 item 3: ECCV Caption / CxC metrics of a COCO 5k run reach `compare` (picked with --columns) and
    its CSV; other runs' cells stay empty. Planted bug it caught: compare_frame without the extended columns
    (the CSV had no eccv_r1 column)."""
    root = tmp_path / "results"
    five_k = fake_run("coco", "5k", r1=20.0)
    five_k["coco_extended"] = {
        "metrics": {
            "eccv_r1": {"image_annotation": 41.5, "image_search": 30.25},
            "cxc_r1": {"image_annotation": 22.0, "image_search": 15.0},
        }
    }
    for run in (five_k, fake_run("coco", "1k")):
        write_json(root / "runs" / f"{run['model']}__{run['split']}__{run['protocol']}.json", run)
    assert (
        main(
            [
                "compare",
                "--results-root",
                str(root),
                "--dataset",
                "coco",
                "--csv",
                str(tmp_path / "o.csv"),
                "--columns",
                "Method,R-sum,i2t eccv_r1,t2i cxc_r1",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "41.5" in text.split("protocol 5k")[1] and "15" in text.split("protocol 5k")[1]
    csv = pd.read_csv(tmp_path / "o.csv")
    own = csv[csv["Source"] == "this suite"].set_index("Protocol")
    assert own.loc["5k", "i2t eccv_r1"] == 41.5 and own.loc["5k", "t2i eccv_r1"] == 30.25
    assert pd.isna(own.loc["1k", "i2t eccv_r1"])


def test_compare_without_runs_refuses_and_writes_nothing(tmp_path, results, capsys):
    """A mistyped --results-root used to be created and given a RESULTS.md saying 'No runs stored yet' (and an
    empty one replaced the tables there). Planted bug caught: the refusal removed (the folder and files appear)."""
    missing = tmp_path / "reslts"
    assert main(["compare", "--results-root", str(missing)]) == 2
    assert "no runs stored under" in capsys.readouterr().err and not missing.exists()
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    (empty / "RESULTS.md").write_text("kept\n")
    assert main(["compare", "--results-root", str(empty)]) == 2
    assert (empty / "RESULTS.md").read_text() == "kept\n" and not (empty / "RESULTS.csv").exists()
    assert main(["compare", "--results-root", str(missing), "--published", "--columns", "all"]) == 0  # still works
