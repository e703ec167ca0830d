"""Fit and evaluation time of every method at Flickr30k size, and asif with COCO-size anchors; writes a report.

    python benchmarks/bench_methods.py [--images 29000] [--per 5] [--dx 4096] [--dy 300]
        [--methods cca,ridge,procrustes,pls,asif,dcca] [--coco-images 82783] [--out benchmarks/REPORT_methods.md]

Synthetic CNN-like data (as benchmarks/bench_kcca.py): a 64-d latent z; images ``relu(z A + noise)`` (dx,
non-negative like pooled CNN activations), captions ``z B + noise`` (dy), ``per`` captions per image; a test
split of 1,000 images x 5 captions from the same model. Each method runs in its own subprocess (peak RSS =
that run's): ``fit`` = ``fit_features`` on the train split (cca, ridge, procrustes, pls at their defaults;
asif at k = 800, p = 8 with 30,000 sampled train pairs as anchors, since the suite's dense evaluation holds
test captions x anchors floats; dcca for 2 epochs without early stopping, so its
row is per 2 epochs), ``embed`` = both test embeddings, ``evaluate`` = the suite's retrieval metrics.
The COCO row: ``--coco-images`` train images x 5 captions as asif anchors (414k pairs at the default), a
COCO-5k-size test split (5,000 images x 5 captions); the relative representations are streamed top-k
(:func:`cca_bench.methods.asif.relative_topk`) and the images x captions scores are one sparse product (the
suite's dense evaluation would need 25,000 x 414k floats, which ``embed_texts`` refuses).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULTS = {
    "dcca": {"epochs": 2, "patience": 2, "progress": False},
    "asif": {"top_k": 800, "exponent": 8.0, "anchors": 30000},
}  # dense evaluation: 5,000 x 30k floats


class Split:
    """The FeatureSet fields the methods read."""

    def __init__(self, images, texts, image_index):
        self.images, self.texts, self.image_index = images, texts, image_index


def data(n_img: int, per: int, dx: int, dy: int, seed: int) -> Split:
    """Images (n_img, dx) float32 >= 0, captions (n_img * per, dy) float32, image index (n_img * per,)."""
    rng = np.random.default_rng(seed)
    proj = np.random.default_rng(1234)  # the same views for train and test
    a = proj.standard_normal((64, dx)).astype(np.float32) / 8
    b = proj.standard_normal((64, dy)).astype(np.float32) / 8
    z = rng.standard_normal((n_img, 64)).astype(np.float32)
    images = np.maximum(z @ a + 1.0 * rng.standard_normal((n_img, dx), dtype=np.float32), 0)
    index = np.repeat(np.arange(n_img), per)
    texts = z[index] @ b + 3 * rng.standard_normal((len(index), dy), dtype=np.float32)
    return Split(images, texts, index)


def run_one(method: str, args) -> dict:
    """Fit ``method`` on the synthetic train split, embed and evaluate the test split; times in seconds."""
    from cca_bench.methods import load_all
    from cca_bench.metrics import evaluate_retrieval
    from cca_bench.registry import METHODS

    load_all()
    train, test = data(args.images, args.per, args.dx, args.dy, 0), data(1000, 5, args.dx, args.dy, 1)
    params = dict(DEFAULTS.get(method, {}))
    if "anchors" in params:
        params["anchors"] = min(params["anchors"], len(train.texts))
    model = METHODS.get(method)(**params)
    t0 = time.perf_counter()
    model.fit_features(train, test if method == "dcca" else None)
    t1 = time.perf_counter()
    emb_i, emb_t = model.embed_images(test), model.embed_texts(test)
    t2 = time.perf_counter()
    metrics = evaluate_retrieval(emb_i, emb_t, test.image_index)
    t3 = time.perf_counter()
    rsum = sum(metrics[t][f"R@{k}"] for t in metrics for k in (1, 5, 10))
    return {
        "method": method,
        "fit": t1 - t0,
        "embed": t2 - t1,
        "evaluate": t3 - t2,
        "width": emb_i.shape[1],
        "rsum": rsum,
        "label": model.params_label(),
    }


def run_coco(args) -> dict:
    """asif with COCO-size anchors: anchor storage, streamed top-k of a 5k-image / 25k-caption split, sparse scores."""
    from cca_bench.methods.asif import ASIF, finish, sparse_rows

    train, test = data(args.coco_images, 5, args.dx, args.dy, 0), data(5000, 5, args.dx, args.dy, 1)
    model = ASIF(top_k=800, exponent=8.0, device="cpu")
    t0 = time.perf_counter()
    model.fit_features(train)
    t1 = time.perf_counter()
    top_i = model.topk_images(test.images, 800)
    t2 = time.perf_counter()
    top_t = model.topk_texts(test.texts, 800)
    t3 = time.perf_counter()
    rel_i = sparse_rows(finish(top_i[0], 8.0), top_i[1], model.n_anchors_)
    rel_t = sparse_rows(finish(top_t[0], 8.0), top_t[1], model.n_anchors_)
    scores = (rel_i @ rel_t.T).toarray()  # (5000, 25000)
    t4 = time.perf_counter()
    # t2i R@1 from the scores: the caption's own image ranks first
    r1 = float(np.mean(scores.argmax(0) == test.image_index)) * 100
    return {
        "method": "asif (COCO-size anchors)",
        "anchors": model.n_anchors_,
        "fit": t1 - t0,
        "topk_images": t2 - t1,
        "topk_captions": t3 - t2,
        "sparse_scores": t4 - t3,
        "t2i_R@1": r1,
        "nnz_scores": int(np.count_nonzero(scores)),
    }


def child(argv: list[str]) -> dict:
    """Run this script on one method in a subprocess; its result plus the subprocess's peak RSS (GB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"method": argv[argv.index("--one") + 1], "error": out.stderr.strip().splitlines()[-1:]}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_gb"] = round(max(peak, before) / 1024**2, 2)  # ru_maxrss is in KB on Linux
    return result


