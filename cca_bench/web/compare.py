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
            raise UserError(
                f"runs {first['_stem']} and {r['_stem']} are not on one split "
                f"({first['dataset']}/{first['split']}/{first['protocol']} vs "
                f"{r['dataset']}/{r['split']}/{r['protocol']}): compare runs of one table"
            )
    return runs


def metric_rows(runs: list[dict], tests: list | None = None) -> list[dict]:
    """One row per metric (R-sum, then each direction's R@K and ranks): the runs' values, the best marked, and
    each run's difference to the first run (``gain``: whether it is better), with its 95% paired interval and
    p-value where both runs kept their ranks (``tests``: per later run, :func:`paired_tests_against_first`'s
    entry; None: no tests)."""
    from cca_bench.results import COLUMN_METRIC, metric_columns, rsum
    from cca_bench.web.tables import RSUM, better

    tests = tests or [None] * (len(runs) - 1)
    flat = [{RSUM: rsum(r["metrics"]), **metric_columns(r["metrics"])} for r in runs]
    rows = []
    for name in flat[0]:
        values = [f.get(name) for f in flat]
        known = [v for v in values if v is not None]
        best = (max if better(name) > 0 else min)(known) if known else None
        deltas = []
        for v, tested in zip(values[1:], tests):
            d = {"value": None if v is None or values[0] is None else v - values[0]}
            d["gain"] = d["value"] is not None and better(name) * d["value"] > 0
            deltas.append(d | (tested[COLUMN_METRIC[name]] if tested else {}))
        rows.append({"name": name, "cells": values, "best": best, "deltas": deltas})
    return rows


def kept_tests(lib, runs: list[dict], ranks: list) -> list:
    """:func:`paired_tests_against_first` of every metric of the page, kept per pair of run files (keyed by
    both runs' stems and file stamps): another set of runs with the same first run reuses the pairs it shares,
    and only the missing ones are made, in one batch (a pair's numbers do not depend on its batch)."""
    from cca_bench.results import COLUMN_METRIC

    keys = [("paired", _file_key(lib, runs[0]), _file_key(lib, r)) for r in runs[1:]]
    where = {key: k for k, key in enumerate(keys, 1)}
    metrics = list(COLUMN_METRIC.values())
    return lib.computed_pairs(
        keys, lambda missing: paired_tests_against_first([ranks[0], *(ranks[where[m]] for m in missing)], metrics)
    )


def _file_key(lib, run: dict) -> tuple:
    """A run's stem and the stamps of its JSON and ranks file: its part of the keys of what is kept."""
    from cca_bench.web.failures import run_stamps

    return (run["_stem"], *run_stamps(lib, run))


def paired_tests_against_first(ranks: list, metrics: list[str]) -> list[dict | None]:
    """Per later run, its paired tests against the first (later minus first) on each of ``metrics``:
    ``{metric: {ci, p, p_text, result}}`` (``result``: ``stats.paired_test``'s dict, with the one default of
    every surface, ``PAIRED_RESAMPLES`` and ``PAIRED_SEED``; ``p_text`` by ``stats.format_p``), ``{metric:
    {why}}`` where the two runs ranked other queries, None where either kept no ranks. All from one
    ``stats.paired_tests`` batch: the draws and the first run's replicates are shared, the numbers are the lone
    tests' own."""
    from cca_bench.stats import PAIRED_RESAMPLES, PAIRED_SEED, check_same_images, format_p, paired_tests

    out: list[dict | None] = [None] * (len(ranks) - 1)
    tested = []
    for i, rk in enumerate(ranks[1:], 1):
        if rk is None or ranks[0] is None:
            continue
        try:
            check_same_images(rk, ranks[0])
            tested.append(i)
        except UserError as e:
            out[i - 1] = {m: {"why": str(e)} for m in metrics}
    for i, row in zip(tested, paired_tests(ranks, [(i, 0) for i in tested], metrics, PAIRED_RESAMPLES, PAIRED_SEED)):
        out[i - 1] = {
            m: {"ci": t["ci"], "p": t["p_value"], "p_text": format_p(t["p_value"], t["resamples"]), "result": t}
            for m, t in row.items()
        }
    return out


def stored_runs(lib, runs: list[dict]) -> tuple[list, list[str | None]]:
    """Each run's :class:`~cca_bench.web.failures.Stored` ranks and top-10 (None where it has none) and why
    not (None where it has them)."""
    from cca_bench.web.failures import stored

    found, why = [], []
    for r in runs:
        try:
            found.append(stored(lib, r))
            why.append(None)
        except UserError as e:
            found.append(None)
            why.append(str(e))
    return found, why


