"""The numerics CCA rests on: streaming (co)variances, scaled ridge, Cholesky whitening, sign fixing.

Covariances accumulate over row chunks in float64 from chunk products (numpy's ``A.T @ A`` on a contiguous
block runs SYRK, half a GEMM's flops), so memory beyond the input is O(d^2) plus one chunk, and memory-mapped
inputs stream from disk (each chunk is read straight into one reused buffer). The chunk products are float32
(fast) or float64 (exact) as :func:`precision_for` decides from the ridge: float32 rounding perturbs the
covariances by about 1e-7 of their scale, which a ridge of at least ``FLOAT32_MIN_REG`` times the top
eigenvalue keeps ~1e3 times below the smallest eigenvalue of the ridged covariance whatever the data
(canonical correlations within a few 1e-6); a smaller ridge (reg = 0 above all) on ill-conditioned features needs
float64 products. Each chunk
is centred on a provisional mean (the first chunk's) before its product, which keeps float32 cancellation
small; the exact means are corrected for at the end. Row-aligned views take one SYRK of ``[x, y]`` per chunk,
whose blocks are Cxx, Cxy and Cyy. The same block products run in torch on a GPU (:func:`products_for`) or
as Dask tasks over the chunks of dask arrays (:func:`dask_moments`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from cca_bench.errors import UserError
from cca_bench.extras import require

CHUNK_ROWS = 16384
FLOAT32_MIN_REG = 1e-3
PRECISIONS = ("auto", "float32", "float64")


def precision_for(reg: float, precision: str = "auto") -> np.dtype:
    """The dtype of the covariance chunk products for a ridge ``reg`` (fraction of the top eigenvalue).

    "auto": float32 when ``reg >= FLOAT32_MIN_REG``, else float64. The ridged covariance's condition number
    is at most 1 + 1/reg whatever the data, and float32 products perturb it by ~1e-7 of its scale, so with
    reg >= 1e-3 the canonical correlations stay within a few 1e-6 of a float64 solve (measured 3e-8 ..
    2.7e-6 at cond(Cxx) = 1e4 .. 1e8, the weakest components worst; reg 1e-2: <= 3e-7). The threshold keeps
    the default reg (1e-3) on the fast path; raise it for exactness at every ridge. Below it, float32
    products are off by 1e-6 .. 0.3 at cond 1e6 .. 1e8 (reg = 0), so float64 products run (1.5-2.1x the
    time of the float32 SYRK), exact to ~1e-11 there (benchmarks/REPORT_precision.md). "float32" /
    "float64" force a path (float64 for exactness at any ridge).
    """
    if precision not in PRECISIONS:
        raise UserError(f"cov_precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return np.dtype(np.float32 if reg >= FLOAT32_MIN_REG else np.float64)
    return np.dtype(precision)


@dataclass
class Moments:
    """Centred second moments of paired views, all float64.

    n: number of pairs; mean_x (dx,), mean_y (dy,); cxx (dx, dx), cyy (dy, dy), cxy (dx, dy) are
    covariances (scatter / (n - 1)); dtype: that of the chunk products they came from.
    """

    n: int
    mean_x: np.ndarray
    mean_y: np.ndarray
    cxx: np.ndarray
    cyy: np.ndarray
    cxy: np.ndarray
    dtype: str = "float32"


def _check_finite(name: str, *arrays: np.ndarray) -> None:
    if not all(np.isfinite(a).all() for a in arrays):
        raise UserError(f"{name} contains NaN or infinite values")


def _products_numpy(blocks, d: int):
    """Row sums and scatter ``B.T @ B`` of float32 or float64 blocks, accumulated in float64 on the CPU.

    blocks: iterable of (B (m, d), row_weights (m,) or None); the row sums are ``row_weights @ B``.
    ``B.T @ B`` on a C-contiguous block is SYRK in numpy's BLAS (half a GEMM's flops).
    Returns (sum (d,), scatter (d, d)), float64.
    """
    total, scatter = np.zeros(d), np.zeros((d, d))
    for b, w in blocks:
        total += b.sum(0, dtype=np.float64) if w is None else (w @ b).astype(np.float64)
        scatter += b.T @ b
    return total, scatter


def _products_torch(blocks, d: int, device: str):
    """:func:`_products_numpy` in torch on ``device`` (CUDA): products in the blocks' dtype, float64
    accumulators there.

    torch has no SYRK on the CPU (a full GEMM), so the CPU path keeps numpy; ``device="cpu"`` runs this
    same code for testing.
    """
    import torch

    total = torch.zeros(d, dtype=torch.float64, device=device)
    scatter = torch.zeros((d, d), dtype=torch.float64, device=device)
    for b, w in blocks:
        t = torch.from_numpy(b).to(device)
        total += t.sum(0, dtype=torch.float64) if w is None else (torch.from_numpy(w).to(device) @ t).double()
        scatter += t.T @ t
    return total.cpu().numpy(), scatter.cpu().numpy()


def products_for(device: str | None):
    """The chunk-product accumulator for a resolved torch device: numpy (SYRK) on the CPU, torch elsewhere."""
    if device in (None, "cpu"):
        return _products_numpy
    return lambda blocks, d: _products_torch(blocks, d, device)


def _centred(a, start: int, stop: int, shift: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Rows ``a[start:stop] - shift`` written into ``out`` in its dtype (no other copy, memmaps stream)."""
    rows = np.asarray(a[start:stop])  # a dask array's chunk is computed; the subtraction runs in the widest dtype
    return np.subtract(
        rows,
        shift,
        out=out[: stop - start],
        casting="same_kind",
        dtype=np.result_type(rows.dtype, shift.dtype, out.dtype),
    )


