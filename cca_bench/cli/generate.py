"""`generate METHOD DATASET FEATURES`: encode the train split, fit METHOD, save the model.

METHOD's options are generated from its class's ``CLI_PARAMS`` ({param: (type, help[, choices])}: a bool is a
switch, ``--param-name`` sets ``param_name``) and its CV grid knobs (:func:`cca_bench.cv.knobs`); nothing else
of another method is offered, and an option another method takes is refused in one line naming who takes it.
The method is read first (``parse_known_args`` of the method-independent options), then its parser is built.
"""

from __future__ import annotations

from cca_bench.cli.common import (
    add_common,
    add_features,
    add_seeds,
    add_ties,
    log,
    metric,
    number_list,
    oov_line,
    options,
    seed,
)
from cca_bench.cli.parser import CliParser
from cca_bench.errors import UserError

HELP = "encode the train split, fit a method, save the model"
DESCRIPTION = (
    "Encode the train split (restval joins train), fit METHOD and save it under RESULTS/models/ as "
    "safetensors + JSON. `generate METHOD --help` lists METHOD's own options."
)
EPILOG = "example: python -m cca_bench generate cca openmoji glove50_efficientnet --cv --cv-select medr"

# grid knob -> (value type, metavar, help with {default}); the flag is the one the method (or cv.CV_FLAGS) declares.
# A knob missing here still gets its flag (float values, a plain help line).
CV_KNOBS = {
    "n_components": (int, "K,K,...", "n_components values (default {default}; values above min(dx, dy) are clipped)"),
    "reg": (float, "R,R,...", "reg values (default {default})"),
    "eig_power": (float, "P,P,...", "eig_power values (default {default})"),
    "gamma_scale": (
        float,
        "S,S,...",
        "gamma multipliers of --gamma or its median-heuristic default (default "
        "{default}); one covariance pass per (gamma, landmarks)",
    ),
    "landmarks": (int, "M,M,...", "landmark counts (default: --landmarks)"),
    "top_k": (int, "K,K,...", "top-k values (default {default}; values above the anchors are clipped)"),
    "exponent": (float, "P,P,...", "exponent values (default {default})"),
    "dim": (int, "D,D,...", "output widths (default {default}; one training run each)"),
}


def _flag(param: str) -> str:
    return "--" + param.replace("_", "-")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def cv_flags(cls) -> dict[str, tuple[str, tuple]]:
    """{grid knob: (its --cv-* flag, its default values)} of the knobs ``--cv`` searches for ``cls``."""
    from cca_bench.cv import CV_FLAGS, DEFAULT_GRID, knobs

    declared = {k: (CV_FLAGS[k], v) for k, v in DEFAULT_GRID.items()}
    for table in ("CV_OUTER", "CV_GRID"):
        declared |= {k: (flag, values) for k, (values, flag) in getattr(cls, table, {}).items()}
    return {k: declared[k] for k in knobs(cls)}


def method_flags(cls) -> set[str]:
    """Every option flag ``generate`` offers for method class ``cls`` beyond the shared ones."""
    return {_flag(p) for p in getattr(cls, "CLI_PARAMS", {})} | {f for f, _ in cv_flags(cls).values()}


def add_arguments(p: CliParser, argv: list[str]) -> None:
    from cca_bench.registry import DATASETS, METHODS

    name = _method_of(p.prog, argv)
    cls = METHODS.get(name) if name is not None else None  # an unknown method: a UserError with a did-you-mean
    if cls is None:
        p.add_argument(
            "method",
            metavar="METHOD",
            help=f"one of {', '.join(METHODS.names())} (see `list`); "
            f"`{p.prog} METHOD --help` lists METHOD's own options",
        )
    else:
        p.add_argument("method", metavar="METHOD", help=f"{name}: {METHODS.meta(name).get('help', '')}")
        p.help_hint, p.refuse = f"{p.prog} {name}", _refuser(name, p)
    p.add_argument("dataset", help=f"{', '.join(DATASETS.names())}, or a folder name under DATA (see `list`)")
    p.add_argument("features", help="TEXT_IMAGE, e.g. glove50_efficientnet or word2vec_vgg_karpathy")
    if cls is not None:
        _add_method_options(p, name, cls)
    _add_shared(p, cls)


