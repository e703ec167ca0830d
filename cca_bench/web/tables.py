"""The web app's tables as template values: leaderboard groups (best marks, intervals, sort), the models x
datasets view and the side-by-side comparison of runs. Pure functions of compare frames and run records."""

from __future__ import annotations

import math
from pathlib import Path

from cca_bench.results import GROUP, HIDDEN, OWN_SOURCE, VALUE_COLUMNS, fmt_value

RSUM = "R-sum"  # the leaderboard's first value column and default sort
LEAD = ["Method", RSUM, *(f"{d} R@{k}" for d in ("i2t", "t2i") for k in (1, 5, 10))]  # the leaderboard's first columns
CHANCE_FACTOR = 2.0  # a run whose R-sum interval reaches this multiple of the chance R-sum is "at chance"
LOWER_IS_BETTER = ("MedR", "MeanR")


def is_metric(column: str) -> bool:
    return column in VALUE_COLUMNS or column == "Seed sd"


def better(column: str) -> int:
    """+1 where a larger value is better (R@K, R-sum), -1 for ranks."""
    return -1 if column.endswith(LOWER_IS_BETTER) else 1


def cell_text(column: str, value) -> str:
    """A cell as ``compare`` prints it: medians as integers, other numbers to 0.1, '-' when missing."""
    if is_metric(column):
        return fmt_value(None if value is None or value != value else value, "MedR" if column.endswith("MedR") else "")
    return "-" if value is None or value != value else str(value)


def interval(row: dict, column: str):
    """The run's stored 95% interval of a column (the frame's ``<column> lo/hi``), or None (older runs, published
    rows)."""
    lo, hi = row.get(f"{column} lo"), row.get(f"{column} hi")
    return None if lo is None or hi is None or lo != lo or hi != hi else (cell_text(column, lo), cell_text(column, hi))


def sort_frame(frame, column: str | None, descending: bool):
    """Rows of each group ordered by ``column`` (missing values last); the frame's own order when the column
    is unknown."""
    if not column or column not in frame.columns:
        return frame
    return frame.sort_values(
        [*GROUP, column], ascending=[True] * len(GROUP) + [not descending], na_position="last", kind="stable"
    )


def leaderboard_groups(frame, marks: dict | None = None, chance: dict | None = None) -> list[dict]:
    """Page groups ``{title, columns, rows}``; a row is ``{cells, run, published}``, a cell ``{text, value,
    best, tied, untested, ci}``: ``best`` = the best value of its column, ``tied`` = not significantly worse than
    it, ``untested`` = no paired test against the best was possible
    (``marks`` of :func:`cca_bench.results.significance_marks`, when the runs kept their ranks). R-sum comes
    first of the values; a Seed sd column only where a run has one. ``chance``: run file -> its chance R-sum,
    for the runs that score at chance level (:func:`at_chance`)."""
    chance = chance or {}
    groups = []
    for (ds, split, proto), group in frame.groupby(GROUP, sort=False):
        body = group.drop(columns=[*GROUP, *HIDDEN])
        # what tells runs apart at a glance first (method, R-sum, the six R@K): on a 1280 px screen they need no
        # scrolling, on a 390 px phone method and R-sum are on the first screen; identity and ranks follow
        columns = [c for c in LEAD if c in body.columns] + [c for c in body.columns if c not in LEAD]
        if body["Seed sd"].isna().all():
            columns.remove("Seed sd")
        best = {c: _best(body[c], c) for c in columns if is_metric(c) and c != "Seed sd"}
        rows = []
        for row in group.to_dict("records"):
            own = row["Source"] == OWN_SOURCE and isinstance(row["_file"], str)
            mark = lambda c: (marks or {}).get((row["_file"], c))
            cells = [
                {
                    "text": cell_text(c, row[c]),
                    "value": row[c] if is_metric(c) and row[c] == row[c] else None,
                    "best": c in best and row[c] == best[c],
                    "tied": mark(c) == "tied",
                    "untested": mark(c) == "untested",
                    "ci": interval(row, c),
                }
                for c in columns
            ]
            rows.append(
                {
                    "cells": cells,
                    "published": not own,
                    "run": Path(row["_file"]).stem if own else None,
                    "chance": chance.get(row["_file"]) if own else None,
                }
            )
        groups.append(
            {
                "title": f"{ds} / {split} / protocol {proto}",
                "columns": columns,
                "rows": rows,
                "link": columns.index("Method"),
            }
        )
    return groups


