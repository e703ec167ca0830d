"""What `generate cca --cv` costs next to one fit: synthetic Flickr-sized features, default 100-point grid.

    python benchmarks/cv_grid_cost.py [--images 20000] [--dx 768] [--dy 300]

Prints a markdown report: one fit (covariance pass + one solve), the grid (one covariance pass, one solve
per reg, one val evaluation per point) and what refitting every point would cost. Torch is imported and
warmed up before timing, so the numbers are the work itself.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def feature_set(n_img: int, dx: int, dy: int, seed: int):
    """5 captions per image sharing 40 latent dimensions with it through heavy noise."""
    from cca_bench.features.store import FeatureSet

    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(9).standard_normal((2, 40, max(dx, dy)))
    z, index = rng.standard_normal((n_img, 40)), np.repeat(np.arange(n_img), 5)
    x = z @ mix[0, :, :dx] + rng.standard_normal((n_img, dx))
    y = z[index] @ mix[1, :, :dy] + 8 * rng.standard_normal((5 * n_img, dy))
    return FeatureSet(x.astype(np.float32), y.astype(np.float32), index)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    from cca_bench import linalg
    from cca_bench.cv import grid_search
    from cca_bench.methods.cca import RegularizedCCA
    from cca_bench.metrics import evaluate_retrieval

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20000)
    p.add_argument("--dx", type=int, default=768)
    p.add_argument("--dy", type=int, default=300)
    a = p.parse_args()
    train, val = feature_set(a.images, a.dx, a.dy, 0), feature_set(1000, a.dx, a.dy, 1)
    RegularizedCCA(n_components=10).fit_features(feature_set(200, a.dx, a.dy, 2))  # import and warm up torch
    fit = seconds(lambda: RegularizedCCA(n_components=100, reg=0.01).fit_features(train))
    m = RegularizedCCA().moments(train.images, train.texts, train.image_index)
    solve = seconds(lambda: linalg.solve_cca(m, 0.01))
    model = RegularizedCCA(n_components=300, reg=0.01).fit_moments(m)
    evaluate = seconds(lambda: evaluate_retrieval(model.embed_images(val), model.embed_texts(val), val.image_index))
    _, report = grid_search(RegularizedCCA, train, val, {}, {})
    n = len(report["rows"])
    print(
        f"## CV grid cost\n\ntrain: {len(train.texts)} captions of {a.images} images, dx={a.dx}, dy={a.dy}; "
        f"val: 1000 images, 5000 captions; grid: {report['grid']}\n"
    )
    print("| what | seconds |\n|---|---|")
    print(f"| one fit (covariances + one solve) | {fit:.2f} |\n| one solve (per reg) | {solve:.2f} |")
    print(f"| one val evaluation (k=300) | {evaluate:.2f} |")
    print(f"| CV grid, {n} points: covariances | {report['seconds']['moments']:.2f} |")
    print(f"| CV grid, {n} points: total | {report['seconds']['total']:.2f} |")
    print(f"| refitting every point instead (estimate: {n} fits + {n} evaluations) | {n * (fit + evaluate):.0f} |")


if __name__ == "__main__":
    main()
