"""Command line: generate, run_benchmark, search, compare, list. The only module that prints for the user."""
from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from cca_bench.errors import UserError

EXAMPLES = """examples:
  python -m cca_bench list
  python -m cca_bench generate cca openmoji glove50_efficientnet
  python -m cca_bench run_benchmark cca openmoji test glove50_efficientnet --distance cosine
  python -m cca_bench generate cca flickr8k word2vec_vgg_karpathy --reg 1e-4
  python -m cca_bench generate cca flickr8k word2vec_vgg_karpathy --cv --cv-select medr
  python -m cca_bench generate kcca openmoji glove50_efficientnet --cv --cv-gamma 1,2,4,8,16
  python -m cca_bench run_benchmark cca coco test word2vec_vgg_karpathy --protocol 1k
  python -m cca_bench compare --dataset flickr8k --csv flickr8k.csv --plot
  python -m cca_bench search cca openmoji glove50_efficientnet --text "a smiling cat" --html cats.html
  python -m cca_bench serve            # web app on http://127.0.0.1:8000/
  python -m cca_bench export-split coco test exported/ && python -m cca_bench evaluate coco test \\
      --images img.npy --texts txt.npy --name my_clip --protocol 5k
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
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status lines (warnings and "
                   "errors still show)")


def _add_features(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("features")
    g.add_argument("-D", "--dataset-opt", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="dataset builder option, e.g. -D n_train=500 for shapes (repeatable)")
    g.add_argument("--tag", default="", help="name a model variant (e.g. --tag maxviol): generate, run_benchmark and "
                   "search with the same tag use the same model, so variants of one method do not overwrite each other")
    g.add_argument("--text-path", help="word-vector file to use instead of the encoder's default file (for the "
                   "'sentence' encoder: a sentence-transformers model folder)")
    g.add_argument("--onnx-model", metavar="FILE.onnx", help="ONNX image model of the 'onnx' image encoder, with its "
                   "preprocessing in FILE.onnx.json (docs/onnx.md)")
    g.add_argument("--onnx-text-model", metavar="FILE.onnx", help="ONNX text model of the 'onnx' text encoder, with "
                   "its tokenizer and pooling in FILE.onnx.json (docs/onnx.md)")
    g.add_argument("--idf", action="store_true", help="weight words by IDF fitted on the train captions")
    g.add_argument("--stopwords", action="store_true", help="drop English stop words before averaging")
    g.add_argument("--pooling", default="mean", choices=["mean", "gmm", "hglmm", "gmm+hglmm"],
                   help="caption pooling of the word vectors: mean (default), or the Fisher vector under a mixture "
                   "fitted on the train words (Klein et al. 2015): gmm, hglmm (hybrid Gaussian-Laplacian), gmm+hglmm")
    g.add_argument("--fv-components", type=_positive_int, default=None, metavar="K",
                   help="mixture components of the Fisher vector (default 32): 2*K*D values per caption")
    g.add_argument("--fv-pca", type=_positive_int, default=None, metavar="D",
                   help="PCA of the word vectors to D dimensions (fitted on the train words) before the mixture")
    g.add_argument("--batch-size", type=_positive_int, default=None,
                   help="images per CNN batch (default: 32 for CNNs and 64 for EfficientNet on a CPU; from free memory on a GPU)")
    g.add_argument("--crops", type=int, default=1, choices=[1, 10],
                   help="CNN views per image: 1 centre crop, or 10 (corners + centre and their mirrors, averaged)")
    g.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="image network arithmetic: auto (bf16 where the CPU has native bf16, fp16 on CUDA, else "
                   "fp32; EfficientNet: fp32 onnxruntime on a CPU), fp32, bf16, fp16 (CUDA); part of the feature cache key")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    _add_no_cache(g)


def _add_intervals(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("uncertainty", "every run gets 95% percentile bootstrap intervals over the test images "
                             "(an image is resampled with all its captions) and keeps its per-query ranks "
                             "(RESULTS/runs/<run>.ranks.npz) for `significance` and `compare --significance`")
    g.add_argument("--ci", default="bootstrap", choices=["bootstrap", "none"],
                   help="bootstrap (default): intervals for every metric and R-sum; none: no intervals")
    g.add_argument("--bootstrap", type=_positive_int, default=None, metavar="N",
                   help="bootstrap resamples (default 1000; the seed 0 is recorded in the run)")


def _seed_list(text: str) -> list[int]:
    parts = [t.strip() for t in text.split(",")]
    if not parts or not all(t.lstrip("-").isdigit() for t in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, e.g. 0,1,2, got {text!r}")
    seeds = [int(t) for t in parts]
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat in {text!r}")
    return seeds


def _add_seeds(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--seeds", type=_seed_list, metavar="S,S,...", help=what)


def _add_no_cache(g) -> None:
    g.add_argument("--no-cache", action="store_true", help="recompute features and parse datasets again: nothing is "
                   "read from or written to DATA/cache")


def _number_list(typ):
    def parse(text: str) -> list:
        import math

        try:
            values = [typ(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
        return values

    return parse


def _add_cv(p: argparse.ArgumentParser) -> None:
    from cca_bench.cv import DEFAULT_GRID

    g = p.add_argument_group("cross-validation", "--cv fits every n_components x reg x eig_power of the grid "
                             "from one covariance pass (one solve per reg), scores each on the val split and saves "
                             "the best as the model (ridge, procrustes, pls, asif: their own knobs, see "
                             "docs/aligners.md); the grid goes to RESULTS/cv/<model>.json and .md")
    g.add_argument("--cv", action="store_true", help="choose n_components, reg and eig_power (kcca: also gamma and "
                   "landmarks) on the val split")
    fmt = lambda name: ",".join(f"{v:g}" for v in DEFAULT_GRID[name])  # noqa: E731
    g.add_argument("--cv-components", type=_number_list(int), metavar="K,K,...",
                   help=f"n_components values (default {fmt('n_components')}; values above min(dx, dy) are clipped)")
    g.add_argument("--cv-reg", type=_number_list(float), metavar="R,R,...", help=f"reg values (default {fmt('reg')})")
    g.add_argument("--cv-eig-power", type=_number_list(float), metavar="P,P,...",
                   help=f"eig_power values (default {fmt('eig_power')})")
    g.add_argument("--cv-fv-components", type=_number_list(int), metavar="K,K,...",
                   help="also search the Fisher-vector size (with --pooling gmm|hglmm|gmm+hglmm): one re-encoding "
                   "and one covariance pass per K; the chosen K names the saved model")
    g.add_argument("--cv-gamma", type=_number_list(float), metavar="S,S,...",
                   help="kcca: gamma multipliers of --gamma or its median-heuristic default (default 1,2,4,8,16); "
                   "one covariance pass per (gamma, landmarks)")
    g.add_argument("--cv-landmarks", type=_number_list(int), metavar="M,M,...",
                   help="kcca: landmark counts (default: --landmarks)")
    g.add_argument("--cv-top-k", type=_number_list(int), metavar="K,K,...",
                   help="asif: top-k values (default 50,100,200,400,800; values above the anchors are clipped)")
    g.add_argument("--cv-exponent", type=_number_list(float), metavar="P,P,...",
                   help="asif: exponent values (default 1,2,4,8)")
    g.add_argument("--cv-dim", type=_number_list(int), metavar="D,D,...",
                   help="dcca: output widths (default 16,32,64,128; one training run each)")
    g.add_argument("--cv-select", choices=["rsum", "medr"], default="rsum",
                   help="rsum: highest R@1+R@5+R@10 of both directions (default); medr: lowest sum of median ranks")


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
    _add_seeds(p, "fit one model per seed (tag seed<N>): VSE, kernel CCA landmarks and random features depend on "
               "it; then `run_benchmark --seeds` with the same list scores them into one run")


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="tables over all stored runs beside published numbers; writes RESULTS.md "
                       "and RESULTS.csv in the results root",
                       description="One table per dataset / split / protocol: this suite's runs (Source \"this "
                       "suite\") and the published reference rows of that group (Source = the paper or README, "
                       "cited under the tables; '-' = not published), best R-sum first. Printed, and written to "
                       "RESULTS.md and RESULTS.csv in the results root (--results-root, else $CCA_BENCH_RESULTS, "
                       "else ./results: ./results/RESULTS.md), replacing the previous ones.")
    p.add_argument("--dataset", help="only this dataset (its name without builder options)")
    p.add_argument("--split", help="only this split")
    p.add_argument("--method", help="only this method (own runs) or method family (published rows): cca, vse")
    p.add_argument("--published", action="store_true",
                   help="show every published row, also for datasets/protocols without own runs "
                   "(default: only beside own runs)")
    p.add_argument("--csv", metavar="PATH", help="also write the table as CSV to PATH")
    p.add_argument("--significance", action="store_true",
                   help="mark in every column the best run and the runs not significantly worse than it (paired "
                   "sign-flip permutation tests on the same test images, Holm-corrected, alpha 0.05)")
    p.add_argument("--plot", action="store_true",
                   help="write R@K curves (K = 1..50) of each shown run as PNG under plots/ in the results root, and one "
                   "overlay per dataset/split/protocol group with several runs")
    _add_common(p)


def _add_significance(sub) -> None:
    from cca_bench.stats import METRICS

    p = sub.add_parser("significance", help="is run A better than run B? a paired test on the same test images",
                       description="Test the difference A - B of one metric on the SAME test images (both runs on "
                       "one split and protocol, each with its per-query ranks file): the delta, its 95%% paired "
                       "bootstrap interval and a two-sided p-value from a paired sign-flip permutation test over "
                       "images (an image's captions stay together; the median rank uses the paired bootstrap).",
                       epilog="example: python -m cca_bench significance "
                       "cca__openmoji__glove50_efficientnet__test__full__cosine "
                       "kcca__openmoji__glove50_efficientnet__test__full__cosine --metric t2i:R@1")
    p.add_argument("run_a", help="a run JSON file, or a run name under RESULTS/runs (as `compare` lists them)")
    p.add_argument("run_b", help="the run to compare against, on the same split")
    p.add_argument("--metric", default="rsum", metavar="METRIC",
                   help=f"rsum (default), {', '.join(METRICS)} (both directions summed), or one direction: "
                   "i2t:R@1, t2i:median_rank, ...")
    p.add_argument("--resamples", type=_positive_int, default=10000, metavar="N",
                   help="permutations and bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutations and resamples (default 0)")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON to FILE")
    _add_common(p)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: <command>: <what>``, exit 2), like every other user mistake."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown option is one line naming the closest option of the subcommand and
        pointing at that subcommand's help (``--n-componets``: did you mean --n-components?)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            sub = self._subcommand(getattr(parsed, "command", None))
            hints = [f"did you mean {close}?" for close in (_closest_option(sub, e) for e in extras) if close]
            where = sub.prog if sub is not None else self.prog
            self.exit(2, f"error: {where}: unrecognized arguments: {' '.join(extras)}"
                      f"{'; ' + ' '.join(hints) if hints else ''} (see {where} --help)\n")
        return parsed

    def _subcommand(self, name: str | None):
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                return action.choices[name]
        return None


def _closest_option(parser, given: str) -> str | None:
    """The option of ``parser`` closest to a misspelled ``--option`` (its ``=value`` ignored), or None."""
    import difflib

    if parser is None or not given.startswith("--"):
        return None
    options = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    close = difflib.get_close_matches(given.split("=", 1)[0], options, n=1, cutoff=0.75)
    return close[0] if close else None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cca_bench", description="Classical (regularized CCA) and neural baselines for image-text "
        "retrieval, with the field's metrics.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="encode the train split, fit a method, save the model",
                       description="Encode the train split (restval joins train), fit METHOD and save it under "
                       "RESULTS/models/ as safetensors + JSON.")
    p.add_argument("method", help="cca (regularized CCA), kcca (kernel CCA) or vse (neural ranker); see `list`")
    p.add_argument("dataset", help="openmoji, shapes, flickr8k, flickr30k, coco, or a folder name under DATA")
    p.add_argument("features", help="TEXT_IMAGE, e.g. glove50_efficientnet or word2vec_vgg_karpathy")
    _add_method_params(p)
    _add_cv(p)
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
                   help="full: all images of the split at once (Flickr8k/30k test: 1,000 images, the usual 1k test); "
                   "1k: consecutive folds of 1,000 images, metrics averaged (COCO 1k: 5 folds of the 5k test); "
                   "5k: all 5,000 COCO test images at once. Part of the run's file name, JSON and compare "
                   "table (default full)")
    _add_seeds(p, "score the models `generate --seeds` fitted, one per seed, into one run: metrics are the mean "
               "over seeds, with each seed's metrics and their standard deviation beside the bootstrap interval")
    _add_intervals(p)
    _add_features(p)
    _add_extract_backend(p)
    _add_common(p)

    _add_search(sub)
    _add_compare(sub)
    _add_significance(sub)
    _add_serve(sub)
    _add_bring_your_own(sub)
    from cca_bench import science_cli

    science_cli.add_curve(sub)
    science_cli.add_similarity(sub)

    p = sub.add_parser("list", help="datasets (and whether their files are present), encoders and methods")
    _add_common(p)
    return parser


def _add_extract_backend(p: argparse.ArgumentParser) -> None:
    """--backend / --dask-scheduler for commands without a method fit (generate has them as cca options)."""
    g = p.add_argument_group("extraction backend")
    g.add_argument("--backend", default="numpy", choices=["numpy", "dask"],
                   help="dask: extract missing image feature shards as tasks on a Dask cluster (default numpy: here)")
    g.add_argument("--dask-scheduler", help="with --backend dask: scheduler address (default: a local cluster)")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _add_bring_your_own(sub) -> None:
    p = sub.add_parser("evaluate", help="score another model's image and caption embeddings on a split",
                       description="Read IMG (n_images x d) and TXT (n_captions x d) embeddings (.npy, never "
                       "unpickled, or .safetensors[:KEY]) whose rows follow the order `export-split` writes, "
                       "print the Image Annotation and Image Search tables and store the run (method = --name) "
                       "for `compare`. See docs/bring_your_own.md.")
    p.add_argument("dataset")
    p.add_argument("split", help="test, val or train")
    p.add_argument("--images", required=True, metavar="IMG", help="image embeddings, one row per image of the split")
    p.add_argument("--texts", required=True, metavar="TXT", help="caption embeddings, one row per caption")
    p.add_argument("--name", required=True, metavar="LABEL", help="the method name runs and tables show")
    p.add_argument("--image-index", metavar="FILE", help="image of each TXT row (.npy or one integer a line), "
                   "for captions in another order than export-split's")
    p.add_argument("--distance", default="cosine", choices=["cosine", "dot", "euclidean"],
                   help="similarity used for ranking (default cosine)")
    p.add_argument("--protocol", default="full", choices=["full", "1k", "5k"], help="as for run_benchmark")
    p.add_argument("-D", "--dataset-opt", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="dataset builder option (repeatable)")
    p.add_argument("--device", default="auto", help="where the similarity GEMM runs: auto, cpu or cuda")
    _add_intervals(p)
    _add_no_cache(p)
    _add_common(p)

    p = sub.add_parser("export-split", help="write a split's images, captions and image index in evaluation order",
                       description="Write DIR/images.txt (image paths; rendered or embedded images are written "
                       "as PNG files), captions.txt, image_index.txt/.npy and split.json: embed them with any "
                       "model, then run `evaluate`.")
    p.add_argument("dataset")
    p.add_argument("split")
    p.add_argument("dir", help="output folder")
    p.add_argument("-D", "--dataset-opt", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="dataset builder option (repeatable)")
    _add_no_cache(p)
    _add_common(p)


def cmd_evaluate(args) -> None:
    from cca_bench.external import evaluate_embeddings

    opts = _options(args)
    _store_run(opts, evaluate_embeddings(args.dataset, args.split, args.images, args.texts, args.name, opts,
                                         args.distance, args.protocol, args.image_index))


def cmd_export_split(args) -> None:
    from cca_bench.external import export_split

    out = export_split(args.dataset, args.split, Path(args.dir), _options(args))
    print(f"wrote {out['n_images']} images ({out['images']}) and {out['n_captions']} captions of "
          f"{out['dataset']}/{out['split']} to {args.dir}: {', '.join(out['files'])}, split.json")


def _add_search(sub) -> None:
    from cca_bench.search import INDEXES

    p = sub.add_parser("search", help="top-k images or captions of a split for a text or a photo",
                       description="Load the model `generate` saved and search SPLIT: --text gives images, "
                       "--image gives captions, --similar gives images like the photo. Prints a markdown table.")
    p.add_argument("method")
    p.add_argument("dataset")
    p.add_argument("features")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--text", help="a caption: find the images it describes")
    q.add_argument("--image", metavar="PHOTO", help="an image file: find captions that describe it")
    q.add_argument("--similar", metavar="PHOTO", help="an image file: find images like it")
    p.add_argument("-k", type=_positive_int, default=10, help="number of hits (default 10)")
    p.add_argument("--split", default="test", help="the split searched (default test)")
    p.add_argument("--distance", default="cosine", choices=["cosine", "dot", "euclidean"],
                   help="similarity used for ranking (default cosine)")
    p.add_argument("--index", default="exact", choices=INDEXES.names(),
                   help="exact (default); faiss: exact FAISS flat index; hnsw: approximate FAISS HNSW graph "
                   "for million-item galleries (pip install cca_bench[faiss])")
    p.add_argument("--html", metavar="OUT.html", help="also write a self-contained page with thumbnails")
    _add_features(p)
    _add_common(p)


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="local web app: leaderboard, run pages, qualitative examples, search",
                       description="Serve the leaderboard, run pages, qualitative examples and search over "
                       "DATA and RESULTS (read-only) until Ctrl-C. Needs the web extra: pip install -e \".[web]\"")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    _add_common(p)  # its -q also silences the request log


def cmd_serve(args) -> None:
    from cca_bench.config import data_root, results_root
    from cca_bench.web import create_app, serve

    app = create_app(data_root(args.data_root), results_root(args.results_root), args.device, args.host)
    serve(app, args.host, args.port, log=_log, quiet=args.quiet)


def _interval_options(args) -> dict:
    """Options' bootstrap field from --ci / --bootstrap (--bootstrap with --ci none is a UserError)."""
    if getattr(args, "ci", "bootstrap") == "none":
        if getattr(args, "bootstrap", None) is not None:
            raise UserError("--bootstrap sets the resamples of the intervals that --ci none turns off")
        return {"bootstrap": None}
    return {"bootstrap": getattr(args, "bootstrap", None) or 1000}


