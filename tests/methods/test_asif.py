"""ASIF against a dense brute-force computation, streaming blocks, save/load bit for bit, bad input, CV."""

import numpy as np
import pytest
from aligner_data import Features, assert_round_trip, paired

from cca_bench.errors import UserError
from cca_bench.methods import asif
from cca_bench.methods.asif import ASIF, relative_topk


def brute_force(queries, anchors, k, p, center):
    """Every cosine to every anchor pair (features centred on the anchor pairs' mean when ``center``), the k
    largest kept (ties: lower anchor first), max(v, 0)^p, L2."""
    shift = anchors.astype(np.float64).mean(0) if center else 0.0
    q, a = queries - shift, anchors - shift
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    sims = q.astype(np.float64) @ a.T.astype(np.float64)
    out = np.zeros_like(sims)
    for row, s in enumerate(sims):
        keep = np.argsort(-s, kind="stable")[:k]
        out[row, keep] = np.maximum(s[keep], 0) ** p
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.mark.parametrize(
    "k, p, center", [(5, 8.0, False), (12, 1.0, False), (90, 2.5, False), (5, 8.0, True), (30, 3.0, True)]
)
def test_asif_equals_dense_brute_force(k, p, center, monkeypatch):
    monkeypatch.setattr(asif, "BLOCK", 7)  # several anchor blocks, so the running top-k merge is exercised
    x, y, index = paired(n_img=30, per=3, dx=6, dy=4, seed=5)
    model = ASIF(top_k=k, exponent=p, center=center, device="cpu").fit(x, y, index)
    qx, qy, _ = paired(n_img=11, per=2, dx=6, dy=4, seed=6)
    # an anchor image with 3 captions is 3 anchor pairs with one similarity: the brute force sees all 90 pairs
    want_i, want_t = brute_force(qx, x[index], k, p, center), brute_force(qy, y, k, p, center)
    np.testing.assert_allclose(model.embed_images(qx), want_i, atol=2e-6)
    np.testing.assert_allclose(model.embed_texts(qy), want_t, atol=2e-6)
    scores = model.embed_images(qx) @ model.embed_texts(qy).T
    np.testing.assert_allclose(scores, want_i @ want_t.T, atol=1e-5)


def test_relative_topk_streams_blocks():
    rng = np.random.default_rng(0)
    q, a = rng.standard_normal((9, 5)).astype(np.float32), rng.standard_normal((50, 5)).astype(np.float32)
    v, i = relative_topk(q, a, 6, block=8, query_block=4)
    s = q @ a.T
    want = np.sort(s, axis=1)[:, ::-1][:, :6]
    np.testing.assert_allclose(v, want, rtol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(s, i, 1), v, rtol=1e-6)


def test_anchor_sample_and_round_trip(tmp_path):
    x, y, index = paired(n_img=30, per=3, dx=6, dy=4)
    model = ASIF(top_k=10, anchors=40, random_state=3).fit(x, y, index)
    assert model.n_anchors_ == 40 and model.anchor_texts_.shape == (40, 4)
    assert model.image_starts_[-1] == 40 and len(model.anchor_images_) == len(model.image_starts_) - 1
    back = assert_round_trip(model, ASIF, tmp_path, Features(x, y, index))
    np.testing.assert_array_equal(back.image_starts_, model.image_starts_)
    assert back.get_params() == model.get_params()


def test_bad_input():
    x, y, index = paired(n_img=10, per=2)
    with pytest.raises(UserError, match="top_k=21 exceeds the number of anchors \\(20\\)"):
        ASIF(top_k=21).fit(x, y, index)
    with pytest.raises(UserError, match="top_k=6 exceeds the number of anchors \\(5\\)"):
        ASIF(top_k=6, anchors=5).check_params(10, 20)
    with pytest.raises(UserError, match="^top_k must be"):
        ASIF(top_k=0).check_params()
    with pytest.raises(UserError, match="^exponent must be"):
        ASIF(exponent=0).check_params()
    with pytest.raises(UserError, match="anchors=30 exceeds the 20 train pairs"):
        ASIF(top_k=3, anchors=30).check_params(10, 20)


def test_cv_one_topk_pass_matches_separate_fits():
    from cca_bench.cv import search_grid

    x, y, index = paired(n_img=50, per=2, dx=6, dy=4, seed=2)
    train, val = Features(x[:35], y[:70], index[:70]), Features(x[35:], y[70:], index[70:] - 35)
    model, report = search_grid(ASIF, train, val, {"top_k": [3, 10, 500], "exponent": [1.0, 4.0]}, {})
    assert report["grid"]["top_k"] == [3, 10, 70]  # clipped to the 70 anchors
    best = report["best"]
    alone = ASIF(top_k=best["top_k"], exponent=best["exponent"]).fit(train.images, train.texts, train.image_index)
    np.testing.assert_array_equal(model.embed_images(val), alone.embed_images(val))
    np.testing.assert_array_equal(model.embed_texts(val), alone.embed_texts(val))


def test_centring_keeps_an_all_zero_caption_informative():
    x, y, index = paired(n_img=20, per=2, dx=6, dy=4)
    zero = np.zeros((1, 4), np.float32)  # a caption whose words all lack vectors
    assert not ASIF(top_k=5, center=False).fit(x, y, index).embed_texts(zero).any()
    emb = ASIF(top_k=5).fit(x, y, index).embed_texts(zero)
    assert np.count_nonzero(emb) == 5 and np.linalg.norm(emb) == pytest.approx(1, abs=1e-6)
