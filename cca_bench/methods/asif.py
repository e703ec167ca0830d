"""ASIF: training-free relative representations over anchor pairs (Norelli et al., NeurIPS 2023).

"ASIF: Coupled Data Turns Unimodal Models to Multimodal Without Training". The anchors are image-caption pairs
(here the train pairs: every caption with its image, sampled to ``anchors`` if asked). An image becomes its
cosine similarities to the anchor images, a caption its cosine similarities to the anchor captions: two vectors
indexed by the same anchor pairs, hence comparable. Each is kept sparse (its ``top_k`` largest entries), raised
to the power ``exponent`` and L2-normalised; image and caption then score by dot product (the reference code's
``relreps.py``: ``relative_represent``, ``sparsify``, ``normalize_sparse``; its defaults k = 800, p = 8).
Unlike the reference, features are centred on the anchors' means by default (``center``: openmoji test R-sum
142.5 against 138.0 uncentred with MiniLM captions, docs/aligners.md), and similarities below zero count as 0
before the power (an even power would turn a strongly dissimilar anchor into a similar one; a fractional one is
undefined); with ``top_k`` positive similarities per row, as is usual, nothing changes.

Cost. The similarities of n queries to m anchors are n x m (COCO's 414k train captions against a 25k-caption
test split: 10^10 values): :func:`relative_topk` streams anchor blocks and keeps a running top-k per query, so
memory is O(n k + block). An anchor image shared by several captions is compared once: the top-k over pairs
takes unique images in order of similarity, each with all its pairs, cut at k (ties between a image's pairs go
to the lower anchor index). The result is sparse (:func:`sparse_rows`, CSR); ``embed_images`` / ``embed_texts``
return it dense (n x m float32) up to ``MAX_DENSE_BYTES`` and as scipy CSR above, which the evaluation and
``search`` score block by block without densifying (:mod:`cca_bench.sparse_rows`): COCO-size anchors need no
``--anchors`` cap. Both forms hold the same values (top-k, exponent, L2 rows).
"""

from __future__ import annotations

import numpy as np

from cca_bench.checks import COUNT, POSITIVE
from cca_bench.config import torch_device
from cca_bench.errors import UserError
from cca_bench.methods.aligner import l2_rows
from cca_bench.methods.base import BACKEND_CLI, check_arrays, load_saved, save_arrays
from cca_bench.methods.estimator import PairedEstimator
from cca_bench.registry import METHODS

BLOCK = 16384  # anchors per similarity block
QUERY_BLOCK = 4096  # queries per block: a block's scores are QUERY_BLOCK x BLOCK floats (256 MB)
MAX_DENSE_BYTES = 4 * 1024**3  # relative representations larger than this dense are returned as scipy CSR


def _select(values, indices, k: int):
    """The k largest of each row of ``values`` (rows, c), ties going to the earlier column, returned in column
    order with their ``indices`` (rows, c) (torch). Deterministic, unlike ``torch.topk`` on ties: the k-th value
    t is found by ``topk``, then every value above t and the first columns equal to t are kept."""
    import torch

    if values.shape[1] <= k:
        return values, indices
    t = torch.topk(values, k, dim=1).values[:, -1:]
    above = values > t
    tied = values == t
    need = k - above.sum(1, keepdim=True)
    if bool((tied.sum(1, keepdim=True) <= need).all()):  # the usual case: no tie straddles the k-th place
        keep = above | tied
    else:
        keep = above | (tied & (torch.cumsum(tied, 1) <= need))
    cols = keep.nonzero()[:, 1].reshape(len(values), k)  # row-major: each row's columns in order
    return torch.gather(values, 1, cols), torch.gather(indices, 1, cols)