def paired_tests(runs: list[dict], rows: list[dict], why: list) -> list[dict]:
    """Each later run against the first on R-sum (later minus first): ``{run, result, p_text}`` (the very test
    of the table's R-sum row, so the sentence and the table agree), or ``{run, why}`` where there is none (a run
    without its ranks file, runs on other images)."""
    from cca_bench.web.tables import RSUM

    rsum_row = next(r for r in rows if r["name"] == RSUM)
    out = []
    for r, d, w in zip(runs[1:], rsum_row["deltas"], why[1:]):
        if d.get("result"):
            out.append({"run": r["_stem"], "result": d["result"], "p_text": d["p_text"]})
        else:
            out.append({"run": r["_stem"], "why": d.get("why") or why[0] or w or "no paired test"})
    return out


def shared_examples(lib, runs: list[dict], found: list, seed: int) -> dict | None:
    """The same sampled queries for every run that kept its ranks: ``{image_run, missing, other,
    image_annotation, image_search}``; each query lists every such run's rank and (where its ranks file kept
    them) top hits, labelled with its own run. ``missing``: runs without ranks; ``other``: runs that ranked
    other queries (``evaluate --image-index``). None when no run kept its ranks."""
    import numpy as np

    from cca_bench.retrieved import sample_and_worst
    from cca_bench.stats import check_same_images
    from cca_bench.web.failures import hits, query_row

    base = next((s for s in found if s is not None), None)
    if base is None:
        return None
    same, other = [], []
    for r, s in zip(runs, found):
        try:
            if s is not None:
                check_same_images(base.ranks, s.ranks)
                same.append((r, s))
        except UserError:
            other.append(r["_stem"])
    lab, rng = base.labels, np.random.default_rng(seed)
    out = {
        "image_run": lab.image_run,
        "other": other,
        "missing": [r["_stem"] for r, s in zip(runs, found) if s is None],
    }
    for task in ("image_annotation", "image_search"):
        r0 = base.ranks.rank("i2t" if task == "image_annotation" else "t2i")[0]
        queries = np.flatnonzero(r0 >= 0)
        sample = queries[sample_and_worst(rng, r0[queries] + 1, 8, 0)[0]]  # the draw of the examples page
        out[task] = [
            {
                "query": query_row(lab, task, int(q)),
                "answers": [
                    {"run": r["_stem"], "rank": _rank(s, task, q) + 1, "hits": hits(s, task, int(q), COMPARE_K)}
                    for r, s in same
                ],
            }
            for q in sample
        ]
    return out


def _rank(s, task: str, q: int) -> float:
    """The run's 0-based rank of query q (its tie rule's; the first seed)."""
    return float(s.ranks.rank("i2t" if task == "image_annotation" else "t2i")[0, q])


def compare_page():
    from flask import render_template, request

    from cca_bench.stats import PAIRED_RESAMPLES
    from cca_bench.web.common import lib as _lib
    from cca_bench.web.common import wait as _wait
    from cca_bench.web.figures import curve_label
    from cca_bench.web.kept import Loading

    lib = _lib()
    runs = _runs(lib, request.args.getlist("run"))
    seed = _seed(request.args.get("sample"))
    found, why = stored_runs(lib, runs)
    key = ("compare", tuple(_file_key(lib, r) for r in runs))
    try:  # the paired tests of every metric, computed once per set of run files and kept
        rows, pending = (
            lib.computed(
                key,
                lambda: metric_rows(runs, kept_tests(lib, runs, [None if s is None else s.ranks for s in found])),
                _wait(),
                "the paired tests of these runs",
            ),
            False,
        )
    except Loading:  # still being computed: the values and deltas now, the page reloads itself for the tests
        rows, pending = metric_rows(runs), True
    labels = {r["_stem"]: curve_label(r) for r in runs}
    return render_template(
        "compare.html",
        runs=runs,
        labels=[labels[r["_stem"]] for r in runs],
        by_run=labels,
        rows=rows,
        tests=[] if pending else paired_tests(runs, rows, why),
        pending=pending,
        examples=shared_examples(lib, runs, found, seed),
        seed=seed,
        k=COMPARE_K,
        curves=all(r.get("recall_curve") for r in runs),
        more=seed + 1,
        random_seed=random.randrange(1, 10**6),
        resamples=PAIRED_RESAMPLES,
    )


def _seed(text: str | None) -> int:
    """The ``sample`` query parameter: ASCII digits only (``'²'.isdigit()`` is true, but ``int('²')`` raises)."""
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > 10**9:
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
