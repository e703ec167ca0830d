"""The web app's tables as template values: leaderboard groups (best marks, intervals, sort), the models x
datasets view and the side-by-side comparison of runs. Pure functions of compare frames and run records."""
from __future__ import annotations

import math
from pathlib import Path

from cca_bench.results import GROUP, HIDDEN, OWN_SOURCE, VALUE_COLUMNS, fmt_value

RSUM = "R-sum"  # the leaderboard's first value column and default sort
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
    return frame.sort_values([*GROUP, column], ascending=[True] * len(GROUP) + [not descending],
                             na_position="last", kind="stable")


def leaderboard_groups(frame, marks: dict | None = None) -> list[dict]:
    """Page groups ``{title, columns, rows}``; a row is ``{cells, run, published}``, a cell ``{text, value,
    best, tied, ci}``: ``best`` = the best value of its column, ``tied`` = not significantly worse than it
    (``marks`` of :func:`cca_bench.results.significance_marks`, when the runs kept their ranks). R-sum comes
    first of the values; a Seed sd column only where a run has one."""
    groups = []
    for (ds, split, proto), group in frame.groupby(GROUP, sort=False):
        body = group.drop(columns=[*GROUP, *HIDDEN])
        columns = [c for c in body.columns if c != RSUM]
        columns.insert(columns.index("Distance") + 1, RSUM)
        if body["Seed sd"].isna().all():
            columns.remove("Seed sd")
        best = {c: _best(body[c], c) for c in columns if is_metric(c) and c != "Seed sd"}
        rows = []
        for row in group.to_dict("records"):
            own = row["Source"] == OWN_SOURCE and isinstance(row["_file"], str)
            mark = (lambda c: (marks or {}).get((row["_file"], c)))
            cells = [{"text": cell_text(c, row[c]), "value": row[c] if is_metric(c) and row[c] == row[c] else None,
                      "best": c in best and row[c] == best[c], "tied": mark(c) == "tied", "ci": interval(row, c)}
                     for c in columns]
            rows.append({"cells": cells, "published": not own, "run": Path(row["_file"]).stem if own else None})
        groups.append({"title": f"{ds} / {split} / protocol {proto}", "columns": columns, "rows": rows,
                       "link": columns.index("Method")})
    return groups


def _best(column, name: str):
    values = [v for v in column if isinstance(v, (int, float)) and not math.isnan(v)]
    if not values:
        return None
    return max(values) if better(name) > 0 else min(values)


def model_matrix(frame) -> dict:
    """Models x datasets (MTEB-style): one row per own model (method with tag, features, params, distance, tie
    rule), one R-sum column per dataset / split / protocol, and their average (over the columns the row has;
    ``n`` says how many)."""
    own = frame[frame["Source"].eq(OWN_SOURCE)]
    keys = ["Method", "Features", "Params", "Distance", "Ties"]  # Params holds the --tag; one row per tie rule
    columns = list(dict.fromkeys(f"{d} / {s} / {p}" for d, s, p in own[GROUP].values.tolist()))
    rows: dict = {}
    for record in own.to_dict("records"):
        key = tuple("-" if v is None or v != v else v for v in (record[k] for k in keys))
        rows.setdefault(key, {})[f"{record['Dataset']} / {record['Split']} / {record['Protocol']}"] = record[RSUM]
    out = []
    for key, values in rows.items():
        present = [v for v in values.values() if v == v]
        out.append({"key": list(key), "cells": [values.get(c) for c in columns],
                    "average": sum(present) / len(present) if present else None, "n": len(present)})
    out.sort(key=lambda r: (-(r["n"]), -(r["average"] if r["average"] is not None else -math.inf)))
    best = {i: max((r["cells"][i] for r in out if r["cells"][i] is not None), default=None)
            for i in range(len(columns))}
    return {"labels": keys, "columns": columns, "rows": out, "best": best}
