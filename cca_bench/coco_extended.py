"""ECCV Caption and CxC metrics of a COCO 5k test run, from the associations the ``eccv-caption`` package ships.

ECCV Caption (Chun et al., ECCV 2022, arXiv 2204.03359) adds machine- and human-verified positives to a subset
of the COCO 5k test queries (in the package: 1,261 image queries, 1,332 caption queries); CxC (Parekh et al.
2021) adds human-rated positives to every query (5,000 image queries, 24,972 caption queries). Both are keyed by
COCO image ids and COCO caption (annotation) ids, which Karpathy's ``dataset_coco.json`` carries as ``cocoid``
and ``sentids`` (``Split.extra["coco_ids"]``).

Per query, with its positives P (R = |P|) and its retrieved list (the gallery sorted by decreasing score; equal
scores in gallery order):
- ``eccv_r1``: the first item is in P;
- ``eccv_rprecision``: |top R & P| / R;
- ``eccv_map_at_r``: (1/R) sum_{r <= R} [item r in P] |top r & P| / r (Musgrave et al. 2020's mAP@R);
- ``cxc_r1/5/10``: some item of the top K is a CxC positive.
Each metric is the mean over the queries that have positives, in percent, as the package's evaluator computes it
(``eccv_caption.Metrics().compute_all_metrics``, the reference of the tests). Intervals: the image-level
bootstrap of every other metric (an image resampled with its captions; a caption query counts as often as its
image), on the same resamples (``stats.each_count_block``: the run's interval seed and draw order).
"""

from __future__ import annotations

import json

import numpy as np

PACKAGE = "eccv_caption"
METRICS = ("eccv_map_at_r", "eccv_rprecision", "eccv_r1", "cxc_r1", "cxc_r5", "cxc_r10")
HOW_TO_GET = 'pip install eccv-caption (or the extra: pip install -e ".[eccv]")'
BLOCK = 256  # queries per similarity block (256 x 25,000 scores and their sort order)


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec(PACKAGE) is not None


def associations() -> dict:
    """{"eccv": {"i2t": {image id: {caption ids}}, "t2i": {caption id: {image ids}}}, "cxc": {...},
    "coco": {...}, "test_caption_ids": (25000,) the 5k test captions in Karpathy order}, read from the package's
    JSON files (never unpickled: ``coco_test_ids.npy`` is read with ``allow_pickle=False``)."""
    from importlib.resources import files

    data = files(PACKAGE) / "data"
    out = {}
    for name, stem in (("eccv", "eccv"), ("cxc", "cxc"), ("coco", "original")):
        out[name] = {
            d: {
                int(k): {int(v) for v in vs}
                for k, vs in json.loads((data / f"{stem}_{a}_to_{b}.json").read_text()).items()
            }
            for d, (a, b) in (("i2t", ("image", "caption")), ("t2i", ("caption", "image")))
        }
    with (data / "coco_test_ids.npy").open("rb") as f:
        out["test_caption_ids"] = np.load(f, allow_pickle=False)
    return out


def top_lists(queries: np.ndarray, gallery: np.ndarray, k: int, distance: str) -> np.ndarray:
    """(n_q, k) gallery positions of each query's k best items, best first; equal scores in gallery order."""
    from cca_bench.metrics import prepare

    q, g = prepare(queries, distance), prepare(gallery, distance)
    out = np.empty((len(q), min(k, len(g))), dtype=np.int64)
    for s in range(0, len(q), BLOCK):
        scores = q[s : s + BLOCK] @ g.T
        if distance == "euclidean":
            scores = 2 * scores - (g * g).sum(1)[None, :]  # the query's own norm does not change its order
        out[s : s + BLOCK] = np.argsort(-scores, axis=1, kind="stable")[:, : out.shape[1]]
    return out


