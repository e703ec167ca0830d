"""compare: own runs beside the published reference rows, grouped by dataset / split / protocol; CSV; plots."""
import json

import pandas as pd
import pytest

from cca_bench.__main__ import main
from cca_bench.results import published_frame, write_json


def fake_run(dataset="flickr8k", protocol="full", method="cca", split="test", r1=30.0):
    task = {"R@1": r1, "R@5": 60.0, "R@10": 70.0, "median_rank": 4.0, "mean_rank": 20.0}
    curve = [min(100.0, r1 + 2 * k) for k in range(50)]
    return {"method": method, "dataset": dataset, "split": split, "features": "glove50_tinyimage", "distance": "cosine",
            "protocol": protocol, "params_label": "k=10 reg=0.1 p=1", "model": f"{method}__{dataset}__glove50_tinyimage",
            "metrics": {"image_annotation": task, "image_search": task},
            "recall_curve": {"image_annotation": curve, "image_search": curve}}


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for run in (fake_run(), fake_run("coco", "1k"), fake_run("coco", "5k", r1=20.0), fake_run("shapes"),
                fake_run(method="vse", r1=10.0)):
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
    assert main(["compare", "--results-root", str(results), "--csv", str(tmp_path / "out.csv"), "--columns", "all"]) == 0
    text = capsys.readouterr().out
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## coco / test / protocol 1k", "## coco / test / protocol 5k",
                        "## flickr8k / test / protocol full", "## shapes / test / protocol full", "## Sources"]
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
    assert pngs == ["cca__coco__glove50_tinyimage__test__1k.png", "cca__coco__glove50_tinyimage__test__5k.png",
                    "cca__flickr8k__glove50_tinyimage__test__full.png", "flickr8k__test__full.png",
                    "vse__flickr8k__glove50_tinyimage__test__full.png"]
    assert (results / "plots" / pngs[0]).read_bytes()[:4] == b"\x89PNG"
    assert "no recall_curve" in capsys.readouterr().err
