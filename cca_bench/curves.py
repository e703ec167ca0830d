"""Data-efficiency curves: a method fitted on random subsets of the train split of growing size, each scored.

For every size (a number of training *pairs*, or ``all``) and seed, images of the train split are drawn in a
random order (``numpy.random.default_rng(seed)``) and the shortest prefix whose captions reach the size is
kept: captions stay with their image, so a subset holds at least ``size`` pairs (its exact pair and image counts
are recorded). ``all`` is the whole train split: one fit, whatever the seeds. The feature pipelines are fitted
on the whole train split once (GloVe mean, MiniLM and EfficientNet fit nothing; Fisher vectors fit their mixture
on the train *words*, never on pairs), so only the aligner sees fewer pairs.

Each (size, seed) fit is scored on the evaluation split into a normal run record with its per-query ranks
(``results.write_run``; the curve lists their run ids), so ``significance`` compares two points or two methods
at one size. The seeds of a
size are also scored together (``evaluation.score`` over several embeddings, as ``run_benchmark --seeds``):
the mean metrics over seeds, their spread (sd, ddof 1) and the image-level bootstrap interval of the seed-mean
R-sum (an image resampled with all its captions, PROTOCOLS.md). The curve record goes to
``RESULTS/curves/<name>.json``; :func:`cca_bench.plots.curve_figure` draws it (R-sum against pairs, log x).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cca_bench.errors import UserError

CURVES_DIR = "curves"
CURVE_SCHEMA = 1
ADAPTABLE = ("top_k", "landmarks", "anchors")  # knobs counted in train rows: capped at a small subset's rows


def parse_sizes(text: str) -> list[int | str]:
    """``"100,300,all"`` -> [100, 300, "all"]: positive whole numbers, increasing, ``all`` only last."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    sizes: list[int | str] = []
    for p in parts:
        if p == "all":
            sizes.append("all")
        elif p.isdigit() and int(p) >= 1:
            sizes.append(int(p))
        else:
            raise UserError(f"--train-sizes: expected whole numbers >= 1 or 'all', got {p!r}")
    numbers = [s for s in sizes if s != "all"]
    if (
        not sizes
        or numbers != sorted(set(numbers))
        or ("all" in sizes and sizes[-1] != "all")
        or sizes.count("all") > 1
    ):
        raise UserError(f"--train-sizes {text!r}: give increasing sizes, each once, 'all' only last")
    return sizes


def draw_images(image_index: np.ndarray, n_images: int, size: int, seed: int) -> np.ndarray:
    """Image positions (sorted) of a random subset whose captions number at least ``size``.

    image_index: (n_txt,) image of each train caption. Images are drawn in the order of
    ``default_rng(seed).permutation(n_images)`` and the shortest prefix reaching ``size`` captions is kept, so a
    larger size with the same seed holds the smaller one's images (nested subsets)."""
    order = np.random.default_rng(seed).permutation(n_images)
    per_image = np.bincount(image_index, minlength=n_images)[order]
    reach = np.cumsum(per_image)
    stop = int(np.searchsorted(reach, size)) + 1
    return np.sort(order[:stop])


def subset_features(fs, images: np.ndarray):
    """The FeatureSet ``fs`` restricted to image positions ``images`` (its captions follow; ``image_index``
    renumbered 0..len(images)-1); meta records the subset's size."""
    from cca_bench.features.store import FeatureSet

    remap = np.full(len(fs.images), -1, dtype=np.int64)
    remap[images] = np.arange(len(images))
    keep = np.flatnonzero(remap[fs.image_index] >= 0)
    tokens = [fs.tokens[j] for j in keep] if fs.tokens else []
    meta = {**fs.meta, "subset": {"n_images": int(len(images)), "n_pairs": int(len(keep))}}
    return FeatureSet(
        images=np.asarray(fs.images)[images],
        texts=np.asarray(fs.texts)[keep],
        image_index=remap[fs.image_index[keep]],
        tokens=tokens,
        meta=meta,
        word_vectors=fs.word_vectors,
    )