def _options(args):
    from cca_bench.benchmark import Options
    from cca_bench.config import data_root, results_root, torch_device

    torch_device(getattr(args, "device", "auto"))  # a missing GPU fails now, not after the features are loaded
    return Options(
        data_root=data_root(args.data_root), results_root=results_root(args.results_root),
        dataset_options=dict(getattr(args, "dataset_opt", [])), text_path=getattr(args, "text_path", None),
        idf=getattr(args, "idf", False), stopwords=getattr(args, "stopwords", False), **_fv_options(args),
        precision=getattr(args, "precision", "auto"), backend=getattr(args, "backend", None) or "numpy",
        dask_scheduler=getattr(args, "dask_scheduler", None),
        batch_size=getattr(args, "batch_size", 64), crops=getattr(args, "crops", 1), tag=getattr(args, "tag", ""), device=getattr(args, "device", "auto"),
        onnx_model=getattr(args, "onnx_model", None), onnx_text_model=getattr(args, "onnx_text_model", None),
        cache=not getattr(args, "no_cache", False), progress=not getattr(args, "quiet", False),
        log=(lambda m: None) if getattr(args, "quiet", False) else _log, **_interval_options(args))


def _fv_options(args) -> dict:
    """Options' pooling fields; --fv-components / --fv-pca without a Fisher-vector pooling are a UserError."""
    pooling = getattr(args, "pooling", "mean")
    k, pca = getattr(args, "fv_components", None), getattr(args, "fv_pca", None)
    if pooling == "mean" and (k is not None or pca is not None):
        raise UserError("--fv-components and --fv-pca need --pooling gmm, hglmm or gmm+hglmm")
    return {"pooling": pooling, "fv_pca": pca, **({"fv_components": k} if k is not None else {})}


