"""A run's evaluation: embeddings of one or more seeds -> per-query ranks, metrics, R@K curves, intervals.

Glue between the pure maths (:mod:`cca_bench.metrics` ranks queries, :mod:`cca_bench.stats` turns ranks into
metrics, intervals and seed spreads) and the run record that :mod:`cca_bench.benchmark` and
:mod:`cca_bench.external` build.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cca_bench.config import timed, torch_device
from cca_bench.errors import UserError
from cca_bench.ties import DEFAULT, check_rule


@dataclass(frozen=True)
class RunOptions:
    """How a run is scored, besides distance and protocol: the tie rule (:mod:`cca_bench.ties`) and the
    image-level bootstrap of its intervals (``bootstrap`` resamples, None: no intervals, ``--ci none``; drawn
    with ``ci_seed``). Validated when built; the orchestrator builds it from ``--ties`` / ``--ci`` /
    ``--bootstrap`` or API arguments."""

    bootstrap: int | None = 10000  # the one default of resamples (stats.PAIRED_RESAMPLES, asserted in tests)
    ci_seed: int = 0
    ties: str = DEFAULT

    def __post_init__(self):
        check_rule(self.ties)
        if self.bootstrap is not None and (
            isinstance(self.bootstrap, bool) or int(self.bootstrap) != self.bootstrap or self.bootstrap < 1
        ):
            raise UserError(f"bootstrap (--bootstrap): a whole number of resamples >= 1, not {self.bootstrap!r}")


def score(
    embeddings: list[tuple[np.ndarray, np.ndarray]],
    image_index: np.ndarray,
    distance: str,
    folds: int,
    run: RunOptions,
    timings: dict,
    device: str = "auto",
    cache_dir=None,
) -> dict:
    """The run-record fields of one or more (one per seed) pairs of (n_img, k) image and (n_txt, k) caption
    embeddings, scored under the tie rule ``run.ties``: ``ties``, ``metrics`` (mean over seeds),
    ``recall_curve``, ``degenerate_queries``, per-query tie counts (``_ranks``) and the first seed's top-10
    retrieved items of every query (``_top10``: :func:`cca_bench.retrieved.fold_top_lists`, read from the
    ranking pass's own score blocks), both stored
    by ``results.write_run``, bootstrap ``ci`` / ``ci_method`` unless ``run.bootstrap`` is None, and with several
    seeds ``seed_metrics`` / ``seed_sd``. The similarity GEMM runs on ``device`` when that is a GPU (timed
    as ``evaluate``; the intervals as ``intervals``). The intervals' resample draws start once the GEMM passes
    are done, in a background thread, while the point metrics, curves and lists are made: drawn beside the GEMM
    on the same cores, they held back its BLAS threads, which split the work evenly (the whole evaluation came
    out slower when measured at COCO 5k with 10,000 resamples). ``cache_dir`` (the cache folder, DATA/cache, or
    None): where the resamples' counts are kept between evaluations (:mod:`cca_bench.resample_cache`): the
    next run on a split of the same size reads them instead of drawing them (same numbers)."""
    from cca_bench import stats
    from cca_bench.metrics import fold_counts
    from cca_bench.retrieved import TOP_K

    if not isinstance(run, RunOptions):  # evaluation takes its own options, nothing wider
        raise TypeError(f"score takes RunOptions, not {type(run).__name__}")
    gemm_device = None if torch_device(device) == "cpu" else torch_device(device)
    n_img = embeddings[0][0].shape[0]  # dense arrays or scipy CSR rows (cca_bench.sparse_rows)
    per_seed = timed(
        timings,
        "evaluate",
        lambda: [
            fold_counts(  # the first seed's top-10 from the same blocks
                ei, et, image_index, distance, folds, device=gemm_device, top=TOP_K if s == 0 else 0
            )
            for s, (ei, et) in enumerate(embeddings)
        ],
    )
    draws = None  # drawn while the point metrics, curves and lists below are made (no GEMM left to hold back)
    if run.bootstrap is not None and folds >= 1 and n_img % folds == 0:
        draws = stats.ResampleDraws([n_img // folds] * folds, run.bootstrap, run.ci_seed, cache_dir)
    try:
        return _summaries(per_seed, image_index, n_img, run, timings, draws, len(embeddings))
    finally:
        if draws is not None:
            draws.close()


def _summaries(per_seed, image_index, n_img: int, run: RunOptions, timings: dict, draws, n_seeds: int) -> dict:
    """:func:`score`'s record from the tie counts (and first seed's top lists) ``per_seed``; ``draws``: the
    intervals' resample draws, under way (a :class:`cca_bench.stats.ResampleDraws`) or None."""
    from cca_bench import stats
    from cca_bench.retrieved import fold_top_lists

    ties = run.ties
    ranks = stats.stack_seeds([stats.from_fold_ranks(p, image_index, n_img, ties) for p in per_seed])
    out = {
        "ties": ties,
        "metrics": stats.point_metrics(ranks),
        "recall_curve": recall_curves(per_seed, ties=ties),
        "_ranks": ranks,
        "_top10": fold_top_lists(per_seed[0], image_index, n_img),
        "degenerate_queries": {
            task: int(sum(int(np.count_nonzero(f[2 + d])) for p in per_seed for f in p))
            for d, task in enumerate(stats.TASKS)
        },
    }
    if run.bootstrap is not None:
        out["ci"], mc = timed(
            timings, "intervals", lambda: stats.bootstrap_ci_mc(ranks, run.bootstrap, 0.95, run.ci_seed, draws)
        )
        out["ci_method"] = stats.ci_method(run.bootstrap, 0.95, run.ci_seed) | {"mc_error": mc}
    if n_seeds > 1:
        out |= seed_spread(stats.per_seed_metrics(ranks))
    return out


def recall_curves(per_seed: list, k_max: int = 50, ties: str = DEFAULT) -> dict:
    """R@1..R@k_max of both directions under ``ties``, averaged over folds, then over seeds (``fold_counts``
    output per seed)."""
    from cca_bench.metrics import TASK_NAMES, fold_curves

    return dict(zip(TASK_NAMES, np.mean([fold_curves(p, k_max, ties) for p in per_seed], axis=0).tolist()))


def seed_spread(per_seed: list[dict]) -> dict:
    """``seed_metrics`` (one metrics record per seed) and ``seed_sd`` (their standard deviation, ddof 1, per
    metric and for ``rsum``), and a note when every seed gave the same numbers."""
    from cca_bench.stats import rsum_of

    sd = {t: {m: float(np.std([p[t][m] for p in per_seed], ddof=1)) for m in per_seed[0][t]} for t in per_seed[0]}
    out = {"seed_metrics": per_seed, "seed_sd": sd | {"rsum": float(np.std([rsum_of(p) for p in per_seed], ddof=1))}}
    if all(p == per_seed[0] for p in per_seed):
        out["seed_note"] = f"the {len(per_seed)} seeds gave identical results: this method is deterministic here"
    return out