def per_query(lists: np.ndarray, gallery_ids: np.ndarray, positives: list[set]) -> dict:
    """{metric: (n_q,) 0/1 or fraction} of ECCV's three metrics and CxC-style R@1/5/10 for retrieved
    ``lists`` (n_q, k) of gallery positions, ``gallery_ids`` their COCO ids, ``positives`` each query's ids."""
    ids = gallery_ids[lists]
    hits = np.array([np.isin(row, list(p)) for row, p in zip(ids, positives)], dtype=np.float64)
    big_r = np.array([len(p) for p in positives])
    within = np.arange(hits.shape[1])[None, :] < big_r[:, None]
    precision = np.cumsum(hits, 1) / np.arange(1, hits.shape[1] + 1)
    return {
        "map_at_r": (precision * hits * within).sum(1) / big_r,
        "rprecision": (hits * within).sum(1) / big_r,
        **{f"r{k}": hits[:, :k].max(1) for k in (1, 5, 10)},
    }


def split_ids(split) -> tuple[np.ndarray, np.ndarray] | None:
    """(COCO image ids (n_img,), COCO caption ids (n_txt,)) of a split read from Karpathy's dataset_coco.json,
    or None when its reader kept none."""
    ids = split.extra.get("coco_ids")
    if not ids:
        return None
    return np.asarray(ids["images"], dtype=np.int64), np.asarray(ids["captions"], dtype=np.int64)


def why_not(split, image_index: np.ndarray, protocol: str) -> str | None:
    """Why this run gets no ECCV/CxC metrics (None: it does): only COCO 5k test runs whose caption rows are the
    split's captions in its order, with the COCO ids the package knows."""
    if protocol != "5k":
        return "only the 5k protocol"
    if not available():
        return f"they need the eccv-caption package: {HOW_TO_GET}"
    ids = split_ids(split)
    if ids is None:
        return f"{split.dataset}/{split.name} carries no COCO ids (Karpathy's dataset_coco.json has them)"
    if len(image_index) != len(ids[1]) or not np.array_equal(image_index, split.image_index):
        return "the caption rows are not the split's captions in its order (--image-index)"
    known = associations()["test_caption_ids"]
    if len(ids[1]) != len(known) or set(ids[1].tolist()) != set(known.tolist()):
        return f"{split.dataset}/{split.name} is not the COCO 5k test split the package annotates"
    return None


def _task(lists_per_seed, gallery_ids, query_ids, gts) -> tuple[np.ndarray, dict]:
    """(positions of the queries with positives, {metric: (m,) per-query values averaged over seeds})."""
    keep = np.array([int(q) in gts for q in query_ids])
    positives = [gts[int(q)] for q in query_ids[keep]]
    values = [per_query(lists[keep], gallery_ids, positives) for lists in lists_per_seed]
    return np.flatnonzero(keep), {m: np.mean([v[m] for v in values], axis=0) for m in values[0]}


def extended_metrics(
    embedded: list[tuple[np.ndarray, np.ndarray]],
    split,
    distance: str,
    resamples: int | None = 1000,
    seed: int = 0,
    cache_dir=None,
) -> dict:
    """The run-record field ``coco_extended``: {"metrics": {name: {"image_annotation", "image_search"}} in
    percent, "ci" (with ``resamples``), "queries" per benchmark and direction, "source"} of one or more seeds'
    (image (5000, k), caption (25000, k)) embeddings of the COCO 5k test split; ``cache_dir``: the resample
    cache's folder (DATA/cache) or None."""
    from importlib.metadata import version

    gts = associations()
    image_ids, caption_ids = split_ids(split)
    k = max(10, *(len(p) for name in ("eccv", "cxc") for d in gts[name].values() for p in d.values()))
    i2t = [top_lists(ei, et, k, distance) for ei, et in embedded]
    t2i = [top_lists(et, ei, k, distance) for ei, et in embedded]
    owners = {"image_annotation": np.arange(len(image_ids)), "image_search": split.image_index}
    per_task = {}
    for name, wanted in (("eccv", ("map_at_r", "rprecision", "r1")), ("cxc", ("r1", "r5", "r10"))):
        for task, lists, gallery, queries, d in (
            ("image_annotation", i2t, caption_ids, image_ids, "i2t"),
            ("image_search", t2i, image_ids, caption_ids, "t2i"),
        ):
            rows, values = _task(lists, gallery, queries, gts[name][d])
            for m in wanted:
                per_task.setdefault(f"{name}_{m}", {})[task] = (owners[task][rows], values[m])
    out = {
        "metrics": {m: {t: 100 * float(v.mean()) for t, (_, v) in tasks.items()} for m, tasks in per_task.items()},
        "queries": {m: {t: int(len(v)) for t, (_, v) in tasks.items()} for m, tasks in per_task.items()},
        "source": f"eccv-caption {version('eccv-caption')} associations; metrics computed by cca_bench",
    }
    if resamples:
        out["ci"] = _intervals(per_task, len(image_ids), resamples, seed, cache_dir)
    return out


