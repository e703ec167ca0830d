"""Every method is a scikit-learn estimator: scikit-learn's own checks, Pipeline, clone, GridSearchCV (with the
estimators' score and with a scorer), NotFittedError before fit, lists and DataFrames as input."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from cca_bench.errors import UserError
from cca_bench.methods.asif import ASIF
from cca_bench.methods.cca import RegularizedCCA
from cca_bench.methods.dcca import DeepCCA
from cca_bench.methods.kcca import KernelCCA
from cca_bench.methods.pls import PLSSVD
from cca_bench.methods.procrustes import Procrustes
from cca_bench.methods.ridge import RidgeMap


def small_dcca():
    return DeepCCA(dim=2, hidden=8, epochs=2, train_batch_size=16, progress=False, device="cpu")


# Small settings only where the defaults need more data than scikit-learn's checks use (15-30 rows):
# ASIF's default top_k = 800 anchors, DeepCCA's 50 epochs of a 512-wide network.
ESTIMATORS = [RegularizedCCA(), KernelCCA(), RidgeMap(), Procrustes(), PLSSVD(), ASIF(top_k=5), small_dcca()]

TUPLE = (
    "fit_transform(X, Y) returns the tuple of both views' embeddings, as scikit-learn's CCA does; the check "
    "expects a tuple only from scikit-learn's own cross-decomposition class names (CCA, PLSSVD, ...) and "
    "otherwise compares it with transform(X)"
)
GAMMA = (
    "the checks fit Y = class labels (most rows equal), whose median pairwise distance is 0: the gamma heuristic "
    "is undefined and KernelCCA refuses it, asking for gamma (KernelCCA(gamma=1.0) passes)"
)
EXPECTED_FAILURES = {
    name: {"check_transformer_general": TUPLE, "check_transformer_data_not_an_array": TUPLE}
    for name in ("RegularizedCCA", "KernelCCA", "RidgeMap", "Procrustes", "ASIF", "DeepCCA")
}
EXPECTED_FAILURES["KernelCCA"] |= {"check_fit2d_1feature": GAMMA, "check_fit_check_is_fitted": GAMMA}


with warnings.catch_warnings():  # "does not inherit from BaseEstimator": Params keeps scikit-learn out of imports
    warnings.filterwarnings("ignore", message="Estimator .* does not inherit", category=UserWarning)
    _ALL = parametrize_with_checks(
        ESTIMATORS, xfail_strict=True, expected_failed_checks=lambda e: EXPECTED_FAILURES.get(type(e).__name__, {})
    )
# check_array_api_input runs only with SCIPY_ARRAY_API=1 set before scipy is first imported (it changes scipy for
# the whole process), and skips otherwise; the estimators take numpy (and convert anything else), so it is left
# out rather than skipped (CI refuses skips that are not missing hardware, tests/conftest.py)
CHECKS = pytest.mark.parametrize(
    _ALL.args[0], [p for p in _ALL.args[1] if "check_array_api_input" not in repr(p)], **_ALL.kwargs
)


@CHECKS
def test_scikit_learn_checks(estimator, check):
    """scikit-learn's estimator checks; each listed failure must fail (strict), every other check must pass.
    Planted: Procrustes' k = 1 eigenvector copy back to ``np.ascontiguousarray`` (negative strides) fails ~25
    checks; dropping ``n_features_in_`` from the validation fails check_n_features_in."""
    check(estimator)


def views(n=120, dx=6, dy=4, seed=0):
    """Paired views sharing a 2-d latent signal plus noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    x = z @ rng.normal(size=(2, dx)) + 0.3 * rng.normal(size=(n, dx))
    y = z @ rng.normal(size=(2, dy)) + 0.3 * rng.normal(size=(n, dy))
    return x, y


def test_pipeline_and_grid_search_over_reg():
    """make_pipeline(StandardScaler(), RegularizedCCA()) fits and scores; GridSearchCV over reg picks by the
    estimator's score (R-sum) and by a scorer. Planted: score returning the R-sum of shuffled pairs makes the
    pipeline score fall below the 600-scale floor asserted here."""
    x, y = views()
    pipe = make_pipeline(StandardScaler(), RegularizedCCA(n_components=2)).fit(x, y)
    assert pipe.score(x, y) > 150  # chance: R-sum of 120 random pairs is ~ 2 * 100 * 16 / 120 = 27
    assert pipe.transform(x).shape == (120, 2)
    grid = {"regularizedcca__reg": [1e-4, 1e-2, 10.0]}
    search = GridSearchCV(pipe, grid, cv=KFold(3)).fit(x, y)
    assert search.best_params_["regularizedcca__reg"] in grid["regularizedcca__reg"]
    assert search.best_score_ > 150 and np.isfinite(search.cv_results_["mean_test_score"]).all()

    def mean_correlation(est, X, Y):
        ex, ey = est.transform(X, Y)
        return float(np.mean([np.corrcoef(ex[:, i], ey[:, i])[0, 1] for i in range(ex.shape[1])]))

    scored = GridSearchCV(
        RegularizedCCA(n_components=2), {"reg": [1e-3, 1.0]}, scoring=mean_correlation, cv=KFold(3)
    ).fit(x, y)
    assert 0.5 < scored.best_score_ <= 1


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_unfitted_lists_and_dataframes(estimator):
    """NotFittedError before fit; lists and DataFrames give the arrays' result; Y 1-d is one column.
    Planted: ``_validate_view`` without its fitted check raises AttributeError here (cca, kcca, aligners)."""
    x, y = views(n=60)
    est = clone(estimator)
    with pytest.raises(NotFittedError):
        est.transform(x)
    with pytest.raises(NotFittedError):
        est.score(x, y)
    ref = clone(estimator).fit(x, y).transform(x, y)
    lists = clone(estimator).fit(x.tolist(), y.tolist()).transform(x.tolist(), y.tolist())
    frames = clone(estimator).fit(pd.DataFrame(x), pd.DataFrame(y))
    for a, b in zip(ref, lists):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)  # float32 products, other order
    for a, b in zip(ref, frames.transform(pd.DataFrame(x), pd.DataFrame(y))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)  # float32 products, other order
    fortran32 = clone(estimator).fit(np.asfortranarray(x, np.float32), np.asfortranarray(y, np.float32))
    assert fortran32.transform(x).dtype == np.float32 and fortran32.n_features_in_ == 6
    with pytest.raises(UserError, match="X has 5 features, but .* is expecting 6 features"):
        frames.transform(x[:, :5])
    s = frames.score(x, y)
    assert 0 <= s <= 600


def test_errors_name_parameters_not_flags():
    """ASIF() under 800 pairs names top_k, not the CLI's --top-k (the old message did)."""
    x, y = views(n=50)
    with pytest.raises(UserError, match=r"^ASIF top_k=800 exceeds the number of anchors \(50\)") as e:
        ASIF().fit(x, y)
    assert "--" not in str(e.value)


def test_random_state_moves_what_it_seeds():
    """KernelCCA's random_state picks the Nystroem landmarks (two seeds, two models; one seed, one model);
    RegularizedCCA takes none: its fit is deterministic. Planted: kcca's fit_map seeded with a constant
    makes the two seeds' embeddings equal."""
    x, y = views(n=80)
    a, b, c = (KernelCCA(landmarks=20, random_state=s).fit(x, y).transform(x) for s in (0, 1, 0))
    assert not np.allclose(a, b) and np.array_equal(a, c)
    assert "random_state" not in RegularizedCCA().get_params()