def adapt_params(cls, params: dict, n_images: int, n_pairs: int) -> tuple[dict, list[str]]:
    """``params`` with knobs counted in train rows (ASIF's ``top_k`` and ``anchors``, kcca's ``landmarks``)
    capped at what a subset of ``n_images`` images / ``n_pairs`` pairs holds, and one note per change; a
    method that still refuses the subset raises its UserError with the size named."""
    defaults = cls().get_params() if hasattr(cls, "get_params") else {}
    caps = {"top_k": n_pairs, "anchors": n_pairs, "landmarks": n_images}
    out, notes = dict(params), []
    for knob in ADAPTABLE:
        value = out.get(knob, defaults.get(knob))
        if knob in defaults and isinstance(value, int) and value > caps[knob]:
            out[knob] = caps[knob]
            notes.append(f"at {n_pairs} pairs {knob} {value} is more than the subset holds: using {caps[knob]}")
    check = getattr(cls(**out), "check_params", None)
    if callable(check):
        try:
            check(n_images=n_images, n_captions=n_pairs)
        except UserError as e:
            raise UserError(f"at {n_pairs} train pairs ({n_images} images): {e}") from None
    return out, notes


def sample_points(sizes: list, seeds: list[int], image_index: np.ndarray, n_images: int) -> list[dict]:
    """[{"size", "draws": [(seed or None, image positions)]}] per size; ``all`` and sizes at or above the
    split's pairs are one draw of the whole split (seed None)."""
    whole = [(None, np.arange(n_images))]
    return [
        {
            "size": size,
            "draws": whole
            if size == "all" or size >= len(image_index)
            else [(s, draw_images(image_index, n_images, size, s)) for s in seeds],
        }
        for size in sizes
    ]


def compute_curve(
    method: str,
    dataset_name: str,
    features: str,
    params: dict,
    opts,
    sizes: list,
    seeds: list[int],
    split: str = "test",
    cv: dict | None = None,
    distance: str = "cosine",
) -> dict:
    """Fit ``method`` on subsets of the train split (:func:`sample_points`), score each on ``split``, store one
    run per fit and return the curve record (not yet written; :func:`write_curve`)."""
    from cca_bench.benchmark import load_dataset, sweep_outputs
    from cca_bench.config import FeatureSpec, torch_device
    from cca_bench.methods import load_all
    from cca_bench.registry import METHODS
    from cca_bench.results import now

    load_all()
    cls, spec = METHODS.get(method), FeatureSpec.parse(features)
    torch_device(opts.features.device)
    sweep_outputs(opts)
    dataset = load_dataset(dataset_name, opts)
    data = _encode(cls, dataset, spec, opts, split, cv)
    stamp = now().replace(":", "").replace("-", "").replace("+0000", "")[:15]
    context = {
        "method": method,
        "cls": cls,
        "dataset": dataset,
        "spec": spec,
        "opts": opts,
        "params": params,
        "cv": cv,
        "distance": distance,
        "stamp": stamp,
        **data,
    }
    train = data["train"]
    points = [_point(context, p) for p in sample_points(sizes, seeds, train.image_index, len(train.images))]
    return {
        "schema": CURVE_SCHEMA,
        "method": method,
        "dataset": dataset_name,
        "features": features,
        "split": split,
        "distance": distance,
        "params": params,
        "seeds": list(seeds),
        "cv": None if cv is None else cv.get("select", "rsum"),
        "created": now(),
        "stamp": stamp,
        "train_pairs": int(len(train.texts)),
        "train_images": int(len(train.images)),
        "sampling": "images drawn at random (one subset per seed), each with all its captions, until the "
        "captions reach the size; feature pipelines fitted on the whole train split",
        "points": points,
    }


def _encode(cls, dataset, spec, opts, split: str, cv: dict | None) -> dict:
    """The fitted pipelines and the encoded train, val (when CV or the method needs it) and evaluation split."""
    from cca_bench.benchmark import pipelines

    timings: dict = {}
    pipes = pipelines(spec, opts).fit(dataset)
    encode = lambda name: pipes.encode(dataset, name, timings, opts.locations.cache_dir, opts.log)  # noqa: E731
    val = None
    if (cv is not None or getattr(cls, "uses_val", False)) and "val" in dataset.splits:
        val = encode("val")
    return {
        "pipes": pipes,
        "train": encode("train"),
        "val": val,
        "test": encode(split),
        "test_split": dataset.split(split),
    }