def _intervals(per_task: dict, n_images: int, resamples: int, seed: int, cache_dir=None) -> dict:
    """95% percentile intervals over image-level resamples, on the resamples of the run's own intervals
    (:func:`cca_bench.stats.each_count_block`: the same draws, read from the resample cache when the evaluation
    stored them): a query weighs the count of its image, so a metric of resample b is sum_i c_bi V_i /
    sum_i c_bi Q_i, with V_i the sum of image i's query values and Q_i its number of queries, every metric's
    two columns one product with each block's counts (no (resamples x queries) matrix)."""
    from cca_bench.stats import each_count_block

    keys = [(m, t) for m, tasks in per_task.items() for t in tasks]
    cols = np.zeros((n_images, 2 * len(keys)))
    for j, (m, t) in enumerate(keys):
        owner, values = per_task[m][t]
        cols[:, 2 * j] = np.bincount(owner, weights=values, minlength=n_images)
        cols[:, 2 * j + 1] = np.bincount(owner, minlength=n_images)
    sums = np.concatenate(each_count_block([n_images], resamples, seed, lambda counts: counts[0] @ cols, cache_dir))
    out: dict = {}
    for j, (m, t) in enumerate(keys):
        reps = 100 * sums[:, 2 * j] / np.maximum(sums[:, 2 * j + 1], 1e-12)
        out.setdefault(m, {})[t] = [float(x) for x in np.percentile(reps, [2.5, 97.5])]
    return out


_SAID: set = set()


def record_fields(
    embedded: list, split, image_index: np.ndarray, distance: str, protocol: str, run, cache_dir=None
) -> dict:
    """``{"coco_extended": ...}`` for a run record when :func:`why_not` has no objection, else {} (and for a 5k
    run, a warning saying why, once per reason and process). ``run``: the run's
    :class:`~cca_bench.evaluation.RunOptions` (its bootstrap resamples and seed give the intervals);
    ``cache_dir``: the resample cache's folder (DATA/cache) or None."""
    reason = why_not(split, image_index, protocol)
    if reason is None:
        from cca_bench.config import timed

        return {
            "coco_extended": timed(
                {},
                "coco_extended",
                lambda: extended_metrics(embedded, split, distance, run.bootstrap, run.ci_seed, cache_dir),
            )
        }
    if protocol == "5k" and reason not in _SAID:
        import warnings

        _SAID.add(reason)
        warnings.warn(f"no ECCV Caption / CxC metrics for this 5k run: {reason}", stacklevel=2)
    return {}


LABELS = {
    "eccv_map_at_r": "ECCV mAP@R",
    "eccv_rprecision": "ECCV R-Precision",
    "eccv_r1": "ECCV R@1",
    "cxc_r1": "CxC R@1",
    "cxc_r5": "CxC R@5",
    "cxc_r10": "CxC R@10",
}


def markdown(field: dict) -> str:
    """The table a 5k run prints of its ``coco_extended`` field: each metric per direction with its interval
    and the number of queries that have positives."""
    from tabulate import tabulate

    ci = field.get("ci", {})
    cell = lambda m, t: (
        f"{field['metrics'][m][t]:.1f}"
        + (  # noqa: E731
            f" [{ci[m][t][0]:.1f}, {ci[m][t][1]:.1f}]" if m in ci else ""
        )
        + f" (n={field['queries'][m][t]})"
    )
    rows = [[LABELS[m], cell(m, "image_annotation"), cell(m, "image_search")] for m in METRICS]
    return (
        "### ECCV Caption and CxC (extended positives of COCO 5k test)\n\n"
        + tabulate(
            rows, ["metric", "Image Annotation (i2t)", "Image Search (t2i)"], tablefmt="github", disable_numparse=True
        )
        + f"\n\n{field['source']}; n = queries with positives"
    )
