"""The compare page: two or more runs of one split side by side (metrics and deltas, overlaid R@K curves, the
same sampled queries for every model, and the paired test of the statistics where the runs stored ranks)."""
from __future__ import annotations

import random

from cca_bench.errors import UserError

COMPARE_K = 3  # hits per model and query on the compare page


def _runs(lib, stems: list[str]) -> list[dict]:
    """The run records named in the URL (each once), all on one dataset, split and protocol."""
    stems = list(dict.fromkeys(stems))
    if len(stems) < 2:
        raise UserError("choose two or more runs to compare (tick them on the leaderboard)")
    runs = [lib.run(s) | {"_stem": s} for s in stems]
    first = runs[0]
    for r in runs[1:]:
        if (r["dataset"], r["split"], r["protocol"]) != (first["dataset"], first["split"], first["protocol"]):
            raise UserError(f"runs {first['_stem']} and {r['_stem']} are not on one split "
                            f"({first['dataset']}/{first['split']}/{first['protocol']} vs "
                            f"{r['dataset']}/{r['split']}/{r['protocol']}): compare runs of one table")
    return runs


def metric_rows(runs: list[dict], ranks: list | None = None, resamples: int = 2000) -> list[dict]:
    """One row per metric (R-sum, then each direction's R@K and ranks): the runs' values, the best marked, and
    each run's difference to the first run (``gain``: whether it is better), with its 95% paired interval and
    p-value (``stats.paired_test`` on that metric, ``resamples`` draws) where both runs kept their ranks
    (``ranks``: one :class:`~cca_bench.stats.QueryRanks` or None per run)."""
    from cca_bench.results import COLUMN_METRIC, metric_columns, rsum
    from cca_bench.stats import paired_test
    from cca_bench.web.tables import RSUM, better

    ranks = ranks or [None] * len(runs)
    flat = [{RSUM: rsum(r["metrics"]), **metric_columns(r["metrics"])} for r in runs]
    rows = []
    for name in flat[0]:
        values = [f.get(name) for f in flat]
        known = [v for v in values if v is not None]
        best = (max if better(name) > 0 else min)(known) if known else None
        deltas = []
        for v, rk in zip(values[1:], ranks[1:]):
            d = {"value": None if v is None or values[0] is None else v - values[0]}
            d["gain"] = d["value"] is not None and better(name) * d["value"] > 0
            if rk is not None and ranks[0] is not None:
                t = paired_test(rk, ranks[0], COLUMN_METRIC[name], resamples)
                d |= {"ci": t["ci"], "p": t["p_value"]}
            deltas.append(d)
        rows.append({"name": name, "cells": values, "best": best, "deltas": deltas})
    return rows


def run_ranks(runs: list[dict]) -> tuple[list, list[str | None]]:
    """Each run's stored per-query ranks (None where it has none) and why not (None where it has them)."""
    from cca_bench.results import load_ranks

    ranks, why = [], []
    for r in runs:
        try:
            ranks.append(load_ranks(r))
            why.append(None)
        except UserError as e:
            ranks.append(None)
            why.append(str(e))
    return ranks, why


def paired_tests(runs: list[dict], ranks: list, why: list) -> list[dict]:
    """Each later run against the first by the statistics' paired test on R-sum (later minus first, on the
    per-query ranks both runs stored): ``{run, result}``, or ``{run, why}`` where there is none (a run without
    its ranks file, runs on other images)."""
    from cca_bench.stats import paired_test

    out = []
    for r, rk, w in zip(runs[1:], ranks[1:], why[1:]):
        try:
            if ranks[0] is None or rk is None:
                raise UserError(why[0] or w)
            out.append({"run": r["_stem"], "result": paired_test(rk, ranks[0], "rsum")})
        except UserError as e:
            out.append({"run": r["_stem"], "why": str(e)})
    return out


def shared_examples(lib, runs: list[dict], seed: int, wait: float) -> dict | None:
    """The same sampled queries for every run that has a saved model: ``{models, split, annotation, search}``,
    where each query lists every model's rank and top hits. None when no run has a saved model."""
    from cca_bench.web.common import example_rows

    with_model = [r for r in runs if lib.has_model(r.get("model"))]
    if not with_model:
        return None
    folds = int(with_model[0].get("folds") or 1)
    found = [lib.examples(r["model"], r["split"], r["distance"], folds, seed=seed, wait=wait) for r in with_model]
    split = lib.gallery(with_model[0]["model"], with_model[0]["split"]).split
    out = {"runs": [r["_stem"] for r in with_model], "images": split.loader is not None,
           "model": with_model[0]["model"], "split": split.name}
    for task in ("image_annotation", "image_search"):
        per_model = [{e["query"]: row for e, row in zip(ex[task]["sample"], example_rows(split, ex[task]["sample"], task))}
                     for ex in found]  # query position -> its row, for each model
        out[task] = [{"query": row["query"], "answers": [{"run": stem, **answers.get(q, {})}
                                                         for stem, answers in zip(out["runs"], per_model)]}
                     for q, row in per_model[0].items()]
    return out


def compare_page():
    from flask import render_template, request

    from cca_bench.web.common import lib as _lib
    from cca_bench.web.common import wait as _wait
    from cca_bench.web.figures import curve_label

    lib = _lib()
    runs = _runs(lib, request.args.getlist("run"))
    seed = _seed(request.args.get("sample"))
    examples = shared_examples(lib, runs, seed, _wait())
    ranks, why = run_ranks(runs)
    return render_template("compare.html", runs=runs, labels=[curve_label(r) for r in runs],
                           rows=metric_rows(runs, ranks), tests=paired_tests(runs, ranks, why), examples=examples,
                           seed=seed,
                           k=COMPARE_K, curves=all(r.get("recall_curve") for r in runs),
                           more=seed + 1, random_seed=random.randrange(1, 10**6))


def _seed(text: str | None) -> int:
    if not text:
        return 0
    if not text.isdigit() or int(text) > 10**9:
        raise UserError(f"sample {text!r} is not a whole number from 0 to 1000000000")
    return int(text)


def compare_png():
    """The compared runs' R@K curves in one figure (drawn once per set of run files)."""
    from flask import Response, request

    from cca_bench.plots import recall_figure
    from cca_bench.web.common import lib as _lib
    from cca_bench.web.figures import curve_label
    from cca_bench.web.library import Missing

    lib = _lib()
    runs = _runs(lib, request.args.getlist("run"))
    if not all(r.get("recall_curve") for r in runs):
        raise Missing("not every compared run stored an R@K curve")
    key = ("compare", tuple((r["_stem"], lib.stamp(r["_file"])) for r in runs))
    title = f"{runs[0]['dataset']} / {runs[0]['split']} / protocol {runs[0]['protocol']}"
    png = lib.figure_png(key, lambda: recall_figure([(curve_label(r), r["recall_curve"]) for r in runs], title))
    return Response(png, mimetype="image/png")
