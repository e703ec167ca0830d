"""Tests for the builtin shapes dataset: determinism, captions that match their scenes, options."""

import numpy as np
import pytest

from cca_bench.datasets import shapes
from cca_bench.errors import UserError

WORD_COLOUR = {w: c for c, (_, words) in shapes.COLOURS.items() for w in words}
WORD_SHAPE = {w: s for s, words in shapes.SHAPES.items() for w in words}
WORD_SIZE = {w: s for s, words in shapes.SIZES.items() for w in words}


@pytest.fixture(scope="module")
def ds():
    return shapes.build_shapes(None, n_train="300", n_val=50, n_test=100, image_size=64, seed=3)


def test_sizes_configurable(ds):
    assert [ds.split(n).n_images for n in ("train", "val", "test")] == [300, 50, 100]
    assert all(s.n_captions == 5 * s.n_images for s in ds.splits.values())
    image = ds.split("val").load_image(7)
    assert image.mode == "RGB" and image.size == (64, 64)


def test_deterministic_captions_and_pixels(ds):
    again = shapes.build_shapes(None, n_train=300, n_val=50, n_test=100, image_size=64, seed=3)
    for name, s in ds.splits.items():
        assert again.split(name).captions == s.captions
        assert again.split(name).fingerprint() == s.fingerprint()
    for i in (0, 1, 42):
        assert np.array_equal(np.asarray(again.split("test").load_image(i)), np.asarray(ds.split("test").load_image(i)))
    other = shapes.build_shapes(None, n_train=0, n_val=0, n_test=100, image_size=64, seed=4)
    assert other.split("test").captions != ds.split("test").captions


def test_five_distinct_captions_per_image(ds):
    for s in ds.splits.values():
        assert np.array_equal(np.bincount(s.image_index), np.full(s.n_images, 5))
        for i in range(s.n_images):
            assert len(set(s.captions[5 * i : 5 * i + 5])) == 5


def test_splits_disjoint(ds):
    ids = [set(ds.split(n).image_ids) for n in ("train", "val", "test")]
    assert sum(map(len, ids)) == len(set().union(*ids))
    rows = np.concatenate([ds.split(n).image_rows for n in ("train", "val", "test")])
    assert np.array_equal(rows, np.arange(450))


def test_caption_words_match_the_scene(ds):
    for name, s in ds.splits.items():
        for i in range(s.n_images):
            objs = shapes.scene(3, name, i)
            for tokens in s.tokens[5 * i : 5 * i + 5]:
                assert {WORD_COLOUR[t] for t in tokens if t in WORD_COLOUR} == {o.colour for o in objs}
                assert {WORD_SHAPE[t] for t in tokens if t in WORD_SHAPE} == {o.shape for o in objs}
                assert {WORD_SIZE[t] for t in tokens if t in WORD_SIZE} <= {o.size for o in objs}


def test_pixels_match_the_scene(ds):
    """The pixel at each object's centre has the object's colour."""
    s = ds.split("train")
    for i in range(20):
        image = np.asarray(s.load_image(i)).astype(int)
        cell = 64 / shapes.GRID
        for o in shapes.scene(3, "train", i):
            y, x = int((o.row + 0.5 + o.dy) * cell), int((o.col + 0.5 + o.dx) * cell)
            assert np.abs(image[y, x] - shapes.COLOURS[o.colour][0]).max() < 20, (i, o)


def test_binding_and_order_twins_occur(ds):
    """Scenes with the same colour and shape words but other bindings or places exist in one split."""
    kinds = set()
    for i in range(1, 300, 2):
        a, b = shapes.scene(3, "train", i - 1), shapes.scene(3, "train", i)
        assert a != b
        same_words = sorted(o.colour for o in a) == sorted(o.colour for o in b) and sorted(
            o.shape for o in a
        ) == sorted(o.shape for o in b)
        if b == shapes.swap_colours(a) and {(o.colour, o.shape) for o in a} != {(o.colour, o.shape) for o in b}:
            kinds.add("swap_colours")
            assert same_words
        if b == shapes.mirror(a):
            kinds.add("mirror")
            assert same_words
    assert kinds == {"swap_colours", "mirror"}


def test_subset_loader(ds):
    s = ds.split("test").subset(np.array([5, 2]))
    assert s.image_ids == ["test-00005", "test-00002"]
    assert np.array_equal(np.asarray(s.load_image(1)), np.asarray(ds.split("test").load_image(2)))


@pytest.mark.parametrize(
    "options", [{"n_trian": 5}, {"n_train": "many"}, {"n_test": -1}, {"image_size": 8}, {"seed": 1.5}]
)
def test_bad_options_raise(options):
    with pytest.raises(UserError, match="shapes"):
        shapes.build_shapes(None, **options)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(UserError, match="n_trian.*n_train"):
        shapes.build_shapes(None, n_trian=5)
