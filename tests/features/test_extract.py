"""Resumable extraction for the builtin encoders (EfficientNet-Lite0, tiny images): a run killed after its
first shard resumes there, and its result equals an uninterrupted run's."""

import functools

import numpy as np
import pytest
from PIL import Image

from cca_bench.features import image, store

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def five_images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for k, (h, w) in enumerate([(60, 90), (80, 50), (40, 40), (70, 100), (33, 65)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"{k}.jpg")
        paths.append(tmp_path / f"{k}.jpg")
    return paths


@pytest.mark.parametrize("encoder", ["efficientnet_lite0", "tinyimage"])
def test_builtin_encoders_resume_from_finished_shards(encoder, five_images, tmp_path, monkeypatch, make_file_split):
    monkeypatch.setattr(store, "SHARD_SIZE", 2)  # 5 images: shards [0, 2), [2, 4), [4, 5)
    monkeypatch.setenv(image.BACKEND_ENV, "torch")  # no ONNX export in a unit test
    monkeypatch.setattr(image, "lite0_runner", functools.lru_cache()(image.lite0_runner))  # built once here
    real, ranges, fail = image.batches, [], [True]

    def batches(split, pixels, indices, batch_size, bar=None):
        ranges.append((indices.start, indices.stop))
        if fail[0] and indices.start == 2:
            raise KeyboardInterrupt  # killed while the second shard is computed
        yield from real(split, pixels, indices, batch_size, bar)

    monkeypatch.setattr(image, "batches", batches)
    encode = getattr(image, f"encode_{encoder}")
    sp, ds = make_file_split(five_images)
    shards = tmp_path / "shards"
    with pytest.raises(KeyboardInterrupt):
        encode(sp, ds, batch_size=1, progress=False, shard_dir=shards)
    assert sorted(p.name for p in shards.iterdir()) == ["rows_000000000_000000002.json", "rows_000000000_000000002.npy"]
    ranges.clear()
    fail[0] = False
    resumed = encode(sp, ds, batch_size=1, progress=False, shard_dir=shards)
    assert ranges == [(2, 4), (4, 5)]  # the finished shard is read back, not recomputed
    fresh = encode(sp, ds, batch_size=1, progress=False)
    assert resumed.shape == (5, image.LITE0_DIM if encoder == "efficientnet_lite0" else 768)
    np.testing.assert_array_equal(resumed, fresh)


def test_a_resumed_extraction_counts_the_kept_shards_in_its_bar(
    five_images, tmp_path, monkeypatch, make_file_split, capsys
):
    """The bar of a resumed extraction reaches the split's size: the shards read back from the interrupted run
    count as done (it ended at 3/5, as if images were missing). Planted bug caught: compute_sharded not given
    the bar (the kept shard never counted)."""
    import re

    monkeypatch.setattr(store, "SHARD_SIZE", 2)
    sp, ds = make_file_split(five_images)
    shards = tmp_path / "shards"
    real, fail = image.batches, [True]

    def batches(split, pixels, indices, batch_size, bar=None):
        if fail[0] and indices.start == 2:
            raise KeyboardInterrupt
        yield from real(split, pixels, indices, batch_size, bar)

    monkeypatch.setattr(image, "batches", batches)
    with pytest.raises(KeyboardInterrupt):
        image.encode_tinyimage(sp, ds, batch_size=1, progress=False, shard_dir=shards)
    fail[0] = False
    capsys.readouterr()
    image.encode_tinyimage(sp, ds, batch_size=1, progress=True, shard_dir=shards)
    states = re.findall(r"(\d+)/5", capsys.readouterr().err)
    assert states and states[-1] == "5", states