def relative_topk(
    queries: np.ndarray,
    anchors: np.ndarray,
    k: int,
    device: str = "cpu",
    block: int = BLOCK,
    query_block: int = QUERY_BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """The k largest dot products of each query with the anchors, streamed over anchor blocks.

    queries (n, d), anchors (m, d), float32 (unit rows for cosines). Returns (values (n, k') float32, largest
    first, indices (n, k') int64 into anchors), k' = min(k, m); equal values go to the lower anchor index, so
    the first j columns of a top-k are the top-j. Memory: O(n k + query_block * block). On the CPU
    :func:`_stream_top` (a floor filter per query, numpy); on a GPU :func:`_torch_topk` (``torch.topk`` per
    block, fast there).
    """
    if device != "cpu":
        return _torch_topk(queries, anchors, k, device, block, query_block)
    a = np.ascontiguousarray(anchors, dtype=np.float32)
    k_out = min(k, len(a))
    parts = [
        _stream_top(np.ascontiguousarray(queries[q0 : q0 + query_block], dtype=np.float32), a, k_out, block)
        for q0 in range(0, len(queries), query_block)
    ]
    if not parts:
        return np.zeros((0, k_out), np.float32), np.zeros((0, k_out), np.int64)
    return np.concatenate([v for v, _ in parts]), np.concatenate([i for _, i in parts])


def _stream_top(q: np.ndarray, a: np.ndarray, k: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (n, k), indices (n, k)) of the k largest of ``q @ a.T`` (n, m), best first, ties to the lower
    index: each (n, block) score block goes to a :class:`cca_bench.running_topk.RunningTop` (one buffer, reused)."""
    from cca_bench.running_topk import RunningTop

    top = RunningTop(len(q), k, len(a))
    scores = np.empty((len(q), min(block, len(a))), np.float32)
    for s0 in range(0, len(a), block):
        part = a[s0 : s0 + block]
        top.add(np.matmul(q, part.T, out=scores) if len(part) == scores.shape[1] else q @ part.T, s0)
    return top.result()


def _torch_topk(
    queries: np.ndarray,
    anchors: np.ndarray,
    k: int,
    device: str = "cpu",
    block: int = BLOCK,
    query_block: int = QUERY_BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`relative_topk` with torch on ``device`` (a GPU): each anchor block's top-k by :func:`_select`,
    merged into a running top-k. Same result as :func:`_stream_top` where the GEMMs round alike."""
    import torch

    a = torch.from_numpy(np.ascontiguousarray(anchors, dtype=np.float32)).to(device)
    values, indices = [], []
    for q0 in range(0, len(queries), query_block):
        q = torch.from_numpy(np.ascontiguousarray(queries[q0 : q0 + query_block], dtype=np.float32)).to(device)
        run_v = torch.zeros((len(q), 0), device=device)
        run_i = torch.zeros((len(q), 0), dtype=torch.int64, device=device)
        for s in range(0, len(a), block):
            scores = q @ a[s : s + block].T
            cols = torch.arange(s, s + scores.shape[1], device=device).expand(len(q), -1)
            v, i = _select(scores, cols, k)  # the running set holds earlier anchors: ties keep them
            run_v, run_i = _select(torch.cat([run_v, v], 1), torch.cat([run_i, i], 1), k)
        order = torch.sort(run_v, dim=1, descending=True, stable=True).indices  # ties: lower anchor first
        values.append(torch.gather(run_v, 1, order).cpu().numpy())
        indices.append(torch.gather(run_i, 1, order).cpu().numpy())
    k_out = min(k, len(anchors))
    if not values:
        return np.zeros((0, k_out), np.float32), np.zeros((0, k_out), np.int64)
    return np.concatenate(values), np.concatenate(indices)


def dask_relative_topk(
    queries: np.ndarray,
    anchors: np.ndarray,
    k: int,
    scheduler: str | None = None,
    block: int = BLOCK,
    query_block: int = QUERY_BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`relative_topk` with each block of ``query_block`` queries one task on a Dask cluster.

    The anchors travel once to each worker (one graph key); a task streams them in ``block`` anchor blocks and
    returns only its (query_block, k) values and indices, so the cluster moves O(m d + n k), never the n x m
    similarities. The query blocks and the arithmetic are :func:`relative_topk`'s own, so the neighbours are the
    local ones. ``scheduler``: as :func:`cca_bench.linalg.dask_client`.
    """
    from cca_bench.extras import require
    from cca_bench.linalg import dask_client

    dask = require("dask", "backend='dask'")

    anchors = np.ascontiguousarray(anchors, dtype=np.float32)
    if len(queries) == 0:
        return relative_topk(queries, anchors, k)
    shared = dask.delayed(anchors, pure=True)
    tasks = [
        dask.delayed(relative_topk)(
            np.ascontiguousarray(queries[q0 : q0 + query_block], dtype=np.float32), shared, k, "cpu", block, query_block
        )
        for q0 in range(0, len(queries), query_block)
    ]
    with dask_client(scheduler):
        parts = dask.compute(*tasks)
    return np.concatenate([v for v, _ in parts]), np.concatenate([i for _, i in parts])


def expand_pairs(values: np.ndarray, unique: np.ndarray, starts: np.ndarray, k: int):
    """Top-k over anchor pairs from the top-k over unique anchor images.

    values, unique (n, k): similarities to unique images (largest first) and their ids; pairs of image u are the
    anchor indices ``starts[u] .. starts[u + 1] - 1``. Returns (values (n, k), pair indices (n, k)): each
    image's pairs in turn, in order of similarity, cut at k."""
    counts = starts[unique + 1] - starts[unique]  # (n, k) pairs per selected image
    cum = np.cumsum(counts, axis=1)
    slot = np.arange(k)
    which = np.stack([np.searchsorted(c, slot, side="right") for c in cum]) if len(cum) else np.zeros((0, k), int)
    which = np.minimum(which, unique.shape[1] - 1)
    offset = slot[None, :] - np.take_along_axis(np.concatenate([np.zeros((len(cum), 1), int), cum], 1), which, 1)
    pairs = starts[np.take_along_axis(unique, which, 1)] + offset
    return np.take_along_axis(values, which, 1), pairs.astype(np.int64)


def finish(values: np.ndarray, exponent: float) -> np.ndarray:
    """Top-k similarities -> ``max(v, 0) ** exponent``, each row L2-normalised (zero rows stay zero)."""
    v = np.maximum(values.astype(np.float64), 0.0) ** exponent
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)).astype(np.float32)


