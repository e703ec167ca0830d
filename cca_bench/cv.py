"""Grid search of RegularizedCCA's n_components x reg x eig_power on the val split, from one covariance pass.

The covariances are computed once (``RegularizedCCA.moments``) and solved once per reg
(``linalg.solve_cca``); every n_components is the first k columns of that solve and every eig_power a
rescaling at projection, so the grid costs one fit plus one SVD per reg plus the val evaluations.
Knobs that change the features a method fits (kcca's gamma and landmarks: a class's ``CV_OUTER``) form an
outer grid around that inner one: one covariance pass per outer point, the inner grid reused inside it.
The report says when a chosen value sits on the edge of its grid (:func:`edge_notes`).
Selection follows the 'text-image-embeddings' project (lowest sum of median ranks, ``select="medr"``) or
the R-sum used by the VSE line of work (R@1 + R@5 + R@10 of both directions, ``select="rsum"``, default).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cca_bench.checks import NON_NEGATIVE
from cca_bench.errors import UserError
from cca_bench.metrics import TASK_NAMES
from cca_bench.ties import DEFAULT, check_rule

DEFAULT_GRID = {
    "n_components": (75, 100, 130, 200, 300),
    "reg": (10.0, 1.0, 0.1, 0.01, 0.001),
    "eig_power": (0.0, 1.0, 2.0, 4.0),
}
CV_FLAGS = {"n_components": "--cv-components", "reg": "--cv-reg", "eig_power": "--cv-eig-power"}
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
    note = (
        f"n_components {', '.join(map(str, over))} exceed min(dx, dy) = {k_max}: clipped to {k_max}" if over else None
    )
    return clipped, note


def score(metrics: dict) -> dict:
    """R-sum (R@1 + R@5 + R@10 of both tasks) and the sum of both median ranks of one evaluation."""
    from cca_bench.stats import rsum_of

    return {"rsum": rsum_of(metrics), "medr_sum": sum(metrics[t]["median_rank"] for t in TASK_NAMES)}


def check_grid(grid: dict) -> None:
    """UserError for a reg or eig_power value of the grid that is not finite and >= 0."""
    for name in ("reg", "eig_power"):
        bad = [v for v in grid.get(name) or () if not NON_NEGATIVE.ok(v)]
        if bad:
            raise UserError(f"--cv-{name.replace('_', '-')} values must be finite and >= 0, got {bad[0]!r}")


def grid_points(grid: dict, k_max: int) -> tuple[dict, list[str]]:
    """The inner grid with defaults filled in and n_components clipped; returns (grid, notes)."""
    grid = {name: list(grid.get(name) or default) for name, default in DEFAULT_GRID.items()}
    check_grid(grid)
    grid["n_components"], note = clip_components(grid["n_components"], k_max)
    return grid, [note] if note else []


def outer_grid(cls, grid: dict, params: dict) -> dict:
    """The outer knobs of ``cls.CV_OUTER`` -> values (given, else the class's default values, else the one
    value of ``params`` or the constructor); a knob the class does not have is a UserError."""
    outer = getattr(cls, "CV_OUTER", {})
    unknown = [k for k in grid if k not in DEFAULT_GRID and k not in outer]
    if unknown:
        raise UserError(
            f"{getattr(cls, 'METHOD', cls.__name__)} has no CV knob {', '.join(unknown)} (its knobs: "
            f"{', '.join([*DEFAULT_GRID, *outer])})"
        )
    current = cls(**params).get_params() if outer else {}
    return {k: list(grid.get(k) or default or [current[k]]) for k, (default, _flag) in outer.items()}


def outer_points(outer: dict) -> list[dict]:
    """Every combination of the outer knobs' values ([{}] when there are none)."""
    import itertools

    return [dict(zip(outer, values)) for values in itertools.product(*outer.values())]


def check_params(cls, params: dict, grid: dict | None, n_images: int, n_captions: int) -> None:
    """``cls.check_params`` (when it has one) of ``params`` and, with a ``grid`` (None: no CV), of every outer
    grid point (every point of a ``CV_GRID`` method's grid), for train splits of ``n_images`` / ``n_captions``:
    bad input fails before any encoding or pass."""
    if not hasattr(cls, "check_params"):
        return
    if grid is not None and hasattr(cls, "CV_GRID"):
        points = outer_points(method_grid(cls, grid, params, n_images, n_captions))
    else:
        points = outer_points(outer_grid(cls, grid, params)) if grid is not None else [{}]
    for point in points:
        cls(**{**params, **point}).check_params(n_images=n_images, n_captions=n_captions)