def cmd_generate(args) -> None:
    from cca_bench.benchmark import generate
    from cca_bench.registry import METHODS

    from cca_bench.benchmark import seed_options

    cls = METHODS.get(args.method)
    params = {k: getattr(args, k) for k in getattr(cls, "CLI_PARAMS", {}) if getattr(args, k, None) is not None}
    opts, cv = _options(args), _cv_request(args)
    seeded = "random_state" in cls._param_names()
    if args.seeds and not seeded:
        _log(f"note: {args.method} takes no random seed: the {len(args.seeds)} seeds would give identical models, "
             "so one is fitted (run_benchmark without --seeds scores it)")
    for seed in (args.seeds if args.seeds and seeded else [None]):
        if seeded:
            params["random_state"] = args.seed if seed is None else seed
        _report_fit(args, generate(args.method, args.dataset, args.features, params, seed_options(opts, seed), cv=cv))


def _report_fit(args, out: dict) -> None:
    """What generate prints of one fitted model."""
    model = out["model"]
    print(f"fitted {args.method} on {out['n_captions']} captions / {out['n_images']} images "
          f"in {out['timings'].get('fit', 0):.1f} s; saved {out['path']}.safetensors")
    print(_oov_line(out.get("oov_rate"), "train"))
    if out["cv"] is not None:
        from cca_bench.cv import best_params

        best = out["cv"]["best"]
        print(f"CV ({len(out['cv']['rows'])} grid points, by {out['cv']['select']}): chose {best_params(out['cv'])}, "
              f"val R-sum {best['rsum']:.1f}, median ranks {best['medr_sum']:g}")
        for note in out["cv"].get("edges", []):
            print(f"CV edge of the grid: {note}")
        if out["cv"].get("val_interval"):
            from cca_bench.cv import interval_note

            print(f"CV uncertainty: {interval_note(out['cv']['val_interval'])}")
    for figure in out["figures"]:
        print(f"figure: {figure}")
    summary = getattr(model, "summary", None)
    if callable(summary):
        print(summary())