def _joint_blocks(x, y, shift_x, shift_y, chunk: int, dtype=np.float32):
    """(m, dx + dy) blocks ``[x - shift_x, y - shift_y]`` of row-aligned views, in one ``dtype`` buffer."""
    dx = x.shape[1]
    buf = np.empty((min(chunk, len(x)), dx + y.shape[1]), dtype=dtype)
    for s in range(0, len(x), chunk):
        e = min(s + chunk, len(x))
        _centred(x, s, e, shift_x, buf[:, :dx])
        _centred(y, s, e, shift_y, buf[:, dx:])
        yield buf[: e - s], None


def _aggregate_chunk(out: np.ndarray, index: np.ndarray, yc: np.ndarray) -> None:
    """``out[index[j]] += yc[j]`` for one chunk, by a sort and ``np.add.reduceat`` (no slow ``np.add.at``)."""
    order = np.argsort(index, kind="stable")
    keys, starts = np.unique(index[order], return_index=True)
    out[keys] += np.add.reduceat(yc[order].astype(np.float64), starts, axis=0)


def _text_blocks(y, shift_y, x_index, y_by_x, chunk: int, dtype=np.float32):
    """Centred text blocks; as a side effect sums each caption (centred) into its image's row of ``y_by_x``."""
    buf = np.empty((min(chunk, len(y)), y.shape[1]), dtype=dtype)
    for s in range(0, len(y), chunk):
        e = min(s + chunk, len(y))
        yc = _centred(y, s, e, shift_y, buf)
        _aggregate_chunk(y_by_x, x_index[s:e], yc)
        yield yc, None


def _indexed_blocks(x, shift_x, counts, y_by_x, chunk: int, dtype=np.float32):
    """Blocks ``[sqrt(c) * (x - shift_x), y_by_x / sqrt(c)]`` (c = captions per image): their scatter's
    off-diagonal part is ``sum_j (x[index[j]] - shift_x) (y[j] - shift_y)^T`` and the image part weights each
    image by its count; rows with c = 0 are zero. Row weights sqrt(c) turn the row sums into ``sum c x``."""
    dx = x.shape[1]
    buf = np.empty((min(chunk, len(x)), dx + y_by_x.shape[1]), dtype=dtype)
    for s in range(0, len(x), chunk):
        e = min(s + chunk, len(x))
        root = np.sqrt(counts[s:e])
        xc = _centred(x, s, e, shift_x, buf[:, :dx])
        xc *= root[:, None].astype(dtype)
        np.divide(y_by_x[s:e], np.where(root > 0, root, 1)[:, None], out=buf[: e - s, dx:], casting="same_kind")
        yield buf[: e - s], root.astype(dtype)


def _check_pairing(x, y, x_index):
    """Validated ``(x_index int64 or None, counts float64 or None)``."""
    n = len(y)
    if n < 2:
        raise UserError(f"CCA needs at least 2 pairs, got {n}")
    if x_index is None:
        if len(x) != n:
            raise UserError(f"x has {len(x)} rows but y has {n}: the views must be paired row by row")
        return None, None
    x_index = np.asarray(x_index, dtype=np.int64)
    if len(x_index) != n or x_index.min() < 0 or x_index.max() >= len(x):
        raise UserError("x_index must give one row of x (0..n_x-1) for every row of y")
    return x_index, np.bincount(x_index, minlength=len(x)).astype(np.float64)


