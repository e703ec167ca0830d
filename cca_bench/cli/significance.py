"""`significance`: is run A better than run B? A paired test on the same test images."""

from __future__ import annotations

from pathlib import Path

from cca_bench.cli.common import add_common, metric, positive_float, positive_int, resamples, seed
from cca_bench.errors import UserError

MAX_EXAMPLES = 1000  # --examples: queries listed per direction and side
HELP = "is run A better than run B? a paired test on the same test images"
DESCRIPTION = (
    "Test the difference A - B of one metric on the SAME test images (both runs on one split and "
    "protocol, each with its per-query ranks file): the delta, its 95% paired bootstrap interval and a "
    "two-sided p-value from a paired sign-flip permutation test over images (an image's captions stay "
    "together; the median rank uses the paired bootstrap), with the paired SE and the minimum detectable "
    "difference at 80% power. When either run holds several seeds (--seeds) the test is seed-aware: it "
    "compares the METHODS over seeds and images (a t test over both variance sources)."
)
EPILOG = (
    "example: python -m cca_bench significance cca__openmoji__glove50_efficientnet_lite0__test__full__cosine "
    "kcca__openmoji__glove50_efficientnet_lite0__test__full__cosine --metric t2i:R@1"
)


def add_arguments(p, argv: list[str]) -> None:
    from cca_bench.stats import METRICS, PAIRED_RESAMPLES, PAIRED_SEED

    p.add_argument(
        "run_a",
        help="a run id, its short id or a unique prefix (as `runs` and `compare` list them), a "
        "configuration name (its newest run), or a path to a run JSON file (used as given)",
    )
    p.add_argument("run_b", help="the run to compare against, on the same split")
    p.add_argument(
        "--metric",
        default="rsum",
        type=metric,
        metavar="METRIC",
        help=f"rsum (default), {', '.join(METRICS)} (both directions summed), or one direction: "
        "i2t:R@1, t2i:median_rank, ... (any case; medr = median_rank)",
    )
    p.add_argument(
        "--resamples",
        type=resamples,
        default=PAIRED_RESAMPLES,
        metavar="N",
        help=f"permutations and bootstrap resamples, 1 to 10^6 (default {PAIRED_RESAMPLES})",
    )
    p.add_argument(
        "--seed",
        type=seed,
        default=PAIRED_SEED,
        help=f"seed of the permutations and resamples, 0 to 2^32-1 (default {PAIRED_SEED})",
    )
    p.add_argument(
        "--equivalence",
        type=positive_float,
        metavar="MARGIN",
        help="also test equivalence: is |A - B| < MARGIN (in the metric's units)? two one-sided tests "
        '(TOST) at alpha 0.05, so that "no worse than B within MARGIN" can be claimed',
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        help="also write the result as JSON to FILE (keys delta, ci, p_value, "
        "test, se, mdd, seed_aware, and equivalence with --equivalence)",
    )
    p.add_argument(
        "--examples",
        type=positive_int,
        metavar="N",
        help="also list the N queries of each direction where A succeeds and B fails most, and the "
        "reverse, with captions and each run's top hit (from the runs' ranks files; as the web app's "
        f"/wins page; at most {MAX_EXAMPLES})",
    )
    add_common(p)


def run(args) -> None:
    import json

    from cca_bench.config import results_root
    from cca_bench.results import load_ranks, write_text
    from cca_bench.stats import check_resamples
    from cca_bench.verdict import compare_runs, significance_text

    if args.examples and args.examples > MAX_EXAMPLES:
        raise UserError(f"--examples {args.examples}: at most {MAX_EXAMPLES} queries per list")
    a, b = paired_runs(results_root(args.results_root), args.run_a, args.run_b)
    ranks = (load_ranks(a), load_ranks(b))
    check_resamples("--resamples", args.resamples, ranks[0].n_images, paired=True)  # before the test draws
    result = compare_runs((a, b), ranks, args.metric, args.resamples, args.seed, args.equivalence)
    print(significance_text(result))
    if args.examples:
        from cca_bench.config import data_root

        print(examples_text((a, b), ranks, args.examples, data_root(args.data_root)))
    if args.json:
        write_text(Path(args.json), json.dumps(result, indent=2))


def paired_runs(root, spec_a: str, spec_b: str) -> tuple[dict, dict]:
    """The two run records of a paired comparison; UserError unless they are on one split and protocol."""
    from cca_bench.results import resolve_run

    a, b = (resolve_run(root, spec) for spec in (spec_a, spec_b))
    for key in ("dataset", "split", "protocol"):
        if a[key] != b[key]:
            raise UserError(
                f"the runs are on different {key}s ({a[key]} vs {b[key]}): a paired test needs the same test images"
            )
    if a.get("split_fingerprint") != b.get("split_fingerprint"):
        raise UserError(
            f"the runs' split fingerprints differ ({a.get('split_fingerprint')} vs "
            f"{b.get('split_fingerprint')}): the split's images or captions changed between them"
        )
    return a, b


def examples_text(runs: tuple, ranks: tuple, n: int, data_root) -> str:
    """The lines of ``--examples``: per direction, the ``n`` queries where A ranks the ground truth best while B
    ranks it worst (:func:`cca_bench.retrieved.contrast`), then the reverse; each with both runs' 1-based ranks,
    the query (an image id, or a caption and its image) and each run's top hit where its ranks file keeps the
    top-10. Items are named by position where the data root cannot rebuild the split."""
    from cca_bench.benchmark import run_split
    from cca_bench.results import load_top10
    from cca_bench.retrieved import contrast

    split = run_split(runs[0], data_root)
    subset = any(isinstance(r.get("embeddings"), dict) and "image_index" in r["embeddings"] for r in runs)
    captions = (
        split.captions if split is not None and not subset and split.n_captions == len(ranks[0].image_index) else None
    )
    image = (lambda i: split.image_ids[i]) if split is not None else (lambda i: f"image {i}")
    caption = (lambda j: repr(captions[j])) if captions is not None else (lambda j: f"caption {j}")
    tops = []
    for r, q in zip(runs, ranks):
        try:
            tops.append(load_top10(r, q))
        except UserError:
            tops.append(None)
    lines = []
    for task, (what, item, hit) in {
        "image_annotation": ("image", image, caption),
        "image_search": ("caption", caption, image),
    }.items():
        side = 0 if task == "image_annotation" else 1
        for name, (win, lose) in (("A succeeds, B fails", (0, 1)), ("B succeeds, A fails", (1, 0))):
            found = contrast(ranks[win], ranks[lose], n)[task]["a_wins"]
            lines.append(f"\n{task.replace('_', ' ')}: {name} ({len(found)} of at most {n} {what} queries)")
            for q, r_win, r_lose in found:
                ra, rb = (r_win, r_lose) if win == 0 else (r_lose, r_win)
                query = item(q) if side == 0 else f"{caption(q)} (of {image(int(ranks[0].image_index[q]))})"
                best = ["-" if t is None or t[side][q, 0] < 0 else hit(int(t[side][q, 0])) for t in tops]
                lines.append(f"  {query}: rank A {_rank(ra)}, B {_rank(rb)}; top hit A: {best[0]}; B: {best[1]}")
    return "\n".join(lines)


def _rank(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