CV_GRID_FLAGS = {"cv_components": "n_components", "cv_reg": "reg", "cv_eig_power": "eig_power",
                 "cv_gamma": "gamma_scale", "cv_landmarks": "landmarks",
                 "cv_top_k": "top_k", "cv_exponent": "exponent", "cv_dim": "dim"}  # argparse dest -> grid knob


def _cv_request(args) -> dict | None:
    """generate's ``cv`` argument from the --cv flags (None without --cv)."""
    if not args.cv:
        if any(getattr(args, f) is not None for f in (*CV_GRID_FLAGS, "cv_fv_components")):
            raise UserError("--cv-components, --cv-reg, --cv-eig-power, --cv-gamma, --cv-landmarks, --cv-top-k, "
                            "--cv-exponent, --cv-dim and --cv-fv-components need --cv")
        return None
    grid = {knob: getattr(args, flag) for flag, knob in CV_GRID_FLAGS.items()}
    request = {"grid": {k: v for k, v in grid.items() if v}, "select": args.cv_select}
    if args.cv_fv_components:
        request["fv_components"] = args.cv_fv_components
    return request


def cmd_run_benchmark(args) -> None:
    from cca_bench.benchmark import run_benchmark

    opts = _options(args)
    _store_run(opts, run_benchmark(args.method, args.dataset, args.split, args.features, opts, args.distance,
                                   args.protocol, seeds=_benchmark_seeds(args)))


