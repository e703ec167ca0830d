"""The two layouts the suite always read: a Karpathy ``dataset.json`` folder and the Kiros / VSE++ precomp folder."""

from __future__ import annotations

from pathlib import Path

from cca_bench.datasets.layouts import LAYOUTS

PRECOMP_SPLITS = ("train", "dev", "val", "test", "testall")


def _karpathy_files(folder: Path) -> list[str]:
    return ["dataset.json"] if (folder / "dataset.json").is_file() else []


def _precomp_files(folder: Path) -> list[str]:
    return [f"{s}_caps.txt" for s in PRECOMP_SPLITS if (folder / f"{s}_caps.txt").is_file()]


@LAYOUTS.register(
    "karpathy",
    detect=_karpathy_files,
    help="Karpathy split JSON (dataset.json) and its images",
    tree="""
NAME/
  dataset.json            {"images": [{"filename", "split", "sentences": [{"raw", "tokens"}]}]}
  vgg_feats.mat           optional: Karpathy's VGG features (image encoder vgg_karpathy)
  images/*.jpg            or beside dataset.json
""",
)
def load_karpathy_layout(folder: Path, name: str, cache_dir: Path | None = None):
    from cca_bench.datasets.karpathy import load_karpathy_folder

    return load_karpathy_folder(folder, name=name, cache_dir=cache_dir)


@LAYOUTS.register(
    "precomp",
    detect=_precomp_files,
    help="Kiros / VSE++ precomputed features: {split}_caps.txt + {split}_ims.npy",
    tree="""
NAME/
  train_caps.txt  train_ims.npy     one caption a line; one row per image (or per caption, repeated)
  dev_caps.txt    dev_ims.npy       the val split
  test_caps.txt   test_ims.npy
  testall_caps.txt testall_ims.npy  optional (COCO 5k)
""",
)
def load_precomp_layout(folder: Path, name: str, cache_dir: Path | None = None):
    from cca_bench.datasets.precomp import load_precomp_folder

    return load_precomp_folder(folder, name=name)
