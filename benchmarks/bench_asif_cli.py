"""ASIF with COCO's 414k train captions as anchors, fitted and scored by the real commands (generate, run_benchmark,
search) on a COCO-size dataset written to disk in the Kiros / VSE++ ``precomp`` layout.

The dataset (``--images`` train images x ``--per`` captions: 82,800 x 5 = 414,000 anchor pairs; a dev split and
a ``test`` split of ``--test-images`` images x ``--per`` captions) is generated under a fresh folder below
``--root`` (not the repository's data/): each image draws two of ``--topics`` latent topics, its ``--dx``-d
features are the topics' random centres plus noise, and each caption takes words of the image's two topics'
word lists and random words, all real GloVe words from the builtin ``glove50`` vocabulary (the caption features
are their mean vectors), so that retrieval is learnable but far from solved. Then, each as a subprocess of
this repository's cca_bench with ``--data-root`` / ``--results-root`` under that folder:

    python -m cca_bench generate asif NAME glove50_precomp
    python -m cca_bench run_benchmark asif NAME test glove50_precomp
    python -m cca_bench search asif NAME glove50_precomp --text CAPTION -k 10

with the defaults (every train caption an anchor, top-k 800, the default intervals). Each step's wall time and
the peak resident memory of its own process (``os.wait4``'s rusage, not the largest child so far) are recorded;
the metrics, intervals and the run's internal timings are read from the stored run JSON. Appends a section to
benchmarks/REPORT_scale.md.

    PYTHONPATH=$PWD python benchmarks/bench_asif_cli.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.report_section import append, machine_line

REPO = Path(__file__).resolve().parents[1]
REPORT = Path(__file__).with_name("REPORT_scale.md")
NAME = "cocosize"  # the dataset folder's name under the data root
FEATURES = "glove50_precomp"
TOPIC_WORDS = 20  # words in each topic's list
VOCAB = 30_000  # the most frequent GloVe words (alphabetic, 3+ letters) the captions draw from
WORDS = (5, 3, 2)  # words per caption from the first topic, the second topic, the whole vocabulary


def vocabulary() -> np.ndarray:
    """The first ``VOCAB`` alphabetic words of 3+ letters of the builtin glove50 table (frequency order)."""
    from cca_bench.features.text import load_glove50

    words = [w for w in load_glove50(REPO / "data").words if w.isalpha() and len(w) >= 3]
    return np.array(words[:VOCAB])


def write_split(folder: Path, split: str, n_images: int, per: int, centres, topic_words, vocab, rng) -> None:
    """``{split}_ims.npy`` (n_images, dx) float32 and ``{split}_caps.txt`` (n_images * per lines, image order)."""
    topics = rng.integers(0, len(centres), (n_images, 2))
    ims = centres[topics[:, 0]] + 0.6 * centres[topics[:, 1]]
    ims += 0.5 * rng.standard_normal(ims.shape, dtype=np.float32)
    np.save(folder / f"{split}_ims.npy", ims.astype(np.float32))
    cap_topics = np.repeat(topics, per, axis=0)
    parts = [
        topic_words[cap_topics[:, 0, None], rng.integers(0, TOPIC_WORDS, (len(cap_topics), WORDS[0]))],
        topic_words[cap_topics[:, 1, None], rng.integers(0, TOPIC_WORDS, (len(cap_topics), WORDS[1]))],
        rng.integers(0, len(vocab), (len(cap_topics), WORDS[2])),
    ]
    idx = rng.permuted(np.concatenate(parts, axis=1), axis=1)  # word order does not matter to mean vectors
    with open(folder / f"{split}_caps.txt", "w") as f:
        f.writelines(" ".join(row) + "\n" for row in vocab[idx])


def make_dataset(folder: Path, args) -> dict:
    """Write the train / dev / test splits; returns what the report says of them."""
    rng = np.random.default_rng(args.seed)
    vocab = vocabulary()
    centres = rng.standard_normal((args.topics, args.dx), dtype=np.float32)
    topic_words = rng.integers(0, len(vocab), (args.topics, TOPIC_WORDS))
    folder.mkdir(parents=True)
    for split, n in (("train", args.images), ("dev", args.dev_images), ("test", args.test_images)):
        write_split(folder, split, n, args.per, centres, topic_words, vocab, rng)
    size = sum(p.stat().st_size for p in folder.iterdir())
    return {"vocab": len(vocab), "bytes": size}


def run_step(argv: list[str], log: Path) -> dict:
    """Run ``python -m cca_bench ARGV`` on this repository; (seconds, peak RSS of that process, stdout)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cca_bench", *argv], stdout=out, stderr=subprocess.STDOUT, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    text = log.read_text()
    if proc.returncode:
        sys.exit(f"step failed (exit {proc.returncode}): cca_bench {' '.join(argv)}\n{text[-3000:]}")
    print(f"{argv[0]}: {seconds:.1f} s, peak RSS {usage.ru_maxrss / 1024**2:.2f} GB", flush=True)
    return {"argv": argv, "seconds": seconds, "rss_gb": usage.ru_maxrss / 1024**2, "out": text}