def _benchmark_seeds(args) -> list[int] | None:
    """The seeds of run_benchmark's models; None for one model (no --seeds, or a method without a seed)."""
    from cca_bench.methods import load_all
    from cca_bench.registry import METHODS

    load_all()
    if args.seeds and "random_state" not in METHODS.get(args.method)._param_names():
        _log(f"note: {args.method} takes no random seed: its one model is scored (the seeds would be identical)")
        return None
    return args.seeds


def _store_run(opts, record: dict) -> None:
    """Write a run record under RESULTS/runs/ and print its two tables."""
    from cca_bench.results import run_tables, write_run

    path = write_run(opts.results_root, record)
    print(f"## {record['dataset']} / {record['split']} ({record['n_images']} images, {record['n_captions']} "
          f"captions, protocol {record['protocol']})\n")
    print(run_tables(record))
    if record.get("coco_extended"):
        from cca_bench.coco_extended import markdown

        print("\n" + markdown(record["coco_extended"]))
    for task, n in (record.get("degenerate_queries") or {}).items():
        if n:
            print(f"note: {n} {task.replace('_', ' ')} queries scored every item alike (e.g. an all-zero embedding) "
                  "and were counted as misses (worst rank)")
    if record.get("seed_note"):
        print(f"note: {record['seed_note']}")
    print(_oov_line(record.get("oov_rate"), record["split"]))
    print(f"run stored in {path}")


