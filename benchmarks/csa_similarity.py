"""Is CSA's correlation-weighted similarity one of `cca --eig-power`'s? Numbers on a real split.

    python benchmarks/csa_similarity.py [--dataset openmoji] [--features minilm_efficientnet] [--data-root DIR]

CSA (Li et al., ICLR 2025; reference ``weighted_corr_sim``) scores ``sum_j rho_j x_j y_j`` where x, y are the
first ``dim`` canonical projections, each L2-normalised BEFORE the weighting. ``cca`` scales the projections
by ``rho ** eig_power`` and the harness normalises AFTER it (cosine). For a fixed image the CSA score of
caption y is ``sum_j rho_j x_j y_j / ||y||`` and the cosine at eig_power 1/2 is ``sum_j rho_j x_j y_j /
||rho^(1/2) y||``: the rankings agree only when every rho_j is equal. CSA is exactly the harness's ``dot``
distance on the embedding ``rho^(1/2) * x / ||x||``, which ``cca --similarity csa`` produces (padded so that
every distance ranks alike: ``cca_bench.methods.cca.csa_embedding``). This script fits linear CCA (defaults) on
the train split,
then evaluates on the test split: cosine at eig_power 0, 0.5, 1, 2, CSA by hand and through ``--similarity
csa``, and counts the test queries whose
top-ranked item differs between CSA and cosine at eig_power 0.5. Prints a markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np


def features(dataset: str, spec: str, data_root: str):
    from pathlib import Path

    from cca_bench.benchmark import Options, load_dataset, pipelines
    from cca_bench.config import FeatureSpec

    opts = Options.of(data_root=Path(data_root), progress=False)
    ds = load_dataset(dataset, opts)
    pipes = pipelines(FeatureSpec.parse(spec), opts).fit(ds)  # the path generate takes (its build_features is gone)
    return (pipes.encode(ds, s, {}, opts.locations.cache_dir) for s in ("train", "test"))


def main() -> None:
    from cca_bench.methods.cca import RegularizedCCA
    from cca_bench.methods.vse import r_sum
    from cca_bench.metrics import evaluate_retrieval

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="openmoji")
    p.add_argument("--features", default="minilm_efficientnet")
    p.add_argument("--data-root", default="data")
    args = p.parse_args()
    train, test = features(args.dataset, args.features, args.data_root)
    model = RegularizedCCA(eig_power=0.0).fit_features(train)
    x, y, rho = model.embed_images(test), model.embed_texts(test), model.canonical_correlations_
    rows = []
    for power in (0.0, 0.5, 1.0, 2.0):
        m = evaluate_retrieval(x * rho**power, y * rho**power, test.image_index)
        rows.append((f"cca cosine, eig_power {power:g}", r_sum(m)))
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    cx, cy = unit(x) * np.sqrt(rho), unit(y) * np.sqrt(rho)  # CSA: normalise, then weight; score by dot
    rows.append(
        (
            "CSA by hand (sum_j rho_j x_j y_j, unit projections, dot)",
            r_sum(evaluate_retrieval(cx, cy, test.image_index, distance="dot")),
        )
    )
    csa = RegularizedCCA(similarity="csa").fit_features(train)  # the suite's option, cosine as run_benchmark
    rows.append(
        (
            "cca --similarity csa (cosine)",
            r_sum(evaluate_retrieval(csa.embed_images(test), csa.embed_texts(test), test.image_index)),
        )
    )
    half_x, half_y = unit(x * np.sqrt(rho)), unit(y * np.sqrt(rho))
    csa_s, half_s = cx @ cy.T, half_x @ half_y.T
    differ_i2t = int((csa_s.argmax(1) != half_s.argmax(1)).sum())
    differ_t2i = int((csa_s.argmax(0) != half_s.argmax(0)).sum())
    print(
        f"{args.dataset} test, {args.features}, linear CCA defaults (k = {len(rho)}, rho {rho[0]:.3f} .. "
        f"{rho[-1]:.3f})\n\n| scoring | test R-sum |\n|---|---|"
    )
    for name, value in rows:
        print(f"| {name} | {value:.1f} |")
    print(
        f"\nTop-1 differs between CSA and cosine at eig_power 0.5: {differ_i2t} of {len(x)} image queries, "
        f"{differ_t2i} of {len(y)} caption queries."
    )


if __name__ == "__main__":
    main()
