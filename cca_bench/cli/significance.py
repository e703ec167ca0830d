"""`significance`: is run A better than run B? A paired test on the same test images."""
from __future__ import annotations

from pathlib import Path

from cca_bench.cli.common import add_common, metric, resamples, seed
from cca_bench.errors import UserError

HELP = "is run A better than run B? a paired test on the same test images"
DESCRIPTION = ("Test the difference A - B of one metric on the SAME test images (both runs on one split and "
               "protocol, each with its per-query ranks file): the delta, its 95% paired bootstrap interval and a "
               "two-sided p-value from a paired sign-flip permutation test over images (an image's captions stay "
               "together; the median rank uses the paired bootstrap).")
EPILOG = ("example: python -m cca_bench significance cca__openmoji__glove50_efficientnet_lite0__test__full__cosine "
          "kcca__openmoji__glove50_efficientnet_lite0__test__full__cosine --metric t2i:R@1")


def add_arguments(p, argv: list[str]) -> None:
    from cca_bench.stats import METRICS, PAIRED_RESAMPLES, PAIRED_SEED

    p.add_argument("run_a", help="a run id, its short id or a unique prefix (as `runs` and `compare` list them), a "
                   "configuration name (its newest run), or a path to a run JSON file (used as given)")
    p.add_argument("run_b", help="the run to compare against, on the same split")
    p.add_argument("--metric", default="rsum", type=metric, metavar="METRIC",
                   help=f"rsum (default), {', '.join(METRICS)} (both directions summed), or one direction: "
                   "i2t:R@1, t2i:median_rank, ... (any case; medr = median_rank)")
    p.add_argument("--resamples", type=resamples, default=PAIRED_RESAMPLES, metavar="N",
                   help=f"permutations and bootstrap resamples, 1 to 10^6 (default {PAIRED_RESAMPLES})")
    p.add_argument("--seed", type=seed, default=PAIRED_SEED,
                   help=f"seed of the permutations and resamples, 0 to 2^32-1 (default {PAIRED_SEED})")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON to FILE")
    add_common(p)


def run(args) -> None:
    import json

    from cca_bench.checks import check_resamples
    from cca_bench.config import results_root
    from cca_bench.results import load_ranks, resolve_run, write_text
    from cca_bench.stats import paired_test

    root = results_root(args.results_root)
    a, b = (resolve_run(root, spec) for spec in (args.run_a, args.run_b))
    for key in ("dataset", "split", "protocol"):
        if a[key] != b[key]:
            raise UserError(f"the runs are on different {key}s ({a[key]} vs {b[key]}): a paired test needs the "
                            "same test images")
    if a.get("split_fingerprint") != b.get("split_fingerprint"):
        raise UserError(f"the runs' split fingerprints differ ({a.get('split_fingerprint')} vs "
                        f"{b.get('split_fingerprint')}): the split's images or captions changed between them")
    ranks_a, ranks_b = load_ranks(a), load_ranks(b)
    check_resamples("--resamples", args.resamples, ranks_a.n_images)
    result = paired_test(ranks_a, ranks_b, args.metric, args.resamples, args.seed)
    result |= {"run_a": Path(a["_file"]).name, "run_b": Path(b["_file"]).name}
    print(significance_text(result))
    if args.json:
        write_text(Path(args.json), json.dumps(result, indent=2))


def significance_text(r: dict) -> str:
    """The lines `significance` prints (p in the one printed form, :func:`cca_bench.stats.format_p`)."""
    from cca_bench.stats import format_p

    better = "lower" if r["lower_is_better"] else "higher"
    verdict = ("A is better" if (r["delta"] < 0) == r["lower_is_better"] else "B is better") \
        if r["p_value"] < 0.05 and r["delta"] else "no significant difference at alpha 0.05"
    return (f"A = {r['run_a']}\nB = {r['run_b']}\n"
            f"{r['metric']} (a {better} value is better): A - B = {r['delta']:+.2f}, "
            f"{100 * r['level']:g}% interval [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}], "
            f"{format_p(r['p_value'], r['resamples'])} "
            f"({r['test']}, {r['resamples']} resamples, {r['n_images']} images): {verdict}")
