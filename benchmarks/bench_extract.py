"""Image feature extraction speed: a plain eager fp32 loop against the suite's encoder path, per encoder and
precision, beside the flop bound at the machine's measured GEMM rates. Writes benchmarks/REPORT_extract.md.

    python benchmarks/bench_extract.py                 # 64 synthetic 500 x 375 JPEGs, 2 interleaved rounds
    python benchmarks/bench_extract.py --images 128 --rounds 3
    python benchmarks/bench_extract.py --images 384 --rounds 3 --encoders vgg19

"Before" is what most reference scripts do: PIL decode, resize the short side to 256, centre-crop 224,
normalise, batches of 32 through the eager fp32 NCHW network under ``torch.no_grad``, timed from building
the network and loading its weight file, as every suite row is (a second "before" row times the loop alone).
"After" is the suite's image encoder with the options the CLI gives it (``--precision auto`` and the named
precisions), on the same files, in the same process, rounds interleaved (before, after, before, after, ...) so
that the load of this
shared machine hits both alike; the 1-minute load average is reported with each row. VGG19 runs with random
weights (the same flops as ImageNet's); EfficientNet-Lite0 with its shipped weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_jpegs(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """n photo-like 500 x 375 JPEGs (smooth colour fields, shapes, noise) and a Karpathy-style dataset.json."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    paths, entries = [], []
    yy, xx = np.mgrid[0:375, 0:500] / 375.0
    for i in range(n):
        base = np.stack([np.sin(xx * rng.uniform(1, 6) + rng.uniform(0, 6)) for _ in range(3)], -1) * 80 + 128
        im = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            x0, y0 = rng.integers(0, 450), rng.integers(0, 330)
            draw.ellipse(
                [x0, y0, x0 + rng.integers(20, 150), y0 + rng.integers(20, 150)],
                fill=tuple(int(v) for v in rng.integers(0, 255, 3)),
            )
        path = folder / "images" / f"{i:04d}.jpg"
        im.save(path, quality=90)
        paths.append(path)
        entries.append({"filename": f"{i:04d}.jpg", "imgid": i, "split": "test", "sentences": [{"raw": "a photo"}]})
    (folder / "dataset.json").write_text(json.dumps({"dataset": folder.name, "images": entries}))
    return paths


def gemm_rates(n: int = 2048, reps: int = 3) -> dict:
    """Best-of-``reps`` square GEMM rates in GFLOP/s (2 n^3 flops) in torch: fp32 and bf16."""
    import torch

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        a @ b
        best = min(_seconds(lambda: a @ b) for _ in range(reps))
        out[name] = 2 * n**3 / best / 1e9
    return out


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def flops_per_image(model, forward, size: int) -> float:
    """Multiply-adds x 2 of convolutions and linear layers in one forward pass at ``size`` (hooks)."""
    import torch

    total = [0]

    def hook(m, inputs, out):
        if isinstance(m, torch.nn.Conv2d):
            total[0] += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            total[0] += 2 * out.numel() * m.in_features

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    with torch.no_grad():
        forward(torch.zeros(1, size, size, 3, dtype=torch.uint8))
    for h in handles:
        h.remove()
    return float(total[0])


def plain_loop(paths: list[Path], forward, batch: int = 32) -> np.ndarray:
    """The reference-script loop: PIL decode, resize 256, centre crop 224, uint8 NHWC batch -> ``forward``."""
    from PIL import Image

    out = []
    for s in range(0, len(paths), batch):
        ims = []
        for p in paths[s : s + batch]:
            im = Image.open(p).convert("RGB")
            w, h = im.size
            im = im.resize((256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256), Image.BILINEAR)
            w, h = im.size
            left, top = (w - 224) // 2, (h - 224) // 2
            ims.append(np.asarray(im.crop((left, top, left + 224, top + 224))))
        out.append(forward(np.stack(ims)))
    return np.concatenate(out)


BEFORE = "before: eager fp32 NCHW loop"
PRELOADED = "before, weights loaded outside the timing"
NAMES = {"vgg19": "VGG19", "efficientnet_lite0": "EfficientNet-Lite0"}


def plain_vgg19(path: Path):
    """VGG19 as a reference script builds it: the network (randomly initialised, as torchvision does), then
    ``load_state_dict(torch.load(file))``."""
    import torch

    from cca_bench.features import cnn

    model = cnn.vgg("vgg19")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def vgg19_eager(model, device: str = "cpu"):
    """uint8 NHWC -> fc7 in eager fp32 NCHW (contiguous), as the plain loop feeds it (on ``device``)."""
    import torch

    from cca_bench.features.imagenet import CNNS, normalise

    model = model.to(device)

    def forward(x):
        with torch.no_grad():
            t = normalise(torch.from_numpy(x).to(device), CNNS["vgg19"]).contiguous()  # NCHW memory
            return model.extract(t).cpu().numpy()

    return forward