def edge_notes(grid: dict, best: dict, flags: dict, k_max: int | None = None) -> list[str]:
    """Plain warnings for every searched knob (two or more numeric values) whose chosen value is the grid's
    smallest or largest: the best may lie beyond it. n_components at min(dx, dy) has nothing beyond it, and
    nothing lies below 0 (every knob is non-negative: reg = 0 is plain CCA, eig_power = 0 unweighted)."""
    notes = []
    for name, values in grid.items():
        numeric = [v for v in values if isinstance(v, (int, float))]
        if len(set(numeric)) < 2 or best.get(name) not in numeric:
            continue
        flag = flags.get(name, "--cv-" + name.replace("_", "-"))
        if best[name] == min(numeric) and best[name] > 0:
            notes.append(f"{name} = {best[name]:g} is the smallest value of the grid: extend {flag} below it")
        elif best[name] == max(numeric) and not (name == "n_components" and best[name] == k_max):
            notes.append(f"{name} = {best[name]:g} is the largest value of the grid: extend {flag} above it")
    return notes


def searchable(cls) -> bool:
    """Whether ``cls`` has a CV grid search: RegularizedCCA and its subclasses (kcca), or a method that declares
    its knobs in ``CV_GRID`` (:func:`search_grid`). CV sits above the methods: it imports estimators, never the
    reverse."""
    from cca_bench.methods.cca import RegularizedCCA

    return hasattr(cls, "CV_GRID") or (isinstance(cls, type) and issubclass(cls, RegularizedCCA))


def knobs(cls) -> tuple[str, ...]:
    """The grid knobs ``--cv`` searches for ``cls``: its ``CV_GRID``'s, or (RegularizedCCA and kcca) those of
    :data:`DEFAULT_GRID` and its ``CV_OUTER``; none for a method without a search (the CLI offers their flags)."""
    if hasattr(cls, "CV_GRID"):
        return tuple(cls.CV_GRID)
    return (*DEFAULT_GRID, *getattr(cls, "CV_OUTER", {})) if searchable(cls) else ()


def cross_validate(
    cls,
    train,
    val,
    grid: dict,
    params: dict,
    select: str = "rsum",
    progress: bool = False,
    log: Callable[[str], None] = lambda msg: None,
    ties: str = DEFAULT,
):
    """Choose ``cls``'s hyper-parameters on the val FeatureSet (``searchable(cls)`` must hold): :func:`search_grid`
    over a method's ``CV_GRID``, else :func:`grid_search` (CCA's one-pass grid), every point scored under the
    tie rule ``ties`` (the default never rewards a collapsed model's ties). Returns (best fitted model, report;
    its ``ties`` names the rule)."""
    search = search_grid if hasattr(cls, "CV_GRID") else grid_search
    model, report = search(cls, train, val, grid, params, select, progress, log, check_rule(ties))
    return model, report | {"ties": ties}


