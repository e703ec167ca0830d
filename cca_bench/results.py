"""Run records: one JSON file per benchmark run, and the markdown tables rendered from them."""
from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from cca_bench.cells import csv_cell, md_cell
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
    """``runs/<model>__<split>__<protocol>__<distance>.json``; the model name holds method, dataset, features.
    A run scored under a tie rule other than the default adds ``__ties-<rule>`` (it never replaces the
    default rule's run of the same model)."""
    from cca_bench.ties import DEFAULT

    parts = [record["model"], record["split"], record["protocol"], record["distance"]]
    parts += [f"ties-{record['ties']}"] if record.get("ties", DEFAULT) != DEFAULT else []
    return Path(results_root) / "runs" / ("__".join(parts) + ".json")


def run_ties(record: dict) -> str:
    """The tie rule a run record was scored under: its ``ties`` field; runs stored before that field say it in
    ``config.ties`` (they were all optimistic)."""
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    return str(record.get("ties") or config.get("ties") or "optimistic")


def write_json(path: Path, data: dict) -> Path:
    """Write JSON through a temporary name, so a crash never leaves half a file."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True))


RANKS_SUFFIX = ".ranks.npz"


def write_run(results_root: Path, record: dict) -> Path:
    """Store a run: its per-query ranks (``record["_ranks"]``, a :class:`cca_bench.stats.QueryRanks`) as
    ``runs/<run name>.ranks.npz``, then the JSON that names that file and its sha256 (each written atomically;
    the JSON last, so a crash between them leaves no record pointing at a missing file). Returns the JSON path."""
    import hashlib

    from cca_bench.fsio import write_atomic

    path = run_path(results_root, record)
    ranks = record.pop("_ranks", None)
    if ranks is not None:
        data = ranks_bytes(ranks)
        target = path.with_name(path.name[: -len(".json")] + RANKS_SUFFIX)
        write_atomic(target, lambda f: f.write(data))
        record["ranks_file"], record["ranks_sha256"] = target.name, hashlib.sha256(data).hexdigest()
    return write_json(path, record)


TIE_MEMBERS = ("image_annotation_tied", "image_annotation_gt_tied", "image_search_tied")


def ranks_bytes(ranks) -> bytes:
    """The ``.ranks.npz`` bytes of a :class:`cca_bench.stats.QueryRanks`, integer arrays: ``image_annotation``
    (n_images,) captions scoring strictly above each image's best caption (-1: an image without captions is no
    query), ``image_annotation_tied`` other captions tied with it, ``image_annotation_gt_tied`` its own captions
    in that tie (>= 1), ``image_search`` (n_captions,) images strictly above each caption's image,
    ``image_search_tied`` other images tied with it, ``image_index`` (n_captions,) and ``fold`` (n_images,); with
    several seeds the count arrays have a seed axis first. The tie rule is the run JSON's ``ties``: with it the
    counts give every metric, curve and interval exactly (:mod:`cca_bench.ties`)."""
    import io

    import numpy as np

    one = len(ranks.i2t) == 1
    pick = (lambda a: a[0]) if one else (lambda a: a)  # noqa: E731
    buf = io.BytesIO()
    np.savez(buf, image_annotation=pick(ranks.i2t.above), image_search=pick(ranks.t2i.above),
             image_annotation_tied=pick(ranks.i2t.tied), image_annotation_gt_tied=pick(ranks.i2t.gt_tied),
             image_search_tied=pick(ranks.t2i.tied), image_index=ranks.image_index, fold=ranks.fold)
    return buf.getvalue()


def load_ranks(record: dict):
    """The :class:`cca_bench.stats.QueryRanks` of a stored run (a record as :func:`load_runs` returns it), read
    with ``allow_pickle=False`` after checking the sha256 the JSON recorded and that the counts reproduce the
    JSON's metrics exactly under its tie rule (:func:`run_ties`). A ranks file kept before tie counts (no
    ``*_tied`` members) loads as untied ranks under its run's stored rule (optimistic), which reproduces its
    metrics. UserError (one line) when the file is missing, altered or inconsistent."""
    import hashlib

    from cca_bench.fsio import read_npz, read_regular
    from cca_bench.stats import point_metrics, query_ranks
    import numpy as np

    from cca_bench.ties import TieCounts

    run = Path(record["_file"])
    name = record.get("ranks_file")
    if not isinstance(name, str) or not name.endswith(RANKS_SUFFIX) or Path(name).name != name:
        raise UserError(f"{run.name} has no per-query ranks file (stored before they were kept): run "
                        "run_benchmark / evaluate again to test it")
    path = run.with_name(name)
    budget = ranks_budget(record)
    data = read_regular(path, run.parent, budget, f"the ranks file of {run.name}")  # no FIFO, device, link out
    if hashlib.sha256(data).hexdigest() != record.get("ranks_sha256"):
        raise UserError(f"{path}: sha256 differs from the one {run.name} recorded (altered or replaced)")
    z = read_npz(data, str(path), budget)  # sizes and headers checked before numpy allocates what they claim
    try:
        i2t, t2i = z["image_annotation"], z["image_search"]
        if any(m in z for m in TIE_MEMBERS):
            i2t = TieCounts(i2t, z["image_annotation_tied"], z["image_annotation_gt_tied"])
            t2i = TieCounts(t2i, z["image_search_tied"], np.ones_like(z["image_search_tied"]))
        ranks = query_ranks(i2t, t2i, z["image_index"], z["fold"], run_ties(record))
    except (KeyError, ValueError) as e:
        raise UserError(f"{path}: not a ranks file ({e})") from None
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    if point_metrics(ranks) != {t: {k: record["metrics"][t].get(k) for k, _ in METRIC_COLUMNS} for t, _ in TASKS}:
        raise UserError(f"{path}: these ranks do not give the metrics of {run.name}")
    return ranks


# int64 values a ranks file may hold per query (an image or a caption) and seed: the two ranks, image_index and
# fold take 2; top-10 lists, tie counts and what later versions keep per query fit in the rest
RANKS_VALUES_PER_QUERY = 64
RANKS_MAX_SEEDS = 64


def ranks_budget(record: dict) -> int:
    """The most bytes (on disk and uncompressed) the ranks file of run ``record`` can need: 8 bytes x
    RANKS_VALUES_PER_QUERY x RANKS_MAX_SEEDS per query of its ``n_images`` + ``n_captions``, plus 1 MiB of zip and
    ``.npy`` headers; never more than half the memory available now. A record without those counts gets the
    1 MiB alone."""
    from cca_bench.config import available_memory

    counts = [record.get(k) for k in ("n_images", "n_captions")]
    queries = sum(c for c in counts if isinstance(c, int) and not isinstance(c, bool) and c > 0)
    return min(8 * RANKS_VALUES_PER_QUERY * RANKS_MAX_SEEDS * queries + (1 << 20), available_memory() // 2)


def resolve_run(results_root: Path, spec: str) -> dict:
    """A run record from a JSON path or a run name under ``RESULTS/runs`` (with or without ``.json``)."""
    candidates = [Path(spec)] if spec.endswith(".json") and Path(spec).is_file() else []
    name = spec if spec.endswith(".json") else spec + ".json"
    candidates.append(Path(results_root) / "runs" / Path(name).name)
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise UserError(f"no run {spec!r}: give a run JSON file or a name listed under {Path(results_root) / 'runs'}")
    record, why = read_run(path)
    if why:
        raise UserError(f"{path}: {why}")
    return record


RUN_KEYS = ("method", "dataset", "split", "features", "distance", "protocol", "metrics")


def load_runs(results_root: Path) -> tuple[list[dict], list[str]]:
    """(every readable run record under ``results_root/runs``, "name: why" of each file skipped).

    A file is skipped when it is not UTF-8 JSON, not an object, or lacks a key or metric the tables need."""
    runs, bad = [], []
    for f in sorted((Path(results_root) / "runs").glob("*.json")):
        record, why = read_run(f)
        if why:
            bad.append(f"{f.name}: {why}")
        else:
            runs.append(record)
    return runs, bad


def read_run(path: Path) -> tuple[dict | None, str | None]:
    """(the run record in ``path`` with its ``_file``, None), or (None, why it cannot be tabled): not UTF-8
    JSON, not an object, or a key or metric the tables need is missing."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        why = _run_problem(record)
    except (ValueError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        why = f"not a JSON run record ({type(e).__name__})"
    return (None, why) if why else (record | {"_file": str(path)}, None)


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


def metric_table(rows: list[tuple[str, dict]], task: str, label: str = "Method",
                 cis: list[dict | None] | None = None) -> str:
    """Markdown table of one task (``image_annotation``/``image_search``) for (row name, metrics) pairs; with
    ``cis`` (a run's ``ci`` record per row, or None) each value is followed by its interval ``[lo, hi]``."""
    from tabulate import tabulate

    cis = cis or [None] * len(rows)
    header = [label] + [name for _, name in METRIC_COLUMNS]
    body = [[md_cell(name)] + [with_ci(m[task].get(k), (ci or {}).get(task, {}).get(k), k)
                               for k, _ in METRIC_COLUMNS] for (name, m), ci in zip(rows, cis)]
    return tabulate(body, header, tablefmt="github", disable_numparse=True)


def fmt_value(value, metric: str = "") -> str:
    """One number as tables print it: medians as integers, the rest to 0.1; '-' when missing."""
    if value is None or value != value:
        return "-"
    return f"{value:.0f}" if metric in ("median_rank", "MedR") else f"{value:.1f}"


def with_ci(value, interval, metric: str = "") -> str:
    """``7.7 [6.1, 9.4]``: a value and its interval (just the value when there is none)."""
    text = fmt_value(value, metric)
    if interval is None or value is None or value != value:
        return text
    return f"{text} [{fmt_value(interval[0], metric)}, {fmt_value(interval[1], metric)}]"


def rsum(metrics: dict) -> float | None:
    """R-sum: R@1 + R@5 + R@10 of both directions (None when one of them is missing, as in some papers)."""
    from cca_bench.stats import rsum_of

    values = [metrics.get(task, {}).get(f"R@{k}") for task, _ in TASKS for k in (1, 5, 10)]
    return None if any(v is None or v != v for v in values) else float(rsum_of(metrics))


def run_tables(record: dict) -> str:
    """The two titled tables a run prints (Image Annotation, Image Search, intervals where the run has them),
    then its R-sum line, the seed spread and the interval method."""
    name = f"{record['method']} ({record['features']}, {record['distance']}, ties {run_ties(record)})"
    ci = record.get("ci")
    out = []
    for task, title in TASKS:
        out.append(f"### {title}\n\n{metric_table([(name, record['metrics'])], task, cis=[ci])}\n")
    total = rsum(record["metrics"])
    line = f"R-sum: {with_ci(total, (ci or {}).get('rsum'))}"
    if record.get("seed_sd"):
        line += (f"; over {len(record['seed_metrics'])} seeds {record['seeds']['list']}: R-sum sd "
                 f"{record['seed_sd']['rsum']:.1f} (per-seed R-sum {', '.join(f'{rsum(m):.1f}' for m in record['seed_metrics'])})")
    out.append(line)
    if ci:
        how = record.get("ci_method", {})
        out.append(f"[lo, hi] = {100 * how.get('level', 0.95):g}% percentile bootstrap interval over the "
                   f"{record['n_images']} test images ({how.get('resamples')} resamples, seed {how.get('seed')}): "
                   "each image is resampled with all its captions")
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
IDENTITY = ["Source", "Dataset", "Split", "Protocol", "Method", "Features", "Params", "Distance", "Ties"]
GROUP = ["Dataset", "Split", "Protocol"]


def compare_frame(runs: list[dict], published=None):
    """A pandas frame: one row per run (Source "this suite"), then the given published rows
    (:func:`published_frame`), sorted by dataset, split, protocol, own runs first within each group.

    Columns: IDENTITY, both tasks' metrics (``i2t R@1`` ..), and HIDDEN (family, citation, run file).
    """
    import pandas as pd

    own = pd.DataFrame([{"Source": OWN_SOURCE, "Dataset": r["dataset"], "Split": r["split"], "Protocol": r["protocol"],
                         "Method": r["method"], "Features": r["features"], "Params": _params_cell(r),
                         "Distance": r["distance"], "Ties": run_ties(r), **metric_columns(r["metrics"]),
                         "R-sum": rsum(r["metrics"]),
                         **ci_columns(r.get("ci")), "Seed sd": (r.get("seed_sd") or {}).get("rsum"),
                         "Family": r["method"], "Citation": None, "_file": r.get("_file")} for r in runs],
                       columns=_columns())
    parts = [own] + ([published] if published is not None and len(published) else [])
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else own
    if not len(frame):
        return frame
    metrics = [*VALUE_COLUMNS, *CI_COLUMNS, "Seed sd"]
    frame[metrics] = frame[metrics].astype(float)  # None (not published) -> NaN
    frame["_published"] = frame["Source"] != OWN_SOURCE
    frame = frame.sort_values([*GROUP, "_published", "Method", "Features", "Distance"], kind="stable")
    return frame.drop(columns="_published").reset_index(drop=True)


def _params_cell(run: dict) -> str | None:
    """A run's Params cell: its hyper-parameter label, and the ``--tag`` that names a variant."""
    tag = run.get("model", "").partition("@")[2]
    return " ".join(filter(None, [run.get("params_label"), f"tag={tag}" if tag else ""])) or None


VALUE_COLUMNS = [*metric_columns({"image_annotation": {}, "image_search": {}}), "R-sum"]
CI_COLUMNS = [f"{c} {end}" for c in VALUE_COLUMNS for end in ("lo", "hi")]


def ci_columns(ci: dict | None) -> dict:
    """``{"i2t R@1 lo": .., "i2t R@1 hi": .., ..., "R-sum hi": ..}`` of a run's ``ci`` record (None when absent)."""
    flat = metric_columns({t: {k: tuple(v) for k, v in ci[t].items()} for t, _ in TASKS}) | {"R-sum": tuple(ci["rsum"])} \
        if ci else {}
    return {f"{c} {end}": (flat[c][i] if flat.get(c) else None) for c in VALUE_COLUMNS for i, end in enumerate(("lo", "hi"))}


def _columns() -> list[str]:
    return IDENTITY + VALUE_COLUMNS + ["Seed sd"] + HIDDEN


HIDDEN = ["Family", "Citation", "_file", *CI_COLUMNS]  # frame columns that tables do not show as columns


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
             **metric_columns(m := {task: {k: _number(getattr(t, f"{short}_{v}")) for k, v in keys.items()}
                                    for task, short in tasks.items()}), "R-sum": rsum(m),
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


def compare_markdown(frame, marks: dict | None = None) -> str:
    """One markdown table per (dataset, split, protocol) group, i2t = annotation, t2i = search; missing = '-'.

    Own runs with intervals show ``value [lo, hi]``; ``marks`` (:func:`significance_marks`) bolds the best
    value of each column and puts a dagger on the values not significantly worse than it."""
    from tabulate import tabulate

    if not len(frame):
        return "No runs stored yet: run `run_benchmark` first.\n"
    parts = ["# Results\n\ni2t = image annotation, t2i = image search; R@K in percent; MedR / MeanR = median /"
             " mean rank (1-based); R-sum = R@1 + R@5 + R@10 of both directions; '-' = not published. Source \"this"
             " suite\" rows are rendered from the run JSON files by `cca_bench compare`, with 95% bootstrap intervals"
             " over test images in brackets (Seed sd: the R-sum's standard deviation over `--seeds`); the other rows"
             " are published numbers (cca_bench/data/published.csv). Ties: how a ground truth that scores exactly as"
             " much as other items is ranked (expected = the exact expectation over a random order of the tied"
             " items, the default; optimistic / pessimistic = every tie for / against it; docs/protocols.md).\n"]
    if marks is not None:
        parts.append(MARKS_LEGEND)
    for (ds, split, proto), group in frame.groupby(GROUP, sort=False):
        shown = [c for c in group.columns if c not in (*GROUP, *HIDDEN)]
        if group["Seed sd"].isna().all():
            shown.remove("Seed sd")
        body = [[_cell(row, c, (marks or {}).get((row["_file"], c))) for c in shown]
                for _, row in group.iterrows()]
        parts.append(f"## {ds} / {split} / protocol {proto}\n\n" + tabulate(
            body, shown, tablefmt="github", disable_numparse=True) + "\n")
    cited = frame.loc[frame["Source"].ne(OWN_SOURCE), ["Source", "Citation"]].drop_duplicates()
    if len(cited):
        parts.append("## Sources\n\n" + "\n".join(f"- {s}: {c}" for s, c in cited.itertuples(index=False)) + "\n")
    return "\n".join(parts)


MARKS_LEGEND = ("Marks (per column, within each table, among this suite's runs that kept their per-query ranks): "
                "**bold** = the best value; † = not significantly worse than the best (paired sign-flip permutation "
                "test over the same test images, Holm-corrected across the rows compared, alpha 0.05). Unmarked "
                "runs are significantly worse than the best.\n")


def _cell(row, column: str, mark: str | None) -> str:
    """One markdown cell: identity text, or a value with its interval and significance mark."""
    value = row[column]
    if column not in VALUE_COLUMNS and column != "Seed sd":
        return "-" if value is None or value != value else md_cell(value)
    interval = None if column == "Seed sd" or row.get(f"{column} lo") != row.get(f"{column} lo") else \
        (row[f"{column} lo"], row[f"{column} hi"])
    text = with_ci(None if value != value else value, interval, "MedR" if column.endswith("MedR") else column)
    return f"**{text}**" if mark == "best" else f"{text} †" if mark == "tied" else text


def significance_marks(frame, runs: list[dict], alpha: float = 0.05, resamples: int = 2000, seed: int = 0) -> dict:
    """``{(run file, column): "best" | "tied"}`` for every value column of every group of the compare frame:
    the best own run that kept its ranks, and those not significantly worse than it (paired tests on the same
    images, :func:`cca_bench.stats.paired_test`, Holm-corrected over the rows compared). Runs whose ranks are
    missing, or whose split fingerprint differs from the best's, take no part."""
    from cca_bench.stats import holm, paired_p_value

    by_file = {r["_file"]: r for r in runs}
    marks = {}
    for _, group in frame[frame["Source"].eq(OWN_SOURCE)].groupby(GROUP, sort=False):
        ranks = {}
        for f in group["_file"]:
            try:
                ranks[f] = load_ranks(by_file[f])
            except UserError:
                continue
        for column in VALUE_COLUMNS:
            marks |= _column_marks(group[group["_file"].isin(ranks)], column, ranks, by_file, alpha,
                                   lambda a, b, m: paired_p_value(a, b, m, resamples, seed)[0], holm)
    return marks


COLUMN_METRIC = {"R-sum": "rsum", **{f"{s} {n}": f"{s}:{k}" for s in ("i2t", "t2i") for k, n in
                                     (("R@1", "R@1"), ("R@5", "R@5"), ("R@10", "R@10"), ("median_rank", "MedR"),
                                      ("mean_rank", "MeanR"))}}


def _column_marks(group, column: str, ranks: dict, by_file: dict, alpha: float, p_value, holm) -> dict:
    """The marks of one column of one group (see :func:`significance_marks`)."""
    values = group[column].dropna()
    if values.empty:
        return {}
    lower = column.endswith(("MedR", "MeanR"))
    best = group.loc[values.idxmin() if lower else values.idxmax(), "_file"]
    fingerprint, ties = by_file[best].get("split_fingerprint"), run_ties(by_file[best])
    others = [f for f in group.loc[values.index, "_file"] if f != best
              and by_file[f].get("split_fingerprint") == fingerprint and run_ties(by_file[f]) == ties]
    p = holm([p_value(ranks[best], ranks[f], COLUMN_METRIC[column]) for f in others]) if others else []
    out = {(best, column): "best"}
    for f, adjusted in zip(others, p):
        if adjusted > alpha:
            out[(f, column)] = "tied"
    return out


def compare_csv(frame) -> str:
    """The compare frame as CSV (every group in one file, a Source column; missing values are empty cells); text
    cells that a spreadsheet would run as a formula are quoted (:func:`cca_bench.cells.csv_cell`)."""
    from pandas.api.types import is_numeric_dtype

    frame = frame.drop(columns=["Family", "_file"])
    text = [c for c in frame.columns if not is_numeric_dtype(frame[c])]
    return frame.assign(**{c: frame[c].map(csv_cell) for c in text}).to_csv(index=False, float_format="%.6g")


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
    ties = f", ties {report['ties']}" if report.get("ties") else ""
    head = [f"# CV grid: {name}\n", f"Selected by {rule} on val ({report['n_val_images']} images, "
            f"{report['n_val_captions']} captions{ties}): {best_params(report)}.\n"]
    head += [f"- **edge of the grid**: {n}" for n in report.get("edges", [])]
    head += [f"- note: {n}" for n in report["notes"]]
    if report.get("val_interval"):
        from cca_bench.cv import interval_note

        head.append(f"- uncertainty: {interval_note(report['val_interval'])}")
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
