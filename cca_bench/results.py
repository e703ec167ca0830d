"""Run records: one JSON file per benchmark run, and the markdown tables rendered from them."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

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


def load_runs(results_root: Path) -> list[dict]:
    """Every run JSON under ``results_root/runs`` (unreadable files are skipped with their names listed)."""
    runs, bad = [], []
    for f in sorted((Path(results_root) / "runs").glob("*.json")):
        try:
            runs.append(json.loads(f.read_text()) | {"_file": str(f)})
        except (json.JSONDecodeError, OSError):
            bad.append(f.name)
    return runs, bad


def metric_table(rows: list[tuple[str, dict]], task: str, label: str = "Method") -> str:
    """Markdown table of one task (``image_annotation``/``image_search``) for (row name, metrics) pairs."""
    from tabulate import tabulate

    header = [label] + [name for _, name in METRIC_COLUMNS]
    body = [[name] + [m[task][k] for k, _ in METRIC_COLUMNS] for name, m in rows]
    return tabulate(body, header, tablefmt="github", floatfmt=".1f")


def run_tables(record: dict) -> str:
    """The two titled tables a run prints: Image Annotation and Image Search."""
    name = f"{record['method']} ({record['features']}, {record['distance']})"
    out = []
    for task, title in TASKS:
        out.append(f"### {title}\n\n{metric_table([(name, record['metrics'])], task)}\n")
    return "\n".join(out)


def compare_frame(runs: list[dict]):
    """A pandas frame with one row per run: identity columns, then both tasks' metrics."""
    import pandas as pd

    rows = []
    for r in runs:
        row = {"Dataset": r["dataset"], "Split": r["split"], "Protocol": r["protocol"], "Method": r["method"],
               "Features": r["features"], "Params": r.get("params_label", ""), "Distance": r["distance"]}
        for task, title in TASKS:
            short = "i2t" if task == "image_annotation" else "t2i"
            for k, name in METRIC_COLUMNS:
                row[f"{short} {name.replace('Median Rank', 'MedR').replace('Mean Rank', 'MeanR')}"] = r["metrics"][task][k]
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.sort_values(["Dataset", "Split", "Protocol", "Method", "Features", "Distance"], kind="stable")
    return frame


def compare_markdown(frame) -> str:
    """One markdown table per (dataset, split, protocol) group, i2t = annotation, t2i = search."""
    from tabulate import tabulate

    if not len(frame):
        return "No runs stored yet: run `run_benchmark` first.\n"
    parts = ["# Results\n\ni2t = image annotation, t2i = image search; R@K in percent; MedR / MeanR = median /"
             " mean rank (1-based). Rendered from the run JSON files by `cca_bench compare`.\n"]
    for (ds, split, proto), group in frame.groupby(["Dataset", "Split", "Protocol"], sort=False):
        body = group.drop(columns=["Dataset", "Split", "Protocol"])
        parts.append(f"## {ds} / {split} / protocol {proto}\n\n"
                     + tabulate(body.values.tolist(), list(body.columns), tablefmt="github", floatfmt=".1f") + "\n")
    return "\n".join(parts)


def write_text(path: Path, text: str) -> Path:
    """Write a text file through a temporary name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
