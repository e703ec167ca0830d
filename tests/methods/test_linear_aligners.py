"""Ridge, Procrustes and PLS against scikit-learn / SciPy references, save/load bit for bit, bad input."""

import numpy as np
import pytest
from aligner_data import Features, assert_round_trip, paired, same_up_to_sign

from cca_bench.errors import UserError
from cca_bench.methods.pls import PLSSVD
from cca_bench.methods.procrustes import Procrustes
from cca_bench.methods.ridge import RidgeMap


def l2(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("direction", ["image2text", "text2image"])
def test_ridge_equals_sklearn_ridge(center, direction):
    from sklearn.linear_model import Ridge

    x, y, index = paired()
    model = RidgeMap(reg=0.05, direction=direction, center=center, cov_precision="float64").fit(x, y, index)
    src, tgt = (x[index], y) if direction == "image2text" else (y, x[index])
    src64 = src.astype(np.float64)
    gram = src64 - src64.mean(0) if center else src64
    lam = np.linalg.eigvalsh(gram.T @ gram / (len(src) - 1))[-1]
    ref = Ridge(alpha=0.05 * lam * (len(src) - 1), fit_intercept=center).fit(src64, tgt.astype(np.float64))
    w = model.x_weights_ if direction == "image2text" else model.y_weights_
    np.testing.assert_allclose(w, ref.coef_.T, rtol=1e-7, atol=1e-9)
    # the embedding of a source row is the prediction minus the target mean (the target embeds centred)
    emb = model.transform_x(x) if direction == "image2text" else model.transform_y(y)
    src_rows = x if direction == "image2text" else y
    np.testing.assert_allclose(
        emb, ref.predict(src_rows.astype(np.float64)) - model_mean(model, direction), rtol=1e-5, atol=1e-5
    )


def model_mean(model, direction):
    return model.mean_y_ if direction == "image2text" else model.mean_x_


def test_ridge_normalize_fits_l2_rows():
    from sklearn.linear_model import Ridge

    x, y, index = paired(seed=3)
    model = RidgeMap(reg=0.1, normalize=True, cov_precision="float64").fit(x, y, index)
    src, tgt = l2(x[index].astype(np.float64)), l2(y.astype(np.float64))
    c = src - src.mean(0)
    lam = np.linalg.eigvalsh(c.T @ c / (len(c) - 1))[-1]
    ref = Ridge(alpha=0.1 * lam * (len(c) - 1)).fit(src, tgt)
    np.testing.assert_allclose(model.x_weights_, ref.coef_.T, rtol=1e-6, atol=1e-8)


def centred_scaled(a):
    a = a.astype(np.float64) - a.astype(np.float64).mean(0)
    return a / np.sqrt((a**2).sum() / (len(a) - 1))


def test_procrustes_pad_equals_scipy_on_padded_views():
    from scipy.linalg import orthogonal_procrustes

    x, y, index = paired(dx=7, dy=4)
    model = Procrustes(equalize="pad", cov_precision="float64").fit(x, y, index)
    a, b = centred_scaled(x[index]), centred_scaled(y)
    rot, _ = orthogonal_procrustes(a, np.hstack([b, np.zeros((len(b), 3))]))
    # only the first dy columns of the rotation meet the padded view's non-zero coordinates
    np.testing.assert_allclose(model.transform_x(x[index]), (a @ rot)[:, :4], atol=1e-5)
    np.testing.assert_allclose(model.transform_y(y), b, atol=1e-5)


def test_procrustes_pca_equals_scipy_on_principal_components():
    from scipy.linalg import orthogonal_procrustes

    x, y, index = paired(dx=7, dy=5, seed=1)
    k = 3
    model = Procrustes(n_components=k, cov_precision="float64").fit(x, y, index)
    a, b = centred_scaled(x[index]), centred_scaled(y)
    pa = np.linalg.eigh(a.T @ a)[1][:, ::-1][:, :k]
    pb = np.linalg.eigh(b.T @ b)[1][:, ::-1][:, :k]
    pa, pb = pa * np.sign(pa[np.abs(pa).argmax(0), range(k)]), pb * np.sign(pb[np.abs(pb).argmax(0), range(k)])
    rot, _ = orthogonal_procrustes(a @ pa, b @ pb)
    np.testing.assert_allclose(model.transform_x(x[index]), a @ pa @ rot, atol=1e-5)
    np.testing.assert_allclose(model.transform_y(y), b @ pb, atol=1e-5)
    q = model.x_weights_ * model.scales_[0]  # orthonormal columns once the scale is taken out
    np.testing.assert_allclose(q.T @ q, np.eye(k), atol=1e-10)


@pytest.mark.parametrize("scale", [False, True])
def test_pls_equals_sklearn_plssvd(scale):
    from sklearn.cross_decomposition import PLSSVD as Reference

    x, y, index = paired(seed=2)
    model = PLSSVD(n_components=3, scale=scale, cov_precision="float64").fit(x, y, index)
    ref = Reference(n_components=3, scale=scale).fit(x[index].astype(np.float64), y.astype(np.float64))
    ex, ey = ref.transform(x[index].astype(np.float64), y.astype(np.float64))
    same_up_to_sign(model.transform_x(x[index]), ex, atol=1e-4)
    same_up_to_sign(model.transform_y(y), ey, atol=1e-4)


@pytest.mark.parametrize(
    "cls, params",
    [
        (RidgeMap, {"direction": "text2image"}),
        (RidgeMap, {"normalize": True}),
        (Procrustes, {}),
        (Procrustes, {"equalize": "pad"}),
        (PLSSVD, {"n_components": 2, "scale": True}),
    ],
)
def test_save_load_bit_for_bit(tmp_path, cls, params):
    x, y, index = paired()
    model = cls(**params).fit(x, y, index)
    back = assert_round_trip(model, cls, tmp_path, Features(x, y, index))
    assert back.get_params() == model.get_params()


def test_bad_parameters_are_one_line_user_errors():
    x, y, index = paired(dx=7, dy=4)
    with pytest.raises(UserError, match="exceeds the narrower view's width 4"):
        Procrustes(n_components=5).fit(x, y, index)
    with pytest.raises(UserError, match="needs equalize='pca'"):
        Procrustes(n_components=2, equalize="pad").check_params()
    with pytest.raises(UserError, match="^direction must be one of"):
        RidgeMap(direction="sideways").check_params()
    with pytest.raises(UserError, match="reg must be"):
        RidgeMap(reg=-1).fit(x, y, index)
    with pytest.raises(UserError, match="exceeds"):
        PLSSVD(n_components=9).fit(x, y, index)


def test_cv_chooses_on_val_and_clips_components():
    from cca_bench.cv import search_grid

    x, y, index = paired(n_img=60, dx=7, dy=4)
    train = Features(x[:40], y[:120], index[:120])
    val = Features(x[40:], y[120:], index[120:] - 40)
    model, report = search_grid(PLSSVD, train, val, {"n_components": [2, 4, 9]}, {})
    assert [r["n_components"] for r in report["rows"]] == [2, 4]  # 9 clipped to 4 and dropped as a repeat
    assert report["best"]["rsum"] == max(r["rsum"] for r in report["rows"])
    assert model.x_weights_.shape[1] == report["best"]["n_components"]
    with pytest.raises(UserError, match="has no CV knob top_k"):
        search_grid(RidgeMap, train, val, {"top_k": [3]}, {})