def _method_of(prog: str, argv: list[str]) -> str | None:
    """The METHOD of ``argv`` (None when not given, e.g. ``generate --help``): a first pass over the
    method-independent options, so that their values are not taken for the method (values are checked by the
    second pass, METHOD's parser)."""
    pre = CliParser(prog=prog, add_help=False, check_values=False)
    pre.add_argument("method", nargs="?")
    _add_shared(pre, None)
    known, _ = pre.parse_known_args(argv)
    return known.method


def _add_method_options(p: CliParser, name: str, cls) -> None:
    """``--param`` for each of ``cls.CLI_PARAMS`` in one group titled after the method."""
    g = p.group(f"{name} options", "options of this method only (`generate OTHER --help` lists another's)")
    for param, spec in getattr(cls, "CLI_PARAMS", {}).items():
        typ, help_text = spec[0], spec[1]
        if typ is bool:
            g.add_argument(_flag(param), dest=param, action="store_true", default=None, help=help_text)
        else:
            choices = spec[2] if len(spec) > 2 else None
            g.add_argument(_flag(param), dest=param, type=typ, choices=choices, default=None, help=help_text)


def _add_shared(p: CliParser, cls) -> None:
    """Seeds, cross-validation (with ``cls``'s grid flags when a method is known), features and locations."""
    p.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2^32-1 (default 0)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a saved model of the same name that was fitted "
        "with other hyper-parameters (without it generate refuses in one line; --tag keeps both)",
    )
    add_seeds(
        p,
        "fit one model per seed (tag seed<N>): VSE, kernel CCA landmarks and random features depend on "
        "it; then `run_benchmark --seeds` with the same list scores them into one run",
    )
    _add_cv(p, cls)
    add_features(p)
    add_common(p)


def _add_cv(p: CliParser, cls) -> None:
    g = p.group(
        "cross-validation",
        "--cv fits every n_components x reg x eig_power of the grid from one covariance "
        "pass (one solve per reg), scores each on the val split and saves the best as the model (ridge, "
        "procrustes, pls, asif, dcca: their own knobs, see docs/aligners.md); the grid goes to "
        "RESULTS/cv/<model>.json and .md. `generate METHOD --help` lists METHOD's grid flags.",
    )
    g.add_argument(
        "--cv",
        action="store_true",
        help="choose the method's knobs (cca: n_components, reg and "
        "eig_power; kcca: also gamma and landmarks) on the val split",
    )
    add_ties(g)
    for knob, (flag, default) in (cv_flags(cls) if cls is not None else {}).items():
        typ, metavar, text = CV_KNOBS.get(knob, (float, "V,V,...", f"{knob} values (default {{default}})"))
        g.add_argument(
            flag,
            dest=_dest(flag),
            type=number_list(typ),
            metavar=metavar,
            help=text.format(default=",".join(f"{v:g}" for v in default)),
        )
    g.add_argument(
        "--cv-fv-components",
        type=number_list(int),
        metavar="K,K,...",
        help="also search the Fisher-vector size (with --pooling gmm|hglmm|gmm+hglmm): one re-encoding "
        "and one covariance pass per K; the chosen K names the saved model",
    )
    g.add_argument(
        "--cv-select",
        type=_cv_select,
        default="rsum",
        metavar="{rsum,medr}",
        help="rsum: highest R@1+R@5+R@10 of both directions (default); medr (median_rank, any case): "
        "lowest sum of median ranks",
    )