def grid_search(
    cls,
    train,
    val,
    grid: dict,
    params: dict,
    select: str = "rsum",
    progress: bool = False,
    log: Callable[[str], None] = lambda msg: None,
    ties: str = DEFAULT,
):
    """Fit ``cls`` (RegularizedCCA or a subclass) on ``train`` for every grid point, score on ``val``, keep the best.

    Args:
        train, val: FeatureSets; grid: {"n_components", "reg", "eig_power", and the class's ``CV_OUTER`` knobs}
            -> values (missing = defaults); params: the other constructor arguments; select: "rsum" (highest)
            or "medr" (lowest median ranks); ties: the tie rule of the val metrics.
    Returns:
        (best fitted model, report): report has the grid, every row (params, metrics, scores), the best row,
        notes, edge notes (chosen values on the edge of their grid) and the selection rule.
    """
    if select not in SELECT:
        raise UserError(f"unknown --cv-select {select!r} (choose from {', '.join(SELECT)})")
    start = time.perf_counter()
    check_grid(grid)
    outer = outer_grid(cls, grid, params)
    points = outer_points(outer)
    check_params(cls, params, grid, len(train.images), len(train.texts))  # all of them before the first pass
    lowest_reg = min(grid.get("reg") or DEFAULT_GRID["reg"])  # its precision serves every reg of the grid
    rows, best, best_model, notes, seconds = [], None, None, [], {"moments": 0.0}
    for point in points:
        p = {**params, **point}
        t0 = time.perf_counter()
        moments = cls(**{**p, "reg": lowest_reg}).moments(train.images, train.texts, train.image_index)
        seconds["moments"] = round(seconds["moments"] + time.perf_counter() - t0, 3)
        k_max = min(len(moments.mean_x), len(moments.mean_y))
        inner, inner_notes = grid_points(grid, k_max)
        notes += [n for n in inner_notes if n not in notes]
        for row, model in _fits(cls, moments, inner, p, val, notes, progress, ties):
            rows.append(row := {**point, **row})
            if best is None or SELECT[select](row) < SELECT[select](best):
                best, best_model = row, model
    for note in notes:
        log(f"note: {note}")
    if best is None:
        raise UserError("every CV grid point failed: " + "; ".join(notes))
    seconds["total"] = round(time.perf_counter() - start, 3)  # moments + one solve per reg + val evaluations
    grid = {**outer, **inner}
    flags = {**CV_FLAGS, **{k: flag for k, (_, flag) in getattr(cls, "CV_OUTER", {}).items()}}
    edges = edge_notes(grid, best, flags, k_max)  # `generate` prints them with the chosen values
    report = {
        "select": select,
        "grid": grid,
        "notes": notes,
        "edges": edges,
        "rows": rows,
        "best": best,
        "seconds": seconds,
        "n_train_captions": len(train.texts),
        "n_val_images": len(val.images),
        "n_val_captions": len(val.texts),
    }
    return best_model, report


def method_grid(cls, grid: dict, params: dict, n_images: int, n_captions: int) -> dict:
    """The grid of a method that declares ``CV_GRID`` ({knob: (default values, flag)}): the given values, else
    the defaults, adapted to the train split by the class's ``cv_grid(values, params, n_images, n_captions)``
    when it has one (asif clips top_k to its anchors); a knob the method does not have is a UserError."""
    knobs = cls.CV_GRID
    unknown = [k for k in grid if k not in knobs]
    if unknown:
        raise UserError(f"{cls.METHOD} has no CV knob {', '.join(unknown)} (its knobs: {', '.join(knobs) or 'none'})")
    values = {k: list(grid.get(k) or default) for k, (default, _flag) in knobs.items()}
    adapt = getattr(cls, "cv_grid", None)
    return adapt(values, params, n_images, n_captions) if adapt else values


def search_grid(
    cls,
    train,
    val,
    grid: dict,
    params: dict,
    select: str = "rsum",
    progress: bool = False,
    log: Callable[[str], None] = lambda msg: None,
    ties: str = DEFAULT,
):
    """Grid search of a method that declares ``CV_GRID`` (ridge, procrustes, pls, asif, dcca): every point of
    :func:`method_grid` is fitted on ``train`` by the class's ``cv_models(train, val, points, params)`` (which
    shares work between points: one moment pass, one top-k pass) and scored on ``val``; the best is kept.

    Returns (best fitted model, report) with the keys :func:`grid_search` reports.
    """
    from cca_bench.metrics import evaluate_retrieval

    if select not in SELECT:
        raise UserError(f"unknown --cv-select {select!r} (choose from {', '.join(SELECT)})")
    start = time.perf_counter()
    values = method_grid(cls, grid, params, len(train.images), len(train.texts))
    points = outer_points(values)
    check_params(cls, params, grid, len(train.images), len(train.texts))
    rows, best, best_model, notes = [], None, None, []
    with _bar(len(points), progress) as bar:
        for point, model, emb_x, emb_y in cls.cv_models(train, val, points, params):
            bar.update(1)
            try:
                metrics = evaluate_retrieval(emb_x, emb_y, val.image_index, ties=ties)
            except UserError as e:  # embeddings that score every item alike: no fake score
                notes.append(f"{point} skipped: {e}")
                continue
            rows.append(row := {**point, **score(metrics), "metrics": metrics})
            if best is None or SELECT[select](row) < SELECT[select](best):
                best, best_model = row, model
    for note in notes:
        log(f"note: {note}")
    if best is None:
        raise UserError(f"every CV grid point failed ({len(notes)}), the first: {notes[0] if notes else 'none'}")
    flags = {k: flag for k, (_, flag) in cls.CV_GRID.items()}
    report = {
        "select": select,
        "grid": values,
        "notes": notes,
        "edges": edge_notes(values, best, flags),
        "rows": rows,
        "best": best,
        "seconds": {"total": round(time.perf_counter() - start, 3)},
        "n_train_captions": len(train.texts),
        "n_val_images": len(val.images),
        "n_val_captions": len(val.texts),
    }
    return best_model, report


