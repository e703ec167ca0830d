"""Command line: generate, run_benchmark, compare, list. The only module that prints for the user."""
from __future__ import annotations

import argparse
import sys

from cca_bench.errors import UserError

EXAMPLES = """examples:
  python -m cca_bench list
  python -m cca_bench generate cca openmoji glove50_efficientnet
  python -m cca_bench run_benchmark cca openmoji test glove50_efficientnet --distance cosine
  python -m cca_bench generate cca flickr8k word2vec_vgg_karpathy --reg 1e-4
  python -m cca_bench compare --dataset flickr8k
"""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("locations")
    g.add_argument("--data-root", help="datasets, word vectors and the feature cache (env CCA_BENCH_DATA; default ./data)")
    g.add_argument("--results-root", help="models, run JSON files and tables (env CCA_BENCH_RESULTS; default ./results)")


def _add_features(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("features")
    g.add_argument("-D", "--dataset-opt", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="dataset builder option, e.g. -D n_train=500 for shapes (repeatable)")
    g.add_argument("--text-path", help="word-vector file to use instead of the encoder's default file")
    g.add_argument("--idf", action="store_true", help="weight words by IDF fitted on the train captions")
    g.add_argument("--stopwords", action="store_true", help="drop English stop words before averaging")
    g.add_argument("--batch-size", type=int, default=64, help="images per CNN batch (default 64)")
    g.add_argument("--crops", type=int, default=1, choices=[1, 10],
                   help="CNN views per image: 1 centre crop, or 10 (corners + centre and their mirrors, averaged)")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    g.add_argument("--no-cache", action="store_true", help="recompute features instead of using data/cache")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status lines")


def _add_method_params(p: argparse.ArgumentParser) -> None:
    from cca_bench.methods import load_all
    from cca_bench.registry import METHODS

    load_all()
    seen = set()
    for name in METHODS.names():
        params = getattr(METHODS.get(name), "CLI_PARAMS", {})
        g = p.add_argument_group(f"{name} options")
        for param, spec in params.items():
            if param in seen:
                continue
            seen.add(param)
            typ, help_text = spec[0], spec[1]
            flag = "--" + param.replace("_", "-")
            if typ is bool:
                g.add_argument(flag, dest=param, action="store_true", default=None, help=help_text)
            else:
                choices = spec[2] if len(spec) > 2 else None
                g.add_argument(flag, dest=param, type=typ, choices=choices, default=None, help=help_text)
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cca_bench", description="Classical (regularized CCA) and neural baselines for image-text "
        "retrieval, with the field's metrics.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="encode the train split, fit a method, save the model",
                       description="Encode the train split (restval joins train), fit METHOD and save it under "
                       "RESULTS/models/ as safetensors + JSON.")
    p.add_argument("method", help="cca (see `list`)")
    p.add_argument("dataset", help="openmoji, shapes, flickr8k, flickr30k, coco, or a folder name under DATA")
    p.add_argument("features", help="TEXT_IMAGE, e.g. glove50_efficientnet or word2vec_vgg_karpathy")
    _add_method_params(p)
    _add_features(p)
    _add_common(p)

    p = sub.add_parser("run_benchmark", help="evaluate a saved model on a split and store the run",
                       description="Load the model `generate` saved, encode SPLIT, print the Image Annotation "
                       "and Image Search tables and write one JSON file under RESULTS/runs/.")
    p.add_argument("method")
    p.add_argument("dataset")
    p.add_argument("split", help="test, val or train (testall for Kiros-layout COCO)")
    p.add_argument("features")
    p.add_argument("--distance", default="cosine", choices=["cosine", "dot", "euclidean"],
                   help="similarity used for ranking (default cosine)")
    p.add_argument("--protocol", default="full", choices=["full", "1k", "5k"],
                   help="full: all images of the split at once; 1k: folds of 1,000 images averaged (COCO 1k); "
                   "5k: all 5,000 COCO test images (default full)")
    _add_features(p)
    _add_common(p)

    p = sub.add_parser("compare", help="one table over all stored runs (also written to RESULTS/RESULTS.md)")
    p.add_argument("--dataset", help="only runs on this dataset")
    p.add_argument("--split", help="only runs on this split")
    p.add_argument("--method", help="only runs of this method")
    _add_common(p)

    p = sub.add_parser("list", help="datasets (and whether their files are present), encoders and methods")
    _add_common(p)
    return parser


def _options(args):
    from cca_bench.benchmark import Options
    from cca_bench.config import data_root, results_root

    return Options(
        data_root=data_root(args.data_root), results_root=results_root(args.results_root),
        dataset_options=dict(getattr(args, "dataset_opt", [])), text_path=getattr(args, "text_path", None),
        idf=getattr(args, "idf", False), stopwords=getattr(args, "stopwords", False),
        batch_size=getattr(args, "batch_size", 64), crops=getattr(args, "crops", 1), device=getattr(args, "device", "auto"),
        cache=not getattr(args, "no_cache", False), progress=not getattr(args, "quiet", False),
        log=(lambda m: None) if getattr(args, "quiet", False) else _log)


def cmd_generate(args) -> None:
    from cca_bench.benchmark import generate
    from cca_bench.registry import METHODS

    cls = METHODS.get(args.method)
    params = {k: getattr(args, k) for k in getattr(cls, "CLI_PARAMS", {}) if getattr(args, k, None) is not None}
    if "random_state" in cls._param_names():
        params["random_state"] = args.seed
    out = generate(args.method, args.dataset, args.features, params, _options(args))
    model = out["model"]
    print(f"fitted {args.method} on {out['n_captions']} captions / {out['n_images']} images "
          f"in {out['timings'].get('fit', 0):.1f} s; saved {out['path']}.safetensors")
    summary = getattr(model, "summary", None)
    if callable(summary):
        print(summary())


def cmd_run_benchmark(args) -> None:
    from cca_bench.benchmark import run_benchmark
    from cca_bench.results import run_path, run_tables, write_json

    opts = _options(args)
    record = run_benchmark(args.method, args.dataset, args.split, args.features, opts, args.distance, args.protocol)
    path = write_json(run_path(opts.results_root, record), record)
    print(f"## {record['dataset']} / {record['split']} ({record['n_images']} images, {record['n_captions']} "
          f"captions, protocol {record['protocol']})\n")
    print(run_tables(record))
    print(f"run stored in {path}")


def cmd_compare(args) -> None:
    from cca_bench.config import results_root
    from cca_bench.results import compare_frame, compare_markdown, load_runs, write_text

    root = results_root(args.results_root)
    runs, bad = load_runs(root)
    for b in bad:
        _log(f"warning: skipped unreadable run file {b}")
    runs = [r for r in runs if (not args.dataset or r["dataset"].split("[")[0] == args.dataset)
            and (not args.split or r["split"] == args.split) and (not args.method or r["method"] == args.method)]
    text = compare_markdown(compare_frame(runs))
    print(text)
    path = write_text(root / "RESULTS.md", text)
    _log(f"written to {path}")


def cmd_list(args) -> None:
    from cca_bench.catalog import catalog

    print(catalog(_options(args)))


COMMANDS = {"generate": cmd_generate, "run_benchmark": cmd_run_benchmark, "compare": cmd_compare, "list": cmd_list}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is kept (cached features, saved models and runs)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
