"""Fisher-vector captions: the formula by hand, HGLMM's EM, fitted encoders saved with a model, bad input."""

import json

import numpy as np
import pytest
from scipy import stats

from cca_bench.__main__ import main
from cca_bench.errors import UserError
from cca_bench.features.fisher import FisherVectorEncoder
from cca_bench.features.fitted import encoder_state, from_saved
from cca_bench.features.mixtures import HybridGaussianLaplacianMixture, Mixture, posteriors, weighted_medians
from cca_bench.features.store import load_or_stream
from cca_bench.features.text import MeanVectorEncoder, WordVectors


def hand_fv(x: np.ndarray, m: Mixture) -> np.ndarray:
    """Perronnin et al. 2010 (Gaussian) and its Laplacian counterpart, one word and one dimension at a time."""
    k_, d_ = m.means.shape
    logp = np.array(
        [
            [
                np.log(m.weights[k])
                + sum(
                    stats.norm.logpdf(xt[d], m.means[k, d], m.scales[k, d])
                    if m.gaussian[k, d]
                    else stats.laplace.logpdf(xt[d], m.means[k, d], m.scales[k, d])
                    for d in range(d_)
                )
                for k in range(k_)
            ]
            for xt in x
        ]
    )
    gamma = np.exp(logp - np.log(np.exp(logp).sum(1, keepdims=True)))
    t = len(x)
    g_mu, g_scale = np.zeros((k_, d_)), np.zeros((k_, d_))
    for k in range(k_):
        for d in range(d_):
            mu, sc, w = m.means[k, d], m.scales[k, d], m.weights[k]
            for i in range(t):
                u = x[i, d] - mu
                if m.gaussian[k, d]:
                    g_mu[k, d] += gamma[i, k] * u / sc / (t * np.sqrt(w))
                    g_scale[k, d] += gamma[i, k] * (u * u / sc**2 - 1) / (t * np.sqrt(2 * w))
                else:
                    g_mu[k, d] += gamma[i, k] * np.sign(u) / (t * np.sqrt(w))
                    g_scale[k, d] += gamma[i, k] * (abs(u) / sc - 1) / (t * np.sqrt(w))
    v = np.concatenate([g_mu.ravel(), g_scale.ravel()])
    v = np.sign(v) * np.sqrt(np.abs(v))
    return v / np.linalg.norm(v)


WV = WordVectors("hand", ["a", "b", "c"], np.array([[0.5, -1.0], [2.0, 0.3], [-0.7, 0.9]]))


def encoder_with(m: Mixture, pooling: str = "hglmm") -> FisherVectorEncoder:
    arrays = {"pca_mean": np.zeros(2), **m.arrays(f"{pooling}.")}
    config = {**FisherVectorEncoder(WV, pooling, len(m.weights)).config(), "n_fit_words_": 3}
    return FisherVectorEncoder.from_state(WV, arrays, config)


@pytest.mark.parametrize(
    "m",
    [
        Mixture(np.array([1.0]), np.array([[0.2, -0.1]]), np.array([[1.5, 0.8]]), np.ones((1, 2), bool)),
        Mixture(
            np.array([0.3, 0.7]),
            np.array([[0.0, 0.0], [1.0, 1.0]]),
            np.array([[1.0, 2.0], [0.5, 1.5]]),
            np.array([[True, True], [True, False]]),
        ),
    ],
    ids=["1-component GMM", "2-component hybrid"],
)
def test_fisher_vector_equals_the_formula_by_hand(m):
    captions = [["a", "b", "a"], ["c"], ["b", "zzz", "c"], ["zzz"]]
    fv = encoder_with(m).transform(captions)
    assert fv.shape == (4, 2 * len(m.weights) * 2) and fv.dtype == np.float32
    for row, caption in zip(fv[:3], captions):
        known = [w for w in caption if w != "zzz"]  # unknown words are left out
        np.testing.assert_allclose(row, hand_fv(WV.vectors[[WV.find(w) for w in known]].astype(float), m), atol=1e-6)
    assert not fv[3].any()  # no known word: zeros


def test_hglmm_em_never_lowers_the_likelihood_and_picks_laplacian_dimensions():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            np.c_[rng.laplace(0, 1, 1500), rng.normal(0, 1, 1500)],
            np.c_[rng.laplace(8, 0.5, 1000), rng.normal(8, 2, 1000)],
        ]
    )
    h = HybridGaussianLaplacianMixture(2, max_iter=20, tol=-np.inf).fit(x)  # all 20 iterations
    ll = np.array(h.log_likelihoods_)
    assert len(ll) == 21 and np.all(np.diff(ll) >= -1e-12 * abs(ll).max())
    assert ll[-1] > ll[0] + 0.01  # better than the initial GMM
    assert h.mixture_.gaussian[:, 0].sum() == 0 and h.mixture_.gaussian[:, 1].all()
    assert np.isclose(h.score(x), ll[-1])
    # the fitted density is a proper one: it matches scipy's densities term by term
    m = h.mixture_
    ref = np.log(
        sum(
            m.weights[k]
            * np.prod(
                [
                    stats.laplace.pdf(x[:5, 0], m.means[k, 0], m.scales[k, 0]),
                    stats.norm.pdf(x[:5, 1], m.means[k, 1], m.scales[k, 1]),
                ],
                0,
            )
            for k in range(2)
        )
    )
    np.testing.assert_allclose(posteriors(x[:5], m)[1], ref, rtol=1e-10)


