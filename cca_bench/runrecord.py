"""Run records: the typed record of one evaluation, its unique run id, and the one place that writes and reads it.

A run is stored as ``RESULTS/runs/<run id>.json`` beside its per-query ranks ``<run id>.ranks.npz``. The run id
is the run's configuration name (``<model>__<split>__<protocol>__<distance>``, the model name holding method,
dataset and features) plus a time stamp and four random hex digits (``__20261206-214012-3f9a``), so a
rerun of the same configuration never replaces an earlier run: nothing here deletes or overwrites a run file.

Reading checks the shape of every field a reader uses (types, ranges, nesting depth, file size) before any
table, page or test touches it; a record that fails is skipped with the file and the field named. Records
written before ``schema_version`` existed read as version 1 when they pass the same checks.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

SCHEMA_VERSION = 2  # 1: records without the field (written before run ids); 2: run_id, schema_version
MAX_BYTES = 4 * 1024 * 1024  # a run record is a few KB (tens with many seeds); more is not one of ours
MAX_DEPTH = 8  # the deepest field (seed_metrics -> seed -> task -> metric) nests 4 levels
RANKS_SUFFIX = ".ranks.npz"
STAMP_RE = r"\d{8}-\d{6}-[0-9a-f]{4}"
TASKS = ("image_annotation", "image_search")
METRICS = ("R@1", "R@5", "R@10", "median_rank", "mean_rank")


class RunRecord(TypedDict, total=False):
    """The fields of a stored run (``benchmark.run_record`` builds them; :func:`write_run` adds the id).

    metrics / ci: ``{task: {metric: value}}`` with task in :data:`TASKS`, metric in :data:`METRICS`; ci values
    are ``[lo, hi]`` and ci also holds ``"rsum": [lo, hi]``. Keys starting with ``_`` are never stored:
    ``_file`` (the path it was read from) and ``_ranks`` (the QueryRanks :func:`write_run` stores beside it).
    """

    schema_version: int
    run_id: str
    method: str
    dataset: str
    split: str
    features: str
    distance: str
    protocol: str
    model: str
    params: dict
    params_label: str
    metrics: dict
    ci: dict
    ci_method: dict
    recall_curve: dict
    seed_metrics: list
    seed_sd: dict
    seeds: dict
    n_images: int
    n_captions: int
    folds: int
    ranks_file: str
    ranks_sha256: str
    split_fingerprint: str
    created: str
    config: dict
    timings: dict
    versions: dict
    model_config: dict
    oov_rate: float


# ----------------------------------------------------------------------------------------------- identity


def config_name(record: dict) -> str:
    """``<model>__<split>__<protocol>__<distance>``: what a run measured (reruns of it share this name); a tie
    rule other than the default adds ``__ties-<rule>``."""
    from cca_bench.ties import DEFAULT

    parts = [record.get("model") or record["method"], record["split"], record["protocol"], record["distance"]]
    return "__".join(parts + ([f"ties-{run_ties(record)}"] if run_ties(record) != DEFAULT else []))


def run_ties(record: dict) -> str:
    """The tie rule a run record was scored under: its ``ties`` field; runs stored before that field say it in
    ``config.ties`` (they were all optimistic)."""
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    return str(record.get("ties") or config.get("ties") or "optimistic")


def run_id(record: dict) -> str:
    """The id of a stored run: its file name without ``.json`` (unique in its folder)."""
    return Path(record["_file"]).name[: -len(".json")]


def short_id(rid: str) -> str:
    """The time stamp and random suffix of a run id (``20261206-214012-3f9a``), which every command that
    takes a run accepts; the whole id for runs stored before ids had one."""
    m = re.search(rf"__({STAMP_RE})$", rid)
    return m.group(1) if m else rid


def new_run_id(folder: Path, record: dict) -> str:
    """A run id no file in ``folder`` uses yet: the configuration name, the UTC time, 4 random hex digits."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    while True:
        rid = f"{config_name(record)}__{stamp}-{secrets.token_hex(2)}"
        if not any((folder / (rid + s)).exists() for s in (".json", RANKS_SUFFIX)):
            return rid


def latest_runs(runs: list[dict]) -> list[dict]:
    """The newest run of each configuration (by ``created``, then run id), in the input order."""
    newest: dict[str, dict] = {}
    for r in runs:
        key = config_name(r)
        if key not in newest or _age(r) > _age(newest[key]):
            newest[key] = r
    keep = {id(r) for r in newest.values()}
    return [r for r in runs if id(r) in keep]


def _age(record: dict) -> tuple[str, str]:
    return (record.get("created") or "", run_id(record))


# ----------------------------------------------------------------------------------------------- writing


