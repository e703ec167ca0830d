"""Run records: one JSON file per benchmark run, and the markdown tables rendered from them."""
from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from cca_bench.errors import UserError

METRIC_COLUMNS = (("R@1", "R@1"), ("R@5", "R@5"), ("R@10", "R@10"), ("median_rank", "Median Rank"),
                  ("mean_rank", "Mean Rank"))
TASKS = (("image_annotation", "Image Annotation"), ("image_search", "Image Search"))


def versions() -> dict:
    """Versions of the libraries that shape the numbers, and the git revision of this checkout."""
    import numpy
    import scipy

    import cca_bench

    out = {"cca_bench": cca_bench.__version__, "python": platform.python_version(), "numpy": numpy.__version__,
           "scipy": scipy.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:
        pass
    out["git_revision"] = git_revision()
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    out["git_dirty"] = None if dirty is None else bool(dirty)
    return out


def _git(*args: str) -> str | None:
    """Output of a git command run in this package's checkout, or None outside one."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_revision() -> str | None:
    return _git("rev-parse", "HEAD") or None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_path(results_root: Path, record: dict) -> Path:
    """``runs/<model>__<split>__<protocol>__<distance>.json``; the model name holds method, dataset, features."""
    parts = [record["model"], record["split"], record["protocol"], record["distance"]]
    return Path(results_root) / "runs" / ("__".join(parts) + ".json")


def write_json(path: Path, data: dict) -> Path:
    """Write JSON through a temporary name, so a crash never leaves half a file."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True))


RUN_KEYS = ("method", "dataset", "split", "features", "distance", "protocol", "metrics")


def load_runs(results_root: Path) -> tuple[list[dict], list[str]]:
    """(every readable run record under ``results_root/runs``, "name: why" of each file skipped).

    A file is skipped when it is not UTF-8 JSON, not an object, or lacks a key or metric the tables need."""
    runs, bad = [], []
    for f in sorted((Path(results_root) / "runs").glob("*.json")):
        try:
            record = json.loads(f.read_text(encoding="utf-8"))
            why = _run_problem(record)
        except (ValueError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            why = f"not a JSON run record ({type(e).__name__})"
        if why:
            bad.append(f"{f.name}: {why}")
        else:
            runs.append(record | {"_file": str(f)})
    return runs, bad


def _run_problem(record) -> str | None:
    """Why a parsed run file cannot be tabled, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [k for k in RUN_KEYS if k not in record]
    if missing:
        return f"no {missing[0]!r}"
    for k in RUN_KEYS[:-1]:
        if not isinstance(record[k], str):
            return f"{k!r} is not a string"
    for task, _ in TASKS:
        if not isinstance(record["metrics"], dict) or not isinstance(record["metrics"].get(task), dict):
            return f"no metrics for {task}"
        for k, _ in METRIC_COLUMNS:
            v = record["metrics"][task].get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                return f"{task} {k} is not a number"
    return None


def metric_table(rows: list[tuple[str, dict]], task: str, label: str = "Method") -> str:
    """Markdown table of one task (``image_annotation``/``image_search``) for (row name, metrics) pairs."""
    from tabulate import tabulate

    header = [label] + [name for _, name in METRIC_COLUMNS]
    body = [[name] + [m[task][k] for k, _ in METRIC_COLUMNS] for name, m in rows]
    return tabulate(body, header, tablefmt="github", floatfmt=".1f")


def method_label(record: dict) -> str:
    """The run's method with its model's ``--tag`` (``cca@ridge``): variants of one method stay apart in tables."""
    model = record.get("model")
    tag = model.partition("@")[2] if isinstance(model, str) else ""
    return f"{record['method']}@{tag}" if tag else record["method"]


def run_tables(record: dict) -> str:
    """The two titled tables a run prints: Image Annotation and Image Search."""
    name = f"{method_label(record)} ({record['features']}, {record['distance']})"
    out = []
    for task, title in TASKS:
        out.append(f"### {title}\n\n{metric_table([(name, record['metrics'])], task)}\n")
    return "\n".join(out)


def metric_columns(metrics: dict) -> dict:
    """Flat columns ``i2t R@1`` .. ``t2i MeanR`` of a metrics record (a missing metric is None)."""
    out = {}
    for task, short in (("image_annotation", "i2t"), ("image_search", "t2i")):
        for k, name in METRIC_COLUMNS:
            out[f"{short} {name.replace('Median Rank', 'MedR').replace('Mean Rank', 'MeanR')}"] = metrics[task].get(k)
    return out


OWN_SOURCE = "this suite"
PUBLISHED_CSV = "published.csv"  # in cca_bench/data/: the reference rows of PROTOCOLS.md, with citations
IDENTITY = ["Source", "Dataset", "Split", "Protocol", "Method", "Features", "Params", "Distance"]
GROUP = ["Dataset", "Split", "Protocol"]
RSUM = "R-sum"  # R@1 + R@5 + R@10 of both directions: the column tables sort by


def compare_frame(runs: list[dict], published=None):
    """A pandas frame: one row per run (Source "this suite") and the given published rows
    (:func:`published_frame`), sorted by dataset, split, protocol, then R-sum, best first (rows without one
    last). A run's method shows its ``--tag`` (``cca@ridge``).

    Columns: IDENTITY, R-sum, both tasks' metrics (``i2t R@1`` ..), and HIDDEN (family, citation, run file).
    """
    import pandas as pd

    own = pd.DataFrame([{"Source": OWN_SOURCE, "Dataset": r["dataset"], "Split": r["split"], "Protocol": r["protocol"],
                         "Method": method_label(r), "Features": r["features"], "Params": r.get("params_label") or None,
                         "Distance": r["distance"], **metric_columns(r["metrics"]), "Family": r["method"],
                         "Citation": None, "_file": r.get("_file")} for r in runs], columns=_columns())
    parts = [own] + ([published] if published is not None and len(published) else [])
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else own
    if not len(frame):
        return frame
    metrics = list(metric_columns({"image_annotation": {}, "image_search": {}}))
    frame[metrics] = frame[metrics].astype(float)  # None (not published) -> NaN
    frame[RSUM] = frame[[m for m in metrics if "R@" in m]].sum(axis=1, skipna=False)
    frame["_published"] = frame["Source"] != OWN_SOURCE
    frame = frame.sort_values([*GROUP, "_published", "Method", "Features", "Distance"], kind="stable")
    frame = frame.sort_values([*GROUP, RSUM], ascending=[True] * len(GROUP) + [False], na_position="last",
                              kind="stable")
    return frame.drop(columns="_published").reset_index(drop=True)


def _columns() -> list[str]:
    return IDENTITY + [RSUM] + list(metric_columns({"image_annotation": {}, "image_search": {}})) + HIDDEN


def format_cell(column: str, value) -> str:
    """A table cell as every table shows it: '-' for a missing value, median ranks as integers where they are
    whole (one fold: always), other numbers to 0.1."""
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if "MedR" in column and float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}"


HIDDEN = ["Family", "Citation", "_file"]  # frame columns that tables do not show


def published_frame():
    """The published reference rows (``cca_bench/data/published.csv``, PROTOCOLS.md) in compare_frame's columns."""
    from importlib.resources import files

    import pandas as pd

    with (files("cca_bench") / "data" / PUBLISHED_CSV).open() as f:
        table = pd.read_csv(f, dtype={"protocol": str})
    tasks = {"image_annotation": "i2t", "image_search": "t2i"}
    keys = {"R@1": "r1", "R@5": "r5", "R@10": "r10", "median_rank": "medr", "mean_rank": "meanr"}
    rows = [{"Source": t.source, "Dataset": t.dataset, "Split": t.split, "Protocol": t.protocol, "Method": t.method,
             "Features": t.features if isinstance(t.features, str) else None, "Params": None, "Distance": None,
             **metric_columns({task: {k: _number(getattr(t, f"{short}_{v}")) for k, v in keys.items()}
                               for task, short in tasks.items()}),
             "Family": t.family, "Citation": t.citation} for t in table.itertuples()]
    return pd.DataFrame(rows, columns=_columns())


def _number(value):
    """A CSV cell as a float, or None where the paper published nothing."""
    import math

    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def select_rows(frame, dataset: str | None = None, split: str | None = None, method: str | None = None,
                all_published: bool = False):
    """Filter a compare frame; published rows stay only in groups that hold own runs unless ``all_published``.

    ``dataset`` matches the dataset name without builder options; ``method`` matches a run's method or a
    published row's family (``cca``, ``vse``).
    """
    if not len(frame):
        return frame
    base = frame["Dataset"].str.split("[").str[0]
    for value, column, what in ((dataset, base, "dataset"), (split, frame["Split"], "split"),
                                (method, frame["Family"], "method")):
        _check_known(value, column, what)
    keep = base.eq(dataset) if dataset else frame["Dataset"].notna()
    keep &= frame["Split"].eq(split) if split else True
    keep &= frame["Family"].eq(method) if method else True
    frame = frame[keep]
    own = frame["Source"].eq(OWN_SOURCE)
    if not all_published:
        groups = set(map(tuple, frame.loc[own, GROUP].values.tolist()))
        frame = frame[own | frame[GROUP].apply(tuple, axis=1).isin(groups)]
    return frame


def _check_known(value: str | None, column, what: str) -> None:
    """A filter value that no run or published row has is a typo: UserError with the closest name."""
    import difflib

    if value is None:
        return
    known = sorted(set(column.dropna().astype(str)))
    if value not in known:
        close = difflib.get_close_matches(value, known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"no stored run or published row has {what} {value!r}{hint} (known: {', '.join(known)})")


def compare_markdown(frame) -> str:
    """One markdown table per (dataset, split, protocol) group, i2t = annotation, t2i = search; missing = '-'."""
    from tabulate import tabulate

    if not len(frame):
        return "No runs stored yet: run `run_benchmark` first.\n"
    parts = ["# Results\n\ni2t = image annotation, t2i = image search; R@K in percent; R-sum = the six R@K summed"
             " (rows best first); MedR / MeanR = median /"
             " mean rank (1-based); '-' = not published. Source \"this suite\" rows are rendered from the run JSON"
             " files by `cca_bench compare`; the other rows are published numbers (cca_bench/data/published.csv).\n"]
    for (ds, split, proto), group in frame.groupby(GROUP, sort=False):
        body = group.drop(columns=[*GROUP, *HIDDEN]).astype(object)
        cells = [[format_cell(c, v) for c, v in zip(body.columns, row)] for row in body.values.tolist()]
        numeric = ["right" if c == RSUM or " R" in c or "Med" in c or "Mean" in c else "left" for c in body.columns]
        parts.append(f"## {ds} / {split} / protocol {proto}\n\n" + tabulate(
            cells, list(body.columns), tablefmt="github", disable_numparse=True, colalign=numeric) + "\n")
    cited = frame.loc[frame["Source"].ne(OWN_SOURCE), ["Source", "Citation"]].drop_duplicates()
    if len(cited):
        parts.append("## Sources\n\n" + "\n".join(f"- {s}: {c}" for s, c in cited.itertuples(index=False)) + "\n")
    return "\n".join(parts)


def compare_csv(frame) -> str:
    """The compare frame as CSV (every group in one file, a Source column; missing values are empty cells)."""
    return frame.drop(columns=["Family", "_file"]).to_csv(index=False, float_format="%.6g")


def write_text(path: Path, text: str) -> Path:
    """Write a UTF-8 text file through a temporary name."""
    from cca_bench.fsio import write_atomic

    write_atomic(Path(path), lambda f: f.write(text.encode("utf-8")))
    return Path(path)


def write_figure(path: Path, fig) -> Path:
    """Save a matplotlib figure as PNG through a temporary name."""
    from cca_bench.fsio import write_atomic

    write_atomic(Path(path), lambda f: fig.savefig(f, format="png"))
    return Path(path)


def cv_markdown(report: dict, name: str) -> str:
    """The CV grid as a markdown table, best first, with the selection rule and notes."""
    from tabulate import tabulate

    from cca_bench.cv import best_params, ranked_rows

    rule = "highest R-sum" if report["select"] == "rsum" else "lowest sum of median ranks"
    head = [f"# CV grid: {name}\n", f"Selected by {rule} on val ({report['n_val_images']} images, "
            f"{report['n_val_captions']} captions): {best_params(report)}.\n"]
    head += [f"- **edge of the grid**: {n}" for n in report.get("edges", [])]
    head += [f"- note: {n}" for n in report["notes"]]
    knobs = [*report.get("features_grid", {}), *report["grid"]]  # feature options searched too (fv_components)
    body = [{k: r[k] for k in knobs} | {"R-sum": r["rsum"], "MedR sum": r["medr_sum"]} | metric_columns(r["metrics"])
            for r in ranked_rows(report)]
    fmt = ["g"] * len(knobs) + [".1f"] * (len(body[0]) - len(knobs))  # the grid values as given, metrics to 0.1
    return "\n".join(head) + "\n\n" + tabulate(body, "keys", tablefmt="github", floatfmt=fmt) + "\n"


def write_cv(results_root: Path, name: str, report: dict) -> tuple[Path, Path]:
    """``cv/<model name>.json`` (the whole report) and ``cv/<model name>.md`` (the table), atomically."""
    folder = Path(results_root) / "cv"
    return write_json(folder / f"{name}.json", report), write_text(folder / f"{name}.md", cv_markdown(report, name))


def plot_runs(results_root: Path, runs: list[dict]) -> list[Path]:
    """R@K curve PNGs under ``plots/``: one per run (``<run file stem>.png``) and, where a dataset / split /
    protocol group holds several runs, one with all of them (``<dataset>__<split>__<protocol>.png``)."""
    from cca_bench.plots import recall_figure

    folder, groups = Path(results_root) / "plots", {}
    paths = []
    for run in runs:
        groups.setdefault((run["dataset"], run["split"], run["protocol"]), []).append(run)
        title = f"{_group_title(run)}: {run['features']}, {run['distance']}"
        fig = recall_figure([(f"{run['method']} {run.get('params_label', '')}".strip(), run["recall_curve"])], title)
        paths.append(write_figure(folder / (Path(run["_file"]).stem + ".png"), fig))
    for (ds, split, proto), group in groups.items():
        if len(group) > 1:
            series = [(" ".join(filter(None, [r["method"], r["features"], r.get("params_label"), r["distance"]])),
                       r["recall_curve"]) for r in group]
            fig = recall_figure(series, _group_title(group[0]))
            paths.append(write_figure(folder / f"{ds}__{split}__{proto}.png", fig))
    return paths


def _group_title(run: dict) -> str:
    return f"{run['dataset']} / {run['split']} / protocol {run['protocol']}"
