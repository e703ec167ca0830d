"""Tests for the builtin openmoji dataset: contents, splits, determinism and rendering."""

import pickle
import unicodedata

import numpy as np
import pytest

from cca_bench.datasets import openmoji
from cca_bench.errors import UserError


@pytest.fixture(scope="module")
def ds():
    return openmoji.build_openmoji(None)


def test_split_sizes(ds):
    assert set(ds.splits) == {"train", "val", "test"}
    assert ds.split("test").n_images == 1000
    assert ds.split("val").n_images == 300
    assert ds.split("train").n_images > 300


def test_one_to_three_nonempty_captions_per_image(ds):
    for s in ds.splits.values():
        counts = np.bincount(s.image_index, minlength=s.n_images)
        assert counts.min() >= 1 and counts.max() <= 3
        assert all(c.strip() and c == c.lower() for c in s.captions)
        assert all(tokens for tokens in s.tokens)
        for i in range(s.n_images):  # captions of one image are distinct
            caps = [s.captions[j] for j in np.flatnonzero(s.image_index == i)]
            assert len(set(caps)) == len(caps)


def test_known_emoji_and_names(ds):
    table = dict(openmoji.emoji_table())
    assert table["1F600"][0] == "grinning face"
    assert "man technologist" in table["1F468-200D-1F4BB"]
    assert openmoji.normalise(":Bosnia_&_Herzegovina:") == "bosnia and herzegovina"
    assert openmoji.normalise(":Curaçao:") == "curacao"
    assert openmoji.normalise(":keycap_#:") == "keycap number sign"


def test_no_skin_tones_no_private_use(ds):
    for s in ds.splits.values():
        for image_id in s.image_ids:
            chars = openmoji.id_to_emoji(image_id)
            assert not any(ord(c) in openmoji.SKIN_TONES for c in chars), image_id
            assert not any(unicodedata.category(c) == "Co" for c in chars), image_id


def test_splits_disjoint_and_cover_the_global_order(ds):
    rows = [ds.split(n).image_rows for n in ("train", "val", "test")]
    ids = [set(ds.split(n).image_ids) for n in ("train", "val", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert np.array_equal(np.sort(np.concatenate(rows)), np.arange(sum(map(len, rows))))


def test_deterministic_across_builds(ds):
    openmoji.emoji_table.cache_clear()
    again = openmoji.build_openmoji(None)
    for name, s in ds.splits.items():
        assert again.split(name).fingerprint() == s.fingerprint()


def test_rendered_image_is_coloured_and_sized(ds):
    test = ds.split("test")
    image = test.load_image(0)
    assert image.mode == "RGB" and image.size == (224, 224)
    pixels = np.asarray(image).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50
    assert (pixels.min(axis=1) < 200).mean() > 0.1  # ink covers a good part of the canvas
    assert (np.ptp(pixels.astype(int), axis=1) > 60).any()  # saturated pixels: colour, not grey


def test_size_option_and_pickled_loader():
    small = openmoji.build_openmoji(None, size="64").split("val")
    loader = pickle.loads(pickle.dumps(small.loader))  # worker processes receive it pickled
    assert loader(3).size == (64, 64)
    assert np.array_equal(np.asarray(loader(3)), np.asarray(small.load_image(3)))


def test_skin_tone_variants_follow_their_base():
    ds = openmoji.build_openmoji(None, skin_tones="true")
    where = {i: name for name, s in ds.splits.items() for i in s.image_ids}
    toned = [i for i in where if i != openmoji.base_id(i)]
    assert toned
    assert all(where[i] == where.get(openmoji.base_id(i), where[i]) for i in toned)


@pytest.mark.parametrize("options", [{"colour": 1}, {"size": "big"}, {"size": 4}, {"skin_tones": "maybe"}])
def test_bad_options_raise(options):
    with pytest.raises(UserError, match="openmoji"):
        openmoji.build_openmoji(None, **options)