def test_weighted_medians_minimise_the_weighted_absolute_deviation():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((60, 3)), rng.random((60, 2))
    med, absdev = weighted_medians(x, w, np.argsort(x, axis=0))
    for k in range(2):
        for d in range(3):
            cost = [(w[:, k] * np.abs(x[:, d] - c)).sum() for c in x[:, d]]
            assert np.isclose((w[:, k] * np.abs(x[:, d] - med[k, d])).sum(), min(cost))
            assert np.isclose(absdev[k, d], min(cost))


@pytest.fixture
def words():
    rng = np.random.default_rng(2)
    names = [f"w{i}" for i in range(80)]
    table = WordVectors("tiny", names, rng.standard_normal((80, 6)))
    captions = [list(rng.choice(names, rng.integers(1, 7))) for _ in range(300)]
    return table, captions


@pytest.mark.parametrize(
    "make",
    [
        lambda wv: MeanVectorEncoder(wv, idf=True, stopwords=True),
        lambda wv: FisherVectorEncoder(wv, "gmm", 3),
        lambda wv: FisherVectorEncoder(wv, "gmm+hglmm", 2, pca=4),
    ],
    ids=["idf", "gmm", "gmm+hglmm+pca"],
)
def test_fitted_encoders_survive_save_and_load_bit_for_bit(make, words, tmp_path):
    from cca_bench.methods.base import EXTRA_ARRAYS, load_arrays
    from cca_bench.methods.cca import RegularizedCCA

    wv, captions = words
    enc = make(wv).fit(captions[:200])
    rng = np.random.default_rng(3)
    model = RegularizedCCA(n_components=2).fit(rng.standard_normal((50, 3)), rng.standard_normal((50, 3)))
    arrays, config = encoder_state(enc)
    model.save(tmp_path / "m", extra={EXTRA_ARRAYS: arrays, "text_encoder": config})  # as generate saves it
    tensors, saved = load_arrays(tmp_path / "m")
    back = from_saved(tensors, saved["text_encoder"], wv)
    assert type(back) is type(enc) and back.fingerprint() == enc.fingerprint()
    for (k, a), (k2, b) in zip(sorted(enc.state()[0].items()), sorted(back.state()[0].items())):
        assert k == k2 and a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert back.transform(captions[200:]).tobytes() == enc.transform(captions[200:]).tobytes()
    assert RegularizedCCA.load(tmp_path / "m").n_components_ == 2  # the model itself still loads
    assert json.loads((tmp_path / "m.json").read_text())["text_encoder"]["pooling"] == enc.config()["pooling"]


def test_fisher_vector_bad_sizes_are_user_errors(words):
    wv, captions = words
    with pytest.raises(UserError, match="between 1 and the number of distinct train words"):
        FisherVectorEncoder(wv, "gmm", 81).fit(captions)
    with pytest.raises(UserError, match="word dimension 6"):
        FisherVectorEncoder(wv, "gmm", 2, pca=7).fit(captions)


def test_load_or_stream_writes_blocks_into_a_memory_mapped_cache(tmp_path):
    blocks = [np.full((3, 4), i, np.float32) for i in range(3)]
    arr, hit = load_or_stream(tmp_path, {"encoder": "x"}, (9, 4), lambda: iter(blocks))
    assert not hit and isinstance(arr, np.memmap) and arr[3:6].min() == 1 and arr.shape == (9, 4)
    again, hit = load_or_stream(tmp_path, {"encoder": "x"}, (9, 4), lambda: iter([]))
    assert hit and np.array_equal(again, arr)
    with pytest.raises(UserError, match="NaN"):
        load_or_stream(tmp_path, {"encoder": "y"}, (3, 4), lambda: iter([np.full((3, 4), np.nan, np.float32)]))
    assert not list(tmp_path.glob("y-*")) and not list(tmp_path.glob("*.tmp"))  # nothing half-written


SMALL = ["-D", "n_train=200", "-D", "n_val=40", "-D", "n_test=40", "-q"]


