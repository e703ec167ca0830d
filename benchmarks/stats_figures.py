"""The statistical figures docs/statistics.md states, each measured here by simulation or on real fits.

Writes benchmarks/REPORT_stats_figures.md:

1. Coverage of 95% intervals over test sets drawn from a known population (300 images, 5 captions each sharing a
   Beta(0.5, 0.5) success probability; true t2i R@1 = 50): image-level bootstrap vs caption-level bootstrap;
   and the image-level percentile interval of the mean rank (skewed ranks, true value from a 200,000-image draw).
2. False-positive rate of the paired sign-flip test over pairs of runs drawn from the same per-image
   probabilities (120 images): the exact image-level null.
3. Seed-only null on real fits: 16 seeds of kcca with random Fourier features (256) on shapes (600 train /
   300 test images, glove50_tinyimage): the single-seed paired test over all 120 seed pairs, and the seed-aware
   test of disjoint 5-seed runs (300 random splits) (the same design as tests/test_seed_stats.py).
4. Monte Carlo error of a quickstart-like interval (synthetic, 1,000 images, R-sum near 100): the SD of the
   R-sum bounds over 20 bootstrap seeds at 1,000 and at 10,000 resamples, and the error each run records.

    python benchmarks/stats_figures.py        # several minutes on 2 cores
"""

from __future__ import annotations

import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cca_bench import metrics, seed_stats, stats  # noqa: E402


def _ranks(p, caps, rng, miss=(1, 100)):
    idx = np.repeat(np.arange(len(p)), caps)
    t2i = np.where(rng.random(len(idx)) < p[idx], 0, rng.integers(*miss, len(idx)))
    i2t = np.where(rng.random(len(p)) < p, 0, rng.integers(*miss, len(p)))
    return stats.query_ranks(i2t, t2i, idx)


def coverage(sets: int = 400, n: int = 300, caps: int = 5) -> dict:
    rng = np.random.default_rng(0)
    big = _ranks(rng.beta(0.5, 0.5, 200_000), 1, rng, (1, 400))
    true_mean = stats.point_metrics(big)["image_search"]["mean_rank"]
    image = caption = mean_rank = 0
    for _ in range(sets):
        r = _ranks(rng.beta(0.5, 0.5, n), caps, rng, (1, 400))
        ci = stats.bootstrap_ci(r, 250, 0.95, int(rng.integers(1 << 30)))
        lo, hi = ci["image_search"]["R@1"]
        image += lo <= 50 <= hi
        mlo, mhi = ci["image_search"]["mean_rank"]
        mean_rank += mlo <= true_mean <= mhi
        hits = r.hit("t2i", 1)[0]  # per-caption hit (probability) at rank 1
        clo, chi = np.percentile(100 * hits[rng.integers(0, len(hits), (250, len(hits)))].mean(1), [2.5, 97.5])
        caption += clo <= 50 <= chi
    return {"sets": sets, "image": image / sets, "caption": caption / sets, "mean_rank": mean_rank / sets}


def null_fpr(pairs: int = 300, n: int = 120) -> float:
    rng = np.random.default_rng(1)
    rejected = 0
    for _ in range(pairs):
        p = rng.beta(2, 3, n)
        rejected += (
            stats.paired_p_value(_ranks(p, 5, rng), _ranks(p, 5, rng), "rsum", 500, int(rng.integers(1 << 30)))[0]
            < 0.05
        )
    return rejected / pairs


def kcca_seeds(seeds: int = 16, data_root: Path | None = None) -> list:
    """The test-split ranks of ``seeds`` kcca models (random Fourier features, 256 of them) that differ only in
    their seed, on builtin shapes features encoded once (also tests/test_seed_stats.py's fixture)."""
    from cca_bench.benchmark import Options, load_dataset, pipelines
    from cca_bench.config import FeatureSpec
    from cca_bench.methods.kcca import KernelCCA

    opts = Options.of(
        data_root=data_root or Path(tempfile.mkdtemp()),
        progress=False,
        dataset_options={"n_train": "600", "n_val": "30", "n_test": "300"},
    )
    dataset = load_dataset("shapes", opts)
    pipes = pipelines(FeatureSpec.parse("glove50_tinyimage"), opts).fit(dataset)
    cache = opts.locations.cache_dir
    train, test = pipes.encode(dataset, "train", {}, cache), pipes.encode(dataset, "test", {}, cache)
    out = []
    for s in range(seeds):
        model = KernelCCA(kernel_map="rff", landmarks=256, random_state=s, device="cpu").fit_features(train)
        per_fold = metrics.fold_counts(model.embed_images(test), model.embed_texts(test), test.image_index, "cosine", 1)
        out.append(stats.from_fold_ranks(per_fold, test.image_index, len(test.images)))
    return out


