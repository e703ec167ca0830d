"""Small paired views for the aligner tests: images x (n_img, dx), captions y (n_img * per, dy) sharing a
linear signal with their image, and the image of each caption."""

import numpy as np


def paired(n_img=40, per=3, dx=7, dy=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_img, dx)) + 0.5
    index = np.repeat(np.arange(n_img), per)
    mix = rng.standard_normal((dx, dy))
    y = x[index] @ mix + 0.5 * rng.standard_normal((len(index), dy)) + 1.0
    return x.astype(np.float32), y.astype(np.float32), index


class Features:
    """The FeatureSet fields the methods read."""

    def __init__(self, images, texts, image_index):
        self.images, self.texts, self.image_index = images, texts, np.asarray(image_index)


def same_up_to_sign(a, b, atol):
    """Columns of a equal those of b, each up to its sign."""
    signs = np.sign((a * b).sum(0))
    np.testing.assert_allclose(a * signs, b, atol=atol)


def assert_round_trip(model, cls, tmp_path, features):
    """save + load gives bit-identical arrays and embeddings."""
    model.save(tmp_path / "m")
    back = cls.load(tmp_path / "m")
    for k, v in vars(model).items():
        if k.endswith("_") and isinstance(v, np.ndarray):
            np.testing.assert_array_equal(getattr(back, k), v)
            assert getattr(back, k).dtype == v.dtype
    np.testing.assert_array_equal(back.embed_images(features), model.embed_images(features))
    np.testing.assert_array_equal(back.embed_texts(features), model.embed_texts(features))
    return back