def _point(c: dict, point: dict) -> dict:
    """Fit and score every draw of one size; the size's summary with the runs it stored."""
    from cca_bench.benchmark import score_under
    from cca_bench.stats import rsum_of

    fits = [_fit_draw(c, point["size"], seed, images) for seed, images in point["draws"]]
    embeddings = [f["embeddings"] for f in fits]
    together = score_under(c["opts"], embeddings, c["test"].image_index, c["distance"], 1, {})

    out = {
        "size": point["size"],
        "seeds": [f["seed"] for f in fits],
        "n_pairs": [f["n_pairs"] for f in fits],
        "n_images": [f["n_images"] for f in fits],
        "metrics": together["metrics"],
        "rsum": float(rsum_of(together["metrics"])),
        "seed_rsums": [f["rsum"] for f in fits],
        "rsum_seed_sd": together.get("seed_sd", {}).get("rsum"),
        "runs": [f["run"] for f in fits],
        "notes": sorted({n for f in fits for n in f["notes"]}),
        "chosen": [f["chosen"] for f in fits],
    }
    if "ci" in together:
        out |= {"rsum_ci": together["ci"]["rsum"], "ci": together["ci"], "ci_method": together["ci_method"]}
    return out


def _fit_draw(c: dict, size, seed: int | None, images: np.ndarray) -> dict:
    """Fit on one subset, score it on the evaluation split, store the run; the draw's summary."""
    from cca_bench.benchmark import fit_model, score_under
    from cca_bench.cv import best_params
    from cca_bench.results import write_run
    from cca_bench.stats import rsum_of

    train = subset_features(c["train"], images)  # the whole split too: one path for every point
    n_images, n_pairs = len(train.images), len(train.texts)
    params, notes = adapt_params(c["cls"], c["params"], n_images, n_pairs)
    for note in notes:
        c["opts"].log(f"note: {note}")
    model, report = fit_model(c["cls"], c["method"], train, c["val"], params, c["cv"], c["opts"])
    embeddings = (model.embed_images(c["test"]), model.embed_texts(c["test"]))
    timings: dict = {}
    evaluation = score_under(c["opts"], [embeddings], c["test"].image_index, c["distance"], 1, timings)
    tag = f"curve.{c['stamp']}." + ("all" if seed is None else f"n{size}.s{seed}")
    record = _run_record(
        c, model, evaluation, timings, tag, {"size": size, "seed": seed, "n_pairs": n_pairs, "n_images": n_images}
    )
    path = write_run(c["opts"].locations.results_root, record)
    chosen = None if report is None else best_params(report)
    return {
        "seed": seed,
        "n_pairs": n_pairs,
        "n_images": n_images,
        "embeddings": embeddings,
        "notes": notes,
        "rsum": float(rsum_of(evaluation["metrics"])),
        "run": record.get("run_id", path.stem),
        "chosen": chosen,
    }


def _run_record(c: dict, model, evaluation: dict, timings: dict, tag: str, curve: dict) -> dict:
    """The run record of one curve fit (``benchmark.run_record``), named by the model it would be saved as
    with ``tag``; ``curve`` says which point it is."""
    from cca_bench.benchmark import model_path, params_label, run_record, seeds_of
    from cca_bench.features.pipelines import features_tag

    opts, test = c["opts"], c["test"]
    named = replace(opts, tag=f"{opts.tag}.{tag}" if opts.tag else tag)
    name = model_path(c["method"], c["dataset"].name, c["spec"], named).name
    params = model.get_params() if hasattr(model, "get_params") else {}
    return run_record(
        method=c["method"],
        dataset_name=c["dataset"].name,
        split=c["test_split"],
        features=features_tag(c["spec"], opts.features),
        distance=c["distance"],
        protocol="full",
        folds=1,
        timings=timings,
        opts=opts,
        model=name,
        **evaluation,
        params=params,
        params_label=params_label(c["method"], model),
        split_fingerprint=test.meta["fingerprint"],
        feature_cache=test.meta["cache_keys"],
        oov_rate=test.meta["oov_rate"],
        seeds=seeds_of(model, opts),
        curve=curve,
    )