def shifts(x, y, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Provisional means (of the first chunk's rows), float32: each chunk is centred on them before its product."""
    return (
        np.asarray(x[: min(len(x), chunk)], dtype=np.float32).mean(0),
        np.asarray(y[: min(len(y), chunk)], dtype=np.float32).mean(0),
    )


def moments_from_scatter(n: int, shift_x, shift_y, sums, scatter) -> Moments:
    """Moments from the joint row sums (dx + dy,) and scatter (dx + dy, dx + dy) about the shifts."""
    _check_finite("input features", sums, np.diagonal(scatter))
    dx = len(shift_x)
    d = sums / n
    cov = scatter  # corrected in place, in row blocks: no d x d temporaries (18,000-d Fisher-vector captions)
    for s in range(0, len(d), 2048):
        cov[s : s + 2048] -= n * np.outer(d[s : s + 2048], d)
    cov /= n - 1
    return Moments(
        n=n, mean_x=shift_x + d[:dx], mean_y=shift_y + d[dx:], cxx=cov[:dx, :dx], cyy=cov[dx:, dx:], cxy=cov[:dx, dx:]
    )


def uncentred(m: Moments) -> Moments:
    """The raw second moments ``sum(x x') / (n - 1)`` etc. of centred moments ``m`` (in place), means set to 0:
    what a fit without centring (``center=False``, scikit-learn's ``fit_intercept=False``) starts from."""
    scale = m.n / (m.n - 1)
    m.cxx += np.outer(m.mean_x, m.mean_x) * scale
    m.cyy += np.outer(m.mean_y, m.mean_y) * scale
    m.cxy += np.outer(m.mean_x, m.mean_y) * scale
    m.mean_x, m.mean_y = np.zeros_like(m.mean_x), np.zeros_like(m.mean_y)
    return m


class MappedRows:
    """The rows of ``a`` (n, d) seen through ``fn``: ``self[s:e]`` is ``fn(a[s:e])`` (m, d'), computed on demand.

    What the covariance pass reads chunk by chunk, so a feature map costs one mapped chunk of memory.
    """

    def __init__(self, a, fn):
        self.a, self.fn = a, fn
        self.shape = (len(a), fn(np.asarray(a[:1])).shape[1])
        self.ndim = 2

    @classmethod
    def of(cls, a, fn):
        """``a`` itself when ``fn`` is None."""
        return a if fn is None else cls(a, fn)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows):
        return self.fn(np.asarray(self.a[rows]))


def paired_moments(
    x,
    y,
    x_index: np.ndarray | None = None,
    chunk: int = CHUNK_ROWS,
    device: str | None = None,
    dtype=np.float32,
    map_x=None,
    map_y=None,
) -> Moments:
    """Means and covariances of the pairs (x[x_index[j]], y[j]), streamed over row chunks.

    Args:
        x: (n_x, dx) array or memmap (images). y: (n, dy) (captions).
        x_index: (n,) row of x paired with each row of y; None means x and y are row-aligned.
            With an index, x's covariance uses each row once, weighted by how often it is paired, so an
            image with 5 captions costs one row, not five.
        device: None or "cpu": numpy products (SYRK); a torch device such as "cuda": torch products there.
        dtype: of the chunk products, float32 (fast) or float64 (exact on ill-conditioned features); see
            :func:`precision_for`. Accumulation is float64 either way.
        map_x, map_y: optional feature maps ((m, d) rows -> (m, d') float32, e.g. a kernel map), applied to
            each chunk before its products (:class:`MappedRows`): the moments are those of the mapped views,
            and no mapped copy of a whole view is ever made.
    Row-aligned views cost one pass and one SYRK per chunk of ``[x, y]`` (its blocks are Cxx, Cxy, Cyy);
    an index costs one pass over y (Cyy, captions summed per image) and one over x.
    """
    x, y = MappedRows.of(x, map_x), MappedRows.of(y, map_y)
    x_index, counts = _check_pairing(x, y, x_index)
    n, dx, dy = len(y), x.shape[1], y.shape[1]
    shift_x, shift_y = shifts(x, y, chunk)
    products = products_for(device)
    if x_index is None:
        sums, scatter = products(_joint_blocks(x, y, shift_x, shift_y, chunk, dtype), dx + dy)
        return moments_from_scatter(n, shift_x, shift_y, sums, scatter)
    # captions summed per image, in the products' precision: float32 at the default ridge halves this
    # (n_images, dy) buffer (Fisher-vector captions at Flickr30k size: 2.1 GB instead of 4.2); each row sums a
    # handful of captions, whose chunk sums reduceat forms in float64 before they are added here
    y_by_x = np.zeros((len(x), dy), dtype=np.float64 if dtype == np.float64 else np.float32)
    sum_y, syy = products(_text_blocks(y, shift_y, x_index, y_by_x, chunk, dtype), dy)
    sums, scatter = products(_indexed_blocks(x, shift_x, counts, y_by_x, chunk, dtype), dx + dy)
    sums[dx:], scatter[dx:, dx:] = sum_y, syy
    del syy, y_by_x  # wide captions: GBs that the correction below need not share memory with
    return moments_from_scatter(n, shift_x, shift_y, sums, scatter)


def _block_products(xb, yb, shift_x, shift_y, dtype=np.float32):
    """Row sums and scatter of one row-aligned pair of blocks (one Dask task): the numpy path on one chunk."""
    xb, yb = _materialize(xb), _materialize(yb)
    return _products_numpy(_joint_blocks(xb, yb, shift_x, shift_y, len(xb), dtype), xb.shape[1] + yb.shape[1])


def _add_products(a, b):
    return a[0] + b[0], a[1] + b[1]


def _sum_where_computed(parts):
    """The sum of delayed (sums, scatter) tuples, computed on the current Dask client: each worker adds the
    partials it computed as they finish (a running sum that stays there), then the workers' sums are added in
    pairs and one comes back. So O(d^2) bytes per worker cross the network, however many chunks (a tree over
    every chunk's partial moved about one partial per chunk between workers)."""
    distributed = require("dask.distributed", "backend='dask'")

    client = distributed.get_client()
    running: dict = {}  # worker address -> future of the sum of the partials it computed
    for done in distributed.as_completed(client.compute(parts)):
        if done.status != "finished":
            done.result()  # the task's error, raised here
        where = list(client.who_has(done).get(done.key, ()))[:1]
        key = where[0] if where else None
        acc = running.get(key)
        running[key] = (
            done
            if acc is None
            else client.submit(_add_products, acc, done, workers=where or None, allow_other_workers=True, pure=False)
        )
        del done, acc  # a partial is released once added
    totals = list(running.values())
    while len(totals) > 1:
        pairs = [client.submit(_add_products, a, b, pure=False) for a, b in zip(totals[::2], totals[1::2])]
        totals = pairs + totals[len(pairs) * 2 :]
    return totals[0].result()


def _npy_layout(url: str) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, byte offset of the data) of a C-ordered .npy file at a local path or fsspec URL."""
    fsspec = require("fsspec", "npy_rows")

    with fsspec.open(url, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        offset = f.tell()
    if fortran or dtype.hasobject or len(shape) != 2:
        raise UserError(f"{url}: expected a 2-d C-ordered numeric .npy array, got shape {shape} of {dtype}")
    return shape, dtype, offset


def _file_rows(url: str, start: int, stop: int, width: int, dtype: str, offset: int) -> np.ndarray:
    """Rows ``start:stop`` of the .npy array at ``url`` (local path or fsspec URL: s3://, gs://, ...), read where
    the task runs, as one ranged read of their bytes."""
    fsspec = require("fsspec", "npy_rows")

    row = width * np.dtype(dtype).itemsize
    with fsspec.open(url, "rb") as f:
        f.seek(offset + start * row)
        buf = f.read((stop - start) * row)
    return np.frombuffer(buf, dtype=dtype).reshape(stop - start, width).copy()


def npy_rows(url: str, chunk: int = CHUNK_ROWS):
    """A dask array of the 2-d .npy file at ``url`` (a path every worker sees, or an fsspec URL such as
    ``s3://bucket/features/images.npy`` with the filesystem's package installed on the workers), one task per
    ``chunk`` rows: the rows are read on the workers, never sent from the client (docs/cluster.md)."""
    dask = require("dask", "backend='dask'")
    da = require("dask.array", "backend='dask'")

    shape, dtype, offset = _npy_layout(url)
    n, width = shape
    bounds = [(s, min(s + chunk, n)) for s in range(0, n, chunk)] or [(0, 0)]
    rows = da.concatenate(
        [
            da.from_delayed(
                dask.delayed(_file_rows, pure=True)(url, s, e, width, dtype.str, offset),
                shape=(e - s, width),
                dtype=dtype,
            )
            for s, e in bounds
        ]
    )
    _NPY_ARRAYS[rows.name] = _NpyFile(url, width, dtype.str, offset)
    return rows


@dataclass(frozen=True)
class _NpyFile:
    """A 2-d .npy file as a Dask task reads it (:func:`_file_rows`): its URL and layout."""

    url: str
    width: int
    dtype: str
    offset: int

    def rows(self, rows) -> np.ndarray:
        """``rows`` (a ``slice`` or sorted indices) of the file, one ranged read per run of consecutive rows."""
        if isinstance(rows, slice):
            return _file_rows(self.url, rows.start, rows.stop, self.width, self.dtype, self.offset)
        rows = np.asarray(rows)
        if not len(rows):
            return np.empty((0, self.width), self.dtype)
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1
        runs = zip(np.r_[0, cuts], np.r_[cuts, len(rows)])
        return np.concatenate([self.rows(slice(int(rows[a]), int(rows[b - 1]) + 1)) for a, b in runs])


_NPY_ARRAYS: dict[str, _NpyFile] = {}  # dask array name (npy_rows) -> its file: whose rows a task can read itself


@dataclass(frozen=True)
class _Rows:
    """Rows of a .npy file that the moments task reads itself, on its worker (with ``fn``, e.g. a kernel map,
    applied there): a chunk's rows never travel between workers, as a separate read task's output may."""

    file: _NpyFile
    rows: object  # slice or sorted indices
    fn: object = None

    def read(self) -> np.ndarray:
        rows = self.file.rows(self.rows)
        return rows if self.fn is None else np.asarray(self.fn(rows), dtype=np.float32)


def _materialize(block) -> np.ndarray:
    return block.read() if isinstance(block, _Rows) else np.asarray(block)


def npy_file_of(a) -> str | None:
    """The path of the .npy file that ``a`` maps whole (a memmap as ``np.load(path, mmap_mode="r")`` gives it, e.g.
    a cached feature array), else None (in-memory arrays, slices, views)."""
    name = getattr(a, "filename", None) if isinstance(a, np.memmap) else None
    if not name or not str(name).endswith(".npy"):
        return None
    whole = np.load(name, mmap_mode="r", allow_pickle=False)
    same = (whole.shape, whole.dtype, whole.strides) == (a.shape, a.dtype, a.strides)
    return str(name) if same and a.flags.c_contiguous else None


def _dask_rows(a, chunk: int):
    """A dask array of ``a`` in row chunks of ``chunk`` and one column chunk. A whole-file memmap becomes tasks
    that read their rows from the file on the workers (its path must be theirs too: a shared file system), so
    the rows never travel from this process (:func:`npy_rows`); other arrays are shipped in chunks; dask arrays
    are rechunked."""
    da = require("dask.array", "backend='dask'")

    path = None if isinstance(a, da.Array) else npy_file_of(a)
    if path is not None:
        return npy_rows(path, chunk)
    a = a if isinstance(a, da.Array) else da.from_array(a, chunks=(chunk, -1))
    return a.rechunk((chunk, -1))


def dask_client(scheduler: str | None = None):
    """A context for Dask work: a Client of ``scheduler`` (address), else the current default client, else a
    LocalCluster of threads (in-memory arrays are shared with the workers, not copied). A scheduler that cannot
    be reached, or is lost during the work, and a cluster without this package are UserErrors naming the
    address (:func:`_on_cluster`), not a traceback or a wait without end."""
    distributed = require("dask.distributed", "backend='dask'")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster

    if scheduler:
        try:  # a typo'd host fails here at once, not after the connect timeout (30 s)
            client = Client(distributed.comm.resolve_address(scheduler))
        except (OSError, ValueError) as e:  # refused, timed out, a host that does not resolve, no port
            raise UserError(
                f"cannot reach the Dask scheduler at {scheduler!r} ({' '.join(str(e).split())}): start it "
                "(`dask scheduler`) or give its address as its log prints it, e.g. tcp://10.0.0.5:8786"
            ) from None
        return _on_cluster(client, scheduler)
    try:
        distributed.default_client()
        return contextlib.nullcontext()
    except ValueError:
        stack = contextlib.ExitStack()
        cluster = stack.enter_context(LocalCluster(processes=False, dashboard_address=None))
        stack.enter_context(Client(cluster))
        return stack


@contextlib.contextmanager
def _on_cluster(client, scheduler: str):
    """``client`` (closed on exit) once its scheduler and workers import this package; the loss of the scheduler
    or of a worker during the work becomes a UserError (nothing of the interrupted step is saved)."""
    import concurrent.futures

    distributed = require("dask.distributed", "backend='dask'")

    with client:
        _check_package(client, scheduler)
        try:
            yield client
        except (concurrent.futures.CancelledError, distributed.comm.CommClosedError) as e:
            _close_quietly(client)  # else its cancelled attempts to reconnect log a traceback above the one line
            raise UserError(
                f"lost the Dask scheduler at {scheduler} ({' '.join(str(e).split())}); nothing of this step "
                "was saved (finished feature shards are kept): run the command again"
            ) from None
        except FileNotFoundError as e:  # raised on a worker: a path of this machine that it does not see
            raise UserError(
                f"a Dask worker of {scheduler} cannot read {e.filename or e}: the workers need the data root at "
                "this machine's path (a shared file system; docs/cluster.md, section 2)"
            ) from None
        except distributed.KilledWorker as e:
            raise UserError(
                f"Dask workers of {scheduler} died running {e.task!r} (out of memory? see the workers' logs; a "
                "smaller --chunk-rows needs less: docs/cluster.md, section 6)"
            ) from None


def _close_quietly(client) -> None:
    """Close a client whose scheduler is gone without the traceback that distributed logs when closing cancels
    its reconnection (the logger is muted for the close only)."""
    import logging

    log = logging.getLogger("distributed.client")
    was, log.disabled = log.disabled, True
    try:
        client.close()
    finally:
        log.disabled = was


def _check_package(client, scheduler: str) -> None:
    """UserError unless the scheduler and every worker import this package: a worker that cannot unpickle a task
    dies, and the work then waits for workers without end (a scheduler without it refuses the graph). The probe
    is a standard-library function, so a process without the package can run it."""
    import warnings
    from pkgutil import resolve_name

    from cca_bench._version import __version__

    probe = ("cca_bench:__version__",)
    try:
        where = {"the scheduler": client.run_on_scheduler(resolve_name, *probe)}
    except ImportError as e:
        where = {"the scheduler": e}
    workers = client.run(resolve_name, *probe, on_error="return")
    if not workers:  # else a silent wait (SLURM jobs still queued, workers started elsewhere or dead)
        warnings.warn(f"no Dask worker has joined {scheduler} yet: the tasks wait until one does", stacklevel=3)
    where.update(workers)
    missing = [name for name, v in where.items() if not isinstance(v, str)]
    if missing:
        raise UserError(
            f"{', '.join(missing[:3])}{' and others' if len(missing) > 3 else ''} of the Dask cluster at "
            f"{scheduler} cannot import cca_bench: install this package (version {__version__}) where the "
            "scheduler and every worker run (docs/cluster.md)"
        )
    other = [(name, v) for name, v in where.items() if v != __version__]
    if other:
        name, version = other[0]
        warnings.warn(f"{name} of {scheduler} runs cca_bench {version}, this client {__version__} (docs/cluster.md)")


def _indexed_block_products(xb, yb, local_index, shift_x, shift_y, dtype=np.float32):
    """One Dask task of an indexed pairing: a row chunk of x and the captions of its images (``local_index``
    into the chunk). The numpy path on one chunk: captions summed per image, then one SYRK of
    ``[sqrt(c) x, y_by_x / sqrt(c)]`` whose text block is replaced by the captions' own sums and scatter
    (products in ``dtype``, as :func:`paired_moments`)."""
    xb, yb = _materialize(xb), _materialize(yb)
    dx, dy = xb.shape[1], yb.shape[1]
    counts = np.bincount(local_index, minlength=len(xb)).astype(np.float64)
    y_by_x = np.zeros((len(xb), dy))
    sum_y, syy = _products_numpy(_text_blocks(yb, shift_y, local_index, y_by_x, max(1, len(yb)), dtype), dy)
    sums, scatter = _products_numpy(_indexed_blocks(xb, shift_x, counts, y_by_x, max(1, len(xb)), dtype), dx + dy)
    sums[dx:], scatter[dx:, dx:] = sum_y, syy
    return sums, scatter


def _indexed_tasks(xs: _Source, ys: _Source, x_index: np.ndarray, shift_x, shift_y, dtype=np.float32) -> list:
    """One delayed :func:`_indexed_block_products` per row chunk of x, with the captions of its images
    gathered from y (each caption once: together the tasks read y once, and x once, not once per caption)."""
    dask = require("dask", "backend='dask'")

    order = np.argsort(x_index, kind="stable")
    sorted_index = x_index[order]
    tasks = []
    for (lo, hi), xb in zip(xs.bounds(), xs.chunks()):
        a, b = np.searchsorted(sorted_index, [lo, hi])
        rows = np.sort(order[a:b])
        local = x_index[rows] - lo
        tasks.append(dask.delayed(_indexed_block_products)(xb, ys.rows(rows), local, shift_x, shift_y, dtype))
    return tasks


@dataclass(frozen=True)
class _Source:
    """Where a moments task gets its rows of one view: from the .npy file itself (``file``: the task reads
    them, ``fn`` applied there) or from the blocks of the (mapped) dask array ``d``."""

    d: object
    file: _NpyFile | None
    fn: object

    @classmethod
    def of(cls, a, chunk: int, fn) -> _Source:
        d = _dask_rows(a, chunk)
        file = _NPY_ARRAYS.get(getattr(a, "name", None)) or _NPY_ARRAYS.get(d.name)
        return cls(_mapped_chunks(d, fn), file, fn)

    def bounds(self) -> list[tuple[int, int]]:
        ends = np.cumsum((0,) + self.d.chunks[0]).tolist()
        return list(zip(ends[:-1], ends[1:]))

    def chunks(self) -> list:
        """One task input per row chunk of ``d`` (in :meth:`bounds` order)."""
        if self.file:
            return [_Rows(self.file, slice(lo, hi), self.fn) for lo, hi in self.bounds()]
        return list(self.d.to_delayed().ravel())

    def rows(self, rows: np.ndarray):
        if self.file:
            return _Rows(self.file, rows, self.fn)
        return self.d[rows] if len(rows) else self.d[:0]


def _mapped_chunks(a, fn):
    """The dask array ``a`` with ``fn`` ((m, d) rows -> (m, d') float32, e.g. a kernel map) applied to each row
    chunk where the chunk is computed (on the workers); ``a`` itself when ``fn`` is None."""
    if fn is None:
        return a
    width = fn(np.asarray(a[:1].compute(scheduler="sync"))).shape[1]
    return a.map_blocks(
        lambda block: np.asarray(fn(block), dtype=np.float32), dtype=np.float32, chunks=(a.chunks[0], (width,))
    )


def dask_moments(
    x,
    y,
    x_index: np.ndarray | None = None,
    chunk: int = CHUNK_ROWS,
    scheduler: str | None = None,
    dtype=np.float32,
    map_x=None,
    map_y=None,
) -> Moments:
    """:func:`paired_moments` over the row chunks of dask arrays, for features larger than one machine.

    Each chunk's ``[x, y]`` SYRK (in ``dtype``, accumulated in float64) is one task on the workers; a chunk of a
    .npy file (a whole-file memmap, or :func:`npy_rows`) is read by the task that uses it, so rows do not travel
    between workers; each worker adds up its own partial (sums, scatter) and only those sums cross
    (:func:`_sum_where_computed`). ``x_index`` pairs rows as in
    :func:`paired_moments`, and as there each image enters once, weighted by its number of captions: a task
    takes a chunk of x and the captions of its images (no row of x per caption). ``scheduler``: a Dask
    scheduler address; default the current client or a LocalCluster. ``map_x``, ``map_y``: feature maps as in
    :func:`paired_moments`, applied to each chunk inside its task (the moments are the mapped views')."""
    dask = require("dask", "backend='dask'")

    x_index, _ = _check_pairing(x, y, x_index)
    xs, ys = _Source.of(x, chunk, map_x), _Source.of(y, chunk, map_y)
    with dask_client(scheduler):
        shift_x, shift_y = (a.astype(np.float32) for a in dask.compute(xs.d[:chunk].mean(0), ys.d[:chunk].mean(0)))
        if x_index is None:
            blocks = zip(xs.chunks(), ys.chunks())
            parts = [dask.delayed(_block_products)(xb, yb, shift_x, shift_y, dtype) for xb, yb in blocks]
        else:
            parts = _indexed_tasks(xs, ys, x_index, shift_x, shift_y, dtype)
        sums, scatter = _sum_where_computed(parts)
    return moments_from_scatter(len(y), shift_x, shift_y, sums, scatter)


BACKENDS = ("numpy", "dask")  # where a moments pass runs: --backend


def streamed_moments(
    x,
    y,
    x_index: np.ndarray | None = None,
    *,
    reg: float,
    precision: str = "auto",
    backend: str = "numpy",
    scheduler: str | None = None,
    chunk: int = CHUNK_ROWS,
    device: str | None = None,
    map_x=None,
    map_y=None,
) -> Moments:
    """THE moments pass of every method fitted from sums over pairs (cca, kcca, ridge, procrustes, pls).

    x (n_x, dx), y (n, dy), ``x_index``, ``map_x``, ``map_y`` as :func:`paired_moments`. The chunk products take
    :func:`precision_for` ``(reg, precision)``; float64 chunks hold half the rows (the same buffer bytes).
    ``backend``: "numpy" (:func:`paired_moments`, torch products on ``device`` when it is a GPU) or "dask"
    (:func:`dask_moments` on the cluster at ``scheduler``: each worker returns O(d^2) partial sums, never rows).
    Returns the Moments with ``dtype`` set to the products' dtype name.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    dtype = precision_for(reg, precision)
    chunk = chunk if dtype == np.float32 else max(1, chunk // 2)
    if backend == "dask":
        m = dask_moments(x, y, x_index, chunk, scheduler, dtype=dtype, map_x=map_x, map_y=map_y)
    else:
        m = paired_moments(x, y, x_index, chunk, device=device, dtype=dtype, map_x=map_x, map_y=map_y)
    m.dtype = dtype.name
    return m


DENSE_EIGEN_MAX = 512


def top_eigenvalue(c, tol: float = 1e-6, seed: int = 0) -> float:
    """Largest eigenvalue of a symmetric PSD torch matrix (d, d).

    Small matrices: a dense ``eigvalsh``. Larger ones: Lanczos (``scipy.sparse.linalg.eigsh``) on the CPU,
    LOBPCG on other devices, from a seeded start vector; ``tol`` bounds the residual, and the eigenvalue's
    error goes as its square (about 1e-15 relative on image covariances). Plain power iteration needed hundreds of
    memory-bound products on a 4096-d image covariance (seconds: more than the covariance products of 20,000
    pairs) and stopped on a small change rather than at the eigenvalue.
    """
    import torch

    if c.shape[0] <= DENSE_EIGEN_MAX:
        return float(torch.linalg.eigvalsh(c)[-1])
    start = np.random.default_rng(seed).standard_normal(c.shape[0])
    if c.device.type == "cpu":
        from scipy.sparse.linalg import eigsh

        return float(eigsh(c.numpy(), k=1, which="LA", v0=start, tol=tol, return_eigenvectors=False)[0])
    x0 = torch.as_tensor(start, dtype=c.dtype, device=c.device)[:, None]
    return float(torch.lobpcg(c, k=1, X=x0, largest=True, tol=tol)[0][0])


def ridge(c, reg: float):
    """``C + reg * lambda_max(C) * I`` (Klein et al. 2015 scale the ridge by the top eigenvalue)."""
    if reg == 0:
        return c
    lam = top_eigenvalue(c)
    out = c.clone()  # c may share memory with the moments (reused across regs): never add in place to it
    out.diagonal().add_(reg * lam)  # no d x d identity
    return out


def cholesky_factor(c, name: str, reg: float):
    """Lower Cholesky factor of a covariance, or a UserError that suggests a ridge when it is singular."""
    import torch

    lower, info = torch.linalg.cholesky_ex(c)
    diag = torch.diagonal(lower) if int(info) == 0 else None
    if diag is None or not torch.isfinite(diag).all() or float(diag.min() ** 2) <= 1e-12 * float(diag.max() ** 2):
        raise UserError(
            f"the {name} covariance is singular or nearly so (rank-deficient features"
            f"{' with reg=0' if reg == 0 else f' even with reg={reg:g}'}): use a larger ridge, e.g. --reg 1e-3"
        )
    return lower


@dataclass
class CCASolution:
    """Every canonical pair of one ridge, strongest first: the first k columns are the k-component fit.

    x_weights (dx, K), y_weights (dy, K), float64 numpy, K = min(dx, dy).
    correlations (K,): the singular values of the ridged, whitened cross-covariance. With reg = 0 they are
        the canonical correlations; with reg > 0 they are shrunk by the ridge (``w' Cxy v`` over the RIDGED
        variances) and are what Klein et al. weight the projections by.
    projection_correlations (K,): the correlation of each pair of projections ``x Wx[:, i]``, ``y Wy[:, i]``
        under the (unridged) moments, i.e. on the training pairs: what cca-zoo and pyrcca report.
    """

    x_weights: np.ndarray
    y_weights: np.ndarray
    correlations: np.ndarray
    projection_correlations: np.ndarray | None = None


def projection_correlations(cxx, cyy, cxy, wx, wy):
    """(K,) correlations of the projections ``x Wx``, ``y Wy`` in the covariance metric (torch, float64):
    ``diag(Wx' Cxy Wy) / sqrt(diag(Wx' Cxx Wx) diag(Wy' Cyy Wy))``; no second pass over the data."""
    import torch

    num = (wx * (cxy @ wy)).sum(0)
    den = torch.sqrt((wx * (cxx @ wx)).sum(0) * (wy * (cyy @ wy)).sum(0))
    return num / torch.clamp(den, min=torch.finfo(den.dtype).tiny)


@contextlib.contextmanager
def converging(what: str):
    """Inside this block a solver that does not converge (LAPACK through numpy or torch, ARPACK) is one
    UserError naming ``what``: finite but extreme or degenerate inputs can make it fail."""
    import torch
    from scipy.sparse.linalg import ArpackNoConvergence

    try:
        yield
    except (np.linalg.LinAlgError, torch.linalg.LinAlgError, ArpackNoConvergence) as e:
        reason = " ".join(str(e).split())[:160]
        raise UserError(
            f"{what} did not converge ({reason}): the features hold extreme or degenerate values; "
            "check them, or try a larger --reg"
        ) from None


def solve_cca(m: Moments, reg: float, device: str = "cpu") -> CCASolution:
    """All canonical pairs of ridged moments (Klein et al. 2015), on a torch device, in float64.

    With Lx, Ly the Cholesky factors of the ridged Cxx, Cyy, the SVD ``Lx^-1 Cxy Ly^-T = U S V^T`` gives the
    correlations S and ``Wx = Lx^-T U``, ``Wy = Ly^-T V``; signs are fixed column by column, so slicing the
    first k columns is the k-component solution (one solve serves every n_components). With reg > 0, S is
    ridge-shrunk; the projections' own correlations come with it (:func:`projection_correlations`).
    """
    import torch

    t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device)  # noqa: E731
    cxx, cyy, cxy = t(m.cxx), t(m.cyy), t(m.cxy)
    with converging("the CCA solve (ridge eigenvalue, Cholesky whitening, SVD)"):
        lx = cholesky_factor(ridge(cxx, reg), "image", reg)
        ly = cholesky_factor(ridge(cyy, reg), "text", reg)
        whitened = torch.linalg.solve_triangular(lx, cxy, upper=False)
        whitened = torch.linalg.solve_triangular(ly, whitened.T, upper=False).T
        u, s, vh = torch.linalg.svd(whitened, full_matrices=False)
    u, v = flip_signs(u, vh.T)
    wx = torch.linalg.solve_triangular(lx.T, u, upper=True)
    wy = torch.linalg.solve_triangular(ly.T, v, upper=True)
    rho = projection_correlations(cxx, cyy, cxy, wx, wy)
    return CCASolution(wx.cpu().numpy(), wy.cpu().numpy(), s.cpu().numpy(), rho.cpu().numpy())


def flip_signs(u, v):
    """Deterministic signs: the largest-magnitude entry of each column of u is positive; v follows u."""
    import torch

    idx = u.abs().argmax(0)
    signs = torch.sign(u[idx, torch.arange(u.shape[1], device=u.device)])
    signs[signs == 0] = 1
    return u * signs, v * signs