def lite0_eager(model):
    import torch

    def forward(x):
        with torch.no_grad():
            t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().float()  # NCHW memory
            return model.net.extract_features((t - 127.0) / 128.0).mean(dim=(2, 3)).numpy()

    return forward


def suite(encoder: str, dataset, data_root: Path, precision: str, device: str = "cpu"):
    """The suite's encoder as the CLI calls it (``--no-cache``, ``-q``, ``--device``)."""
    from cca_bench.features.image_pipeline import ImagePipeline
    from cca_bench.features.options import FeatureOptions

    options = FeatureOptions(precision=precision, progress=False, device=device)
    pipe = ImagePipeline(encoder, options, data_root, {})
    kwargs = pipe.kwargs(None)
    split = dataset.split("test")
    return lambda: pipe.encoder(split, dataset, **kwargs), kwargs.get("precision")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)).min())


def measure(label: str, fn, n: int, rows: dict, results: dict) -> None:
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    feats = fn()
    dt = time.perf_counter() - t0
    rows.setdefault(label, []).append((n / dt, load0, os.getloadavg()[0]))
    results[label] = feats
    print(f"{label}: {n / dt:.2f} img/s (load {load0:.1f})", file=sys.stderr, flush=True)


def run(args) -> str:
    import torch

    from cca_bench.datasets import get_dataset
    from cca_bench.features import accel, cnn, image
    from cca_bench.features.image import lite0_features_model

    work = Path(args.workdir)
    data_root = work / "data"
    paths = make_jpegs(data_root / "synthjpeg", args.images)
    dataset = get_dataset("synthjpeg", data_root)
    rates, flops, plans = {}, {}, {}
    if "vgg19" in args.encoders:
        torch.manual_seed(0)
        vgg = cnn.vgg("vgg19").eval()
        for m in vgg.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        vgg_file = data_root / "weights" / "vgg19-dcbb9e9d.pth"
        vgg_file.parent.mkdir(exist_ok=True)
        torch.save(vgg.state_dict(), vgg_file)
        vgg_eager = vgg19_eager(vgg)
        flops["vgg19"] = flops_per_image(vgg, lambda x: vgg_eager(x.numpy()), 224)
        plans["vgg19"] = [
            (BEFORE, lambda: plain_loop(paths, vgg19_eager(plain_vgg19(vgg_file)))),
            (PRELOADED, lambda: plain_loop(paths, vgg_eager)),
        ] + [(f"suite --precision {p}", suite("vgg19", dataset, data_root, p)) for p in ("auto", "fp32", "bf16")]
        if torch.cuda.is_available():  # the same comparison on the GPU: eager fp32 there against the suite's paths
            plans["vgg19"] += [
                (f"{BEFORE} (cuda)", lambda: plain_loop(paths, vgg19_eager(plain_vgg19(vgg_file), "cuda")))
            ]
            plans["vgg19"] += [
                (f"suite --device cuda --precision {p}", suite("vgg19", dataset, data_root, p, "cuda"))
                for p in ("auto", "fp32")
            ]
    if "efficientnet_lite0" in args.encoders:  # its packages are not needed for a VGG19-only run
        lite0 = lite0_features_model()
        image.lite0_onnx_path()  # the one-time ONNX export is not part of any timing
        lite_eager = lite0_eager(lite0)
        flops["efficientnet_lite0"] = flops_per_image(lite0, lambda x: lite_eager(x.numpy()), 224)
        plans["efficientnet_lite0"] = [
            (BEFORE, lambda: plain_loop(paths, lite0_eager(lite0_features_model()))),
            (PRELOADED, lambda: plain_loop(paths, lite_eager)),
        ] + [(f"suite --precision {p}", suite("efficientnet_lite0", dataset, data_root, p)) for p in ("auto", "bf16")]
    split = dataset.split("test")
    decode = lambda: np.concatenate(
        list(image.batches(split, lambda s, i: image.lite0_pixels(s, i), range(len(paths)), 64))
    )  # noqa: E731
    rows, results, precisions = {}, {}, {}
    for r in range(args.rounds):
        for name, rate in gemm_rates().items():  # each round: the load moves
            rates.setdefault(name, []).append(rate)
        for enc, plan in plans.items():
            for label, item in plan:
                fn, prec = item if isinstance(item, tuple) else (item, "fp32")
                precisions[(enc, label)] = prec
                measure(f"{enc} | {label}", fn, len(paths), rows, results)
        measure("decode + crop only (suite reader, thread pool)", decode, len(paths), rows, results)
    rates = {k: float(np.median(v)) for k, v in rates.items()}
    return report(args, rows, results, rates, flops, precisions, accel.cpu_flags(), len(paths))


