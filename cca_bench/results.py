"""Run records: one JSON file per benchmark run, and the markdown tables rendered from them."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from cca_bench.cells import csv_cell, md_cell
from cca_bench.errors import UserError
from cca_bench.runrecord import (
    RANKS_SUFFIX,
    TOP10_KEYS,
    config_name,
    latest_runs,
    load_runs,  # noqa: F401  (re-exported: callers read and write runs through results)
    ranks_bytes,  # noqa: F401
    read_run,
    run_id,
    run_ties,
    short_id,
    write_run,  # noqa: F401
)

METRIC_COLUMNS = (
    ("R@1", "R@1"),
    ("R@5", "R@5"),
    ("R@10", "R@10"),
    ("median_rank", "Median Rank"),
    ("mean_rank", "Mean Rank"),
)
TASKS = (("image_annotation", "Image Annotation"), ("image_search", "Image Search"))


def versions() -> dict:
    """Versions of the libraries that shape the numbers, and the git revision of this checkout."""
    import numpy
    import scipy

    from cca_bench._version import __version__

    out = {
        "cca_bench": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("torch", "scikit-learn", "onnxruntime", "gensim", "pandas"):  # solves, kernel maps, ONNX features
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    out["git_revision"] = git_revision()
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    out["git_dirty"] = None if dirty is None else bool(dirty)
    return out


def _run_git(here: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _git(*args: str) -> str | None:
    """Output of a git command run in this project's own checkout, or None when the package is not in one.

    Only a repository whose top level is the package's parent folder and holds this project's setup.cfg counts:
    an installed package inside some unrelated repository (a virtualenv in another project's tree) records no
    revision rather than that repository's HEAD."""
    package = Path(__file__).resolve().parent
    top = _run_git(package, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != package.parent or not _is_this_project(package.parent / "setup.cfg"):
        return None
    return _run_git(package, *args)


def _is_this_project(setup_cfg: Path) -> bool:
    try:
        return "name = cca_bench" in setup_cfg.read_text(encoding="utf-8")
    except OSError:
        return False


def git_revision() -> str | None:
    return _git("rev-parse", "HEAD") or None


def now() -> str:
    # microseconds: two runs stored within one second (a script, a test) still order by when they were made
    return datetime.now(UTC).isoformat(timespec="microseconds")


def write_json(path: Path, data: dict) -> Path:
    """Write JSON through a temporary name, so a crash never leaves half a file."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True))


TIE_MEMBERS = ("image_annotation_tied", "image_annotation_gt_tied", "image_search_tied")


def load_ranks(record: dict):
    """The :class:`cca_bench.stats.QueryRanks` of a stored run (a record as :func:`load_runs` returns it), read
    with ``allow_pickle=False`` after checking the sha256 the JSON recorded and that the counts reproduce the
    JSON's metrics exactly under its tie rule (:func:`run_ties`). A ranks file kept before tie counts (no
    ``*_tied`` members) loads as untied ranks under its run's stored rule (optimistic), which reproduces its
    metrics. UserError (one line) when the file is missing, altered or inconsistent."""
    import numpy as np

    from cca_bench.stats import point_metrics, query_ranks
    from cca_bench.ties import TieCounts

    z, path, run = _ranks_npz(record)
    try:
        i2t, t2i = z["image_annotation"], z["image_search"]
        if any(m in z for m in TIE_MEMBERS):
            i2t = TieCounts(i2t, z["image_annotation_tied"], z["image_annotation_gt_tied"])
            t2i = TieCounts(t2i, z["image_search_tied"], np.ones_like(z["image_search_tied"]))
        ranks = query_ranks(i2t, t2i, z["image_index"], z["fold"], run_ties(record))
        metrics = point_metrics(ranks)
    except (KeyError, ValueError, TypeError, IndexError, ZeroDivisionError) as e:  # e.g. a 0-d image_index
        raise UserError(f"{path}: not a ranks file ({e})") from None
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    if metrics != {t: {k: record["metrics"][t].get(k) for k, _ in METRIC_COLUMNS} for t, _ in TASKS}:
        raise UserError(f"{path}: these ranks do not give the metrics of {run.name}")
    return ranks


def load_top10(record: dict, ranks) -> tuple:
    """(i2t_top10 (n_images, 10), t2i_top10 (n_captions, 10)) int64 of a stored run whose ranks file keeps them
    (:func:`ranks_bytes`), checked against its ``ranks`` (:func:`load_ranks`): shapes, and every position inside
    the split or -1. UserError (one line) for runs stored before they were kept or a malformed file."""
    import numpy as np

    z, path, _ = _ranks_npz(record)
    if not all(k in z for k in TOP10_KEYS):
        raise UserError(
            f"{path}: no top-10 retrieved items (stored before they were kept): run "
            "run_benchmark / evaluate again to see what this run retrieved"
        )
    if any(z[k].dtype.kind not in "iu" for k in TOP10_KEYS):
        raise UserError(f"{path}: {' / '.join(TOP10_KEYS)} are not integer arrays")
    out = tuple(np.asarray(z[k], dtype=np.int64) for k in TOP10_KEYS)
    n_img, n_txt = ranks.n_images, len(ranks.image_index)
    for arr, rows, gallery, key in zip(out, (n_img, n_txt), (n_txt, n_img), TOP10_KEYS):
        if arr.shape != (rows, 10) or arr.size and (arr.min() < -1 or arr.max() >= gallery):
            raise UserError(f"{path}: {key} is not ({rows}, 10) positions of 0..{gallery - 1} or -1")
    return out


def _ranks_npz(record: dict) -> tuple:
    """(the arrays of a run's ranks file, its path, the run JSON's path), read after checking the sha256 the
    JSON recorded: a regular file inside the runs folder, sizes and headers checked before numpy allocates what
    they claim (:func:`ranks_budget`)."""
    import hashlib

    from cca_bench.fsio import read_npz, read_regular

    run = Path(record["_file"])
    name = record.get("ranks_file")
    if not isinstance(name, str) or not name.endswith(RANKS_SUFFIX) or Path(name).name != name:
        raise UserError(
            f"{run.name} has no per-query ranks file (stored before they were kept): run "
            "run_benchmark / evaluate again to test it"
        )
    path = run.with_name(name)
    budget = ranks_budget(record)
    data = read_regular(path, run.parent, budget, f"the ranks file of {run.name}")  # no FIFO, device, link out
    if hashlib.sha256(data).hexdigest() != record.get("ranks_sha256"):
        raise UserError(f"{path}: sha256 differs from the one {run.name} recorded (altered or replaced)")
    return read_npz(data, str(path), budget), path, run


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
    """The run record ``spec`` names: a path to a run JSON (used as given: a path that is not a file is refused,
    never looked up elsewhere), or, among ``RESULTS/runs``, a run id, a configuration name (its newest run), a
    unique prefix of a run id, or a run's short id (its time stamp suffix, as `runs` and `compare` show it)."""
    folder = Path(results_root) / "runs"
    if "/" in spec or "\\" in spec or spec.endswith(".json"):
        path = Path(spec)
        if not path.is_file():
            raise UserError(f"{spec}: no such run file (a path is used as given; a run id is looked up in {folder})")
        record, why = read_run(path)
        if why:
            raise UserError(f"{path}: {why}")
        return record
    runs, bad = load_runs(results_root)
    return find_run(runs, spec, bad, folder)


def find_run(runs: list[dict], spec: str, bad: list[str] = (), folder: Path | str = "RESULTS/runs") -> dict:
    """The one run of ``runs`` that ``spec`` names (see :func:`resolve_run`); UserError with the closest ids when
    none matches, the candidates when several do, or why the file of that name was skipped."""
    import difflib

    ids = {run_id(r): r for r in runs}
    if spec in ids:
        return ids[spec]
    same = [r for r in runs if config_name(r) == spec]
    if same:
        return latest_runs(same)[0]
    hits = [
        r for rid, r in ids.items() if rid.startswith(spec) or (short_id(rid) != rid and short_id(rid).startswith(spec))
    ]
    if len(hits) == 1:
        return hits[0]
    if hits:
        shown = ", ".join(short_id(run_id(r)) for r in hits[:5])
        raise UserError(
            f"{spec!r} matches {len(hits)} runs ({shown}{', ...' if len(hits) > 5 else ''}): give more of the run id"
        )
    for line in bad:
        if line.startswith(spec + ".json:"):
            raise UserError(f"{folder}/{line}")
    close = difflib.get_close_matches(spec, [*ids, *{config_name(r) for r in runs}], n=3, cutoff=0.3)
    hint = f"; closest: {', '.join(close)}" if close else "; `python -m cca_bench runs` lists them" if ids else ""
    raise UserError(
        f"no run named {spec!r} in {folder}{hint}" if ids else f"no run named {spec!r}: {folder} holds no runs"
    )


def metric_table(
    rows: list[tuple[str, dict]], task: str, label: str = "Method", cis: list[dict | None] | None = None
) -> str:
    """Markdown table of one task (``image_annotation``/``image_search``) for (row name, metrics) pairs; with
    ``cis`` (a run's ``ci`` record per row, or None) each value is followed by its interval ``[lo, hi]``."""
    from tabulate import tabulate

    cis = cis or [None] * len(rows)
    header = [label] + [name for _, name in METRIC_COLUMNS]
    body = [
        [md_cell(name)] + [with_ci(m[task].get(k), (ci or {}).get(task, {}).get(k), k) for k, _ in METRIC_COLUMNS]
        for (name, m), ci in zip(rows, cis)
    ]
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


def _mc_note(mc: dict | None) -> str:
    """``; Monte Carlo error of the R-sum bounds +-0.15 / +-0.14`` (how far a bound moves with the bootstrap seed)."""
    if not mc or not mc.get("rsum"):
        return ""
    return f"; Monte Carlo error of the R-sum bounds +-{mc['rsum'][0]:.2f} / +-{mc['rsum'][1]:.2f}"


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
        line += (
            f"; over {len(record['seed_metrics'])} seeds {record['seeds']['list']}: R-sum sd "
            f"{record['seed_sd']['rsum']:.1f} "
            f"(per-seed R-sum {', '.join(f'{rsum(m):.1f}' for m in record['seed_metrics'])})"
        )
    out.append(line)
    if ci:
        how = record.get("ci_method", {})
        out.append(
            f"[lo, hi] = {100 * how.get('level', 0.95):g}% percentile bootstrap interval over the "
            f"{record['n_images']} test images ({how.get('resamples')} resamples, seed {how.get('seed')}): "
            "each image is resampled with all its captions" + _mc_note(how.get("mc_error"))
        )
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
    (:func:`published_frame`), sorted by dataset, split, protocol, then best R-sum first within each group.

    Columns: IDENTITY, both tasks' metrics (``i2t R@1`` ..), and HIDDEN (run id, family, citation, run file).
    """
    import pandas as pd

    own = pd.DataFrame(
        [
            {
                "Source": OWN_SOURCE,
                "Dataset": r["dataset"],
                "Split": r["split"],
                "Protocol": r["protocol"],
                "Method": r["method"],
                "Features": r["features"],
                "Params": _params_cell(r),
                "Distance": r["distance"],
                "Ties": run_ties(r),
                **metric_columns(r["metrics"]),
                "R-sum": rsum(r["metrics"]),
                **ci_columns(r.get("ci")),
                "Seed sd": (r.get("seed_sd") or {}).get("rsum"),
                "Family": r["method"],
                "Citation": None,
                "_file": r.get("_file"),
                "run": run_id(r),
            }
            for r in runs
        ],
        columns=_columns(),
    )
    extended = pd.DataFrame([extended_columns(r) for r in runs], index=own.index)
    if len(extended.columns):  # COCO 5k runs with ECCV Caption / CxC metrics: columns for --columns and the CSV
        own = pd.concat([own, extended[sorted(extended.columns)]], axis=1)
    parts = [own] + ([published] if published is not None and len(published) else [])
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else own
    if not len(frame):
        return frame
    metrics = [*VALUE_COLUMNS, *CI_COLUMNS, "Seed sd"]
    frame[metrics] = frame[metrics].astype(float)  # None (not published) -> NaN
    frame["_published"] = frame["Source"] != OWN_SOURCE
    frame = frame.sort_values(
        [*GROUP, "R-sum", "_published", "Method", "Features", "Distance"],
        ascending=[True] * len(GROUP) + [False, True, True, True, True],
        na_position="last",
        kind="stable",
    )  # best R-sum first, as compare's help says
    return frame.drop(columns="_published").reset_index(drop=True)


def extended_columns(run: dict) -> dict:
    """A COCO 5k run's ECCV Caption and CxC metrics (its ``coco_extended`` record, :mod:`cca_bench.coco_extended`)
    as compare columns ``{"i2t eccv_map_at_r": .., "t2i cxc_r1": ..}``; {} for every other run. They are not
    in the default table (``--columns`` picks them) but always in the CSV."""
    metrics = (run.get("coco_extended") or {}).get("metrics") if isinstance(run.get("coco_extended"), dict) else None
    out = {}
    for name, per in (metrics or {}).items():
        for task, short in (("image_annotation", "i2t"), ("image_search", "t2i")):
            value = per.get(task) if isinstance(per, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{short} {name}"] = float(value)
    return out


def _params_cell(run: dict) -> str | None:
    """A run's Params cell: its hyper-parameter label, and the ``--tag`` that names a variant."""
    tag = run.get("model", "").partition("@")[2]
    return " ".join(filter(None, [run.get("params_label"), f"tag={tag}" if tag else ""])) or None


VALUE_COLUMNS = [*metric_columns({"image_annotation": {}, "image_search": {}}), "R-sum"]
CI_COLUMNS = [f"{c} {end}" for c in VALUE_COLUMNS for end in ("lo", "hi")]


def ci_columns(ci: dict | None) -> dict:
    """``{"i2t R@1 lo": .., "i2t R@1 hi": .., ..., "R-sum hi": ..}`` of a run's ``ci`` record (None when absent)."""
    flat = (
        metric_columns({t: {k: tuple(v) for k, v in ci[t].items()} for t, _ in TASKS}) | {"R-sum": tuple(ci["rsum"])}
        if ci
        else {}
    )
    return {
        f"{c} {end}": (flat[c][i] if flat.get(c) else None) for c in VALUE_COLUMNS for i, end in enumerate(("lo", "hi"))
    }


def _columns() -> list[str]:
    return IDENTITY + VALUE_COLUMNS + ["Seed sd"] + HIDDEN


HIDDEN = ["run", "Family", "Citation", "_file", *CI_COLUMNS]  # frame columns that tables do not show as columns


def published_frame():
    """The published reference rows (``cca_bench/data/published.csv``, PROTOCOLS.md) in compare_frame's columns."""
    from importlib.resources import files

    import pandas as pd

    with (files("cca_bench") / "data" / PUBLISHED_CSV).open() as f:
        table = pd.read_csv(f, dtype={"protocol": str})
    tasks = {"image_annotation": "i2t", "image_search": "t2i"}
    keys = {"R@1": "r1", "R@5": "r5", "R@10": "r10", "median_rank": "medr", "mean_rank": "meanr"}
    rows = [
        {
            "Source": t.source,
            "Dataset": t.dataset,
            "Split": t.split,
            "Protocol": t.protocol,
            "Method": t.method,
            "Features": t.features if isinstance(t.features, str) else None,
            "Params": None,
            "Distance": None,
            **metric_columns(
                m := {
                    task: {k: _number(getattr(t, f"{short}_{v}")) for k, v in keys.items()}
                    for task, short in tasks.items()
                }
            ),
            "R-sum": rsum(m),
            "Family": t.family,
            "Citation": t.citation,
        }
        for t in table.itertuples()
    ]
    return pd.DataFrame(rows, columns=_columns())


def _number(value):
    """A CSV cell as a float, or None where the paper published nothing."""
    import math

    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def select_rows(
    frame, dataset: str | None = None, split: str | None = None, method: str | None = None, all_published: bool = False
):
    """Filter a compare frame; published rows stay only in groups that hold own runs unless ``all_published``.

    ``dataset`` matches the dataset name without builder options; ``method`` matches a run's method or a
    published row's family (``cca``, ``vse``).
    """
    if not len(frame):
        return frame
    base = frame["Dataset"].str.split("[").str[0]
    for value, column, what in (
        (dataset, base, "dataset"),
        (split, frame["Split"], "split"),
        (method, frame["Family"], "method"),
    ):
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


TABLE_WIDTH = 120  # characters a compare table may take by default (every column goes to the CSV)
DEFAULT_COLUMNS = ["run", "Method", "Features", "R-sum", "i2t R@1", "t2i R@1"]
BASELINE_DEFAULT = ["run", "Method", "R-sum", "delta", "p_value", "p_holm"]
DROPPABLE = ["Features", "t2i R@1", "i2t R@1", "p_holm", "Method"]  # left out first when a table is too wide


def table_columns(frame, requested: list[str] | None = None) -> list[str]:
    """The columns a compare table shows: ``requested`` (names as the CSV spells them, any case; ``all`` = every
    column), else the defaults, with the baseline columns when the frame has them. UserError for an unknown name."""
    import difflib

    known = [c for c in frame.columns if c not in (*GROUP, *HIDDEN)] + [
        c for c in ("run", "delta", "p_value", "p_holm") if c in frame.columns
    ]
    if not requested:
        return [c for c in (BASELINE_DEFAULT if "delta" in frame.columns else DEFAULT_COLUMNS) if c in known]
    if [r.lower() for r in requested] == ["all"]:
        return [c for c in known if c != "run"] + ["run"]
    lower = {c.lower(): c for c in known}
    for r in requested:
        if r.lower() not in lower:
            close = difflib.get_close_matches(r.lower(), list(lower), n=1, cutoff=0.5)
            hint = f"; did you mean {lower[close[0]]!r}?" if close else ""
            raise UserError(f"--columns: no column {r!r}{hint} (known: all, {', '.join(known)})")
    return [lower[r.lower()] for r in requested]


def compare_markdown(
    frame, marks: dict | None = None, columns: list[str] | None = None, baseline: str | None = None
) -> str:
    """One markdown table per (dataset, split, protocol) group, best R-sum first; missing = '-'.

    ``columns`` as :func:`table_columns` takes them; without it the default columns are shown, fewer where a
    table would be wider than TABLE_WIDTH characters (the CSV has them all). Own runs with intervals show
    ``value [lo, hi]``; ``marks`` (:func:`significance_marks`) bolds the best value of each column and puts a
    dagger on the values not significantly worse than it; ``baseline`` names the run of the delta columns."""
    if not len(frame):
        return "No runs stored yet: run `run_benchmark` first.\n"
    parts = [
        "# Results\n\ni2t = image annotation, t2i = image search; R@K in percent; MedR / MeanR = median /"
        " mean rank (1-based); R-sum = R@1 + R@5 + R@10 of both directions; '-' = not published. Rows with a"
        " run id are this suite's runs (`python -m cca_bench runs` lists them; every command takes the short"
        " id shown), rendered from the run JSON files by `cca_bench compare`, with 95% bootstrap intervals over"
        " test images in brackets; the other rows are published numbers (cca_bench/data/published.csv). Ties:"
        " how a ground truth that scores exactly as much as other items is ranked (expected = the exact"
        " expectation over a random order of the tied items, the default; optimistic / pessimistic = every tie"
        " for / against it; docs/protocols.md). Every column, full run ids and sources: RESULTS.csv.\n"
    ]
    if baseline is not None:
        parts.append(BASELINE_LEGEND.format(baseline=baseline))
    if marks is not None:
        from cca_bench.marks import legend

        parts.append(legend(marks, tuple(VALUE_COLUMNS)))
    from cca_bench.marks import PUBLISHED_NOTE

    shown = table_columns(frame, columns)
    for (ds, split, proto), group in frame.groupby(GROUP, sort=False):
        cols = [c for c in shown if c != "Seed sd" or group["Seed sd"].notna().any()]
        note = f"\n{PUBLISHED_NOTE}" if group["Source"].ne(OWN_SOURCE).any() else ""
        parts.append(
            f"## {ds} / {split} / protocol {proto}\n\n" + _fitted_table(group, cols, marks, not columns) + note
        )
    cited = frame.loc[frame["Source"].ne(OWN_SOURCE), ["Source", "Citation"]].drop_duplicates()
    if len(cited):
        parts.append("## Sources\n\n" + "\n".join(f"- {s}: {c}" for s, c in cited.itertuples(index=False)) + "\n")
    return "\n".join(parts)


def _fitted_table(group, shown: list[str], marks: dict | None, fit: bool) -> str:
    """A group's markdown table; with ``fit``, DROPPABLE columns are left out until it is TABLE_WIDTH wide."""
    from tabulate import tabulate

    shown = list(shown)
    while True:
        plain = "Params" in shown or "Distance" in shown  # the Method cell names tag and distance only without them
        body = [
            [
                md_cell(row[c]) if c == "Method" and plain else _cell(row, c, (marks or {}).get((row["_file"], c)))
                for c in shown
            ]
            for _, row in group.iterrows()
        ]
        text = tabulate(body, shown, tablefmt="github", disable_numparse=True) + "\n"
        wide = max(map(len, text.splitlines())) > TABLE_WIDTH
        drop = next((c for c in DROPPABLE if c in shown), None) if fit and wide else None
        if drop is None:
            return text
        shown.remove(drop)


BASELINE_LEGEND = (
    "delta = the row's value minus the baseline {baseline}'s [95% paired bootstrap interval]; p_value"
    " = two-sided paired test on the same test images (as `significance ROW BASELINE` gives it);"
    " p_holm = Holm-corrected across the rows compared.\n"
)
BASELINE_COLUMNS = ["delta", "delta_lo", "delta_hi", "p_value", "p_holm", "note"]


def add_baseline(frame, runs: list[dict], baseline: dict, metric: str = "rsum"):
    """The compare frame with BASELINE_COLUMNS: each own run's paired difference from ``baseline`` in ``metric``
    (:func:`cca_bench.stats.paired_test` with the one default of resamples and seed, row minus baseline, all rows
    in one :func:`cca_bench.stats.paired_tests` batch), its interval and p-value, and the Holm-adjusted p over
    the rows compared. Rows that cannot be paired with the baseline (published, another split or protocol,
    other test images, no readable ranks) get a ``note`` saying why, and empty values."""
    import pandas as pd

    from cca_bench.stats import PAIRED_RESAMPLES, PAIRED_SEED, holm, paired_tests

    by_file = {r["_file"]: r for r in runs} | {baseline["_file"]: baseline}
    ranks, notes = _paired_with_baseline(frame, by_file, baseline)
    tests = iter(paired_tests(ranks, [(i, 0) for i in range(1, len(ranks))], [metric], PAIRED_RESAMPLES, PAIRED_SEED))
    untested = {"delta": None, "ci": [None, None], "p_value": None}
    rows = []
    for why in notes:
        t = next(tests)[metric] if why is None else untested
        rows.append(
            {"delta": t["delta"], "delta_lo": t["ci"][0], "delta_hi": t["ci"][1], "p_value": t["p_value"], "note": why}
        )
    out = pd.DataFrame(rows, index=frame.index, columns=[c for c in BASELINE_COLUMNS if c != "p_holm"])
    tested = out["p_value"].notna()
    out["p_holm"] = None
    out.loc[tested, "p_holm"] = holm(out.loc[tested, "p_value"].tolist()) if tested.any() else []
    out = out[BASELINE_COLUMNS]
    out[BASELINE_COLUMNS[:-1]] = out[BASELINE_COLUMNS[:-1]].astype(float)
    return pd.concat([frame, out], axis=1)


def _paired_with_baseline(frame, by_file: dict, baseline: dict) -> tuple[list, list]:
    """([the baseline's QueryRanks, then those of each row that can be paired with it], per row of ``frame``
    None where it can, else why not: published, not comparable by :func:`_unpaired`, or its ranks unreadable
    or on other test images)."""
    from cca_bench.stats import check_same_images

    ranks, notes = [load_ranks(baseline)], []
    for f, source in zip(frame["_file"], frame["Source"]):
        why = _unpaired(by_file.get(f), baseline) if source == OWN_SOURCE else "published row"
        if why is None:
            try:
                row_ranks = load_ranks(by_file[f])
                check_same_images(row_ranks, ranks[0])
                ranks.append(row_ranks)
            except UserError as e:
                why = f"ranks not comparable: {e}"
        notes.append(why)
    return ranks, notes


def _unpaired(run: dict | None, baseline: dict) -> str | None:
    """Why ``run`` cannot be paired with the baseline, or None (the baseline itself is not paired)."""
    if run is None:
        return "not a stored run"
    if run["_file"] == baseline["_file"]:
        return "baseline"
    for key in ("dataset", "split", "protocol", "split_fingerprint"):
        if run.get(key) != baseline.get(key):
            return f"other {key.replace('_', ' ')} than the baseline"
    return None


def _cell(row, column: str, mark: str | None) -> str:
    """One markdown cell: identity text, or a value with its interval and significance mark."""
    value = row[column]
    if column in SPECIAL_CELLS:
        return SPECIAL_CELLS[column](row)
    if column not in VALUE_COLUMNS and column != "Seed sd":
        return "-" if value is None or value != value else md_cell(value)
    interval = (
        None
        if column == "Seed sd" or row.get(f"{column} lo") != row.get(f"{column} lo")
        else (row[f"{column} lo"], row[f"{column} hi"])
    )
    from cca_bench.marks import render

    return render(
        with_ci(None if value != value else value, interval, "MedR" if column.endswith("MedR") else column), mark
    )


def _delta_cell(row) -> str:
    """``+31.9 [+22.0, +42.1]``, or why the row has no delta (the CSV's ``note`` has the details)."""
    if row["delta"] != row["delta"]:
        return md_cell((row["note"] or "-").split(": ")[0])
    return f"{row['delta']:+.1f} [{row['delta_lo']:+.1f}, {row['delta_hi']:+.1f}]"


def _p_cell(column: str):
    from cca_bench.stats import PAIRED_RESAMPLES, format_p

    return lambda row: "-" if row[column] != row[column] else format_p(row[column], PAIRED_RESAMPLES)


def _method_cell(row) -> str:
    """``cca``, ``cca@r1``, ``cca, dot``: an own run's method with its --tag and a distance other than cosine."""
    if not isinstance(row["run"], str):
        return str(row["Method"])
    tag = row["run"].rsplit("__", 4)[0].partition("@")[2]
    distance = row["Distance"] if row["Distance"] not in ("cosine", None) else ""
    return ", ".join(filter(None, [row["Method"] + (f"@{tag}" if tag else ""), distance]))


SPECIAL_CELLS = {
    "run": lambda row: md_cell(short_id(row["run"])) if isinstance(row["run"], str) else "published",
    "Method": lambda row: md_cell(_method_cell(row)),
    "delta": _delta_cell,
    "p_value": _p_cell("p_value"),
    "p_holm": _p_cell("p_holm"),
}


def significance_marks(frame, runs: list[dict], alpha: float = 0.05, seed: int = 0) -> dict:
    """``{(run file, column): "best" | "tied" | "untested"}`` of every value column of every group of the compare
    frame: :func:`cca_bench.marks.significance_marks` over the runs' stored ranks (:func:`load_ranks`)."""
    from cca_bench.marks import significance_marks as marks_of

    return marks_of(frame, runs, load_ranks, alpha, seed, tuple(VALUE_COLUMNS))


def __getattr__(name: str):
    """``COLUMN_METRIC`` (column -> metric name) lives in :mod:`cca_bench.marks`; read here by the web pages."""
    if name == "COLUMN_METRIC":
        from cca_bench.marks import COLUMN_METRIC

        return COLUMN_METRIC
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def compare_csv(frame) -> str:
    """The compare frame as CSV (every group in one file, a Source column; missing values are empty cells); text
    cells that a spreadsheet would run as a formula are quoted (:func:`cca_bench.cells.csv_cell`)."""
    from pandas.api.types import is_numeric_dtype

    first = [c for c in ("run", *BASELINE_COLUMNS) if c in frame.columns]
    frame = frame[first + [c for c in frame.columns if c not in first]].drop(columns=["Family", "_file"])
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
    head = [
        f"# CV grid: {name}\n",
        f"Selected by {rule} on val ({report['n_val_images']} images, "
        f"{report['n_val_captions']} captions{ties}): {best_params(report)}.\n",
    ]
    head += [f"- **edge of the grid**: {n}" for n in report.get("edges", [])]
    head += [f"- note: {n}" for n in report["notes"]]
    if report.get("val_interval"):
        from cca_bench.cv import interval_note

        head.append(f"- uncertainty: {interval_note(report['val_interval'])}")
    knobs = [*report.get("features_grid", {}), *report["grid"]]  # feature options searched too (fv_components)
    body = [
        {k: r[k] for k in knobs} | {"R-sum": r["rsum"], "MedR sum": r["medr_sum"]} | metric_columns(r["metrics"])
        for r in ranked_rows(report)
    ]
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
            series = [
                (
                    " ".join(filter(None, [r["method"], r["features"], r.get("params_label"), r["distance"]])),
                    r["recall_curve"],
                )
                for r in group
            ]
            fig = recall_figure(series, _group_title(group[0]))
            paths.append(write_figure(folder / f"{ds}__{split}__{proto}.png", fig))
    return paths


def _group_title(run: dict) -> str:
    return f"{run['dataset']} / {run['split']} / protocol {run['protocol']}"


RUNS_COLUMNS = (
    ("run", 20),
    ("dataset", 14),
    ("split", 5),
    ("method", 10),
    ("features", 26),
    ("tag", 7),
    ("dist", 6),
    ("R-sum", 6),
    ("date", 10),
)  # with two spaces between: at most 120 wide


def runs_table(runs: list[dict], dataset: str | None = None, split: str | None = None, long: bool = False) -> str:
    """The `runs` listing: one line per run, newest first (``created``, then run id), cells cut to fit 120
    characters (a cut cell ends in '~'); ``long`` puts every full run id, numbered, above the table."""
    keep = [
        r
        for r in runs
        if (dataset is None or r["dataset"].split("[")[0] == dataset) and (split is None or r["split"] == split)
    ]
    if not keep:
        return "No stored runs" + (" match these filters" if runs else ": run `run_benchmark` first") + "."
    keep.sort(key=lambda r: (r.get("created") or "", run_id(r)), reverse=True)
    rows = [
        [
            short_id(run_id(r)),
            r["dataset"],
            r["split"],
            r["method"],
            r["features"],
            (r.get("model") or "").partition("@")[2] or "-",
            r["distance"],
            fmt_value(rsum(r["metrics"])),
            (r.get("created") or "-")[:10],
        ]
        for r in keep
    ]
    cut = lambda text, w: text if len(text) <= w else text[: w - 1] + "~"  # noqa: E731
    lines = [
        "  ".join(cut(str(c), w).ljust(w) for c, (_, w) in zip(row, RUNS_COLUMNS)).rstrip()
        for row in [[name for name, _ in RUNS_COLUMNS]] + rows
    ]
    ids = [f"{i + 1:>3}. {run_id(r)}" for i, r in enumerate(keep)] if long else []
    return "\n".join(ids + ([""] if ids else []) + lines)
