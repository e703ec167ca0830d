"""Argument helpers the commands share (locations, features, intervals, seeds, number lists, key=value, metric
names), the run options built from them, and the lines several commands print."""

from __future__ import annotations

import argparse
import math
import sys

from cca_bench.checks import PORT, RESAMPLES, SEED, check_tag
from cca_bench.errors import UserError


def log(msg: str) -> None:
    """A status line on stderr (stdout holds the tables)."""
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- value converters (argparse ``type=``)


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def positive_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


# the ranges of the flags every command shares, from cca_bench.checks (the one place they are stated)
seed = SEED.cli()  # --seed: 0 .. 2^32-1
resamples = RESAMPLES.cli()  # --bootstrap, significance --resamples: 1 .. 10^6 (and the memory, once n is known)
port = PORT.cli()  # serve --port: 0 .. 65535


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def seed_list(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2]: each a seed in SEED's range; empty entries, repeats and non-integers are refused."""
    parts = [t.strip() for t in text.split(",")]
    try:
        seeds = [SEED.check("a seed", int(t)) for t in parts]
    except (ValueError, UserError):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated seeds ({SEED.describe()}), e.g. 0,1,2, got {text!r}"
        ) from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat in {text!r}")
    return seeds


def number_list(typ):
    """A converter of ``1,2,4`` to a list of finite ``typ`` values; an empty list or entry (``""``, ``1,,2``) is
    refused rather than read as "the default grid"."""

    def parse(text: str) -> list:
        parts = [v.strip() for v in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers without empty entries, got {text!r}")
        try:
            values = [typ(v) for v in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
        return values

    return parse


def metric(text: str) -> str:
    """Any spelling of a metric (``R@1``, ``medr``, ``i2t:r@1``, ...) -> its canonical name
    (:func:`cca_bench.stats.metric_name`, the one vocabulary of every command)."""
    from cca_bench.stats import metric_name

    try:
        return metric_name(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# ---------------------------------------------------------------- option groups


def add_common(p) -> None:
    """--data-root, --results-root, -q: every command has them."""
    g = p.group("locations")
    g.add_argument(
        "--data-root", help="datasets, word vectors and the feature cache (env CCA_BENCH_DATA; default ./data)"
    )
    g.add_argument(
        "--results-root", help="models, run JSON files and tables (env CCA_BENCH_RESULTS; default ./results)"
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or status lines (warnings and errors still show)"
    )


def add_dataset_opt(g, help: str = "dataset builder option (repeatable)") -> None:
    g.add_argument("-D", "--dataset-opt", action="append", type=key_value, default=[], metavar="KEY=VALUE", help=help)


def add_no_cache(g) -> None:
    g.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute features, parse datasets and draw the intervals' resamples again: nothing is read from "
        "or written to DATA/cache",
    )


def add_features(p) -> None:
    """The feature options of commands that encode a split (generate, run_benchmark, search)."""
    g = p.group("features")
    add_dataset_opt(g, "dataset builder option, e.g. -D n_train=500 for shapes (repeatable)")
    g.add_argument(
        "--tag",
        default="",
        help="name a model variant (e.g. --tag maxviol): generate, run_benchmark and "
        "search with the same tag use the same model, so variants of one method do not overwrite each other",
    )
    g.add_argument(
        "--text-path",
        help="word-vector file to use instead of the encoder's default file (for the "
        "'sentence' encoder: a sentence-transformers model folder)",
    )
    g.add_argument(
        "--onnx-model",
        metavar="FILE.onnx",
        help="ONNX image model of the 'onnx' image encoder, with its preprocessing in FILE.onnx.json (docs/onnx.md)",
    )
    g.add_argument(
        "--onnx-text-model",
        metavar="FILE.onnx",
        help="ONNX text model of the 'onnx' text encoder, with "
        "its tokenizer and pooling in FILE.onnx.json (docs/onnx.md)",
    )
    g.add_argument("--idf", action="store_true", help="weight words by IDF fitted on the train captions")
    g.add_argument("--stopwords", action="store_true", help="drop English stop words before averaging")
    g.add_argument(
        "--pooling",
        default="mean",
        choices=["mean", "gmm", "hglmm", "gmm+hglmm"],
        help="caption pooling of the word vectors: mean (default), or the Fisher vector under a mixture "
        "fitted on the train words (Klein et al. 2015): gmm, hglmm (hybrid Gaussian-Laplacian), gmm+hglmm",
    )
    g.add_argument(
        "--fv-components",
        type=positive_int,
        default=None,
        metavar="K",
        help="mixture components of the Fisher vector (default 32): 2*K*D values per caption",
    )
    g.add_argument(
        "--fv-pca",
        type=positive_int,
        default=None,
        metavar="D",
        help="PCA of the word vectors to D dimensions (fitted on the train words) before the mixture",
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="images per CNN batch (default: 32 for CNNs and 64 for EfficientNet on a CPU; from free memory on a GPU)",
    )
    g.add_argument(
        "--crops",
        type=int,
        default=1,
        choices=[1, 10],
        help="CNN views per image: 1 centre crop, or 10 (corners + centre and their mirrors, averaged)",
    )
    g.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="image network arithmetic: auto (bf16 where the CPU has native bf16, fp16 on CUDA, else "
        "fp32; EfficientNet: fp32 onnxruntime on a CPU), fp32, bf16, fp16 (CUDA); part of the feature "
        "cache key",
    )
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    add_no_cache(g)


def add_intervals(p) -> None:
    """--ci / --bootstrap of the commands that store a run."""
    g = p.group(
        "uncertainty",
        "every run gets 95% percentile bootstrap intervals over the test images "
        "(an image is resampled with all its captions) and keeps its per-query ranks "
        "(RESULTS/runs/<run>.ranks.npz) for `significance` and `compare --significance`",
    )
    g.add_argument(
        "--ci",
        default="bootstrap",
        choices=["bootstrap", "none"],
        help="bootstrap (default): intervals for every metric and R-sum; none: no intervals",
    )
    g.add_argument(
        "--bootstrap",
        type=resamples,
        default=None,
        metavar="N",
        help=f"bootstrap resamples, {RESAMPLES.describe()} (default 10000; the seed 0 and the bounds' "
        "Monte Carlo error are recorded in the run)",
    )
    if "--ties" not in p.options:  # curve has it already, from generate's CV group
        add_ties(g)


def add_ties(g) -> None:
    """--ties: the tie rule a run (or generate's --cv) is scored under (cca_bench.ties)."""
    from cca_bench.ties import RULES

    g.add_argument(
        "--ties",
        default=None,
        choices=RULES,
        help="how a ground truth scoring exactly as much as other items is ranked: expected (default: "
        "the exact expectation over a random order of the tied items, so ties never help), optimistic "
        "(every tie for it), pessimistic (every tie against it); named in the run and its tables",
    )


def add_seeds(p, what: str) -> None:
    p.add_argument("--seeds", type=seed_list, metavar="S,S,...", help=what)


def add_distance(p) -> None:
    p.add_argument(
        "--distance",
        default="cosine",
        choices=["cosine", "dot", "euclidean"],
        help="similarity used for ranking (default cosine)",
    )


def add_extract_backend(p) -> None:
    """--backend / --dask-scheduler for commands without a method fit (generate has them as cca options)."""
    g = p.group("extraction backend")
    g.add_argument(
        "--backend",
        default="numpy",
        choices=["numpy", "dask"],
        help="dask: extract missing image feature shards, and score asif's top-k, as tasks on a Dask cluster "
        "(default numpy: here, whatever backend the model was fitted with)",
    )
    g.add_argument("--dask-scheduler", help="with --backend dask: scheduler address (default: a local cluster)")


# ---------------------------------------------------------------- run options from the parsed arguments


def options(args):
    """``benchmark.Options`` from the parsed arguments: the locations, feature and run options, each validated by
    its own layer (a missing GPU or a bad --tag fails here, before features load)."""
    from cca_bench.benchmark import Options
    from cca_bench.config import data_root, results_root, torch_device

    torch_device(getattr(args, "device", "auto"))
    if getattr(args, "tag", ""):
        check_tag(args.tag)  # names the model files: refused before any feature is encoded
    backend = getattr(args, "backend", None) or "numpy"
    if getattr(args, "dask_scheduler", None) and backend != "dask":  # else silently ignored: all runs here
        raise UserError(f"--dask-scheduler goes with --backend dask (this is --backend {backend}: all runs here)")
    quiet = getattr(args, "quiet", False)
    return Options.of(
        data_root=data_root(args.data_root),
        results_root=results_root(args.results_root),
        dataset_options=dict(getattr(args, "dataset_opt", [])),
        text_path=getattr(args, "text_path", None),
        idf=getattr(args, "idf", False),
        stopwords=getattr(args, "stopwords", False),
        **_fv_options(args),
        precision=getattr(args, "precision", "auto"),
        backend=backend,
        dask_scheduler=getattr(args, "dask_scheduler", None),
        batch_size=getattr(args, "batch_size", 64),
        crops=getattr(args, "crops", 1),
        tag=getattr(args, "tag", ""),
        device=getattr(args, "device", "auto"),
        onnx_model=getattr(args, "onnx_model", None),
        onnx_text_model=getattr(args, "onnx_text_model", None),
        cache=not getattr(args, "no_cache", False),
        progress=not quiet,
        log=(lambda m: None) if quiet else log,
        **_interval_options(args),
        ties=getattr(args, "ties", None) or "expected",
    )


def _interval_options(args) -> dict:
    """Options' bootstrap field from --ci / --bootstrap (--bootstrap with --ci none is a UserError)."""
    if getattr(args, "ci", "bootstrap") == "none":
        if getattr(args, "bootstrap", None) is not None:
            raise UserError("--bootstrap sets the resamples of the intervals that --ci none turns off")
        return {"bootstrap": None}
    from cca_bench.stats import PAIRED_RESAMPLES

    return {"bootstrap": getattr(args, "bootstrap", None) or PAIRED_RESAMPLES}


def _fv_options(args) -> dict:
    """Options' pooling fields; --fv-components / --fv-pca without a Fisher-vector pooling are a UserError."""
    pooling = getattr(args, "pooling", "mean")
    k, pca = getattr(args, "fv_components", None), getattr(args, "fv_pca", None)
    if pooling == "mean" and (k is not None or pca is not None):
        raise UserError("--fv-components and --fv-pca need --pooling gmm, hglmm or gmm+hglmm")
    return {"pooling": pooling, "fv_pca": pca, **({"fv_components": k} if k is not None else {})}


# ---------------------------------------------------------------- what several commands print


def store_run(opts, record: dict) -> None:
    """Write a run record under RESULTS/runs/ and print its two tables."""
    from cca_bench.results import run_tables, write_run

    path = write_run(opts.locations.results_root, record)
    print(
        f"## {record['dataset']} / {record['split']} ({record['n_images']} images, {record['n_captions']} "
        f"captions, protocol {record['protocol']})\n"
    )
    print(run_tables(record))
    if record.get("coco_extended"):
        from cca_bench.coco_extended import markdown

        print("\n" + markdown(record["coco_extended"]))
    for task, n in (record.get("degenerate_queries") or {}).items():
        if n:
            print(
                f"note: {n} {task.replace('_', ' ')} queries scored every item alike (e.g. an all-zero embedding) "
                "and were counted as misses (worst rank)"
            )
    if record.get("seed_note"):
        print(f"note: {record['seed_note']}")
    print(oov_line(record.get("oov_rate"), record["split"]))
    print(f"run stored in {path} (run id {path.name[: -len('.json')]})")


def oov_line(rate: float | None, split: str) -> str:
    """``OOV rate (test): 3.2% of caption tokens have no word vector``."""
    if rate is None:
        return f"OOV rate ({split}): not known (these features come without a text encoder's count)"
    return f"OOV rate ({split}): {100 * rate:.1f}% of caption tokens have no word vector"