def report(rows: list[dict], coco: dict | None, args) -> str:
    head = [
        f"# Fit and evaluation time of the methods ({time.strftime('%Y-%m-%d')})\n",
        f"Synthetic data (benchmarks/bench_methods.py): {args.images:,} train images x {args.per} captions = "
        f"{args.images * args.per:,} pairs, images {args.dx}-d (non-negative), captions {args.dy}-d; test "
        "1,000 images x 5 captions. Times in seconds on this machine (2 cores shared with other jobs: "
        "compare rows of one run, as ratios). Peak RSS is the largest so far among the subprocesses.\n",
        "| method | params | fit s | embed test s | evaluate s | embedding width | peak RSS GB | test R-sum |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            head.append(f"| {r['method']} | failed: {' '.join(r['error'])} | | | | | | |")
            continue
        head.append(
            f"| {r['method']} | {r['label']} | {r['fit']:.1f} | {r['embed']:.2f} | {r['evaluate']:.2f} | "
            f"{r['width']} | {r['peak_rss_gb']} | {r['rsum']:.1f} |"
        )
    if coco:
        anchors = f"{coco['anchors']:,}" if "anchors" in coco else f"{args.coco_images * 5:,}"
        head += [
            "",
            f"asif with {anchors} anchor pairs (COCO train size), a 5,000-image / "
            "25,000-caption test split, k = 800, p = 8:",
            "",
            "| step | seconds |",
            "|---|---|",
        ]
        if "error" in coco:
            head.append(f"| failed | {' '.join(coco['error'])} |")
        else:
            for k in ("fit", "topk_images", "topk_captions", "sparse_scores"):
                head.append(f"| {k} | {coco[k]:.1f} |")
            head += [
                "",
                f"Peak RSS {coco['peak_rss_gb']} GB; t2i R@1 {coco['t2i_R@1']:.1f}; "
                f"{coco['nnz_scores']:,} non-zero scores of {5000 * 25000:,}.",
            ]
    return "\n".join(head) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=29000)
    p.add_argument("--per", type=int, default=5)
    p.add_argument("--dx", type=int, default=4096)
    p.add_argument("--dy", type=int, default=300)
    p.add_argument("--methods", default="cca,ridge,procrustes,pls,asif,dcca")
    p.add_argument("--coco-images", type=int, default=82783, help="0: skip the COCO-size asif row")
    p.add_argument("--out", default="benchmarks/REPORT_methods.md")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_coco(args) if args.one == "coco" else run_one(args.one, args)))
        return
    common = [
        "--images",
        str(args.images),
        "--per",
        str(args.per),
        "--dx",
        str(args.dx),
        "--dy",
        str(args.dy),
        "--coco-images",
        str(args.coco_images),
    ]
    rows = []
    for method in args.methods.split(","):
        rows.append(child([*common, "--one", method]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    coco = child([*common, "--one", "coco"]) if args.coco_images else None
    if coco:
        print(json.dumps(coco), file=sys.stderr, flush=True)
    Path(args.out).write_text(report(rows, coco, args))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
