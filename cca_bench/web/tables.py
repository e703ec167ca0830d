"""The web app's tables as template values: leaderboard groups (best marks, intervals, sort), the models x
datasets view and the side-by-side comparison of runs. Pure functions of compare frames and run records."""
from __future__ import annotations

import math
from pathlib import Path

from cca_bench.results import GROUP, HIDDEN, OWN_SOURCE, RSUM, format_cell

LOWER_IS_BETTER = ("MedR", "MeanR")
TASK_SHORT = {"i2t": "image_annotation", "t2i": "image_search"}
METRIC_KEYS = {"R@1": "R@1", "R@5": "R@5", "R@10": "R@10", "MedR": "median_rank", "MeanR": "mean_rank"}


def is_metric(column: str) -> bool:
    return column == RSUM or column.split(" ")[0] in TASK_SHORT


def better(column: str) -> int:
    """+1 where a larger value is better (R@K, R-sum), -1 for ranks."""
    return -1 if column.endswith(LOWER_IS_BETTER) else 1


def interval(record: dict | None, column: str):
    """The run's stored 95% interval of a column (``ci`` of the statistics), or None (older runs have none)."""
    ci = (record or {}).get("ci") or {}
    if column == RSUM:
        return ci.get("rsum")
    short, _, name = column.partition(" ")
    return ((ci.get(TASK_SHORT.get(short, "")) or {}).get(METRIC_KEYS.get(name, "")))


def sort_frame(frame, column: str | None, descending: bool):
    """Rows of each group ordered by ``column`` (missing values last); the frame's own order when the column
    is unknown."""
    if not column or column not in frame.columns:
        return frame
    return frame.sort_values([*GROUP, column], ascending=[True] * len(GROUP) + [not descending],
                             na_position="last", kind="stable")


def leaderboard_groups(frame, records: dict[str, dict], marks: dict | None = None) -> list[dict]:
    """Page groups ``{title, columns, rows, metric}``; a row is ``{cells, run, published, mark}``, a cell
    ``{text, value, best, ci}``. ``records``: run file path -> record (for intervals); ``marks``: run file ->
    ``{"best", "not_worse"}`` (significance marks of the statistics), or None."""
    groups = []
    for (ds, split, proto), group in frame.groupby(GROUP, sort=False):
        body = group.drop(columns=[*GROUP, *HIDDEN])
        columns = list(body.columns)
        best = {c: _best(body[c], c) for c in columns if is_metric(c)}
        rows = []
        for values, source, f in zip(body.values.tolist(), group["Source"], group["_file"]):
            record = records.get(f) if isinstance(f, str) else None
            cells = [{"text": format_cell(c, v), "value": v if isinstance(v, (int, float)) and v == v else None,
                      "best": c in best and v == best[c], "ci": interval(record, c)} for c, v in zip(columns, values)]
            rows.append({"cells": cells, "published": source != OWN_SOURCE, "file": f if record else None,
                         "run": Path(f).stem if record else None, "mark": (marks or {}).get(f)})
        groups.append({"title": f"{ds} / {split} / protocol {proto}", "columns": columns, "rows": rows,
                       "link": columns.index("Method"), "metric": [is_metric(c) for c in columns]})
    return groups


def _best(column, name: str):
    values = [v for v in column if isinstance(v, (int, float)) and not math.isnan(v)]
    if not values:
        return None
    return max(values) if better(name) > 0 else min(values)


def model_matrix(frame) -> dict:
    """Models x datasets (MTEB-style): one row per own model (method with tag, features, params, distance), one
    R-sum column per dataset / split / protocol, and their average (over the columns the row has; ``n`` says
    how many)."""
    own = frame[frame["Source"].eq(OWN_SOURCE)]
    keys = ["Method", "Features", "Params", "Distance"]
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
