"""Grid search of RegularizedCCA's n_components x reg x eig_power on the val split, from one covariance pass.

The covariances are computed once (``RegularizedCCA.moments``) and solved once per reg
(``linalg.solve_cca``); every n_components is the first k columns of that solve and every eig_power a
rescaling at projection, so the grid costs one fit plus one SVD per reg plus the val evaluations.
Selection follows the 'text-image-embeddings' project (lowest sum of median ranks, ``select="medr"``) or
the R-sum used by the VSE line of work (R@1 + R@5 + R@10 of both directions, ``select="rsum"``, default).
"""
from __future__ import annotations

import time
from typing import Callable

from cca_bench.checks import NON_NEGATIVE
from cca_bench.errors import UserError
from cca_bench.metrics import TASK_NAMES

DEFAULT_GRID = {"n_components": (75, 100, 130, 200, 300), "reg": (10.0, 1.0, 0.1, 0.01, 0.001),
                "eig_power": (0.0, 1.0, 2.0, 4.0)}
# sort keys, best first under each rule; the other score breaks ties, then the earlier grid point wins
SELECT: dict[str, Callable[[dict], tuple]] = {
    "rsum": lambda row: (-row["rsum"], row["medr_sum"]),
    "medr": lambda row: (row["medr_sum"], -row["rsum"]),
}


def clip_components(values, k_max: int) -> tuple[list[int], str | None]:
    """n_components values clipped to ``k_max`` = min(dx, dy) and deduplicated, with a note when clipped."""
    values = [int(v) for v in values]
    if min(values) < 1:
        raise UserError(f"--cv-components must be >= 1, got {min(values)}")
    clipped = sorted({min(v, k_max) for v in values})
    over = sorted(v for v in values if v > k_max)
    note = (f"n_components {', '.join(map(str, over))} exceed min(dx, dy) = {k_max}: clipped to {k_max}"
            if over else None)
    return clipped, note


def score(metrics: dict) -> dict:
    """R-sum (R@1 + R@5 + R@10 of both tasks) and the sum of both median ranks of one evaluation."""
    return {"rsum": sum(metrics[t][f"R@{k}"] for t in TASK_NAMES for k in (1, 5, 10)),
            "medr_sum": sum(metrics[t]["median_rank"] for t in TASK_NAMES)}


def check_grid(grid: dict) -> None:
    """UserError for a reg or eig_power value of the grid that is not finite and >= 0."""
    for name in ("reg", "eig_power"):
        bad = [v for v in grid.get(name) or () if not NON_NEGATIVE.ok(v)]
        if bad:
            raise UserError(f"--cv-{name.replace('_', '-')} values must be finite and >= 0, got {bad[0]!r}")


def grid_points(grid: dict, k_max: int) -> tuple[dict, list[str]]:
    """The grid with defaults filled in and n_components clipped; returns (grid, notes)."""
    grid = {name: list(grid.get(name) or default) for name, default in DEFAULT_GRID.items()}
    check_grid(grid)
    grid["n_components"], note = clip_components(grid["n_components"], k_max)
    return grid, [note] if note else []


