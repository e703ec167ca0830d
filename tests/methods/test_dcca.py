"""Deep CCA: its loss is the suite's own linear CCA's sum of correlations, seeded training, save/load, bad input."""

import numpy as np
import pytest
from aligner_data import Features, assert_round_trip, paired

from cca_bench.errors import UserError
from cca_bench.methods.cca import RegularizedCCA
from cca_bench.methods.dcca import DeepCCA, cca_loss


def test_loss_is_minus_the_sum_of_linear_cca_correlations():
    import torch

    rng = np.random.default_rng(0)
    z = rng.standard_normal((300, 3))
    h1 = np.hstack([z, rng.standard_normal((300, 5))]) @ rng.standard_normal((8, 8))
    h2 = np.hstack([z + 0.5 * rng.standard_normal((300, 3)), rng.standard_normal((300, 3))]) @ rng.standard_normal(
        (6, 6)
    )
    loss = cca_loss(torch.from_numpy(h1), torch.from_numpy(h2), eps=0.0)
    ref = RegularizedCCA(reg=0, cov_precision="float64", device="cpu").fit(h1, h2)
    assert float(-loss) == pytest.approx(float(ref.canonical_correlations_.sum()), abs=1e-5)
    assert float(-loss) == pytest.approx(float(ref.projection_correlations_.sum()), abs=1e-5)


def data():
    x, y, index = paired(n_img=120, per=2, dx=10, dy=6, seed=4)
    train = Features(x[:80], y[:160], index[:160])
    val = Features(x[80:], y[160:], index[160:] - 80)
    return train, val


def small(**kw):
    return DeepCCA(
        **{
            "dim": 4,
            "hidden": 16,
            "train_batch_size": 40,
            "epochs": 4,
            "patience": 2,
            "device": "cpu",
            "num_threads": 1,
            "progress": False,
            **kw,
        }
    )


def test_training_is_seeded_and_keeps_the_best_val_epoch():
    train, val = data()
    a, b = small().fit_features(train, val), small().fit_features(train, val)
    np.testing.assert_array_equal(a.embed_images(val), b.embed_images(val))
    rsums = [h["val_rsum"] for h in a.history_]
    assert a.best_epoch_ == int(np.argmax(rsums)) + 1
    assert all(h["loss"] < 0 for h in a.history_)  # minus a sum of correlations
    c = small(random_state=1).fit_features(train, val)
    assert not np.array_equal(a.embed_images(val), c.embed_images(val))


def test_save_load_bit_for_bit(tmp_path):
    train, val = data()
    model = small(epochs=2).fit_features(train, val)
    back = assert_round_trip(model, DeepCCA, tmp_path, val)
    assert back.history_ == model.history_ and back.best_epoch_ == model.best_epoch_


def test_batch_not_above_output_is_a_user_error():
    with pytest.raises(UserError, match="train_batch_size=32 must exceed dim=32"):
        DeepCCA(dim=32, train_batch_size=32).check_params()
    with pytest.raises(UserError, match="lr must be"):
        DeepCCA(lr=0).check_params()