def _cv_select(text: str) -> str:
    """--cv-select in the one metric vocabulary: rsum, or the median rank (medr, MedR, median_rank) -> "medr"."""
    import argparse

    rule = {"rsum": "rsum", "median_rank": "medr"}.get(metric(text))
    if rule is None:
        raise argparse.ArgumentTypeError(f"CV selects by rsum or medr (median_rank), not {text!r}")
    return rule


def _refuser(name: str, p: CliParser):
    """``flag -> reason``: an option of other methods is refused naming them (and the closest own option), or
    with the method's own reason (its ``REFUSED_OPTIONS``: flag -> sentence, e.g. dcca's one machine)."""
    from cca_bench.registry import METHODS

    def reason(flag: str) -> str | None:
        own = getattr(METHODS.get(name), "REFUSED_OPTIONS", {}).get(flag)
        if own:
            return own
        takers = [m for m in METHODS.names() if m != name and flag in method_flags(METHODS.get(m))]
        if not takers:
            return None
        close = p.closest(flag)
        return f"{flag} is not an option of {name} ({', '.join(takers)} take{'s' if len(takers) == 1 else ''} it)" + (
            f"; did you mean {close}?" if close else ""
        )

    return reason


def run(args) -> None:
    from cca_bench.benchmark import generate, seed_options
    from cca_bench.registry import METHODS

    cls = METHODS.get(args.method)
    params = {k: getattr(args, k) for k in getattr(cls, "CLI_PARAMS", {}) if getattr(args, k, None) is not None}
    opts, cv = options(args), _cv_request(args, cls)
    seeded = "random_state" in cls._param_names()
    if args.seeds and not seeded:
        log(
            f"note: {args.method} takes no random seed: the {len(args.seeds)} seeds would give identical models, "
            "so one is fitted (run_benchmark without --seeds scores it)"
        )
    for each in args.seeds if args.seeds and seeded else [None]:
        if seeded:
            params["random_state"] = args.seed if each is None else each
        report_fit(
            args,
            generate(
                args.method,
                args.dataset,
                args.features,
                params,
                seed_options(opts, each),
                cv=cv,
                overwrite=args.overwrite,
            ),
        )


def _cv_request(args, cls) -> dict | None:
    """generate's ``cv`` argument from the --cv flags (None without --cv)."""
    flags = cv_flags(cls)
    grid = {knob: getattr(args, _dest(flag)) for knob, (flag, _) in flags.items()}
    if not args.cv:
        if any(v is not None for v in grid.values()) or args.cv_fv_components is not None or args.ties is not None:
            raise UserError(f"{', '.join([f for f, _ in flags.values()] + ['--cv-fv-components', '--ties'])} need --cv")
        return None
    request = {"grid": {k: v for k, v in grid.items() if v}, "select": args.cv_select}
    if args.cv_fv_components:
        request["fv_components"] = args.cv_fv_components
    return request


def report_fit(args, out: dict) -> None:
    """What generate prints of one fitted model."""
    model = out["model"]
    print(
        f"fitted {args.method} on {out['n_captions']} captions / {out['n_images']} images "
        f"in {out['timings'].get('fit', 0):.1f} s; saved {out['path']}.safetensors"
    )
    print(oov_line(out.get("oov_rate"), "train"))
    if out["cv"] is not None:
        _report_cv(out["cv"])
    for figure in out["figures"]:
        print(f"figure: {figure}")
    summary = getattr(model, "summary", None)
    if callable(summary):
        print(summary())


def _report_cv(cv: dict) -> None:
    from cca_bench.cv import best_params, interval_note

    best = cv["best"]
    print(
        f"CV ({len(cv['rows'])} grid points, by {cv['select']}): chose {best_params(cv)}, "
        f"val R-sum {best['rsum']:.1f}, median ranks {best['medr_sum']:g} (ties {cv.get('ties')})"
    )
    for note in cv.get("edges", []):
        print(f"CV edge of the grid: {note}")
    if cv.get("val_interval"):
        print(f"CV uncertainty: {interval_note(cv['val_interval'])}")