@pytest.fixture
def roots(tmp_path):
    return ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--pooling", "gmm", "--fv-components", "100000"], "--fv-components 100000 must be between 1 and"),
        (["--pooling", "hglmm", "--fv-pca", "51"], "--fv-pca 51 must be between 1 and the word dimension 50"),
        (["--fv-components", "4"], "need --pooling gmm"),
        (["--pooling", "gmm", "--idf"], "--idf weights mean word vectors only"),
    ],
)
def test_cli_bad_fisher_options_one_line_exit_2_nothing_written(flags, message, roots, tmp_path, capsys):
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", *flags, *SMALL, *roots]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "data" / "cache").exists() and not (tmp_path / "results").exists()


def test_cli_fisher_vectors_end_to_end(roots, tmp_path, capsys, monkeypatch):
    from cca_bench.methods import base, cca

    writes, save = [], base.save_arrays
    for module in (base, cca):  # cca.py holds its own reference; the old attach step imported base's
        monkeypatch.setattr(module, "save_arrays", lambda path, *a: writes.append(path) or save(path, *a))
    fv = ["--pooling", "gmm+hglmm", "--fv-components", "3", "--fv-pca", "8"]
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--reg", "1e-2", *fv, *SMALL, *roots]) == 0
    assert len(writes) == 1  # the model and its fitted text encoder land in one write (one artefact)
    model = (
        tmp_path
        / "results"
        / "models"
        / "cca__shapes[n_test=40,n_train=200,n_val=40]__glove50_tinyimage+gmm+hglmm3+pca8"
    )
    config = json.loads(model.with_name(model.name + ".json").read_text())
    assert config["text_encoder"]["pooling"] == "gmm+hglmm" and config["text_encoder"]["pca"] == 8
    from safetensors.numpy import load_file

    tensors = load_file(str(model.with_name(model.name + ".safetensors")))
    assert tensors["text_encoder.hglmm.means"].shape == (3, 8) and "text_encoder.pca_components" in tensors
    assert main(["run_benchmark", "cca", "shapes", "test", "glove50_tinyimage", *fv, *SMALL, *roots]) == 0
    run = json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text())
    assert run["features"].endswith("+gmm+hglmm3+pca8") and run["metrics"]["image_search"]["R@10"] > 30
    keys = [json.loads(p.read_text()) for p in (tmp_path / "data" / "cache").glob("*.json")]
    text_keys = [k for k in keys if k["kind"] == "text"]
    assert {k["split"] for k in text_keys} == {"train", "test"}  # cached with the model's fit, no refit on test
    assert len({k["text_encoder"] for k in text_keys}) == 1 and all(k["fitted_on"] for k in text_keys)
    capsys.readouterr()
    assert (
        main(["search", "cca", "shapes", "glove50_tinyimage", *fv, "--text", "a red circle", "-k", "3", *SMALL, *roots])
        == 0
    )
    assert "top 3 images matching the text 'a red circle'" in capsys.readouterr().out
    # options other than the model's: a clear error, not a silent refit
    assert (
        main(
            [
                "run_benchmark",
                "cca",
                "shapes",
                "test",
                "glove50_tinyimage",
                "--pooling",
                "gmm",
                "--fv-components",
                "3",
                *SMALL,
                *roots,
            ]
        )
        == 2
    )


def test_cli_cv_searches_fisher_vector_sizes(roots, tmp_path, capsys):
    assert (
        main(
            [
                "generate",
                "cca",
                "shapes",
                "glove50_tinyimage",
                "--pooling",
                "gmm",
                "--cv",
                "--cv-fv-components",
                "2,4",
                "--cv-reg",
                "0.1",
                "--cv-components",
                "5",
                "--cv-eig-power",
                "1",
                *SMALL,
                *roots,
            ]
        )
        == 0
    )
    report = json.loads(next((tmp_path / "results" / "cv").glob("*.json")).read_text())
    assert report["features_grid"] == {"fv_components": [2, 4]} and len(report["rows"]) == 2
    k = report["best"]["fv_components"]
    assert (
        tmp_path
        / "results"
        / "models"
        / f"cca__shapes[n_test=40,n_train=200,n_val=40]__glove50_tinyimage+gmm{k}.safetensors"
    ).is_file()
    assert f"'fv_components': {k}" in capsys.readouterr().out


def test_mixture_fit_and_encoding_show_progress_bars(words, capsys):
    """Issue 21.7: with progress on, the mixture fit (the GMM, then each HGLMM EM step) and the encoding (per
    caption) draw bars on stderr; the numbers are those of a run without bars."""
    wv, captions = words
    quiet = FisherVectorEncoder(wv, "gmm+hglmm", 2).fit(captions[:200]).transform(captions[200:])
    capsys.readouterr()
    loud = FisherVectorEncoder(wv, "gmm+hglmm", 2, progress=True).fit(captions[:200]).transform(captions[200:])
    err = capsys.readouterr().err
    assert "FV mixture fit (K=2" in err and "/51 [" in err  # the GMM and at most 50 HGLMM steps
    assert "FV encoding" in err and "/100 [" in err  # the 100 captions encoded
    assert loud.tobytes() == quiet.tobytes()