def grid_search(cls, train, val, grid: dict, params: dict, select: str = "rsum", progress: bool = False,
                log: Callable[[str], None] = lambda msg: None):
    """Fit ``cls`` (RegularizedCCA) on ``train`` for every grid point, score on ``val``, keep the best.

    Args:
        train, val: FeatureSets; grid: {"n_components", "reg", "eig_power"} -> values (missing = defaults);
        params: the other constructor arguments; select: "rsum" (highest) or "medr" (lowest median ranks).
    Returns:
        (best fitted model, report): report has the grid, every row (params, metrics, scores), the best row,
        notes and the selection rule.
    """
    if select not in SELECT:
        raise UserError(f"unknown --cv-select {select!r} (choose from {', '.join(SELECT)})")
    start = time.perf_counter()
    check_grid(grid)
    lowest_reg = min(grid.get("reg") or DEFAULT_GRID["reg"])  # its precision serves every reg of the grid
    moments = cls(**{**params, "reg": lowest_reg}).moments(train.images, train.texts, train.image_index)
    seconds = {"moments": round(time.perf_counter() - start, 3)}
    grid, notes = grid_points(grid, min(len(moments.mean_x), len(moments.mean_y)))
    rows, best, best_model = [], None, None
    for row, model in _fits(cls, moments, grid, params, val, notes, progress):
        rows.append(row)
        if best is None or SELECT[select](row) < SELECT[select](best):
            best, best_model = row, model
    for note in notes:
        log(f"note: {note}")
    if best is None:
        raise UserError("every CV grid point failed: " + "; ".join(notes))
    seconds["total"] = round(time.perf_counter() - start, 3)  # moments + one solve per reg + val evaluations
    report = {"select": select, "grid": grid, "notes": notes, "rows": rows, "best": best, "seconds": seconds,
              "n_train_captions": len(train.texts), "n_val_images": len(val.images), "n_val_captions": len(val.texts)}
    return best_model, report


def _fits(cls, moments, grid: dict, params: dict, val, notes: list, progress: bool):
    """Yield (row, fitted model) per grid point: one solve per reg, sliced for every n_components."""
    from cca_bench import linalg
    from cca_bench.config import torch_device
    from cca_bench.metrics import evaluate_retrieval

    per_reg = len(grid["n_components"]) * len(grid["eig_power"])
    with _bar(len(grid["reg"]) * per_reg, progress) as bar:
        for reg in grid["reg"]:
            try:
                solution = linalg.solve_cca(moments, reg, torch_device(cls(**params).device))
            except UserError as e:  # a too-small ridge on rank-deficient features: skip it, keep the rest
                notes.append(f"reg={reg:g} skipped: {e}")
                bar.update(per_reg)
                continue
            for k in grid["n_components"]:
                for power in grid["eig_power"]:
                    point = {"n_components": k, "reg": reg, "eig_power": power}
                    model = cls(**{**params, **point}).fit_moments(moments, solution)
                    bar.update(1)
                    try:
                        metrics = evaluate_retrieval(model.embed_images(val), model.embed_texts(val),
                                                     val.image_index)
                    except UserError as e:  # e.g. embeddings that score every item alike: no fake score
                        notes.append(f"{point} skipped: {e}")
                        continue
                    yield {**point, **score(metrics), "metrics": metrics}, model


def _bar(total: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="CV grid", unit="fit", disable=not progress, leave=False)


def ranked_rows(report: dict) -> list[dict]:
    """The report's rows, best first under its selection rule."""
    return sorted(report["rows"], key=SELECT[report["select"]])


def best_params(report: dict) -> dict:
    """The chosen n_components, reg and eig_power (and feature options such as fv_components, when searched)."""
    return {k: report["best"][k] for k in [*DEFAULT_GRID, *report.get("features_grid", {})]}


def search_features(points: list[dict], fit_point: Callable[[dict], tuple], select: str = "rsum"):
    """The features-level loop around :func:`grid_search`, for options that change the features
    (``{"fv_components": 16}``): ``fit_point(point) -> (result, report)`` re-encodes once for the point and
    grid-searches on one covariance pass; the point whose best row wins under ``select`` is kept (only it stays
    in memory). Returns (best point, its result, one report: every row tagged with its point, ``features_grid``)."""
    best, rows = None, []
    for point in points:
        result, report = fit_point(point)
        for row in report["rows"]:
            row.update(point)
        rows += report["rows"]
        if best is None or SELECT[select](report["best"]) < SELECT[select](best[2]["best"]):
            best = (point, result, report)
    point, result, report = best
    grid = {k: [p[k] for p in points] for k in point}
    return point, result, {**report, "rows": rows, "best": {**report["best"], **point}, "features_grid": grid}