def seed_null(rs: list) -> dict:
    s = len(rs)
    single = [stats.paired_test(rs[a], rs[b], "rsum", 2000, seed=a * s + b) for a in range(s) for b in range(a + 1, s)]
    rng = np.random.default_rng(0)
    aware = []
    for _ in range(300):
        order = rng.permutation(s)
        a, b = (stats.stack_seeds([rs[i] for i in order[k : k + 5]]) for k in (0, 5))
        aware.append(seed_stats.compare(a, b, "rsum")["p_value"] < 0.05)
    rsums = [stats.rsum_of(stats.point_metrics(r)) for r in rs]
    return {
        "single": np.mean([t["p_value"] < 0.05 for t in single]),
        "aware": float(np.mean(aware)),
        "seed_sd": float(np.std(rsums, ddof=1)),
        "paired_se": float(np.median([t["se"] for t in single])),
        "rsum": float(np.mean(rsums)),
    }


def mc_error() -> dict:
    rng = np.random.default_rng(0)
    p = rng.beta(0.6, 3.0, 1000)
    idx = np.arange(1000)
    t2i = np.where(rng.random(1000) < p, rng.integers(0, 3, 1000), rng.integers(3, 400, 1000))
    i2t = np.where(rng.random(1000) < p, rng.integers(0, 3, 1000), rng.integers(3, 400, 1000))
    ranks = stats.query_ranks(i2t, t2i, idx)
    out = {"rsum": stats.rsum_of(stats.point_metrics(ranks))}
    for b in (1000, 10000):
        runs = [stats.bootstrap_ci_mc(ranks, b, 0.95, seed) for seed in range(20)]
        bounds = np.array([ci["rsum"] for ci, _ in runs])
        out[b] = {
            "sd": bounds.std(0, ddof=1).tolist(),
            "recorded": np.mean([mc["rsum"] for _, mc in runs], 0).tolist(),
            "range_lo": [bounds[:, 0].min(), bounds[:, 0].max()],
        }
    return out


def main() -> None:
    cov, fpr, seeds, mc = coverage(), null_fpr(), seed_null(kcca_seeds()), mc_error()
    text = [
        f"# Statistical figures of docs/statistics.md (benchmarks/stats_figures.py, {date.today()})",
        "",
        f"1. Coverage of 95% intervals, {cov['sets']} simulated test sets of 300 images x 5 captions: t2i R@1 "
        f"image-level bootstrap {100 * cov['image']:.2f}%, caption-level bootstrap {100 * cov['caption']:.2f}%; "
        f"t2i mean rank, image-level percentile {100 * cov['mean_rank']:.2f}%.",
        f"2. Paired sign-flip test under an exact image-level null (300 pairs, 120 images): false-positive rate "
        f"{100 * fpr:.1f}% at alpha 0.05.",
        f"3. Seed-only null, 16 kcca random-feature seeds on shapes (R-sum {seeds['rsum']:.1f}, seed SD "
        f"{seeds['seed_sd']:.2f}, median paired SE of a single-seed pair {seeds['paired_se']:.2f}): single-seed "
        f"paired test rejects {100 * seeds['single']:.1f}% of the 120 pairs; seed-aware test of disjoint 5-seed "
        f"runs {100 * seeds['aware']:.1f}% of 300 splits (alpha 0.05).",
        f"4. Quickstart-like interval (synthetic, 1,000 images, R-sum {mc['rsum']:.1f}), SD of the R-sum bounds "
        f"over 20 bootstrap seeds / recorded Monte Carlo error: 1,000 resamples "
        f"{mc[1000]['sd'][0]:.2f}, {mc[1000]['sd'][1]:.2f} / {mc[1000]['recorded'][0]:.2f}, "
        f"{mc[1000]['recorded'][1]:.2f} (lower bound {mc[1000]['range_lo'][0]:.1f}-{mc[1000]['range_lo'][1]:.1f}); "
        f"10,000 resamples {mc[10000]['sd'][0]:.2f}, {mc[10000]['sd'][1]:.2f} / {mc[10000]['recorded'][0]:.2f}, "
        f"{mc[10000]['recorded'][1]:.2f} (lower bound {mc[10000]['range_lo'][0]:.1f}-{mc[10000]['range_lo'][1]:.1f}).",
        "",
    ]
    out = ROOT / "benchmarks" / "REPORT_stats_figures.md"
    out.write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