def write_run(results_root: Path, record: dict) -> Path:
    """Store a new run: its per-query ranks (``record["_ranks"]``, a QueryRanks) as ``runs/<run id>.ranks.npz``,
    then the JSON that names that file and its sha256 (each atomic; the JSON last, so a crash between them
    leaves no record pointing at a missing file). Adds ``run_id`` and ``schema_version`` to ``record``; never
    replaces a file. Returns the JSON path."""
    import hashlib

    from cca_bench.fsio import write_atomic

    folder = Path(results_root) / "runs"
    rid = new_run_id(folder, record)
    record |= {"run_id": rid, "schema_version": SCHEMA_VERSION}
    ranks, top10 = record.pop("_ranks", None), record.pop("_top10", None)
    if ranks is not None:
        data = ranks_bytes(ranks, top10)
        write_atomic(folder / (rid + RANKS_SUFFIX), lambda f: f.write(data))
        record["ranks_file"], record["ranks_sha256"] = rid + RANKS_SUFFIX, hashlib.sha256(data).hexdigest()
    text = json.dumps({k: v for k, v in record.items() if not k.startswith("_")}, indent=2, sort_keys=True)
    write_atomic(folder / (rid + ".json"), lambda f: f.write(text.encode("utf-8")))
    record["_file"] = str(folder / (rid + ".json"))
    return folder / (rid + ".json")


TOP10_KEYS = ("i2t_top10", "t2i_top10")  # each query's top-10 retrieved items: a fixed contract


def ranks_bytes(ranks, top10: tuple | None = None) -> bytes:
    """The ``.ranks.npz`` bytes of a :class:`cca_bench.stats.QueryRanks`, integer arrays: ``image_annotation``
    (n_images,) captions scoring strictly above each image's best caption (-1: an image without captions is no
    query), ``image_annotation_tied`` other captions tied with it, ``image_annotation_gt_tied`` its own captions
    in that tie (>= 1), ``image_search`` (n_captions,) images strictly above each caption's image,
    ``image_search_tied`` other images tied with it, ``image_index`` (n_captions,) and ``fold`` (n_images,); with
    several seeds the count arrays have a seed axis first. The tie rule is the run JSON's ``ties``: with it the
    counts give every metric, curve and interval exactly (:mod:`cca_bench.ties`). ``top10``
    (:func:`cca_bench.retrieved.top_items`, ``record["_top10"]``) adds ``i2t_top10`` (n_images, 10) caption
    positions and ``t2i_top10`` (n_captions, 10) image positions, int32, best first, -1 padded."""
    import io

    import numpy as np

    one = len(ranks.i2t) == 1
    pick = (lambda a: a[0]) if one else (lambda a: a)  # noqa: E731
    extra = {} if top10 is None else {k: np.asarray(a, np.int32) for k, a in zip(TOP10_KEYS, top10)}
    buf = io.BytesIO()
    np.savez(
        buf,
        image_annotation=pick(ranks.i2t.above),
        image_search=pick(ranks.t2i.above),
        image_annotation_tied=pick(ranks.i2t.tied),
        image_annotation_gt_tied=pick(ranks.i2t.gt_tied),
        image_search_tied=pick(ranks.t2i.tied),
        image_index=ranks.image_index,
        fold=ranks.fold,
        **extra,
    )
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- reading