def _oov_line(rate: float | None, split: str) -> str:
    """``OOV rate (test): 3.2% of caption tokens have no word vector``."""
    if rate is None:
        return f"OOV rate ({split}): not known (these features come without a text encoder's count)"
    return f"OOV rate ({split}): {100 * rate:.1f}% of caption tokens have no word vector"


def cmd_compare(args) -> None:
    from cca_bench.config import results_root
    from cca_bench.results import (compare_csv, compare_frame, compare_markdown, load_runs, published_frame,
                                   select_rows, significance_marks, write_text)

    root = results_root(args.results_root)
    runs, bad = load_runs(root)
    for b in bad:
        _log(f"warning: skipped run file {b}")
    frame = select_rows(compare_frame(runs, published_frame()), args.dataset, args.split, args.method, args.published)
    marks = significance_marks(frame, runs) if args.significance and len(frame) else None
    text = compare_markdown(frame, marks)
    print(text)
    log = (lambda m: None) if args.quiet else _log
    written = [write_text(root / "RESULTS.md", text), write_text(root / "RESULTS.csv", compare_csv(frame))]
    if args.csv:
        written.append(write_text(Path(args.csv), compare_csv(frame)))
    if args.plot:
        written += _plot_runs(runs, frame, root)
    log("written: " + ", ".join(map(str, written)))