def _best(column, name: str):
    values = [v for v in column if isinstance(v, (int, float)) and not math.isnan(v)]
    if not values:
        return None
    return max(values) if better(name) > 0 else min(values)


def model_matrix(frame) -> dict:
    """Models x datasets (MTEB-style) over TEST splits only: one row per own model (method with tag, features,
    params, distance, tie rule), one R-sum column per test dataset / protocol, and the average over ``common``:
    the columns every row has (val is never mixed with test, and no row's average takes a dataset another row
    lacks). Rows are ranked by that average (None for every row when no column is common to all)."""
    own = frame[frame["Source"].eq(OWN_SOURCE) & frame["Split"].eq("test")]
    keys = ["Method", "Features", "Params", "Distance", "Ties"]  # Params holds the --tag; one row per tie rule
    columns = list(dict.fromkeys(f"{d} / {p}" for d, p in own[["Dataset", "Protocol"]].values.tolist()))
    rows: dict = {}
    for record in own.to_dict("records"):
        key = tuple("-" if v is None or v != v else v for v in (record[k] for k in keys))
        value = record[RSUM]
        rows.setdefault(key, {})[f"{record['Dataset']} / {record['Protocol']}"] = value if value == value else None
    common = [c for c in columns if all(values.get(c) is not None for values in rows.values())]
    out = []
    for key, values in rows.items():
        average = sum(values[c] for c in common) / len(common) if common else None
        out.append(
            {
                "key": list(key),
                "cells": [values.get(c) for c in columns],
                "average": average,
                "n": sum(values.get(c) is not None for c in columns),
            }
        )
    out.sort(key=lambda r: -(r["average"] if r["average"] is not None else -math.inf))
    best = {
        i: max((r["cells"][i] for r in out if r["cells"][i] is not None), default=None) for i in range(len(columns))
    }
    return {"labels": keys, "columns": columns, "rows": out, "best": best, "common": common}


def chance_rsum(n_images: int, n_captions: int, folds: int = 1) -> float:
    """The R-sum a random ranking scores in expectation on a gallery of ``n_images`` images and ``n_captions``
    captions (per fold: each query ranks within its fold): image search R@K = K / n_img; image annotation, with
    c = n_captions / n_images captions per image, R@K = 1 - C(n_txt - c, K) / C(n_txt, K) (one of its c captions
    among the first K), in percent."""
    n_img, n_txt = n_images / folds, n_captions / folds
    c = n_txt / n_img
    total = 0.0
    for k in (1, 5, 10):
        miss = math.prod(max(n_txt - c - j, 0.0) / (n_txt - j) for j in range(min(k, int(n_txt))))
        total += 100.0 * (min(k / n_img, 1.0) + 1.0 - miss)
    return total


def at_chance(run: dict) -> float | None:
    """The chance R-sum (:func:`chance_rsum`) when the run scores at chance level, else None: its R-sum interval
    reaches CHANCE_FACTOR times the chance R-sum (without an interval, its R-sum does): e.g. `evaluate` rows that
    are not aligned with the split."""
    from cca_bench.results import rsum

    n_img, n_txt, folds = run.get("n_images"), run.get("n_captions"), run.get("folds") or 1
    if (
        not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (n_img, n_txt, folds))
        or n_img < 2 * folds
    ):
        return None
    base, value = chance_rsum(n_img, n_txt, folds), rsum(run["metrics"])
    low = ((run.get("ci") or {}).get("rsum") or [value])[0]
    return base if value is not None and low is not None and low <= CHANCE_FACTOR * base else None
