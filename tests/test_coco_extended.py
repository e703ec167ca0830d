"""ECCV Caption and CxC metrics of COCO 5k runs (issue 28.3), cross-checked against the eccv-caption package's own
evaluator on a COCO-layout dataset built here with the real COCO 5k test ids (no images: `evaluate` scores
embeddings made in the test)."""

import json

import eccv_caption  # the test extra installs it: the reference evaluator
import numpy as np
import pytest
from test_stats import _evaluated

from cca_bench.__main__ import main


def _coco_layout(root):
    """data/coco/dataset_coco.json: the 5,000 test images in the package's order with their five real caption ids
    (sentids) and placeholder captions, plus two train images (a split needs no files to be evaluated)."""
    from cca_bench.coco_extended import associations

    gts = associations()
    c2i = {c: next(iter(i)) for c, i in gts["coco"]["t2i"].items()}
    order = list(dict.fromkeys(c2i[int(c)] for c in gts["test_caption_ids"]))
    by_image = {}
    for c in gts["test_caption_ids"]:
        by_image.setdefault(c2i[int(c)], []).append(int(c))
    images = [
        {
            "filename": f"COCO_val2014_{i:012d}.jpg",
            "filepath": "val2014",
            "split": "test",
            "cocoid": i,
            "sentences": [{"raw": f"caption {c}", "sentid": c} for c in by_image[i]],
        }
        for i in order
    ]
    images += [
        {
            "filename": f"train{k}.jpg",
            "filepath": "train2014",
            "split": "train",
            "cocoid": 10**9 + k,
            "sentences": [{"raw": "a train caption", "sentid": 10**9 + k}],
        }
        for k in range(2)
    ]
    (root / "coco").mkdir(parents=True)
    (root / "coco" / "dataset_coco.json").write_text(json.dumps({"dataset": "coco", "images": images}))
    return order, gts["test_caption_ids"]