def stored_run(out: str) -> dict:
    """The run JSON whose path ``run_benchmark`` printed (``run stored in PATH (run id ...)``)."""
    path = re.search(r"run stored in (\S+) \(run id", out)
    if path is None:
        sys.exit("run_benchmark printed no 'run stored in' line")
    return json.loads(Path(path.group(1)).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=82_800, help="train images (anchors: images x per)")
    ap.add_argument("--per", type=int, default=5, help="captions per image")
    ap.add_argument("--dev-images", type=int, default=5_000)
    ap.add_argument("--test-images", type=int, default=5_000)
    ap.add_argument("--dx", type=int, default=512, help="image feature width")
    ap.add_argument("--topics", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()), help="a fresh folder is made here")
    ap.add_argument("--keep", action="store_true", help="keep the generated data and results")
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="asif_cli_", dir=args.root))
    roots = ["--data-root", str(work / "data"), "--results-root", str(work / "results")]
    try:
        start = time.perf_counter()
        data = make_dataset(work / "data" / NAME, args)
        made = time.perf_counter() - start
        print(f"dataset: {made:.1f} s, {data['bytes'] / 1024**3:.2f} GB in {work / 'data' / NAME}", flush=True)
        query = (work / "data" / NAME / "test_caps.txt").open().readline().strip()
        steps = [
            run_step(["generate", "asif", NAME, FEATURES, *roots], work / "generate.log"),
            run_step(["run_benchmark", "asif", NAME, "test", FEATURES, *roots], work / "run_benchmark.log"),
            run_step(["search", "asif", NAME, FEATURES, "--text", query, "-k", "10", *roots], work / "search.log"),
        ]
        record = stored_run(steps[1]["out"])
        write(args, made, data, steps, record, query)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def hits_own_image(search_out: str) -> int | None:
    """Rank (1-based) of test image 0, the query caption's own, in the search table; None if absent."""
    rows = [line for line in search_out.splitlines() if line.startswith("|") and "---" not in line][1:]
    for rank, line in enumerate(rows, 1):
        if re.search(r"\btest/0\b", line):
            return rank
    return None


def label(argv: list[str]) -> str:
    """A step's command as the report shows it: the roots left out, the search text named, not quoted."""
    shown = argv[: argv.index("--data-root")]
    return " ".join("CAPTION" if i and shown[i - 1] == "--text" else a for i, a in enumerate(shown))


def interval(record: dict) -> str:
    """``95% percentile bootstrap over test images (...), 10000 resamples`` from the record's ``ci_method``."""
    m = record.get("ci_method") or {}
    if not m:
        return "no interval stored"
    return f"{100 * m['level']:g}% {m['method']}, {m['resamples']} resamples"