def curve_name(record: dict) -> str:
    """``METHOD__DATASET__FEATURES__SPLIT[__cv]``: the curve file's stem (``write_curve`` adds ``.2``, ``.3``
    when a curve of that name is stored already: a curve, once written, is never replaced)."""
    return "__".join(
        [record["method"], record["dataset"], record["features"], record["split"]]
        + (["cv"] if record.get("cv") else [])
    )


def write_curve(results_root, record: dict):
    """Store the curve as ``RESULTS/curves/<name>.json`` (atomically, never over an earlier curve)."""
    from pathlib import Path

    from cca_bench.results import write_json

    folder = Path(results_root) / CURVES_DIR
    stem, n = curve_name(record), 1
    while (folder / (stem + ("" if n == 1 else f".{n}") + ".json")).exists():
        n += 1
    record["name"] = stem + ("" if n == 1 else f".{n}")
    return write_json(folder / f"{record['name']}.json", record)


def load_curves(results_root, dataset: str | None = None) -> list[dict]:
    """The stored curve records (each with ``_file``), of ``dataset`` when given, oldest first; a file that is
    not a curve record is a UserError naming it."""
    import json
    from pathlib import Path

    curves = []
    for path in sorted((Path(results_root) / CURVES_DIR).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: not a readable curve file ({e})") from None
        if not isinstance(record, dict) or record.get("schema") != CURVE_SCHEMA or "points" not in record:
            raise UserError(f"{path}: not a curve record of schema {CURVE_SCHEMA}")
        if dataset is None or record["dataset"] == dataset:
            curves.append(record | {"_file": str(path)})
    return sorted(curves, key=lambda r: r["created"])


def latest_curves(curves: list[dict]) -> list[dict]:
    """The newest curve of each (method, features, split, cv) among ``curves`` (a plot's lines)."""
    newest = {(r["method"], r["features"], r["split"], r.get("cv")): r for r in curves}
    return list(newest.values())


def curve_label(record: dict) -> str:
    """``asif minilm_efficientnet`` (``+cv`` when chosen on val): a curve in legends and tables."""
    return f"{record['method']} {record['features']}" + (" +cv" if record.get("cv") else "")


def curve_markdown(record: dict) -> str:
    """The table ``curve`` prints: per size the pairs, R-sum (mean over seeds), seed sd, 95% interval, runs."""
    from tabulate import tabulate

    rows = []
    for p in record["points"]:
        pairs = "-".join(str(v) for v in sorted({min(p["n_pairs"]), max(p["n_pairs"])}))
        ci = p.get("rsum_ci")
        rows.append(
            [
                p["size"],
                pairs,
                len(p["runs"]),
                f"{p['rsum']:.1f}",
                "-" if p["rsum_seed_sd"] is None else f"{p['rsum_seed_sd']:.1f}",
                "-" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]",
            ]
        )
    head = ["size", "pairs", "fits", "R-sum", "seed sd", "95% interval (test images)"]
    return f"{curve_label(record)} on {record['dataset']}/{record['split']}\n\n" + tabulate(
        rows, head, tablefmt="github", disable_numparse=True
    )


def plot_dataset_curves(results_root, dataset: str):
    """Draw the newest stored curve of each method/features of ``dataset`` into one PNG; returns its path."""
    from pathlib import Path

    from cca_bench.plots import curve_figure
    from cca_bench.results import write_figure

    curves = latest_curves(load_curves(results_root, dataset))
    if not curves:
        raise UserError(f"no stored curves of {dataset} under {Path(results_root) / 'curves'}")
    split = ", ".join(sorted({c["split"] for c in curves}))
    fig = curve_figure([(curve_label(c), c["points"]) for c in curves], f"{dataset} / {split}: data efficiency")
    return write_figure(Path(results_root) / "plots" / f"curves__{dataset}.png", fig)
