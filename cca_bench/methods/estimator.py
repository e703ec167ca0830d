"""The scikit-learn estimator surface every method shares: validated input, ``transform(X, Y=None)``, ``score``, tags.

A method fits two paired views, X (n_x, dx) and Y (n, dy), and embeds each into one space where a row of X and
its row of Y score high. scikit-learn's own cross-decomposition estimators (``CCA``, ``PLSSVD``) set the
conventions followed here: ``fit(X, Y)``; ``transform(X)`` is X's projection and ``transform(X, Y)`` the tuple of
both; ``fit_transform(X, Y)`` is ``fit(X, Y).transform(X, Y)``; a 1-d Y is one column. Inputs go through
``check_array`` (lists, DataFrames, float32/float64, C or Fortran order; NaN, inf, sparse and complex input
refused). Beyond scikit-learn, ``fit`` takes ``x_index`` (n,): the row of X that each row of Y describes (an
image with five captions appears once in X), which is how the benchmark trains.

scikit-learn itself is imported inside the methods that need it (it costs the CLI 1.5 s at start-up).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from cca_bench.errors import UserError
from cca_bench.methods.base import Params

FLOATS = (np.float64, np.float32)


@contextmanager
def _user_errors():
    """scikit-learn's ValueErrors about the input (NaN, too few rows, 3-d arrays) as UserErrors (also ValueErrors),
    so that the CLI prints them as one line."""
    try:
        yield
    except UserError:
        raise
    except ValueError as e:
        lines = str(e).splitlines() or [type(e).__name__]
        hint = [line for line in lines[1:] if line.startswith("Reshape your data")]  # the advice for 1-d input
        raise UserError(" ".join(lines[:1] + hint)) from None


def _is_lazy(a) -> bool:
    """A dask array (the ``backend="dask"`` path): validated chunk by chunk where it is computed, not here."""
    return hasattr(a, "__dask_graph__")


def _keep_file(original, checked):
    """``original`` when it is a memmap that validation only viewed (same shape, dtype and memory), else
    ``checked``: scikit-learn's check returns an ndarray view, and without the memmap's file
    (:func:`cca_bench.linalg.npy_file_of`) the Dask backend ships every row from here instead of letting each
    worker read its rows from the file (docs/cluster.md)."""
    same = (
        isinstance(original, np.memmap)
        and (checked.shape, checked.dtype, checked.strides) == (original.shape, original.dtype, original.strides)
        and checked.__array_interface__["data"][0] == original.__array_interface__["data"][0]
    )
    return original if same else checked


def _second_view(Y, kw: dict):
    """Y, or scikit-learn's keyword ``y`` for it (taken out of ``kw``); any other keyword is a TypeError."""
    if "y" in kw:
        if Y is not None:
            raise TypeError("pass the second view as Y or as y, not both")
        Y = kw.pop("y")
    return Y


def _n_rows(a) -> int | None:
    """Rows of an array-like before validation (None when it has no length: check_array then says why)."""
    shape = getattr(a, "shape", None)
    try:
        return int(shape[0]) if shape is not None and len(shape) else len(a)
    except TypeError:
        return None