def _plot_runs(runs: list[dict], frame, root) -> list:
    """R@K curve PNGs under RESULTS/plots/ for the runs that the compare table shows."""
    from cca_bench.results import plot_runs

    shown = set(frame.loc[frame["Source"] == "this suite", "_file"]) if len(frame) else set()
    plotted = []
    for run in runs:
        if run["_file"] in shown and "recall_curve" not in run:
            _log(f"warning: {Path(run['_file']).name} has no recall_curve (run before curves were stored): "
                 "run run_benchmark again to plot it")
        elif run["_file"] in shown:
            plotted.append(run)
    return plot_runs(root, plotted)


def cmd_significance(args) -> None:
    import json

    from cca_bench.config import results_root
    from cca_bench.results import load_ranks, resolve_run, write_text
    from cca_bench.stats import paired_test, parse_metric

    parse_metric(args.metric)  # a bad metric name fails before any file is read
    root = results_root(args.results_root)
    runs = [resolve_run(root, spec) for spec in (args.run_a, args.run_b)]
    a, b = runs
    for key in ("dataset", "split", "protocol"):
        if a[key] != b[key]:
            raise UserError(f"the runs are on different {key}s ({a[key]} vs {b[key]}): a paired test needs the "
                            "same test images")
    if a.get("split_fingerprint") != b.get("split_fingerprint"):
        raise UserError(f"the runs' split fingerprints differ ({a.get('split_fingerprint')} vs "
                        f"{b.get('split_fingerprint')}): the split's images or captions changed between them")
    result = paired_test(load_ranks(a), load_ranks(b), args.metric, args.resamples, args.seed)
    result |= {"run_a": Path(a["_file"]).name, "run_b": Path(b["_file"]).name}
    print(_significance_text(result))
    if args.json:
        write_text(Path(args.json), json.dumps(result, indent=2))


