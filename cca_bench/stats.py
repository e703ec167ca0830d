"""Uncertainty of retrieval metrics: image-level (cluster) bootstrap intervals and paired tests between runs.

Everything here is a pure function of per-query tie counts (:class:`cca_bench.ties.TieCounts`: items above the
ground truth and tied with it, from :mod:`cca_bench.metrics`), the run's tie rule and the image of each caption.
Under the default rule a query's hit is a probability and its rank an expected rank (:mod:`cca_bench.ties`);
every metric below is linear in those per-query values, so the image-level sums hold unchanged. The unit of
sampling is the test IMAGE: an image and all its captions are resampled together, since the captions of one image
share it and their outcomes correlate (a caption-level bootstrap gives intervals that
are too narrow; PROTOCOLS.md, "Uncertainty and significance").

A resample is a vector of counts c_i (how often image i was drawn), so every metric of every resample is a
weighted sum over images: R@K(i2t) = 100 sum_i c_i h_i / sum_i c_i q_i and R@K(t2i) = 100 sum_i c_i H_i /
sum_i c_i n_i, with h_i the image's annotation hit (probability), q_i whether it is a query (has captions), H_i
the sum of its captions' search hit probabilities and n_i its caption count. All B resamples are one
(B, n_images) count matrix times a few per-image columns, not B evaluations; medians are weighted medians over
the ranks' distinct values.

Draw order (what an independent re-implementation must repeat to get the same numbers): ``rng =
numpy.random.default_rng(seed)``; for each block of at most 1,000 resamples (:data:`BLOCK`), for each fold in
order, ``rng.integers(0, n_f, size=(B, n_f), dtype=D)`` are the
drawn image positions of the fold's B resamples of the block, with D = uint16 for n_f <= 65,536 images, else
int64. COCO 1k resamples images within each fold and averages the fold
metrics as the point estimate does; with several seeds (one ranking per seed) every seed's ranking is
scored on the same resample and the seed metrics are averaged, as the run's point estimate is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from cca_bench.errors import UserError
from cca_bench.ties import DEFAULT, TieCounts, check_rule

KS = (1, 5, 10)
METRICS = ("R@1", "R@5", "R@10", "median_rank", "mean_rank")
TASKS = ("image_annotation", "image_search")
SHORT = {"i2t": "image_annotation", "t2i": "image_search"}
LOWER_IS_BETTER = ("median_rank", "mean_rank")

# One default for every paired test on every surface (CLI `significance`, `compare --baseline`, marks, the web
# compare page): the same two runs then print the same delta, interval and p-value everywhere.
PAIRED_RESAMPLES = 10000
PAIRED_SEED = 0


def format_p(p: float, resamples: int) -> str:
    """The one printed form of a resampling p-value. At the floor of B resamples (p = 1/(B+1), nothing as
    extreme was drawn) the value is a bound, printed ``p < 1/(B+1)`` in decimals; below 0.001 ``p < 0.001``;
    else three decimals. Never scientific notation."""
    floor = 1.0 / (resamples + 1)
    if p <= floor * (1 + 1e-9):
        bound = float(f"{floor:.1g}")
        bound = bound if bound >= floor else float(f"{floor * 1.5:.1g}")
        return f"p < {bound:.10f}".rstrip("0")
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}"


@dataclass(frozen=True)
class QueryRanks:
    """Per-query tie counts of one evaluation (or of several seeds of it), its tie rule, and how queries map to
    images.

    i2t: TieCounts (S, n_images) of each image query, ``above`` -1 for an image without captions (not a query);
    t2i: TieCounts (S, n_captions) of each caption query; image_index: (n_captions,) image of each caption;
    fold: (n_images,) fold of each image (all 0 without folds); ties: the rule the run is scored under
    (:mod:`cca_bench.ties`). Counts of fold f are within fold f. S = number of seeds (1 for a single model).
    ``rank(task)`` / ``hit(task, k)`` give the rule's (S, n) 0-based ranks and hit probabilities.
    """

    i2t: TieCounts
    t2i: TieCounts
    image_index: np.ndarray
    fold: np.ndarray
    ties: str = DEFAULT

    def rank(self, short: str) -> np.ndarray:
        """(S, n) float64 0-based ranks of ``"i2t"`` or ``"t2i"`` under the run's rule (-1: no query)."""
        return getattr(self, short).rank(self.ties)

    def hit(self, short: str, k: int) -> np.ndarray:
        """(S, n) float64 probability of a hit in the top ``k`` of ``"i2t"`` or ``"t2i"`` (0: no query)."""
        return getattr(self, short).hit(k, self.ties)

    @property
    def n_images(self) -> int:
        return len(self.fold)

    def folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(image positions, caption positions)] of each fold, in fold order."""
        out = []
        for f in range(int(self.fold.max(initial=-1)) + 1):
            images = np.flatnonzero(self.fold == f)
            out.append((images, np.flatnonzero(self.fold[self.image_index] == f)))
        return out


def _as_counts(side, what: str) -> TieCounts:
    """(S, n) int64 TieCounts from a TieCounts or integer ranks (no ties recorded), a seed axis added if absent."""
    c = side if isinstance(side, TieCounts) else TieCounts.untied(np.asarray(side))
    arrays = [np.atleast_2d(np.asarray(a)) for a in (c.above, c.tied, c.gt_tied)]
    if any(a.dtype.kind not in "iu" for a in arrays) or len({a.shape for a in arrays}) != 1:
        raise UserError(
            f"{what}: tie counts must be integer arrays of one shape "
            f"(got {', '.join(f'{a.dtype}{a.shape}' for a in arrays)})"
        )
    return TieCounts(*(a.astype(np.int64) for a in arrays))


def query_ranks(i2t, t2i, image_index, fold=None, ties: str = DEFAULT) -> QueryRanks:
    """A checked :class:`QueryRanks` from TieCounts (or integer ranks: untied) shaped (n_images,) /
    (n_captions,) or with a seed axis first, under the tie rule ``ties``."""
    i2t, t2i = _as_counts(i2t, "image_annotation"), _as_counts(t2i, "image_search")
    image_index = np.asarray(image_index, dtype=np.int64)
    n_img = i2t.shape[1]
    fold = np.zeros(n_img, dtype=np.int64) if fold is None else np.asarray(fold, dtype=np.int64)
    if (
        len(i2t.shape) != 2
        or len(t2i.shape) != 2
        or image_index.ndim != 1
        or fold.ndim != 1
        or len(i2t) != len(t2i)
        or t2i.shape[1] != len(image_index)
        or len(fold) != n_img
    ):
        raise UserError(
            f"inconsistent rank arrays: image_annotation {i2t.shape}, image_search {t2i.shape}, "
            f"image_index {image_index.shape}, fold {fold.shape}"
        )
    if len(image_index) and (image_index.min() < 0 or image_index.max() >= n_img):
        raise UserError("image_index points outside the images")
    if (t2i.above < 0).any() or (i2t.above < -1).any():
        raise UserError("ranks must be >= 0 (image_annotation: -1 marks an image without captions)")
    if (
        (i2t.tied < 0).any()
        or (t2i.tied < 0).any()
        or (t2i.gt_tied != 1).any()
        or (i2t.gt_tied[i2t.above >= 0] < 1).any()
    ):
        raise UserError("tie counts must be >= 0, with at least one (image search: exactly one) tied ground truth")
    if len(fold) and (fold[0] != 0 or not np.isin(np.diff(fold), (0, 1)).all()):
        raise UserError("fold must number consecutive image folds 0, 1, ... without a gap")
    has_caption = np.bincount(image_index, minlength=n_img) > 0
    if ((i2t.above >= 0) != has_caption).any():
        raise UserError("image_annotation must rank exactly the images that have captions")
    return QueryRanks(i2t, t2i, image_index, fold, check_rule(ties))


def from_fold_ranks(per_fold: list[tuple], image_index: np.ndarray, n_images: int, ties: str = DEFAULT) -> QueryRanks:
    """One seed's :class:`QueryRanks` under ``ties`` from :func:`cca_bench.metrics.fold_counts` output: per
    consecutive equal fold, (TieCounts of the fold's images that have captions, of its captions in caption
    order, ...)."""
    image_index = np.asarray(image_index, dtype=np.int64)
    size = n_images // max(len(per_fold), 1)
    fold = np.repeat(np.arange(len(per_fold)), size)
    i2t = [np.full(n_images, -1, dtype=np.int64), np.zeros(n_images, np.int64), np.ones(n_images, np.int64)]
    t2i = [np.zeros(len(image_index), dtype=np.int64) for _ in range(3)]
    has_caption = np.bincount(image_index, minlength=n_images) > 0
    for f, (c_i2t, c_t2i, *_) in enumerate(per_fold):
        images = np.arange(f * size, (f + 1) * size)
        c_i2t, c_t2i = TieCounts.of(c_i2t), TieCounts.of(c_t2i)
        for whole, part in zip(i2t, (c_i2t.above, c_i2t.tied, c_i2t.gt_tied)):
            whole[images[has_caption[images]]] = part
        for whole, part in zip(t2i, (c_t2i.above, c_t2i.tied, c_t2i.gt_tied)):
            whole[fold[image_index] == f] = part
    return query_ranks(TieCounts(*i2t), TieCounts(*t2i), image_index, fold, ties)


def _stack(counts: list[TieCounts]) -> TieCounts:
    return TieCounts(*(np.concatenate([getattr(c, f) for c in counts]) for f in ("above", "tied", "gt_tied")))


def stack_seeds(rankings: list[QueryRanks]) -> QueryRanks:
    """The rankings of several seeds of one model on one split as one :class:`QueryRanks` (seed axis first)."""
    for other in rankings[1:]:
        check_same_images(rankings[0], other)
    first = rankings[0]
    return QueryRanks(
        _stack([r.i2t for r in rankings]), _stack([r.t2i for r in rankings]), first.image_index, first.fold, first.ties
    )


BLOCK = 1000  # resamples drawn and scored at a time: memory stays (BLOCK x n_images) for any number of resamples


def resample_counts(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """(B, n) float64 counts of each of n images in B resamples drawn with replacement (see the draw order:
    the positions are drawn as 16-bit integers when n <= 65,536, which halves the cost of the draws)."""
    return _counts(_draw(rng, n, resamples))


def _draw(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """(B, n) drawn image positions of B resamples of n images, as the draw order says."""
    return rng.integers(0, n, size=(resamples, n), dtype=np.uint16 if n <= 1 << 16 else np.int64)


def _counts(drawn: np.ndarray, dtype=np.float64, out: np.ndarray | None = None) -> np.ndarray:
    """(B, n) drawn positions -> (B, n) counts of each position in each resample (float64, or float32: whole
    numbers up to n, exact either way); written into ``out`` when given (a reused buffer: fresh memory costs
    page faults that cost as much as the counting)."""
    n = drawn.shape[1]
    counts = np.empty(drawn.shape, dtype) if out is None else out[: len(drawn)]
    if drawn.dtype == np.uint8:  # counts already (read from the resample cache): positions are never uint8
        counts[...] = drawn
        return counts
    for b, row in enumerate(drawn):  # a bincount per resample: no (B x n) offset array
        counts[b] = np.bincount(row, minlength=n)
    return counts


PREFETCH_BYTES = 128 * 2**20  # drawn positions a ResampleDraws may hold ahead of its reader
REPLICATE_BYTES = 512  # per resample and run: every metric's replicate, their concatenation and sorted copies


def resampling_bytes(resamples: int, n_images: int, paired: bool = False) -> int:
    """About the most memory a resampling statistic over ``n_images`` test images holds (an upper bound, checked
    against traced peaks in tests/test_resample_cache.py): the interval bootstrap its draws queued ahead (at most
    :data:`PREFETCH_BYTES`), one block's draws and two float32 count buffers, and every metric's replicates; a
    paired test all of its draws at once (its documented order draws each fold's resamples in one call), a
    block of sign flips, and the replicates of both runs."""
    width = 2 if n_images <= 1 << 16 else 8  # the draw order's position dtype
    block = min(BLOCK, resamples) * n_images
    draws = resamples * n_images * width
    need = block * (width + 2 * 4) + resamples * REPLICATE_BYTES * (2 if paired else 1)
    return need + (draws + block * (1 + 8) if paired else min(PREFETCH_BYTES, draws))


def check_resamples(flag: str, resamples: int, n_images: int, paired: bool = False) -> None:
    """Refuse (a UserError naming ``flag``) a resampling statistic whose :func:`resampling_bytes` exceed the
    memory available, before the evaluation or the test starts."""
    from cca_bench.checks import check_memory

    check_memory(resampling_bytes(resamples, n_images, paired), f"{flag} {resamples} on {n_images:,} images")


class ResampleDraws:
    """The bootstrap's draws (the documented draw order: per block of :data:`BLOCK` resamples, per fold, the
    (b, n_f) drawn positions), made by a background thread from the moment it is built. They depend only on
    the fold sizes, the number of resamples and the seed, not on any score, so they are drawn ahead of their
    reader (numpy's generator releases the GIL while it draws): the next blocks while :func:`bootstrap_replicates`
    counts and scores this one, or, started earlier, while other work runs (an evaluation on the CPU starts them
    once its GEMM passes are done: beside them they would hold back the BLAS threads, see
    :func:`cca_bench.evaluation.score`). At most :data:`PREFETCH_BYTES` of positions wait to be read; a block
    larger than that (a fold of more than ~60,000 images) is drawn only when read, in the reader's thread, so
    memory stays one block. Iterate once; :meth:`close` stops the thread early (an evaluation that failed).

    ``cache_dir`` (the cache folder, DATA/cache; None: none): the counts these draws give are stored there by the
    first :func:`bootstrap_replicates` or :func:`each_count_block` that reads them whole, and later draws of the
    same key are read from there instead (:mod:`cca_bench.resample_cache`: the blocks are then uint8 counts, not
    positions; no thread). ``stored``: those counts, else None; ``cache_dir``: where to store them, None when stored
    already, too large to keep, or no cache folder."""

    def __init__(self, fold_sizes, resamples: int, seed: int, cache_dir=None):
        import queue
        import threading

        from cca_bench import resample_cache

        self.key = (tuple(int(n) for n in fold_sizes), int(resamples), int(seed))
        wide = max(self.key[0], default=0) > 1 << 16
        block_bytes = sum(self.key[0]) * min(BLOCK, max(int(resamples), 1)) * (8 if wide else 2)
        self._queue: queue.Queue | None = None
        self._closed = threading.Event()
        self.cache_key = resample_cache.key(*self.key, BLOCK)
        self.stored = resample_cache.load(cache_dir, self.cache_key)
        self.cache_dir = cache_dir if self.stored is None and resample_cache.fits(self.cache_key) else None
        if self.stored is None and block_bytes <= PREFETCH_BYTES:
            self._queue = queue.Queue(maxsize=max(1, PREFETCH_BYTES // max(block_bytes, 1)))
            threading.Thread(target=self._produce, daemon=True, name="resample-draws").start()

    def _blocks(self):
        """Each block's per-fold draws, in the documented order (their uint8 counts when stored)."""
        sizes, resamples, seed = self.key
        if self.stored is not None:
            from cca_bench.resample_cache import blocks

            yield from blocks(self.stored, sizes, BLOCK)
            return
        rng = np.random.default_rng(seed)
        for start in range(0, resamples, BLOCK):
            yield [_draw(rng, n, min(BLOCK, resamples - start)) for n in sizes]

    def _produce(self) -> None:
        try:
            for block in self._blocks():
                if not self._put(block):
                    return
        except BaseException as e:  # noqa: BLE001 (handed to the reader, which raises it)
            self._put(e)
            return
        self._put(None)

    def _put(self, item) -> bool:
        """Queue ``item`` once there is room; False when closed first."""
        import queue

        assert self._queue is not None
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        if self._queue is None:
            yield from self._blocks()
            return
        while (block := self._queue.get()) is not None:
            if isinstance(block, BaseException):
                raise block
            yield block

    def close(self) -> None:
        """Stop drawing (the draws not read are dropped)."""
        self._closed.set()


DENSE_MEDIAN_COLUMNS = 256  # window columns up to which the medians' weights are one dense GEMM
MEDIAN_WINDOWS = (0.05, 0.1, 0.25, 1.0)  # half-widths (shares of the queries) tried in turn around the median


class _Median:
    """One direction's weighted median rank over resamples (Kiros/VSE++ floor(median(r0)) + 1), prepared once
    from its 0-based ranks ``values`` (m,), query j weighing ``counts[b, owner[j]]`` in resample b.

    Only the values whose unweighted cumulative share lies near one half get a column of their own (those below
    and above are pooled in two), and the window widens until every resample's median falls inside it. The
    cumulative weights of the columns are one product ``counts @ M``, M (n, columns) each image's number of
    queries at or below each column: a dense GEMM up to :data:`DENSE_MEDIAN_COLUMNS` columns, else sparse.
    Whole numbers, exact in the counts' dtype (:func:`_median_weights`), so any summation order gives the
    same medians."""

    def __init__(self, values: np.ndarray, owner: np.ndarray, n: int):
        self.vals, self.code = np.unique(values, return_inverse=True)
        self.share = np.cumsum(np.bincount(self.code, minlength=len(self.vals))) / max(len(values), 1)
        self.owner, self.n = owner, n
        self.windows: dict = {}

    def _window(self, half_width: float, dtype):
        """(a, b, M) of a window: values a .. b - 1 get columns 1 .. b - a."""
        if (half_width, dtype) not in self.windows:
            a = int(np.searchsorted(self.share, 0.5 - half_width, side="right"))  # first value in the window
            b = (
                len(self.vals)
                if half_width >= 0.5
                else int(np.searchsorted(self.share, 0.5 + half_width, side="left")) + 1
            )
            column = np.clip(self.code - a + 1, 0, b - a + 1)  # 0: below the window, b - a + 1: above it
            width = b - a + 2
            if width <= DENSE_MEDIAN_COLUMNS:
                m = np.zeros((self.n, width), dtype)
                np.add.at(m, (self.owner, column), 1)
                m = np.cumsum(m, axis=1, out=m)
            else:
                from scipy import sparse

                m = sparse.csr_matrix((np.ones(len(column), dtype), (column, self.owner)), shape=(width, self.n))
            self.windows[half_width, dtype] = (a, b, m)
        return self.windows[half_width, dtype]

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        """(B,) median ranks for (B, n) ``counts`` (:func:`_median_weights`), the window widened as needed."""
        for half_width in MEDIAN_WINDOWS:
            m = self._window(half_width, counts.dtype)[2]
            if isinstance(m, np.ndarray):
                cum = counts @ m  # (B, window + 2)
            else:
                cum = np.cumsum(m @ np.ascontiguousarray(counts.T), axis=0).T
            got = self.solve(cum, half_width, counts.dtype)
            if got is not None:
                return got
        raise AssertionError("the widest window holds every median")  # pragma: no cover

    def solve(self, cum: np.ndarray, half_width: float, dtype) -> np.ndarray | None:
        """(B,) medians from the (B, window + 2) cumulative weights of a window, or None when some resample's
        median falls outside it (the widest window holds all)."""
        a, b, _ = self._window(half_width, dtype)
        total = cum[:, -1]
        lo = (cum > ((total - 1) // 2)[:, None]).argmax(1)
        hi = (cum > (total // 2)[:, None]).argmax(1)
        if half_width < 1.0 and (lo.min() < 1 or hi.max() > b - a):
            return None
        return np.floor((self.vals[a + lo - 1] + self.vals[a + hi - 1]) / 2.0) + 1


class _Medians:
    """Every median of one fold (both directions of every seed), weighed by ONE product at their first
    windows (one read of the counts for all of them), each widened on its own where needed. ``head``: more
    float32 columns (n, h) to multiply in the same product (the sums' limbs, :func:`_limbs`), or None."""

    def __init__(self, medians: list[_Median], head: np.ndarray | None):
        self.medians, self.head = medians, head
        self.joint: dict = {}

    def __call__(self, weights: np.ndarray, with_head: bool) -> tuple[np.ndarray | None, list[np.ndarray]]:
        """(``weights @ head`` (B, h) when ``with_head``, else None; (B,) medians of each), for (B, n)
        ``weights`` (:func:`_median_weights`; float32 when ``with_head``)."""
        first, key = MEDIAN_WINDOWS[0], (weights.dtype, with_head)
        if key not in self.joint:
            ms = [med._window(first, weights.dtype)[2] for med in self.medians]
            dense = all(isinstance(m, np.ndarray) for m in ms)
            ms = [self.head, *ms] if with_head else ms
            edges = np.cumsum([0] + [m.shape[1] for m in ms])
            self.joint[key] = (np.concatenate(ms, axis=1) if dense else None, edges)
        m, edges = self.joint[key]
        if m is None:
            return (weights @ self.head if with_head else None), [med(weights) for med in self.medians]
        cum = weights @ m
        head = cum[:, : edges[1]] if with_head else None
        out = []
        for med, lo, hi in zip(self.medians, edges[int(with_head) : -1], edges[int(with_head) + 1 :]):
            got = med.solve(cum[:, lo:hi], first, weights.dtype)
            out.append(med(weights) if got is None else got)
        return head, out


LIMB = 256.0  # the sums' whole-number columns in three base-256 digits: every float32 partial sum stays exact
MAX_HALVINGS = 8  # a column of multiples of 2^-e (e <= 8: expected ranks of pairs of ties are halves) is scaled


def _limbs(cols: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(n, m) non-negative columns that are multiples of 2^-e (e <= :data:`MAX_HALVINGS`), times 2^e below 2^24
    -> ((n, 3 m) float32 [low | middle | high] base-256 digits of the scaled columns, (m,) scales 2^e). A
    resample's weighted sum of one digit column is below 2^24 while its counts total under 2^16, so a float32
    GEMM of the digits is exact in any summation order, and so is every sum put back (:func:`_from_limbs`).
    None when some column is no such number (a hit probability of 1/3 under ties): the float64 product then."""
    scales = np.ones(cols.shape[1])
    for j, col in enumerate(cols.T):
        for e in range(MAX_HALVINGS + 1):
            v = col * 2.0**e
            if np.array_equal(v, np.floor(v)):
                break
        else:
            return None
        scales[j] = 2.0**e
    scaled = cols * scales
    if scaled.min(initial=0) < 0 or scaled.max(initial=0) >= 2**24:
        return None
    lo = np.mod(scaled, LIMB)
    mid = np.mod(np.floor(scaled / LIMB), LIMB)
    return np.concatenate([lo, mid, np.floor(scaled / LIMB**2)], axis=1).astype(np.float32), scales


def _from_limbs(digits: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(B, 3 m) float32 exact sums of the digit columns -> (B, m) float64 sums of the columns (exact: whole
    numbers below 2^40 divided by powers of two)."""
    lo, mid, hi = np.split(digits.astype(np.float64), 3, axis=1)
    return (lo + LIMB * mid + LIMB**2 * hi) / scales


class _FoldPlan:
    """What the resampled metrics of one fold and one seed need from its tie counts, prepared once for every
    block of resamples: the per-image columns (n, 10) of the sums (hit probabilities and (expected) ranks
    under the rule ``ties``; images 0..n-1, ``owner`` = image of each caption) and both medians."""

    def __init__(self, c_i2t: TieCounts, c_t2i: TieCounts, owner: np.ndarray, n: int, ties: str):
        query, r_i2t, r_t2i = c_i2t.queries(), c_i2t.rank(ties), c_t2i.rank(ties)
        self.caps = np.bincount(owner, minlength=n)  # (n,) captions of each image
        cols = {
            "den_i2t": query.astype(np.float64),
            "sum_i2t": np.where(query, r_i2t, 0.0),
            "den_t2i": self.caps.astype(np.float64),
            "sum_t2i": np.bincount(owner, weights=r_t2i, minlength=n),
        }
        for k in KS:
            cols[f"R@{k}_i2t"] = c_i2t.hit(k, ties)
            cols[f"R@{k}_t2i"] = np.bincount(owner, weights=c_t2i.hit(k, ties), minlength=n)
        self.names = list(cols)
        self.cols = np.stack([cols[c] for c in self.names], axis=1)
        self.limbs = _limbs(self.cols)
        self.medians = {
            "i2t": _Median(r_i2t[query], np.flatnonzero(query), n),
            "t2i": _Median(r_t2i, owner, n),
        }

    def metrics(self, counts: np.ndarray, medians: dict, known: np.ndarray | None = None) -> dict:
        """{task: {metric: (B,)}} for the (B, n) float64 resample counts and their median ranks (``medians``:
        {"i2t": (B,), "t2i": (B,)}, from :attr:`medians`); ``known``: ``counts @ cols`` (B, 10) when already
        known exactly (:func:`_from_limbs`), else computed here."""
        sums = dict(zip(self.names, (counts @ self.cols if known is None else known).T))  # (B, n) @ (n, 10)
        out = {}
        for short, task in (("i2t", "image_annotation"), ("t2i", "image_search")):
            den = sums[f"den_{short}"]
            task_metrics = {f"R@{k}": 100.0 * (sums[f"R@{k}_{short}"] / den) for k in KS}
            task_metrics["median_rank"] = medians[short]
            task_metrics["mean_rank"] = sums[f"sum_{short}"] / den + 1
            out[task] = task_metrics
        return out


def _median_weights(counts: np.ndarray, caps: np.ndarray, total: float) -> np.ndarray:
    """(B, n) resample counts as the medians' products take them: float32 where every sum of weights (whole
    numbers of queries, at most a resample's ``total`` count times the most captions ``caps`` (n,) of an
    image) stays below 2^24, so is exact (any real test split), else float64."""
    exact32 = total * max(caps.max(initial=1), 1) < 2**24
    return counts.astype(np.float32 if exact32 else np.float64, copy=False)


def fold_plans(ranks: QueryRanks) -> list[tuple[list[_FoldPlan], _Medians]]:
    """Per fold: the :class:`_FoldPlan` of each seed of ``ranks`` and their medians together (:class:`_Medians`,
    with every seed's sum digits when every column is a multiple of a power of two, :func:`_limbs`)."""
    plans = []
    for images, caps in ranks.folds():
        owner = np.searchsorted(images, ranks.image_index[caps])
        seeds = [
            _FoldPlan(ranks.i2t[s, images], ranks.t2i[s, caps], owner, len(images), ranks.ties)
            for s in range(len(ranks.i2t))
        ]
        limbs = [p.limbs for p in seeds]
        head = None if any(x is None for x in limbs) else np.concatenate([x[0] for x in limbs if x is not None], axis=1)
        plans.append((seeds, _Medians([plan.medians[d] for plan in seeds for d in ("i2t", "t2i")], head)))
    return plans


def replicate_metrics(ranks: QueryRanks, counts: list[np.ndarray], plans: list | None = None) -> dict:
    """{task: {metric: (B,)}} averaged over folds and seeds, for per-fold resample counts [(B, n_f)] (float64 or
    float32; ``plans``: :func:`fold_plans` of ``ranks``, made here when not given).

    The sums are ``counts @ cols`` in float64 (n, 10 per seed), or, where every column holds whole numbers
    (no fractional tie), the same numbers exactly from a float32 GEMM of their base-256 digits (:func:`_limbs`)
    shared with the medians' product: either way every replicate is the same bit for bit."""
    plans = fold_plans(ranks) if plans is None else plans
    per_fold = []
    for c, (seeds, medians) in zip(counts, plans):
        total = float(c.sum(1).max(initial=0))  # n_f: a resample draws as many images as the fold has
        weights = _median_weights(c, seeds[0].caps, total)
        exact = medians.head is not None and weights.dtype == np.float32 and total < 2**16
        head, med = medians(weights, exact)
        digits = np.split(head, len(seeds), axis=1) if exact else [None] * len(seeds)
        c = c if exact else c.astype(np.float64, copy=False)  # the float64 product of the counts (exact)
        per_fold.append(
            [
                plan.metrics(
                    c,
                    {"i2t": med[2 * s], "t2i": med[2 * s + 1]},
                    None if d is None or plan.limbs is None else _from_limbs(d, plan.limbs[1]),
                )
                for s, (plan, d) in enumerate(zip(seeds, digits))
            ]
        )
    # fold mean first (as metrics.evaluate does), then the mean over seeds (as a run with --seeds does)
    return {
        t: {
            m: np.mean([np.mean([f[s][t][m] for f in per_fold], axis=0) for s in range(len(ranks.i2t))], axis=0)
            for m in METRICS
        }
        for t in TASKS
    }


def point_metrics(ranks: QueryRanks) -> dict:
    """The run's metrics ({task: {metric: float}}) from its tie counts: per fold and seed
    :func:`cca_bench.metrics.summarize` (correctly rounded sums, so bit for bit on any machine), averaged over
    folds, then seeds, as :func:`replicate_metrics` averages; equal to the evaluation's own numbers."""
    from cca_bench.metrics import summarize

    seeds = []
    for s in range(len(ranks.i2t)):
        per_fold = []
        for images, caps in ranks.folds():
            c_i2t = ranks.i2t[s, images]
            c_i2t = c_i2t[c_i2t.queries()]
            per_fold.append(
                {
                    "image_annotation": summarize(c_i2t, ranks.ties),
                    "image_search": summarize(ranks.t2i[s, caps], ranks.ties),
                }
            )
        seeds.append({t: {m: np.mean([f[t][m] for f in per_fold]) for m in METRICS} for t in TASKS})
    return {t: {m: float(np.mean([sd[t][m] for sd in seeds])) for m in METRICS} for t in TASKS}


def n_seeds(ranks: QueryRanks) -> int:
    """How many seeds (rankings) ``ranks`` holds."""
    return len(ranks.i2t)


def seed_slice(ranks: QueryRanks, s: int) -> QueryRanks:
    """The one-seed :class:`QueryRanks` of seed position ``s``."""
    return QueryRanks(ranks.i2t[s : s + 1], ranks.t2i[s : s + 1], ranks.image_index, ranks.fold, ranks.ties)


def per_seed_metrics(ranks: QueryRanks) -> list[dict]:
    """One :func:`point_metrics` record per seed of ``ranks``."""
    return [point_metrics(seed_slice(ranks, s)) for s in range(n_seeds(ranks))]


def rsum_of(metrics: dict):
    """R@1 + R@5 + R@10 of both directions (floats or (B,) arrays alike)."""
    return sum(metrics[t][f"R@{k}"] for t in TASKS for k in KS)


def bootstrap_replicates(
    ranks: QueryRanks, resamples: int = 1000, seed: int = 0, draws: ResampleDraws | None = None
) -> dict:
    """{task: {metric: (B,)}, "rsum": (B,)} over B image-level resamples (the documented draw order, in blocks
    of :data:`BLOCK` resamples: block by block, fold by fold; one block when B <= BLOCK).

    ``draws``: a :class:`ResampleDraws` started earlier for the same fold sizes, B and seed (else one is
    started here). Three threads: the draws are made ahead in theirs (numpy's generator releases the GIL), this
    thread counts each block (a bincount per resample, holding the GIL) into one of two reused buffers, and a
    helper scores the previous block meanwhile (its product releases the GIL). The other way round, the
    counts in the helper, came out slower when measured at COCO 5k with 10,000 resamples."""
    if resamples < 1:
        raise UserError(f"--bootstrap must be at least 1 (got {resamples})")
    sizes = tuple(len(images) for images, _ in ranks.folds())
    if draws is None or draws.key != (sizes, int(resamples), int(seed)):
        draws = ResampleDraws(sizes, resamples, seed)
    rows = min(BLOCK, int(resamples))
    return _counted(draws, lambda put: _scored_blocks(ranks, draws, rows, put))


def _counted(draws: ResampleDraws, run):
    """``run(put)``, ``put`` storing each counted block in the resample cache when ``draws`` are to be stored
    there (:func:`cca_bench.resample_cache.store_while`), else None; ``draws`` closed after."""
    try:
        if draws.cache_dir is None:
            return run(None)
        from cca_bench.resample_cache import store_while

        return store_while(draws.cache_dir, draws.cache_key, run)
    finally:
        draws.close()


def each_count_block(fold_sizes, resamples: int, seed: int, score, cache_dir=None) -> list:
    """``[score(counts)]`` for each block of the interval bootstrap's resamples in order (the documented draw
    order: the same resamples as :func:`bootstrap_replicates` with this seed), ``counts`` the block's per-fold
    (b, n_f) float32 counts in a reused buffer, counted and scored as :func:`_each_block` says. With
    ``cache_dir`` they are read from the resample cache, or drawn and stored there
    (:mod:`cca_bench.resample_cache`), as an evaluation's are. For statistics of the same resamples that are
    not :func:`replicate_metrics` (:mod:`cca_bench.coco_extended`'s intervals)."""
    draws = ResampleDraws(fold_sizes, resamples, seed, cache_dir)
    return _counted(draws, lambda put: _each_block(draws, draws.key[0], min(BLOCK, int(resamples)), score, put))


def _scored_blocks(ranks: QueryRanks, blocks, rows: int, put=None) -> dict:
    """:func:`bootstrap_replicates`' record from ``blocks``: an iterable of blocks of at most ``rows`` resamples,
    each the per-fold (b, n_f) drawn positions (or their uint8 counts), each scored by
    :func:`replicate_metrics` in :func:`_each_block`'s helper thread, in order."""
    plans, sizes = fold_plans(ranks), [len(images) for images, _ in ranks.folds()]
    scored_blocks = _each_block(blocks, sizes, rows, lambda counts: replicate_metrics(ranks, counts, plans), put)
    reps = {t: {m: np.concatenate([blk[t][m] for blk in scored_blocks]) for m in METRICS} for t in TASKS}
    return reps | {"rsum": rsum_of(reps)}


def _each_block(blocks, sizes, rows: int, score, put=None) -> list:
    """``[score(counts)]`` of each block of ``blocks`` (per fold, drawn positions or their uint8 counts), in
    order. This thread counts each block (a bincount per resample, holding the GIL) into one of two reused
    float32 buffers (fresh memory costs page faults) while a helper thread hands the previous block to ``put``
    (the resample cache's write releases the GIL) and then to ``score`` (a product, which releases it too); a
    buffer is counted into again only once its block is done."""
    from concurrent.futures import ThreadPoolExecutor

    buffers = [[np.empty((rows, n), np.float32) for n in sizes] for _ in range(2)]  # this block's, the one scored
    out = []
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for i, block in enumerate(blocks):
            counts = _block_counts(block, buffers[i % 2])
            if pending is not None:  # the previous block (the other buffer) is done before it is reused
                out.append(pending.result())
            pending = pool.submit(_put_and_score, put, score, counts)
        if pending is not None:
            out.append(pending.result())
    return out


def _put_and_score(put, score, counts: list[np.ndarray]):
    """The helper's work on one counted block: handed to ``put`` first, when given, then scored."""
    if put is not None:
        put(counts)
    return score(counts)


def _block_counts(block: list[np.ndarray], out: list[np.ndarray]) -> list[np.ndarray]:
    """One block's per-fold drawn positions -> their (B, n_f) float32 counts, written into ``out``."""
    return [_counts(d, np.float32, o) for d, o in zip(block, out)]


def bootstrap_ci(ranks: QueryRanks, resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Percentile intervals ``{"image_annotation": {"R@1": [lo, hi], ...}, "image_search": {...},
    "rsum": [lo, hi]}`` of every metric, from :func:`bootstrap_replicates`."""
    return bootstrap_ci_mc(ranks, resamples, level, seed)[0]


def bootstrap_ci_mc(
    ranks: QueryRanks,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    draws: ResampleDraws | None = None,
) -> tuple:
    """(:func:`bootstrap_ci`'s intervals, the Monte Carlo error of each bound in the same layout): how far a
    bound moves with the bootstrap seed (:func:`percentile_mc_error`). ``draws``: as
    :func:`bootstrap_replicates` takes it."""
    if not 0 < level < 1:
        raise UserError(f"the interval level must lie between 0 and 1 (got {level})")
    reps = bootstrap_replicates(ranks, resamples, seed, draws)
    q = [(1 - level) / 2, (1 + level) / 2]
    ci = lambda v: [float(x) for x in np.percentile(v, [100 * x for x in q])]  # noqa: E731
    mc = lambda v: [percentile_mc_error(v, x) for x in q]  # noqa: E731
    return tuple({t: {m: f(reps[t][m]) for m in METRICS} for t in TASKS} | {"rsum": f(reps["rsum"])} for f in (ci, mc))


def percentile_mc_error(replicates: np.ndarray, q: float) -> float:
    """Monte Carlo standard error of the q-quantile of B bootstrap replicates: the sample q-quantile's index
    is binomial, SD sqrt(B q (1 - q)), so half the distance between the quantiles at q -+ sqrt(q (1 - q) / B)
    estimates it (the order-statistic interval of Maritz and Jarrett 1978, at one SD)."""
    h = np.sqrt(q * (1 - q) / len(replicates))
    lo, hi = np.percentile(replicates, [100 * max(q - h, 0.0), 100 * min(q + h, 1.0)])
    return float(hi - lo) / 2


def ci_method(resamples: int, level: float, seed: int) -> dict:
    """What a run records of how its intervals were made."""
    return {
        "resamples": int(resamples),
        "level": float(level),
        "seed": int(seed),
        "unit": "image",
        "method": "percentile bootstrap over test images (each image with all its captions)",
    }


# ---------------------------------------------------------------- paired comparison of two runs on one split

# spellings of one metric or direction (lower case, without '_', '-', ' ') -> its canonical name
METRIC_ALIASES = {
    "rsum": "rsum",
    "medr": "median_rank",
    "medianrank": "median_rank",
    "medrank": "median_rank",
    "meanr": "mean_rank",
    "meanrank": "mean_rank",
    **{f"{p}{k}": f"R@{k}" for k in KS for p in ("r@", "r", "recall@", "recall")},
}
DIRECTION_ALIASES = {"i2t": "i2t", "t2i": "t2i", "imageannotation": "i2t", "imagesearch": "t2i"}


def metric_name(text: str) -> str:
    """The canonical name of a metric however it is spelt, for every command (``--metric``, ``--cv-select``,
    ...): case, '_', '-' and spaces do not matter; ``medr`` / ``MedR`` / ``median_rank`` -> ``median_rank``,
    ``r@1`` / ``R1`` / ``recall@1`` -> ``R@1``, ``RSum`` -> ``rsum``, ``I2T:r@1`` / ``image_annotation:R@1``
    -> ``i2t:R@1`` (one direction; ``rsum`` takes none). An unknown name is a UserError with a did-you-mean."""
    import difflib

    def key(s: str) -> str:
        return re.sub(r"[\s_-]", "", s).lower()

    direction, _, metric = str(text).rpartition(":")
    canon = METRIC_ALIASES.get(key(metric))
    side = DIRECTION_ALIASES.get(key(direction)) if direction else ""
    if canon is not None and side is not None and not (side and canon == "rsum"):
        return f"{side}:{canon}" if side else canon
    known = ["rsum", *METRICS, *(f"{d}:{m}" for d in SHORT for m in METRICS)]
    by_key = {k.lower(): k for k in known}
    close = difflib.get_close_matches(str(text).lower(), list(by_key), n=1, cutoff=0.5)
    hint = f"; did you mean {by_key[close[0]]!r}?" if close else ""
    raise UserError(
        f"unknown metric {text!r}{hint} (choose rsum, one of {', '.join(METRICS)} (both directions "
        "summed, any case; medr = median_rank), or i2t:/t2i: before one of them, e.g. t2i:R@1)"
    )


def parse_metric(name: str) -> tuple[tuple[str, ...], str]:
    """Any spelling :func:`metric_name` knows (``rsum``, ``R@1`` .. ``mean_rank`` both directions summed,
    ``i2t:R@1`` / ``t2i:median_rank`` one direction) -> (tasks, canonical metric); else a UserError."""
    direction, _, metric = metric_name(name).rpartition(":")
    return ((SHORT[direction],) if direction else TASKS), metric


def metric_value(reps: dict, tasks: tuple[str, ...], metric: str):
    """The value (float or (B,)) of a parsed metric in a {task: {metric: ...}} record."""
    if metric == "rsum":
        return rsum_of(reps)
    return sum(reps[t][metric] for t in tasks)


def _contributions(ranks: QueryRanks, tasks: tuple[str, ...], metric: str) -> np.ndarray:
    """(n_images,) each image's additive share of a linear metric (R@K, mean rank, R-sum) of the run:
    the metric equals their sum up to rounding (fold and seed means included; mean ranks up to their +1)."""
    out = np.zeros(ranks.n_images)
    ks = KS if metric == "rsum" else (int(metric[2:]),) if metric.startswith("R@") else ()
    n_folds, n_seeds = len(ranks.folds()), len(ranks.i2t)
    for images, caps in ranks.folds():
        owner = ranks.image_index[caps]
        for s in range(n_seeds):
            c_i2t, c_t2i = ranks.i2t[s, images], ranks.t2i[s, caps]
            query = c_i2t.queries()
            for task in tasks:  # hit probabilities and (expected) ranks under the run's tie rule
                if task == "image_annotation":
                    per = (
                        sum(c_i2t.hit(k, ranks.ties) * 100.0 for k in ks)
                        if ks
                        else np.where(query, c_i2t.rank(ranks.ties), 0.0)
                    )
                    out[images] += per / query.sum() / n_folds / n_seeds
                else:
                    per = sum(c_t2i.hit(k, ranks.ties) * 100.0 for k in ks) if ks else c_t2i.rank(ranks.ties)
                    out += np.bincount(owner, weights=per, minlength=ranks.n_images) / len(caps) / n_folds / n_seeds
    return out


def sign_flip_p(diff: np.ndarray, trials: int, rng: np.random.Generator, block: int = 1000) -> float:
    """Two-sided p-value of sum(diff) under random sign flips of the per-image differences (a paired
    permutation test: under H0 the two runs' labels of each image are exchangeable). p = (1 + #{|sum s d| >=
    |sum d|}) / (1 + trials), the add-one estimate that is never 0."""
    return float(sign_flip_p_many(np.asarray(diff, dtype=np.float64)[:, None], trials, rng, block)[0])


def sign_flip_p_many(diffs: np.ndarray, trials: int, rng: np.random.Generator, block: int = 1000) -> np.ndarray:
    """:func:`sign_flip_p` of every column of ``diffs`` (n_images, m) under ONE set of sign flips (the draws of
    a single column's test), column j's p equal to ``sign_flip_p(diffs[:, j], trials, rng)`` bit for bit.

    Each column keeps its lone test's bar (its own sum, as that test sums it). The flipped sums of all columns
    come from one matrix product, which may round otherwise than the lone test's matrix-vector product, but by
    at most 2 n eps sum|d| (the +-1 products are exact, and any order of summing n terms errs by at most
    gamma_(n-1) sum|d|; Higham 2002, Accuracy and Stability of Numerical Algorithms, 4.2): a flipped sum farther
    than twice that from the bar falls on the same side of it either way, and a block in which some sum of a
    column lies nearer is counted for that column by the lone test's own product (exact ties and zero
    differences land there)."""
    cols = [np.ascontiguousarray(diffs[:, j], dtype=np.float64)[:, None] for j in range(diffs.shape[1])]
    stacked = np.concatenate(cols, axis=1) if cols else np.zeros((len(diffs), 0))
    slack = 4 * len(diffs) * np.finfo(np.float64).eps * np.abs(stacked).sum(0)
    # a flipped sum equal to the observed one up to the rounding of either is extreme: the bar sits one rounding
    # bound (half the slack) below |sum d|, so runs whose differences cancel exactly (a sum of -3e-17 for a true
    # 0) get p = 1, not the share of flips that happened to round below the observed rounding error
    bar = np.array([max(abs(float(c.sum(0)[0])) * (1 - 1e-12) - s / 2, 0.0) for c, s in zip(cols, slack)])
    extreme, done = np.zeros(len(cols), dtype=np.int64), 0
    while done < trials:
        b = min(block, trials - done)
        signs = rng.integers(0, 2, size=(b, len(diffs)), dtype=np.int8) * 2.0 - 1.0
        extreme += _reaching(np.abs(signs @ stacked), bar, slack, lambda j: np.abs(signs @ cols[j]))
        done += b
    return (1 + extreme) / (1 + trials)


def _reaching(sums: np.ndarray, bar: np.ndarray, slack: np.ndarray, lone) -> np.ndarray:
    """(m,) how many of each column's flipped sums reach its bar, from ``sums`` (b, m), each within half of the
    column's ``slack`` of the lone test's own sum; a column with a sum within ``slack`` of its bar is counted
    from ``lone(j)``, the lone test's (b,) sums themselves."""
    counted = np.count_nonzero(sums >= bar, axis=0)
    for j in np.flatnonzero((np.abs(sums - bar) <= slack).any(0)):
        counted[j] = np.count_nonzero(lone(j) >= bar[j])
    return counted


def check_same_images(a: QueryRanks, b: QueryRanks, where: str = "") -> None:
    """UserError unless the two rankings score the same queries of the same images in the same folds, under
    one tie rule."""
    if (
        a.n_images != b.n_images
        or not np.array_equal(a.image_index, b.image_index)
        or not np.array_equal(a.fold, b.fold)
    ):
        raise UserError(
            f"the two runs did not rank the same test images and captions{where}: a paired test needs "
            "runs on one split, in one protocol"
        )
    if a.ties != b.ties:
        raise UserError(
            f"the two runs are scored under different tie rules ({a.ties} and {b.ties}){where}: a "
            "paired test needs one rule (run one of them again with --ties)"
        )


TEST_SIGN_FLIP = "paired sign-flip permutation test over test images (two-sided)"
TEST_BOOTSTRAP = "paired bootstrap over test images (two-sided, share of resampled deltas beyond 0)"


def paired_test(
    a: QueryRanks,
    b: QueryRanks,
    metric: str = "rsum",
    resamples: int = PAIRED_RESAMPLES,
    seed: int = PAIRED_SEED,
    level: float = 0.95,
) -> dict:
    """Difference A - B of ``metric`` on the same test images: its paired-bootstrap percentile interval (both
    runs scored on the same image resamples) and a two-sided p-value (:func:`paired_p_value`).

    Returns {metric, delta, ci, p_value, test, n_images, resamples, level, lower_is_better, se, mdd}: ``se`` is
    the SD of the paired bootstrap deltas, ``mdd`` the minimum detectable difference at 80% power, two-sided
    alpha 0.05 (:func:`cca_bench.power.mdd`). One pair and one metric of :func:`paired_tests`.
    """
    return paired_tests([a, b], [(0, 1)], [metric], resamples, seed, level)[0][metric]


def paired_tests(
    runs: list[QueryRanks],
    pairs: list[tuple[int, int]],
    metrics: list[str],
    resamples: int = PAIRED_RESAMPLES,
    seed: int = PAIRED_SEED,
    level: float = 0.95,
) -> list[dict]:
    """``[{metric: paired_test(runs[i], runs[j], metric, resamples, seed, level)} for (i, j) in pairs]``, equal
    to those lone tests bit for bit, at about the cost of one lone test per run.

    A lone test's draws depend on its seed and the test images' fold sizes only, never on the metric or the
    runs: the bootstrap counts of ``default_rng(seed)`` (every metric of a resample comes from one
    :func:`replicate_metrics`), and :func:`paired_p_values`' draws of ``default_rng(seed + 1)``. So the counts
    are drawn once per list of fold sizes, each run is scored on them once, and every pair and metric takes its
    deltas from those replicates. UserError (what a lone test raises) for resamples < 1, a pair on other test
    images or tie rules, an unknown metric."""
    from cca_bench.power import mdd

    parsed = _check_pairs(runs, pairs, metrics, resamples)
    reps = _replicates(runs, pairs, resamples, seed)
    point = {r: point_metrics(runs[r]) for r in sorted({r for pair in pairs for r in pair})}
    p_values = paired_p_values(runs, pairs, metrics, resamples, seed + 1)
    out = []
    for (i, j), p_row in zip(pairs, p_values):
        row = {}
        for metric, (tasks, m) in parsed.items():
            delta = float(metric_value(point[i], tasks, m) - metric_value(point[j], tasks, m))
            deltas = _deltas(reps, (i, j), tasks, m)
            se = float(np.std(deltas, ddof=1)) if resamples > 1 else 0.0
            row[metric] = {
                "metric": metric_name(metric),
                "delta": delta,
                "ci": [float(x) for x in np.percentile(deltas, [100 * (1 - level) / 2, 100 * (1 + level) / 2])],
                "p_value": p_row[metric][0],
                "test": p_row[metric][1],
                "n_images": int(runs[i].n_images),
                "resamples": int(resamples),
                "level": float(level),
                "lower_is_better": m in LOWER_IS_BETTER,
                "se": se,
                "mdd": mdd(se),
            }
        out.append(row)
    return out


def paired_p_value(
    a: QueryRanks, b: QueryRanks, metric: str = "rsum", resamples: int = PAIRED_RESAMPLES, seed: int = PAIRED_SEED
) -> tuple[float, str]:
    """(two-sided p-value of A = B on ``metric``, the test's name).

    A linear metric (R@K, R-sum, mean rank) gets a paired sign-flip permutation test over per-image
    contributions: under H0 the two runs are exchangeable on every image, so each image's difference is
    equally likely to have either sign (exact, no normality assumed, an image's captions stay together). The
    median rank is no sum over images, so it gets the paired bootstrap (twice the share of resampled deltas
    on the far side of 0, add-one). One pair and one metric of :func:`paired_p_values`."""
    return paired_p_values([a, b], [(0, 1)], [metric], resamples, seed)[0][metric]


def paired_p_values(
    runs: list[QueryRanks],
    pairs: list[tuple[int, int]],
    metrics: list[str],
    resamples: int = PAIRED_RESAMPLES,
    seed: int = PAIRED_SEED,
) -> list[dict]:
    """``[{metric: paired_p_value(runs[i], runs[j], metric, resamples, seed)} for (i, j) in pairs]``, bit for
    bit. A lone test draws from a fresh ``default_rng(seed)``: its sign flips depend on the number of test
    images only, its bootstrap counts (median ranks) on the fold sizes only. So the flips are drawn once per
    number of images and shared by every linear column (:func:`sign_flip_p_many`), the counts once per list of
    fold sizes, and each run is scored on them once."""
    parsed = _check_pairs(runs, pairs, metrics, resamples)
    out: list[dict] = [{} for _ in pairs]
    medians = [metric for metric, (_, m) in parsed.items() if m == "median_rank"]
    if medians:
        reps = _replicates(runs, pairs, resamples, seed)
        for row, pair in zip(out, pairs):
            for metric in medians:
                deltas = _deltas(reps, pair, *parsed[metric])
                beyond = min(np.count_nonzero(deltas <= 0), np.count_nonzero(deltas >= 0))
                row[metric] = min(1.0, 2 * (1 + beyond) / (1 + resamples)), TEST_BOOTSTRAP
    by_size: dict[int, list] = {}  # number of images -> [(pair position, metric)]: columns sharing the flips
    for k, (i, j) in enumerate(pairs):
        by_size.setdefault(runs[i].n_images, []).extend((k, metric) for metric in parsed if metric not in medians)
    for cells in by_size.values():
        diffs = [
            _contributions(runs[pairs[k][0]], *parsed[m]) - _contributions(runs[pairs[k][1]], *parsed[m])
            for k, m in cells
        ]
        if diffs:
            flips = sign_flip_p_many(np.stack(diffs, axis=1), resamples, np.random.default_rng(seed))
            for (k, metric), p in zip(cells, flips):
                out[k][metric] = float(p), TEST_SIGN_FLIP
    return out


def _check_pair(a: QueryRanks, b: QueryRanks, metric: str, resamples: int) -> tuple[tuple[str, ...], str]:
    if resamples < 1:
        raise UserError(f"resamples must be at least 1 (got {resamples})")
    check_same_images(a, b)
    return parse_metric(metric)


def _check_pairs(runs: list[QueryRanks], pairs: list[tuple[int, int]], metrics: list[str], resamples: int) -> dict:
    """{metric: (tasks, canonical metric)} after :func:`_check_pair` of every pair and metric (a lone test's
    checks, in its order)."""
    parsed = {}
    for i, j in pairs:
        for metric in metrics:
            parsed[metric] = _check_pair(runs[i], runs[j], metric, resamples)
    return parsed


def _replicates(runs: list[QueryRanks], pairs: list[tuple[int, int]], resamples: int, seed: int) -> dict:
    """{run position: its replicates (:func:`bootstrap_replicates`' record)} of every run in ``pairs``, on the
    resamples a lone paired test draws from ``default_rng(seed)`` (per fold, in fold order, all resamples in
    one draw), drawn once per list of fold sizes and scored in blocks of :data:`BLOCK` resamples (the counts of
    one block at a time, not every resample's at once)."""
    drawn: dict[tuple, list] = {}
    out = {}
    for r in sorted({r for pair in pairs for r in pair}):
        sizes = tuple(len(images) for images, _ in runs[r].folds())
        if sizes not in drawn:
            rng = np.random.default_rng(seed)
            drawn[sizes] = [_draw(rng, n, resamples) for n in sizes]
        blocks = ([d[s : s + BLOCK] for d in drawn[sizes]] for s in range(0, resamples, BLOCK))
        out[r] = _scored_blocks(runs[r], blocks, min(BLOCK, resamples))
    return out


def _bootstrap_deltas(a: QueryRanks, b: QueryRanks, tasks, metric: str, resamples: int, seed: int) -> np.ndarray:
    """(B,) metric(A) - metric(B) of a parsed metric over the B image resamples of ``default_rng(seed)`` shared by
    both runs (:func:`paired_test`'s deltas when ``seed`` is its seed)."""
    return _deltas(_replicates([a, b], [(0, 1)], resamples, seed), (0, 1), tasks, metric)


def _deltas(reps: dict, pair: tuple[int, int], tasks, metric: str) -> np.ndarray:
    """(B,) replicates of a parsed metric of run ``pair[0]`` minus those of run ``pair[1]`` (``reps`` from
    :func:`_replicates`)."""
    return metric_value(reps[pair[0]], tasks, metric) - metric_value(reps[pair[1]], tasks, metric)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (Holm 1979), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()