class PairedEstimator(Params):
    """Base of every method: scikit-learn's fit / transform / score protocol over two paired views.

    A subclass implements ``_fit(X, Y, x_index, **kw)`` on validated arrays, ``_embed_x(X)`` / ``_embed_y(Y)``
    on validated arrays of the fitted widths, ``_widths()`` -> (dx, dy) of the inputs it was fitted on, and
    names in ``_FITTED`` an attribute that exists only once fitted.
    """

    _FITTED = "mean_x_"
    _NON_DETERMINISTIC = False

    # --- scikit-learn protocol ------------------------------------------------------------------
    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=True, multi_output=True, single_output=True),
            transformer_tags=TransformerTags(preserves_dtype=["float32"]),
            input_tags=InputTags(),
            non_deterministic=self._NON_DETERMINISTIC,
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, self._FITTED)

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    # --- validation -----------------------------------------------------------------------------
    def _validate_fit(self, X, Y, x_index):
        """(X, Y, x_index) checked and converted; sets ``n_features_in_`` (and ``feature_names_in_`` for a
        DataFrame X). Y 1-d becomes one column; without ``x_index`` X and Y must have the same rows."""
        if _is_lazy(X) or _is_lazy(Y):
            self.n_features_in_ = int(X.shape[1])
            return X, Y, x_index
        from sklearn.utils.validation import check_array, validate_data

        if Y is None:
            raise UserError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: fit(X, Y) "
                "needs the second view Y"
            )
        if x_index is None and None not in (_n_rows(X), _n_rows(Y)) and _n_rows(X) != _n_rows(Y):
            raise UserError(
                f"X and Y must hold paired rows, got {_n_rows(X)} and {_n_rows(Y)} rows (x_index pairs "
                "several rows of Y with one row of X)"
            )
        with _user_errors():
            # with x_index one image may carry several captions: the method then says what one image cannot do
            X = _keep_file(
                X, validate_data(self, X, reset=True, dtype=FLOATS, ensure_min_samples=2 if x_index is None else 1)
            )
            Y = _keep_file(Y, check_array(Y, dtype=FLOATS, ensure_2d=False, ensure_min_samples=2, input_name="Y"))
        Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
        if x_index is None and len(X) != len(Y):
            raise UserError(f"X and Y must hold paired rows, got {len(X)} and {len(Y)} rows")
        if x_index is not None:
            x_index = np.asarray(x_index)
            if (
                x_index.shape != (len(Y),)
                or not np.issubdtype(x_index.dtype, np.integer)
                or (len(Y) and (x_index.min() < 0 or x_index.max() >= len(X)))
            ):
                raise UserError(
                    f"x_index must hold one row of X (0..{len(X) - 1}) for each of the {len(Y)} rows "
                    f"of Y, got shape {x_index.shape}, dtype {x_index.dtype}"
                )
        return X, Y, x_index

    def _validate_view(self, a, view: str):
        """One view checked against the fitted width: (n, d) floats (a 1-d Y is one column)."""
        self._check_fitted()
        if _is_lazy(a):
            return a
        from sklearn.utils.validation import check_array, validate_data

        width = self._widths()[view == "Y"]
        with _user_errors():
            if view == "X":
                a = validate_data(self, a, reset=False, dtype=FLOATS, ensure_min_samples=0)
            else:
                a = check_array(a, dtype=FLOATS, ensure_2d=False, ensure_min_samples=0, input_name="Y")
        a = a.reshape(-1, 1) if a.ndim == 1 else a
        if a.shape[1] != width:
            raise UserError(
                f"{view} has {a.shape[1]} features, but {type(self).__name__} is expecting {width} features as input."
            )
        return a

    # --- the public surface ---------------------------------------------------------------------
    def fit(self, X, Y=None, x_index=None, **fit_params):
        """Fit on X (n_x, dx) and Y (n, dy) (array-likes); ``x_index`` (n,): row of X paired with each row of Y
        (default: row i with row i). Returns self. (``y=`` is accepted for Y, as scikit-learn passes it.)"""
        Y = _second_view(Y, fit_params)
        X, Y, x_index = self._validate_fit(X, Y, x_index)
        return self._fit(X, Y, x_index, **fit_params)  # DeepCCA's takes val=

    def transform_x(self, X) -> np.ndarray:
        """(n, dx) -> (n, k) float32 embeddings of the X view (images)."""
        return self._embed_x(self._validate_view(X, "X"))

    def transform_y(self, Y) -> np.ndarray:
        """(n, dy) -> (n, k) float32 embeddings of the Y view (captions)."""
        return self._embed_y(self._validate_view(Y, "Y"))

    def transform(self, X, Y=None, **kw):
        """X's embeddings (n, k), or the tuple (X's, Y's) when Y is given, as scikit-learn's CCA."""
        Y = _second_view(Y, kw)
        return self.transform_x(X) if Y is None else (self.transform_x(X), self.transform_y(Y))

    def fit_transform(self, X, Y=None, **fit_params):
        """``fit(X, Y).transform(X, Y)``: the tuple of both views' embeddings, as scikit-learn's CCA."""
        Y = _second_view(Y, fit_params)
        return self.fit(X, Y, **fit_params).transform(X, Y)

    def score(self, X, Y=None, sample_weight=None, **kw) -> float:
        """R-sum of cross-modal retrieval among the given pairs: row i of X is the match of row i of Y.

        Both views are embedded and ranked by cosine; R-sum = R@1 + R@5 + R@10 (percent) of X -> Y (image
        annotation) plus Y -> X (image search), between 0 and 600, higher is better (the selection score of
        the suite's own ``--cv``). Ties count as in :func:`cca_bench.metrics.ranks`' default rule.
        ``sample_weight`` is not supported (scikit-learn's signature only).
        """
        from cca_bench.metrics import evaluate_retrieval
        from cca_bench.stats import rsum_of

        Y = _second_view(Y, kw)
        if sample_weight is not None:
            raise UserError("sample_weight is not supported by score")
        ex, ey = self.transform(X, Y)
        if len(ex) != len(ey):
            raise UserError(f"score needs X and Y with the same rows (pairs), got {len(ex)} and {len(ey)}")
        return float(rsum_of(evaluate_retrieval(ex, ey, np.arange(len(ey)))))

    # --- what the benchmark calls (a FeatureSet's two views) ------------------------------------
    def fit_features(self, train, val=None):
        """Fit on a FeatureSet: every caption paired with its image's features."""
        return self.fit(train.images, train.texts, x_index=train.image_index)

    def embed_images(self, features) -> np.ndarray:
        """FeatureSet (its ``images``) or (n, dx) -> (n, k) image embeddings."""
        return self.transform_x(getattr(features, "images", features))

    def embed_texts(self, features) -> np.ndarray:
        """FeatureSet (its ``texts``) or (n, dy) -> (n, k) caption embeddings."""
        return self.transform_y(getattr(features, "texts", features))

    # --- subclass hooks -------------------------------------------------------------------------
    def _fit(self, X, Y, x_index):
        raise NotImplementedError

    def _embed_x(self, X) -> np.ndarray:
        raise NotImplementedError

    def _embed_y(self, Y) -> np.ndarray:
        raise NotImplementedError

    def _widths(self) -> tuple[int, int]:
        raise NotImplementedError
