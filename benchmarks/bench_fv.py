"""Speed and memory of Fisher-vector captions: encoding rate, and CCA on 18,000-d captions at Flickr30k size.

Writes benchmarks/REPORT_fv.md. Each stage runs in its own subprocess (peak RSS from /proc/self/status VmHWM):

- ``speed``: word2vec-like vectors (300-d, random clusters), Zipf-distributed captions of 8-16 words; fit a GMM and
  an HGLMM with K = 30 on the train words, then encode captions with gmm, hglmm and gmm+hglmm (captions/s).
- ``encode``: Flickr30k size, 145,000 captions -> 18,000-d GMM Fisher vectors (K = 30, D = 300), streamed block by
  block into a cache .npy (``features.store.load_or_stream``, the path the CLI takes): 10.4 GB on disk.
- ``fit``: RegularizedCCA on those captions (memory-mapped) and 29,000 x 4,096 images (memory-mapped), five
  captions per image, through the streaming covariance pass.

    python benchmarks/bench_fv.py --quick        # small sizes: checks that everything runs
    /usr/bin/time -v python benchmarks/bench_fv.py   # the full run (about 14 GB RAM peak, 11 GB of disk)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIM, K, VOCAB, CLUSTERS = 300, 30, 30_000, 200


def peak_rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def word_table(seed: int = 0):
    """A word2vec-like table: VOCAB words of DIM dims around CLUSTERS random centres."""
    from cca_bench.features.text import WordVectors

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32) * 0.15
    vectors = centres[rng.integers(0, CLUSTERS, VOCAB)] + 0.08 * rng.standard_normal((VOCAB, DIM), dtype=np.float32)
    return WordVectors("word2vec_like", [f"w{i}" for i in range(VOCAB)], vectors)


def captions(n: int, seed: int) -> list[list[str]]:
    """n captions of 8-16 words, word ranks Zipf-distributed (exponent 1.1) as in real captions."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, 17, n)
    ranks = np.minimum(rng.zipf(1.1, lengths.sum()), VOCAB) - 1
    words = np.array([f"w{i}" for i in range(VOCAB)])[ranks].tolist()
    out, start = [], 0
    for m in lengths:
        out.append(words[start : start + m])
        start += m
    return out


def stage_speed(args) -> dict:
    from cca_bench.features.fisher import FisherVectorEncoder

    table, train, test = word_table(), captions(args.train, 1), captions(args.encode, 2)
    out = {"stage": "speed", "train_captions": len(train), "encoded_captions": len(test), "K": K, "D": DIM}
    for pooling in ("gmm", "hglmm", "gmm+hglmm"):
        t0 = time.perf_counter()
        enc = FisherVectorEncoder(table, pooling, K).fit(train)
        t1 = time.perf_counter()
        for _ in enc.transform_blocks(test):
            pass
        t2 = time.perf_counter()
        out[pooling] = {
            "fit_s": round(t1 - t0, 2),
            "encode_s": round(t2 - t1, 2),
            "width": enc.n_features_,
            "captions_per_s": round(len(test) / (t2 - t1), 1),
            "fit_words": enc.n_fit_words_,
        }
    out["peak_rss_gb"] = round(peak_rss_gb(), 2)
    return out


def stage_encode(args) -> dict:
    from cca_bench.features.fisher import FisherVectorEncoder
    from cca_bench.features.store import load_or_stream

    work = Path(args.workdir)
    caps = captions(args.n_captions, 3)
    t0 = time.perf_counter()
    enc = FisherVectorEncoder(word_table(), "gmm", K).fit(caps)
    t1 = time.perf_counter()
    key = {"kind": "text", "encoder": "bench_fv", "n": len(caps), "fingerprint": enc.fingerprint()}
    arr, hit = load_or_stream(work, key, (len(caps), enc.n_features_), lambda: enc.transform_blocks(caps))
    t2 = time.perf_counter()
    (work / "texts.path").write_text(str(arr.filename))
    return {
        "stage": "encode",
        "n_captions": len(caps),
        "width": enc.n_features_,
        "fit_s": round(t1 - t0, 1),
        "encode_s": round(t2 - t1, 1),
        "captions_per_s": round(len(caps) / (t2 - t1), 1),
        "cached": hit,
        "file_gb": round(os.path.getsize(arr.filename) / 2**30, 2),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }


def stage_fit(args) -> dict:
    from cca_bench.methods.cca import RegularizedCCA

    work = Path(args.workdir)
    texts = np.load((work / "texts.path").read_text(), mmap_mode="r")
    if args.fit_captions:  # a prefix of the encoded captions (a shorter run; memory is mostly (dx + dy)^2)
        texts = texts[: args.fit_captions - args.fit_captions % 5]
    n_img = len(texts) // 5
    images_path = work / f"images_{n_img}x4096.npy"
    if not images_path.is_file():  # chunked, so the images never sit in memory either
        rng = np.random.default_rng(4)
        mm = np.lib.format.open_memmap(images_path, mode="w+", dtype=np.float32, shape=(n_img, 4096))
        for s in range(0, n_img, 4096):
            mm[s : s + 4096] = np.abs(rng.standard_normal((min(4096, n_img - s), 4096), dtype=np.float32))
        mm.flush()
        del mm
    images = np.load(images_path, mmap_mode="r")
    index = np.arange(len(texts)) // 5
    t0 = time.perf_counter()
    model = RegularizedCCA(n_components=128, reg=1e-3, chunk_rows=args.chunk_rows).fit(images, texts, x_index=index)
    t1 = time.perf_counter()
    return {
        "stage": "fit",
        "n_captions": len(texts),
        "n_images": n_img,
        "dx": images.shape[1],
        "dy": texts.shape[1],
        "chunk_rows": args.chunk_rows,
        "fit_s": round(t1 - t0, 1),
        "top_correlation": float(model.canonical_correlations_[0]),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }


STAGES = {"speed": stage_speed, "encode": stage_encode, "fit": stage_fit}


def run_stage(name: str, argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, __file__, "--stage", name, *argv], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {
            "stage": name,
            "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode,
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(results: list[dict], quick: bool) -> str:
    by = {r["stage"]: r for r in results}
    lines = [
        "# Fisher-vector captions: encoding speed and CCA on 18,000-d text\n",
        f"`python benchmarks/bench_fv.py{' --quick' if quick else ''}` on a 2-core machine without GPU, "
        "**shared with other jobs while it ran** (7 other sessions): absolute times are pessimistic and move "
        "by tens of percent. Peak RSS is each stage's own subprocess (VmHWM). Word vectors are random "
        f"word2vec-like {DIM}-d clusters, {VOCAB:,} words; captions 8-16 Zipf-distributed words.\n",
    ]
    s = by.get("speed", {})
    if "gmm" in s:
        lines += [
            f"## Encoding speed (K = {K}, D = {DIM}; mixtures fitted on {s['train_captions']:,} train captions, "
            f"{s['gmm']['fit_words']:,} sampled word occurrences)\n",
            "| pooling | width | mixture fit (s) | encode (s) | captions/s |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {p} | {s[p]['width']:,} | {s[p]['fit_s']} | {s[p]['encode_s']} | {s[p]['captions_per_s']:,} |"
            for p in ("gmm", "hglmm", "gmm+hglmm")
        ]
        lines += [
            f"\n{s['encoded_captions']:,} captions encoded; peak RSS {s['peak_rss_gb']} GB "
            "(HGLMM's fit starts from the GMM, so its time includes the GMM's).\n"
        ]
    e, f = by.get("encode", {}), by.get("fit", {})
    if "width" in e:
        lines += [
            f"## Flickr30k size: {e['n_captions']:,} captions -> {e['width']:,}-d GMM Fisher vectors\n",
            f"- GMM fit on the train words: {e['fit_s']} s; encoding streamed into the cache .npy "
            f"({e['file_gb']} GB on disk): {e['encode_s']} s, {e['captions_per_s']:,} captions/s; "
            f"peak RSS {e['peak_rss_gb']} GB (the whole array would be "
            f"{e['n_captions'] * e['width'] * 4 / 2**30:.1f} GB in float32).\n",
        ]
    if "fit_s" in f:
        lines += [
            f"- CCA fit (k = 128, reg = 1e-3) on {f['n_captions']:,} memory-mapped {f['dy']:,}-d captions and "
            f"{f['n_images']:,} x {f['dx']:,} memory-mapped images (five captions per image), chunks of "
            f"{f['chunk_rows']:,} rows: **{f['fit_s']} s, peak RSS {f['peak_rss_gb']} GB** (an n x {f['dy']:,} "
            f"float64 copy alone would be {f['n_captions'] * f['dy'] * 8 / 2**30:.1f} GB). Dominant memory: "
            "the float64 (dx + dy)^2 scatter and the dy x dy text covariance and its Cholesky factor.\n"
        ]
    for r in results:
        if "error" in r:
            lines.append(f"- stage {r['stage']} failed: {r['error']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=list(STAGES))
    p.add_argument("--quick", action="store_true", help="small sizes (a minute or two)")
    p.add_argument("--stages", default="speed,encode,fit")
    p.add_argument("--workdir", default="/tmp/cca_bench_fv")
    p.add_argument("--train", type=int, default=20_000)
    p.add_argument("--encode", type=int, default=5_000)
    p.add_argument("--n-captions", type=int, default=145_000)
    p.add_argument("--chunk-rows", type=int, default=4096)
    p.add_argument("--fit-captions", type=int, default=0, help="fit on the first N encoded captions only (0: all)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "REPORT_fv.md"))
    args = p.parse_args()
    if args.stage:
        print(json.dumps(STAGES[args.stage](args)))
        return
    if args.quick:
        args.train, args.encode, args.n_captions = 2_000, 1_000, 5_000
        args.workdir += "_quick"
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    argv = [
        "--workdir",
        args.workdir,
        "--train",
        str(args.train),
        "--encode",
        str(args.encode),
        "--n-captions",
        str(args.n_captions),
        "--chunk-rows",
        str(args.chunk_rows),
        "--fit-captions",
        str(args.fit_captions),
    ]
    results = []
    for name in args.stages.split(","):
        results.append(run_stage(name, argv))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    text = report(results, args.quick)
    from cca_bench.fsio import write_atomic

    write_atomic(Path(args.out), lambda fh: fh.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
