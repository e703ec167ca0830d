"""Encoder-similarity diagnostics (issue 28.2): each measure against an independent reference on small data, the
calibration against calibrated-similarity's own `calibrate`, CKA against repsim, a uniform p-value under a
simulated null, and the command's refusals and JSON contract."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from cca_bench.__main__ import main
from cca_bench.errors import UserError
from cca_bench.similarity import MEASURES, calibrate, measure_all


def _pairs(n=12, seed=0, shared=3):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, shared))
    x = np.hstack([z, rng.normal(size=(n, 5))]) @ rng.normal(size=(shared + 5, 7))
    y = np.hstack([z @ rng.normal(size=(shared, shared)), rng.normal(size=(n, 4))])
    return x, y


def _score(name, x, y, **params):
    prepare, score, _ = MEASURES[name]
    return score(prepare(x, y, {"k": 3, "dim": 3, **params}), None)


def _ref_cka(x, y):
    """Kornblith et al. 2019 eq. (HSIC with H = I - 11'/n)."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    hsic = lambda k, m: np.trace(k @ h @ m @ h)  # noqa: E731
    k, l_ = x @ x.T, y @ y.T
    return hsic(k, l_) / math.sqrt(hsic(k, k) * hsic(l_, l_))


def _ref_hsic_u_statistic(k, l_):
    """Song et al. 2012's unbiased HSIC as its U-statistic: the mean over ordered 4-tuples of distinct indices of
    h = (1/4!) sum over their orderings (t,u,v,w) of k_tu l_tu + k_tu l_vw - 2 k_tu l_tv. O(n^4): small n only."""
    n, total, count = len(k), 0.0, 0
    for tup in itertools.permutations(range(n), 4):
        t, u, v, w = tup
        total += k[t, u] * l_[t, u] + k[t, u] * l_[v, w] - 2 * k[t, u] * l_[t, v]
        count += 1
    return total / count  # every ordering of every 4-set is visited, so this is the symmetrised mean


def _ref_neighbours(gram, k):
    return [
        set(sorted((j for j in range(len(gram)) if j != i), key=lambda j: -gram[i, j])[:k]) for i in range(len(gram))
    ]


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_cka_and_unbiased_cka_equal_their_textbook_formulas():
    """Planted bugs caught: the Gram matrices left uncentred (CKA), the 1'K~L~1 term's factor 2 dropped or the
    diagonal kept (unbiased HSIC)."""
    x, y = _pairs(n=12)
    assert _score("cka", x, y) == pytest.approx(_ref_cka(x, y), abs=1e-6)
    xs, ys = _pairs(n=7, seed=1)
    k, l_ = xs @ xs.T, ys @ ys.T
    ref = _ref_hsic_u_statistic(k, l_) / math.sqrt(_ref_hsic_u_statistic(k, k) * _ref_hsic_u_statistic(l_, l_))
    assert _score("unbiased_cka", xs, ys) == pytest.approx(ref, abs=1e-6)


def test_cka_equals_repsim():
    """repsim (C++ implementation, test extra) as a second reference, linear kernel: its CKA with the Gretton
    (biased) estimator, and for the unbiased form its Song-estimator HSIC matrix normalised as CKA,
    H_xy / sqrt(H_xx H_yy) (repsim's own ``cka(estimator="song")`` normalises otherwise: 0.121 against 0.155 on
    these data, while its HSIC values equal ours). Planted bugs caught: as above."""
    import repsim

    x, y = _pairs(n=20, seed=2)
    assert _score("cka", x, y) == pytest.approx(repsim.cka([x, y], kernel_type="linear")[0, 1], abs=1e-6)
    h = repsim.hsic([x, y], kernel_type="linear", estimator="song")
    assert _score("unbiased_cka", x, y) == pytest.approx(h[0, 1] / math.sqrt(h[0, 0] * h[1, 1]), abs=1e-6)


def test_mutual_knn_and_cknna_equal_huh_et_al_definitions():
    """Mutual k-NN: mean |N_X(i) & N_Y(i)| / k over cosine neighbours excluding i; CKNNA: unbiased HSIC of
    K, L masked to pairs that are neighbours in both views, tr(K~L~) as sum_ij K~_ij L~_ji, normalised like CKA.
    Planted bugs caught: the row itself counted as a neighbour, the union instead of the intersection of the
    masks, the sparse trace taking K~_ij L~_ij (the transpose dropped)."""
    x, y = _pairs(n=14, seed=3)
    gx, gy = _unit(x) @ _unit(x).T, _unit(y) @ _unit(y).T
    nx, ny = _ref_neighbours(gx, 3), _ref_neighbours(gy, 3)
    assert _score("mutual_knn", x, y) == pytest.approx(np.mean([len(a & b) / 3 for a, b in zip(nx, ny)]), abs=1e-6)

    def masked(g, a, b):
        m = np.array([[float(j in a[i] and j in b[i]) for j in range(len(g))] for i in range(len(g))])
        return m * g

    def hsic(k, l_):
        n, one = len(k), np.ones(len(k))
        k, l_ = k - np.diag(np.diag(k)), l_ - np.diag(np.diag(l_))
        return (
            np.trace(k @ l_) + one @ k @ one * (one @ l_ @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ k @ l_ @ one
        ) / (n * (n - 3))

    ref = hsic(masked(gx, nx, ny), masked(gy, nx, ny)) / math.sqrt(
        hsic(masked(gx, nx, nx), masked(gx, nx, nx)) * hsic(masked(gy, ny, ny), masked(gy, ny, ny))
    )
    assert _score("cknna", x, y) == pytest.approx(ref, abs=1e-6)


def _ref_cca(x, y, dim):
    """Textbook CCA of the PCA-reduced views: rho from the singular values of Sxx^-1/2 Sxy Syy^-1/2, the X-side
    canonical variates h_i = Xr Sxx^-1/2 u_i scaled to unit norm."""
    from scipy.linalg import eigh
    from sklearn.decomposition import PCA

    xr, yr = PCA(dim, svd_solver="full").fit_transform(x), PCA(dim, svd_solver="full").fit_transform(y)
    inv_sqrt = lambda s: (lambda w, v: v @ np.diag(w**-0.5) @ v.T)(*eigh(s))  # noqa: E731
    sx, sy = inv_sqrt(xr.T @ xr), inv_sqrt(yr.T @ yr)
    u, rho, _ = np.linalg.svd(sx @ xr.T @ yr @ sy)
    h = xr @ sx @ u
    h /= np.linalg.norm(h, axis=0)
    return rho, h


def test_svcca_and_pwcca_equal_textbook_cca_of_the_reduced_views():
    """SVCCA: mean canonical correlation of the top-3 principal subspaces (Raghu et al. 2017); PWCCA: those
    correlations weighted by sum_j |h_i . x_j| over X's centred columns (Morcos et al. 2018). Planted bugs caught:
    views left uncentred before the SVD, PWCCA weights from Y's side or unnormalised."""
    x, y = _pairs(n=30, seed=4)
    rho, h = _ref_cca(x, y, 3)
    assert _score("svcca", x, y) == pytest.approx(rho.mean(), abs=1e-6)
    weights = np.abs(h.T @ (x - x.mean(0))).sum(1)
    assert _score("pwcca", x, y) == pytest.approx(weights @ rho / weights.sum(), abs=1e-6)


def test_calibration_equals_calibrated_similarity_on_the_same_permutations():
    """calibrated-similarity's `calibrate` (Groger et al.'s package, test extra) given our permutations through its
    perm_fn yields the same tau, calibrated score and p-value. Planted bugs caught: tau from the null alone (the
    observed score left out of the quantile), p without the add-one correction."""
    from calibrated_similarity import calibrate as reference

    x, y = _pairs(n=25, seed=5)
    ours = measure_all(x, y, k=3, dim=3, permutations=39, seed=7, names=["cka", "svcca"])
    for name in ("cka", "svcca"):
        sim = lambda a, b, _n=name: _score(_n, a.numpy(), b.numpy())  # noqa: E731
        rng = np.random.default_rng(7)
        perms = iter([torch.from_numpy(rng.permutation(25)) for _ in range(39)])
        cal, p, tau = reference(
            torch.from_numpy(x), torch.from_numpy(y), sim, K=39, perm_fn=lambda n, device: next(perms)
        )
        assert ours[name]["calibrated"] == pytest.approx(float(cal), abs=1e-6)
        assert ours[name]["p_value"] == pytest.approx(float(p), abs=1e-6)
        assert ours[name]["tau"] == pytest.approx(float(tau), abs=1e-6)


def test_permutation_p_value_is_uniform_under_a_simulated_null():
    """Independent X and Y: the add-one permutation p-value (K = 19: values j/20) is uniform, so each quarter of
    [0, 1] holds a quarter of 400 simulated p-values (chi-square, 3 df) and P(p <= 0.05) is 0.05. Planted bugs
    caught: p = #{null > s} / (K + 1) (strict and without the add-one: too small), Y permuted together with X
    (p = 1 always)."""
    from scipy.stats import binomtest, chisquare

    rng = np.random.default_rng(11)
    ps = np.array(
        [
            measure_all(
                rng.normal(size=(16, 3)),
                rng.normal(size=(16, 2)),
                k=3,
                dim=2,
                permutations=19,
                seed=int(s),
                names=["cka"],
            )["cka"]["p_value"]
            for s in range(400)
        ]
    )
    counts = np.histogram(ps, bins=[0, 0.25, 0.5, 0.75, 1.0])[0]
    assert chisquare(counts).pvalue > 0.001, counts
    assert binomtest(int((ps <= 0.05).sum()), len(ps), 0.05).pvalue > 0.001


def test_calibrate_is_zero_below_the_null_quantile():
    """Planted bug caught: the calibrated score not clipped at 0 when the score lies inside the null."""
    null = np.linspace(0.1, 0.3, 99)
    assert calibrate(0.2, null)["calibrated"] == 0.0
    assert calibrate(1.0, null)["calibrated"] == 1.0 and calibrate(1.0, null)["p_value"] == pytest.approx(0.01)


@pytest.fixture
def files(tmp_path):
    x, y = _pairs(n=30, seed=6)
    np.save(tmp_path / "img.npy", x.astype(np.float32))
    np.save(tmp_path / "txt.npy", y.astype(np.float32))
    return tmp_path


def test_similarity_json_names_each_measure_with_score_calibrated_p(files, capsys):
    """The command-line contract: --json FILE whose keys name each measure with score, calibrated, p_value; rows
    of several captions per image averaged per image via --image-index. Planted bug caught: captions paired one
    by one with a repeated image row instead of averaged (the 60-row file would then score other numbers)."""
    out = files / "sim.json"
    argv = [
        "similarity",
        "--images",
        str(files / "img.npy"),
        "--texts",
        str(files / "txt.npy"),
        "-k",
        "3",
        "--dim",
        "3",
        "--permutations",
        "49",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    assert "| cka" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert set(result) == {"cka", "unbiased_cka", "mutual_knn", "cknna", "svcca", "pwcca"}
    assert all({"score", "calibrated", "p_value"} <= set(v) for v in result.values())
    y = np.load(files / "txt.npy")
    noise = np.random.default_rng(0).normal(size=y.shape).astype(np.float32)
    np.save(files / "txt2.npy", np.vstack([y + noise, y - noise]))  # two captions per image, mean = y
    np.save(files / "idx.npy", np.concatenate([np.arange(30), np.arange(30)]))
    out2 = files / "sim2.json"
    assert (
        main([*argv[:4], str(files / "txt2.npy"), "--image-index", str(files / "idx.npy"), *argv[5:-1], str(out2)]) == 0
    )
    again = json.loads(out2.read_text())
    assert all(again[m]["score"] == pytest.approx(result[m]["score"], abs=1e-5) for m in result)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda x, y: (x[:-1], y), "rows are not paired"),
        (lambda x, y: (np.where(np.arange(len(x))[:, None] == 4, np.nan, x), y), "NaN or infinite values"),
    ],
)
def test_similarity_refuses_misaligned_or_nan_inputs_in_one_line(make, message, files, capsys):
    """Planted bugs caught: rows truncated to the shorter file, NaN rows passed to the SVD."""
    x, y = make(np.load(files / "img.npy"), np.load(files / "txt.npy"))
    np.save(files / "a.npy", x.astype(np.float32))
    np.save(files / "b.npy", y.astype(np.float32))
    assert (
        main(
            [
                "similarity",
                "--images",
                str(files / "a.npy"),
                "--texts",
                str(files / "b.npy"),
                "--json",
                str(files / "out.json"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (files / "out.json").exists()


def test_check_pairs_refuses_too_few_rows_and_a_large_k():
    from cca_bench.similarity import check_pairs

    x, y = _pairs(n=5)
    with pytest.raises(UserError, match="-k 4"):
        check_pairs(x, y, 4, 3)
    with pytest.raises(UserError, match="at least 4"):
        check_pairs(x[:3], y[:3], 1, 3)