def read_run(path: Path) -> tuple[dict | None, str | None]:
    """(the run record in ``path`` with its ``_file``, None), or (None, why it is refused, naming the field):
    a file too large, nested too deep, not UTF-8 JSON, or a field of the wrong type, shape or range."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return None, f"larger than {MAX_BYTES // 1024 // 1024} MB: not a run record"
        text = data.decode("utf-8")
        if _depth(text) > MAX_DEPTH:
            return None, f"nested deeper than {MAX_DEPTH} levels: not a run record"
        record = json.loads(text)
    except (ValueError, OSError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, f"not a JSON run record ({type(e).__name__})"
    why = problem(record)
    if why:
        return None, why
    record.setdefault("schema_version", 1)
    return record | {"_file": str(path)}, None


def load_runs(results_root: Path) -> tuple[list[dict], list[str]]:
    """(every readable run record under ``results_root/runs``, "name: why" of each file skipped)."""
    runs, bad = [], []
    for f in sorted((Path(results_root) / "runs").glob("*.json")):
        record, why = read_run(f)
        if why:
            bad.append(f"{f.name}: {why}")
        else:
            runs.append(record)
    return runs, bad


def _depth(text: str) -> int:
    """The deepest nesting of ``[`` / ``{`` in JSON text (brackets inside strings ignored), without parsing."""
    depth = deepest = 0
    for c in re.findall(r"[\[\]{}]", re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)):
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


# ----------------------------------------------------------------------------------------------- the schema


def _number(v, lo: float = -math.inf, hi: float = math.inf) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def _metric_ok(metric: str, v) -> bool:
    return v is None or _number(v, 0, 100) if metric.startswith("R@") else v is None or _number(v, 0)


def _metrics_problem(m, field: str) -> str | None:
    """Why ``m`` is no ``{task: {metric: number or None}}`` record (R@K within 0..100, ranks >= 0), or None."""
    if not isinstance(m, dict):
        return f"{field!r} is not an object"
    for task in TASKS:
        if not isinstance(m.get(task), dict):
            return f"{field!r} has no {task} object"
        for k in METRICS:
            if not _metric_ok(k, m[task].get(k)):
                where = "" if field == "metrics" else f"{field} "
                return f"{where}{task} {k} is not a number in range ({'0..100' if k.startswith('R@') else '>= 0'})"
    return None


def _interval(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and _number(v[0]) and _number(v[1]) and v[0] <= v[1]


def _ci_problem(ci) -> str | None:
    """``{task: {metric: [lo, hi]}}`` for both tasks (each metric optional) and ``"rsum": [lo, hi]``."""
    if not isinstance(ci, dict) or not _interval(ci.get("rsum")):
        return "'ci.rsum' is not an interval [lo, hi]"
    for task in TASKS:
        if not isinstance(ci.get(task), dict):
            return f"'ci.{task}' is not an object"
        for k, v in ci[task].items():
            if k not in METRICS or not _interval(v):
                return f"'ci.{task}.{k}' is not an interval [lo, hi] of a known metric"
    return None


def _seed_sd_problem(sd) -> str | None:
    if not isinstance(sd, dict) or not _number(sd.get("rsum"), 0):
        return "'seed_sd.rsum' is not a number >= 0"
    for task in TASKS:
        if task in sd and (not isinstance(sd[task], dict) or not all(_number(v, 0) for v in sd[task].values())):
            return f"'seed_sd.{task}' is not numbers >= 0"
    return None


def _seed_metrics_problem(seeds) -> str | None:
    if not isinstance(seeds, list) or len(seeds) > 10_000:
        return "'seed_metrics' is not a list of metrics records"
    for i, m in enumerate(seeds):
        why = _metrics_problem(m, f"seed_metrics[{i}]")
        if why:
            return why
    return None


def _curve_problem(curve) -> str | None:
    if not isinstance(curve, dict) or not all(
        isinstance(curve.get(t), list) and 0 < len(curve[t]) <= 10_000 and all(_number(v, 0, 100) for v in curve[t])
        for t in TASKS
    ):
        return "'recall_curve' is not two lists of percentages"
    return None


def _is(kind, lo: float | None = None):
    """A check that a value is of ``kind`` (bool never counts as a number) and, for numbers, at least ``lo``."""

    def check(v) -> bool:
        if isinstance(v, bool) or not isinstance(v, kind):
            return False
        return lo is None or _number(v, lo)

    return check


def _name(v) -> bool:
    return isinstance(v, str) and 0 < len(v) <= 500


# field -> a check returning True when good (plain fields), or a function returning why not (nested fields)
REQUIRED = {k: _name for k in ("method", "dataset", "split", "features", "distance", "protocol")}
OPTIONAL = {
    "schema_version": lambda v: _is(int)(v) and 1 <= v <= SCHEMA_VERSION,
    "run_id": _name,
    "model": _name,
    "params_label": lambda v: isinstance(v, str) and len(v) <= 500,
    "params": _is(dict),
    "created": _is(str),
    "n_images": _is(int, 0),
    "n_captions": _is(int, 0),
    "folds": _is(int, 1),
    "ranks_file": _is(str),
    "ranks_sha256": _is(str),
    "split_fingerprint": _is(str),
    "ci_method": _is(dict),
    "seeds": _is(dict),
    "config": _is(dict),
    "timings": _is(dict),
    "versions": _is(dict),
    "model_config": _is(dict),
    "oov_rate": _is((int, float), 0),
    "degenerate_queries": _is(dict),
    "seed_note": _is(str),
    "embeddings": _is(dict),
    "ties": _name,
}
NESTED = {
    "ci": _ci_problem,
    "seed_sd": _seed_sd_problem,
    "seed_metrics": _seed_metrics_problem,
    "recall_curve": _curve_problem,
}


def problem(record) -> str | None:
    """Why a parsed run file is not a run record every reader can use, naming the field; None when it is."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for key, ok in REQUIRED.items():
        if key not in record:
            return f"no {key!r}"
        if not ok(record[key]):
            return f"{key!r} is not a name (a non-empty string)"
    why = _metrics_problem(record.get("metrics"), "metrics")
    if why:
        return why
    for key, ok in OPTIONAL.items():
        if record.get(key) is not None and not ok(record[key]):
            return f"{key!r} has the wrong type or range ({type(record[key]).__name__})"
    for key, check in NESTED.items():
        if record.get(key) is not None and (why := check(record[key])):
            return why
    return None