def metric_cells(record: dict, task: str) -> str:
    """``R@1 [lo, hi]`` cells of one task from the run record (metrics and their intervals)."""
    m, ci = record["metrics"][task], (record.get("ci") or {}).get(task, {})
    cells = []
    for key in ("R@1", "R@5", "R@10", "median_rank"):
        iv = ci.get(key)
        band = f" [{iv[0]:.1f}, {iv[1]:.1f}]" if isinstance(iv, (list, tuple)) and len(iv) == 2 else ""
        cells.append(f"{m[key]:.1f}{band}")
    return " | ".join(cells)


def write(args, made: float, data: dict, steps: list[dict], record: dict, query: str) -> None:
    """Append this run's section to the report."""
    n_anchors = args.images * args.per
    n_img, n_cap = record["n_images"], record["n_captions"]
    top_k = record["params"]["top_k"]
    dense_gb = 4 * (n_img + n_cap) * n_anchors / 1024**3
    csr_gb = ((n_img + n_cap) * top_k * (4 + 4) + 8 * (n_img + n_cap + 2)) / 1024**3
    timings = {k: v for k, v in (record.get("timings") or {}).items() if isinstance(v, (int, float))}
    rank = hits_own_image(steps[2]["out"])
    cmd = (
        f"PYTHONPATH=$PWD python benchmarks/bench_asif_cli.py --images {args.images} --per {args.per} "
        f"--dev-images {args.dev_images} --test-images {args.test_images} --dx {args.dx} --topics {args.topics} "
        f"--seed {args.seed}"
    )
    lines = [
        "",
        f"## ASIF with {n_anchors:,} anchors scored by run_benchmark (bench_asif_cli.py)",
        "",
        f"`{cmd}` {machine_line()}.",
        "",
        f"Dataset `{NAME}` in the precomp layout ({data['bytes'] / 1024**3:.2f} GB, written in {made:.0f} s under "
        f"a temporary data root): train {args.images:,} images x {args.per} captions = {n_anchors:,} pairs, dev "
        f"{args.dev_images:,} images, test {n_img:,} images x {n_cap // n_img} = {n_cap:,} captions. Images: "
        f"{args.dx}-d, two of {args.topics} random topic centres plus noise. Captions: "
        f"{sum(WORDS)} GloVe words each ({WORDS[0]} from the first topic's {TOPIC_WORDS}-word list, {WORDS[1]} "
        f"from the second's, {WORDS[2]} from the {data['vocab']:,} most frequent words); features "
        f"`{FEATURES}` (mean GloVe 6B 50-d vectors; the `.npy` rows). Every step below is a separate "
        "`python -m cca_bench` process with the defaults: every train caption is an anchor (no `--anchors`), "
        f"top-k {top_k}, exponent {record['params']['exponent']:g}, intervals as stored.",
        "",
        "| step | seconds | peak RSS of the process (GB) |",
        "|---|---:|---:|",
        *(f"| `{label(s['argv'])}` | {s['seconds']:.1f} | {s['rss_gb']:.2f} |" for s in steps),
        "",
        "Inside run_benchmark (the run record's timings): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        + ".",
        "",
        f"Relative representations of the test split: {n_img + n_cap:,} rows x {n_anchors:,} anchors would take "
        f"{dense_gb:.1f} GB dense (float32); as CSR ({top_k} non-zeros a row) {csr_gb:.2f} GB.",
        "",
        f"Metrics (%, ranks) read from the stored run `{record['run_id']}`: point estimate [{interval(record)}]:",
        "",
        "| task | R@1 | R@5 | R@10 | median rank |",
        "|---|---|---|---|---|",
        f"| image annotation | {metric_cells(record, 'image_annotation')} |",
        f"| image search | {metric_cells(record, 'image_search')} |",
        "",
        f"`search --text CAPTION` with test caption 0 ({query!r}): its own image (test/0) "
        + (f"at rank {rank} of the top 10." if rank else "not in the top 10."),
        "",
    ]
    append(args.report, lines)


if __name__ == "__main__":
    main()