def _embeddings(n_img, seed=0):
    """Image rows z_i plus a fold indicator, caption rows z_img + noise + the same indicator: the indicator keeps
    each query's 1k fold ahead of the other folds, so the top 50 of the 5k gallery hold its 10 best of its fold
    (the package's coco_1k_recalls filters truncated lists to the fold)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_img, 12))
    fold = np.repeat(np.eye(5), n_img // 5, axis=0) * 6.0
    images = np.hstack([z, fold])
    caps = np.repeat(z, 5, axis=0) + rng.normal(scale=1.2, size=(5 * n_img, 12))
    return images.astype(np.float32), np.hstack([caps, np.repeat(fold, 5, axis=0)]).astype(np.float32)


def _lists(images, texts, image_ids, caption_ids, k=50):
    """Retrieved id lists by cosine, computed here with a plain full sort (stable: ties in gallery order)."""
    a = images / np.linalg.norm(images, axis=1, keepdims=True)
    b = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    s = a @ b.T
    i2t = {int(image_ids[i]): caption_ids[np.argsort(-s[i], kind="stable")[:k]].tolist() for i in range(len(a))}
    t2i = {int(caption_ids[j]): image_ids[np.argsort(-s[:, j], kind="stable")[:k]].tolist() for j in range(len(b))}
    return i2t, t2i


@pytest.fixture(scope="module")
def coco_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    order, caption_ids = _coco_layout(root / "data")
    images, texts = _embeddings(len(order))
    np.save(root / "img.npy", images)
    np.save(root / "txt.npy", texts)
    runs = {}
    from cca_bench import stats

    drawn, draw = [], stats._draw
    for protocol in ("5k", "1k"):
        argv = [
            "evaluate",
            "coco",
            "test",
            "--images",
            str(root / "img.npy"),
            "--texts",
            str(root / "txt.npy"),
            "--name",
            f"synthetic{protocol}",
            "--protocol",
            protocol,
            "--bootstrap",
            "200",
            "--data-root",
            str(root / "data"),
            "--results-root",
            str(root / "results"),
            "-q",
        ]
        drawn.clear()
        with pytest.MonkeyPatch.context() as patch:  # how often the resamples are drawn
            patch.setattr(stats, "_draw", lambda *args: drawn.append(1) or draw(*args))
            assert main(argv) == 0
        path = next((root / "results" / "runs").glob(f"synthetic{protocol}*.json"))
        runs[protocol] = json.loads(path.read_text()) | {"_file": str(path), "_draws": len(drawn)}
    reference = eccv_caption.Metrics().compute_all_metrics(
        *_lists(images, texts, np.array(order), caption_ids),
        target_metrics=(
            "eccv_map_at_r",
            "eccv_rprecision",
            "eccv_r1",
            "cxc_recalls",
            "coco_5k_recalls",
            "coco_1k_recalls",
        ),
        Ks=(1, 5, 10),
    )
    return runs, reference, root


DIRECTIONS = {"i2t": "image_annotation", "t2i": "image_search"}


def test_eccv_and_cxc_equal_the_package_evaluator(coco_runs):
    """Planted bug caught: mAP@R averaged over the hits among the top R instead of over R (i2t mAP@R 22.4
    against the package's 2.7)."""
    runs, reference, _ = coco_runs
    ours = runs["5k"]["coco_extended"]
    for name in ("eccv_map_at_r", "eccv_rprecision", "eccv_r1", "cxc_r1", "cxc_r5", "cxc_r10"):
        for d, task in DIRECTIONS.items():
            assert ours["metrics"][name][task] == pytest.approx(100 * reference[name][d], abs=1e-9), (name, d)
            lo, hi = ours["ci"][name][task]
            assert lo <= ours["metrics"][name][task] <= hi
    assert ours["queries"]["eccv_r1"] == {"image_annotation": 1261, "image_search": 1332}
    assert ours["queries"]["cxc_r1"] == {"image_annotation": 5000, "image_search": 24972}
    assert "1k" not in json.dumps(runs["1k"].get("coco_extended", {}))  # only 5k runs carry them


def test_the_5k_runs_intervals_draw_their_resamples_once(coco_runs):
    """The 5k run's R@K intervals and its ECCV/CxC intervals are taken on the same resamples, drawn once (one
    block of 200) and read back from the resample cache by the second. Planted bug it caught: evaluate not
    handing its cache folder to the ECCV/CxC fields (drawn twice)."""
    runs, _, _ = coco_runs
    assert runs["5k"]["_draws"] == 1


def test_coco_5k_and_1k_recalls_equal_the_package(coco_runs):
    """The suite's own R@K of the 5k and 1k protocols on the same embeddings equal the package's
    coco_5k_recalls / coco_1k_recalls. Planted bug caught: the captions of the dataset read in another order
    than their sentids (their COCO ids no longer follow the rows)."""
    runs, reference, _ = coco_runs
    for protocol, key in (("5k", "coco_5k"), ("1k", "coco_1k")):
        for k in (1, 5, 10):
            for d, task in DIRECTIONS.items():
                assert runs[protocol]["metrics"][task][f"R@{k}"] == pytest.approx(
                    100 * reference[f"{key}_r{k}"][d], abs=1e-9
                ), (protocol, k, d)


def test_run_page_shows_the_eccv_and_cxc_numbers(coco_runs):
    """The web app's run page of the 5k run shows each ECCV/CxC number of its record. Planted bug caught: the
    include dropped from run.html."""
    from pathlib import Path

    from cca_bench.web import create_app

    runs, _, root = coco_runs
    client = create_app(root / "data", root / "results").test_client()
    body = client.get(f"/run/{Path(runs['5k']['_file']).stem}").get_data(as_text=True)
    ext = runs["5k"]["coco_extended"]
    assert 'id="coco-extended"' in body
    for name in ext["metrics"]:
        for task in ("image_annotation", "image_search"):
            assert f"{ext['metrics'][name][task]:.1f}" in body


def _per_task(n_img: int, seed: int = 0) -> dict:
    """ECCV/CxC-shaped per-query values: image queries (some images without one) and caption queries."""
    rng = np.random.default_rng(seed)
    images = np.flatnonzero(rng.random(n_img) < 0.7)
    captions = np.repeat(np.arange(n_img), 5)[rng.random(5 * n_img) < 0.5]
    return {
        "eccv_map_at_r": {
            "image_annotation": (images, rng.random(len(images))),
            "image_search": (captions, rng.random(len(captions))),
        },
        "cxc_r1": {
            "image_annotation": (images, rng.integers(0, 2, len(images)) * 1.0),
            "image_search": (captions, rng.integers(0, 2, len(captions)) * 1.0),
        },
    }


def test_extended_intervals_resample_the_runs_own_resamples(tmp_path, monkeypatch):
    """The ECCV/CxC intervals are taken on the resamples of the run's other intervals (the documented block
    draw order of the interval seed), as a (resamples x queries) weighting of each query by its image's count
    would give them, and from the resample cache when the evaluation stored them there. Planted bugs it caught:
    the old draws (all resamples in one call: every block after the first differed); a metric's query count
    column left out of the ratio's denominator (the image's count weighed each query once); the cache folder
    not handed on (drew again); each_count_block not storing what it drew."""
    from cca_bench import stats
    from cca_bench.coco_extended import _intervals

    n_img, resamples, seed = 60, 2100, 3
    per_task = _per_task(n_img)
    rng = np.random.default_rng(seed)
    blocks = [stats._draw(rng, n_img, min(1000, resamples - s)) for s in range(0, resamples, 1000)]
    counts = np.concatenate([stats._counts(b) for b in blocks])
    want = {}
    for m, tasks in per_task.items():
        for t, (owner, values) in tasks.items():
            w = counts[:, owner]
            reps = 100 * (w @ values) / w.sum(1)
            want.setdefault(m, {})[t] = list(np.percentile(reps, [2.5, 97.5]))
    got = _intervals(per_task, n_img, resamples, seed)
    for m in want:
        for t in want[m]:
            np.testing.assert_allclose(got[m][t], want[m][t], rtol=1e-12, err_msg=f"{m} {t}")

    stats.bootstrap_ci_mc(
        _evaluated(n_img=n_img)[0], resamples, 0.95, seed, stats.ResampleDraws([n_img], resamples, seed, tmp_path)
    )

    def refuse(*args):
        raise AssertionError("drew the resamples although the evaluation stored their counts")

    monkeypatch.setattr(stats, "_draw", refuse)
    assert _intervals(per_task, n_img, resamples, seed, tmp_path) == got
    monkeypatch.undo()  # and the other way round: stored by the ECCV/CxC intervals, read by the bootstrap
    assert _intervals(per_task, n_img, resamples, seed, tmp_path / "other") == got
    monkeypatch.setattr(stats, "_draw", refuse)
    ranks = _evaluated(n_img=n_img)[0]
    stored = stats.ResampleDraws([n_img], resamples, seed, tmp_path / "other")
    assert stats.bootstrap_ci_mc(ranks, resamples, 0.95, seed, stored) == stats.bootstrap_ci_mc(
        ranks, resamples, 0.95, seed, stats.ResampleDraws([n_img], resamples, seed, tmp_path)
    )