def sparse_rows(values: np.ndarray, indices: np.ndarray, n_cols: int):
    """(n, k) values at (n, k) column indices -> scipy CSR (n, n_cols)."""
    from scipy.sparse import csr_matrix

    n, k = values.shape
    return csr_matrix((values.ravel(), indices.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n_cols))


def yes_no(text: str) -> bool:
    """An argparse ``type``: yes/no (true/false, 1/0) -> bool."""
    import argparse

    value = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")
    return value


yes_no.__name__ = "yes/no"


@METHODS.register(
    "asif",
    help="ASIF (Norelli et al. 2023): training-free relative representations over the train "
    "pairs as anchors, top-k similarities raised to an exponent",
)
class ASIF(PairedEstimator):
    """ASIF relative representations, scikit-learn style (``fit`` only stores the anchors).

    Args:
        top_k: non-zero entries kept per relative representation (Norelli et al.: 800).
        exponent: power the kept similarities are raised to (Norelli et al.: 8).
        anchors: number of train pairs sampled as anchors (None: every pair).
        center: subtract the anchor pairs' mean image and mean caption from every feature before the cosines
            (default; not in the reference code, ``center=False`` follows it). It keeps an all-zero caption (one
            whose words all lack vectors) from becoming an all-zero relative representation, and spreads the
            cosines of non-negative CNN features.
        device: "auto" (CUDA when present), "cpu" or "cuda" for the similarity blocks.
        random_state: seed of the anchor sample.
        backend: "numpy" (here) or "dask": each block of queries' top-k is a task on a Dask cluster
            (:func:`dask_relative_topk`); dask_scheduler: its address (default a LocalCluster).
    Fitted: ``anchor_images_`` (n_u, dx) unit rows of the distinct anchor images, ``anchor_texts_`` (m, dy) unit
        rows, ``image_starts_`` (n_u + 1,): anchor pairs of image u are ``image_starts_[u]:image_starts_[u + 1]``
        (pairs are ordered by image), ``shift_x_`` (dx,), ``shift_y_`` (dy,) (the means subtracted; zeros
        without ``center``), ``n_anchors_`` = m.
    """

    METHOD = "asif"
    CLI_PARAMS = {
        "top_k": (COUNT.cli(), "asif: similarities kept per image or caption (default 800, at most the anchors)"),
        "exponent": (POSITIVE.cli(), "asif: power the kept similarities are raised to (default 8)"),
        "anchors": (COUNT.cli(), "asif: train pairs sampled as anchors (default: every train caption with its image)"),
        "center": (
            yes_no,
            "asif: yes (default) subtracts the anchors' mean image and mean caption before the "
            "cosines; no follows the reference code",
        ),
        **BACKEND_CLI,
    }
    CV_GRID = {"top_k": ((50, 100, 200, 400, 800), "--cv-top-k"), "exponent": ((1.0, 2.0, 4.0, 8.0), "--cv-exponent")}

    def __init__(
        self,
        top_k=800,
        exponent=8.0,
        anchors=None,
        center=True,
        device="auto",
        random_state=0,
        backend="numpy",
        dask_scheduler=None,
    ):
        self.top_k = top_k
        self.exponent = exponent
        self.anchors = anchors
        self.center = center
        self.device = device
        self.random_state = random_state
        self.backend = backend
        self.dask_scheduler = dask_scheduler

    def check_params(self, n_images: int | None = None, n_captions: int | None = None) -> None:
        """top_k >= 1 and at most the anchors, exponent > 0, anchors at most the train captions."""
        COUNT.check("top_k", self.top_k)
        POSITIVE.check("exponent", self.exponent)
        if self.anchors is not None:
            COUNT.check("anchors", self.anchors)
            if n_captions is not None and self.anchors > n_captions:
                raise UserError(f"ASIF anchors={self.anchors} exceeds the {n_captions} train pairs")
        m = self.anchors if self.anchors is not None else n_captions
        if m is not None and self.top_k > m:
            raise UserError(f"ASIF top_k={self.top_k} exceeds the number of anchors ({m}): choose top_k <= {m}")

    _FITTED = "anchor_texts_"

    def _fit(self, X, Y, x_index):
        """Store the anchors: images X (n_x, dx), captions Y (n, dy), ``x_index`` (n,) image of each caption."""
        x_index = np.arange(len(Y)) if x_index is None else np.asarray(x_index, dtype=np.int64)
        self.check_params(len(X), len(Y))
        if len(x_index) != len(Y) or len(Y) == 0 or x_index.min() < 0 or x_index.max() >= len(X):
            raise UserError("asif needs one image (0..n_images-1) for every caption of the train split")
        pick = np.arange(len(Y))
        if self.anchors is not None and self.anchors < len(Y):
            pick = np.sort(np.random.default_rng(self.random_state).choice(len(Y), self.anchors, replace=False))
        pick = pick[np.argsort(x_index[pick], kind="stable")]  # pairs ordered by image
        images, local = np.unique(x_index[pick], return_inverse=True)
        counts = np.bincount(local).astype(np.float64)
        X, Y = np.asarray(X)[images], np.asarray(Y)[pick]
        self.shift_x_ = (counts @ X / counts.sum() if self.center else np.zeros(X.shape[1])).astype(np.float32)
        self.shift_y_ = (Y.mean(0, dtype=np.float64) if self.center else np.zeros(Y.shape[1])).astype(np.float32)
        self.anchor_images_ = l2_rows(X - self.shift_x_)
        self.anchor_texts_ = l2_rows(Y - self.shift_y_)
        self.image_starts_ = np.concatenate([[0], np.cumsum(np.bincount(local))]).astype(np.int64)
        self.n_anchors_ = len(pick)
        return self

    # --- relative representations ---------------------------------------------------------------
    def _widths(self) -> tuple[int, int]:
        return self.anchor_images_.shape[1], self.anchor_texts_.shape[1]

    def topk_images(self, X, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(values (n, k), anchor pair indices (n, k)) of images X (n, dx), largest first."""
        self._check_fitted()
        X = self._rows(X, self.anchor_images_, "image")
        v, u = self._topk(l2_rows(X - self.shift_x_), self.anchor_images_, k)
        return expand_pairs(v, u, self.image_starts_, min(k, self.n_anchors_))

    def topk_texts(self, Y, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(values (n, k), anchor pair indices (n, k)) of captions Y (n, dy), largest first."""
        self._check_fitted()
        Y = self._rows(Y, self.anchor_texts_, "caption")
        return self._topk(l2_rows(Y - self.shift_y_), self.anchor_texts_, k)

    def _topk(self, queries: np.ndarray, anchors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:func:`relative_topk` here (``device``) or, with ``backend="dask"``, on the cluster."""
        if self.backend == "dask":
            return dask_relative_topk(queries, anchors, k, self.dask_scheduler, BLOCK, QUERY_BLOCK)
        if self.backend != "numpy":
            raise UserError(f"unknown backend {self.backend!r} (choose from numpy, dask)")
        return relative_topk(queries, anchors, k, torch_device(self.device), BLOCK, QUERY_BLOCK)

    def _rows(self, a, anchors, what: str) -> np.ndarray:
        a = np.asarray(a)
        if a.ndim != 2 or a.shape[1] != anchors.shape[1]:
            raise UserError(f"asif anchors {what} features are {anchors.shape[1]} wide, got shape {a.shape}")
        return a

    def dense(self, top: tuple[np.ndarray, np.ndarray], top_k: int | None = None, exponent: float | None = None):
        """Top-k (values, indices) -> (n, n_anchors) float32 relative representations: a dense array, or scipy
        CSR (sorted indices) when the dense one would exceed ``MAX_DENSE_BYTES``; the same values either way.
        ``top_k`` / ``exponent`` default to the model's (CV reuses one top-k)."""
        k, p = top_k or self.top_k, exponent or self.exponent
        values, indices = top[0][:, :k], top[1][:, :k]
        if 4 * len(values) * self.n_anchors_ > MAX_DENSE_BYTES:
            out = sparse_rows(finish(values, p), indices, self.n_anchors_)
            out.sort_indices()
            return out
        out = np.zeros((len(values), self.n_anchors_), np.float32)
        np.put_along_axis(out, indices, finish(values, p), 1)
        return out

    def _embed_x(self, X) -> np.ndarray:
        """(n, dx) -> (n, n_anchors) float32 unit rows, top_k non-zeros each (dense or CSR: :meth:`dense`)."""
        return self.dense(self.topk_images(X, self.top_k))

    def _embed_y(self, Y) -> np.ndarray:
        """(n, dy) -> (n, n_anchors) float32 unit rows, top_k non-zeros each (dense or CSR: :meth:`dense`)."""
        return self.dense(self.topk_texts(Y, self.top_k))

    @classmethod
    def cv_grid(cls, values: dict, params: dict, n_images: int, n_captions: int) -> dict:
        """The CV grid with top_k values above the number of anchors clipped to it (repeats dropped)."""
        m = min(params.get("anchors") or n_captions, n_captions)
        clipped = [min(int(k), m) if k >= 1 else k for k in values["top_k"]]  # k < 1 stays, for check_params
        return {**values, "top_k": list(dict.fromkeys(clipped))}

    @classmethod
    def cv_models(cls, train, val, points: list[dict], params: dict):
        """One top-k pass per view at the grid's largest k; every (top_k, exponent) slices and powers it."""
        k_max = max(int(p.get("top_k", params.get("top_k", cls().top_k))) for p in points)
        model = cls(**{**params, "top_k": k_max}).fit_features(train)
        ti, tt = model.topk_images(val.images, k_max), model.topk_texts(val.texts, k_max)
        for point in points:
            m = cls(**{**params, **point})
            m.__dict__.update({k: v for k, v in vars(model).items() if k.endswith("_")})
            yield point, m, m.dense(ti), m.dense(tt)

    def params_label(self) -> str:
        """``k=200 p=8 anchors=1021``."""
        return f"k={self.top_k} p={self.exponent:g} anchors={getattr(self, 'n_anchors_', self.anchors)}"

    # --- persistence ----------------------------------------------------------------------------
    def save(self, path, extra: dict | None = None):
        self._check_fitted()
        arrays = {
            "anchor_images_": self.anchor_images_,
            "anchor_texts_": self.anchor_texts_,
            "image_starts_": self.image_starts_,
            "shift_x_": self.shift_x_,
            "shift_y_": self.shift_y_,
        }
        save_arrays(
            path,
            arrays,
            {"method": self.METHOD, "params": self.get_params(), "n_anchors_": self.n_anchors_, **(extra or {})},
        )

    @classmethod
    def load(cls, path):
        model, arrays, config = load_saved(cls, path, cls.METHOD, required={"n_anchors_": int})
        check_arrays(
            path,
            arrays,
            {
                "anchor_images_": ("n_u", "dx"),
                "anchor_texts_": (config["n_anchors_"], "dy"),
                "shift_x_": ("dx",),
                "shift_y_": ("dy",),
            },
        )
        starts = arrays.get("image_starts_")
        n_u = len(arrays["anchor_images_"])
        if (
            starts is None
            or starts.dtype != np.int64
            or starts.shape != (n_u + 1,)
            or starts[0] != 0
            or starts[-1] != config["n_anchors_"]
            or np.any(np.diff(starts) < 1)
        ):
            raise UserError(
                f"the fitted model {path}.safetensors: image_starts_ is missing or does not index its "
                "anchors: run `generate` again"
            )
        model.anchor_images_, model.anchor_texts_ = arrays["anchor_images_"], arrays["anchor_texts_"]
        model.image_starts_, model.n_anchors_ = starts, config["n_anchors_"]
        model.shift_x_, model.shift_y_ = arrays["shift_x_"], arrays["shift_y_"]
        model.n_features_in_ = model.anchor_images_.shape[1]
        model.config_ = config
        return model