def report(args, rows, results, rates, flops, precisions, flags, n) -> str:
    import torch

    native = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f") if f in flags]
    lines = [
        "# Image feature extraction: before / after (bench_extract.py)",
        "",
        f"{n} synthetic 500 x 375 JPEGs, {args.rounds} interleaved rounds, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, CPU flags: {', '.join(native) or 'no AVX-512 / bf16'}; "
        + (
            f"GPU: {torch.cuda.get_device_name(0)} (its rows: 'x before' divides by the eager fp32 loop on the GPU; "
            "no flop bound is given for them)."
            if torch.cuda.is_available()
            else "no GPU."
        ),
        f"Measured GEMM rates (2048 square, torch, median of one measurement per round, under the same load): "
        f"fp32 {rates['fp32']:.0f} GFLOP/s, bf16 {rates['bf16']:.0f} GFLOP/s.",
        "The machine is shared with other jobs: the load column is the 1-minute load average before each run "
        "(2 cores; above 2 the cores were shared and times are upper bounds). Best and median of the rounds.",
        "",
        "| encoder | path | precision | img/s best | img/s median | x before | flop bound img/s | % of bound | load "
        "| min cosine to fp32 suite |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, vals in rows.items():
        if " | " not in label:
            continue
        enc, path = label.split(" | ")
        speeds = sorted(v[0] for v in vals)
        on_gpu = "cuda" in path
        before = np.median([v[0] for v in rows[f"{enc} | {BEFORE}" + (" (cuda)" if on_gpu else "")]])
        prec = precisions.get((enc, path)) or "fp32"
        bound = float("nan") if on_gpu else rates["bf16" if prec == "bf16" else "fp32"] * 1e9 / flops[enc]
        fp32_paths = [p for (e, p), v in precisions.items() if e == enc and v == "fp32" and p.startswith("suite")]
        ref = results.get(f"{enc} | {fp32_paths[0]}" if fp32_paths else f"{enc} | {BEFORE}")
        cos = cosine(results[label], ref) if ref is not None else float("nan")
        loads = ", ".join(f"{v[1]:.1f}" for v in vals)
        lines.append(
            f"| {enc} | {path} | {prec} | {speeds[-1]:.2f} | {np.median(speeds):.2f} | "
            f"{np.median(speeds) / before:.2f} | {bound:.1f} | {100 * np.median(speeds) / bound:.0f}% | "
            f"{loads} | {cos:.6f} |"
        )
    dec = [v[0] for v in rows.get("decode + crop only (suite reader, thread pool)", [])]
    lines += [
        "",
        "Flops per image (conv + linear multiply-adds x 2; VGG19's often quoted 19.6 G are multiply-adds): "
        + ", ".join(f"{NAMES[enc]} {f / 1e9:.3g} GFLOP" for enc, f in flops.items())
        + ". The bound is the GEMM rate of the "
        "row's precision divided by that (depthwise convolutions of EfficientNet never reach GEMM rates).",
        f"Decoding + cropping alone (the suite's reader with JPEG draft decoding, in its thread pool): "
        f"median {np.median(dec):.1f} img/s; the pool overlaps it with the network.",
        "'before' features come from a full-size decode and differ slightly from the suite's (draft decode): "
        "the cosine column compares with the suite's fp32 features. Like for like, both the 'before' row and "
        "every suite row include loading the weights from their file (VGG19: 548 MB; a real extraction pays it "
        "once per split); 'x before' divides by that row. The row 'before, weights loaded outside the timing' "
        "is the loop alone, for reference.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workdir", default=None, help="where the JPEGs and random VGG19 weights go (default: a temp dir)")
    p.add_argument("--threads", type=int, default=0, help="torch threads for both paths (default: torch's own)")
    p.add_argument(
        "--encoders", nargs="+", default=list(NAMES), choices=list(NAMES), help="which networks to time (default: both)"
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "REPORT_extract.md")
    args = p.parse_args(argv)
    from cca_bench.fsio import write_atomic

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        args.workdir = args.workdir or tmp
        text = run(args)
    write_atomic(args.out, lambda f: f.write(text.encode()))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