def _fits(cls, moments, grid: dict, params: dict, val, notes: list, progress: bool, ties: str):
    """Yield (row, fitted model) per grid point: one solve per reg, sliced for every n_components."""
    from cca_bench import linalg
    from cca_bench.config import torch_device
    from cca_bench.metrics import evaluate_retrieval

    # moments of mapped features (kcca) carry their maps: val goes through them once here, not once per point,
    # and each point projects the mapped rows with RegularizedCCA's linear projection
    maps = getattr(moments, "maps", (None, None))
    vx, vy = (a if f is None else f(a) for a, f in zip((val.images, val.texts), maps))
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
                    try:  # val rows are mapped already (kcca): RegularizedCCA's linear projection of them
                        emb_x, emb_y = model.project_x(vx), model.project_y(vy)
                        metrics = evaluate_retrieval(emb_x, emb_y, val.image_index, ties=ties)
                    except UserError as e:  # e.g. embeddings that score every item alike: no fake score
                        notes.append(f"{point} skipped: {e}")
                        continue
                    yield {**point, **score(metrics), "metrics": metrics}, model


def val_interval(report: dict, model, val, resamples: int = 1000, seed: int = 0) -> dict:
    """How flat the grid is: the 95% bootstrap interval (over val images) of the chosen model's selection score,
    and how many grid points score inside it (their difference from the best is within the val noise).

    Returns ``{"score": "rsum"|"medr_sum", "ci": [lo, hi], "within": n, "of": n_rows}``; ``report`` is
    :func:`grid_search`'s (or any report with ``rows`` carrying ``rsum`` / ``medr_sum``), ``model`` the chosen
    fitted model and ``val`` the val FeatureSet it was scored on."""
    import numpy as np

    from cca_bench import stats
    from cca_bench.metrics import fold_counts

    per_fold = fold_counts(model.embed_images(val), model.embed_texts(val), val.image_index)
    ranks = stats.from_fold_ranks(per_fold, val.image_index, len(val.images), report.get("ties", DEFAULT))
    reps = stats.bootstrap_replicates(ranks, resamples, seed)
    key = "rsum" if report["select"] == "rsum" else "medr_sum"
    values = reps["rsum"] if key == "rsum" else sum(reps[t]["median_rank"] for t in TASK_NAMES)
    lo, hi = (float(v) for v in np.percentile(values, [2.5, 97.5]))
    inside = [r for r in report["rows"] if (r[key] >= lo if key == "rsum" else r[key] <= hi)]
    return {"score": key, "ci": [lo, hi], "within": len(inside), "of": len(report["rows"])}


def interval_note(summary: dict) -> str:
    """One line on :func:`val_interval`'s result, for the CLI and the CV table."""
    name = "R-sum" if summary["score"] == "rsum" else "sum of median ranks"
    lo, hi = summary["ci"]
    flat = " (a flat grid: these points are not told apart on val)" if summary["within"] > 1 else ""
    return (
        f"{summary['within']} of {summary['of']} grid points score within the chosen point's val 95% interval "
        f"of the {name} [{lo:.1f}, {hi:.1f}]{flat}"
    )


def _bar(total: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="CV grid", unit="fit", disable=not progress, leave=False)


def ranked_rows(report: dict) -> list[dict]:
    """The report's rows, best first under its selection rule."""
    return sorted(report["rows"], key=SELECT[report["select"]])


def best_params(report: dict) -> dict:
    """The chosen value of every knob of the grid (n_components, reg, eig_power, any outer knob, and feature
    options such as fv_components when searched)."""
    return {k: report["best"][k] for k in [*report["grid"], *report.get("features_grid", {})]}


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