def _significance_text(r: dict) -> str:
    """The lines `significance` prints."""
    better = "lower" if r["lower_is_better"] else "higher"
    verdict = ("A is better" if (r["delta"] < 0) == r["lower_is_better"] else "B is better") \
        if r["p_value"] < 0.05 and r["delta"] else "no significant difference at alpha 0.05"
    return (f"A = {r['run_a']}\nB = {r['run_b']}\n"
            f"{r['metric']} (a {better} value is better): A - B = {r['delta']:+.2f}, "
            f"{100 * r['level']:g}% interval [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}], p = {r['p_value']:.4g} "
            f"({r['test']}, {r['resamples']} resamples, {r['n_images']} images): {verdict}")


def cmd_search(args) -> None:
    from cca_bench.results import write_text
    from cca_bench.search import MODES, check_query, markdown_table, open_gallery, render_html, search

    mode, query = next((m, v) for m in MODES if (v := getattr(args, m)) is not None)
    check_query(mode, query)
    gallery = open_gallery(args.method, args.dataset, args.split, args.features, _options(args))
    result = search(gallery, mode, query, args.k, args.distance, args.index)
    split = result.split
    print(f"## {split.dataset}/{split.name}: top {len(result.rows)} {MODES[mode].label} {query!r} "
          f"({args.method}, {args.features}, {args.distance})\n")
    print(markdown_table(result))
    if args.html:
        from pathlib import Path

        written = write_text(Path(args.html), render_html(result))
        if not args.quiet:
            _log(f"written to {written}")


def cmd_list(args) -> None:
    from cca_bench.catalog import catalog
    from cca_bench.config import data_root

    print(catalog(data_root(args.data_root)))  # no Options: they would import torch to check the device


COMMANDS = {"generate": cmd_generate, "run_benchmark": cmd_run_benchmark, "compare": cmd_compare, "list": cmd_list,
            "search": cmd_search, "serve": cmd_serve, "significance": cmd_significance, "evaluate": cmd_evaluate, "export-split": cmd_export_split,
            "curve": lambda args: _science("cmd_curve", args),
            "similarity": lambda args: _science("cmd_similarity", args)}


def _science(command: str, args) -> None:
    """Run a command of :mod:`cca_bench.science_cli` (curve, similarity)."""
    from cca_bench import science_cli

    getattr(science_cli, command)(args)


# what the machine or the file system refused: one line, exit 1 (other OSErrors are bugs: traceback)
OS_FAILURES = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
               errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EFBIG: "file too large", errno.EIO: "input/output error",
               errno.ENAMETOOLONG: "file name too long", errno.ENOTDIR: "not a directory",
               errno.EISDIR: "is a directory", errno.ELOOP: "too many levels of symbolic links"}


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings (ours and the libraries') as ``warning: <message>``: one line, no source excerpt."""
    return "warning: " + " ".join(str(message).split()) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import warnings

    formatted = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        COMMANDS[args.command](args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in OS_FAILURES:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{OS_FAILURES[e.errno]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished work is kept (cached features, saved models and runs)", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatted
    return 0


if __name__ == "__main__":
    sys.exit(main())
