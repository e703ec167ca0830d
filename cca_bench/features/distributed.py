"""Image feature extraction on a Dask cluster: each missing shard of a split is one task.

A task names what to compute (dataset, options, split, encoder, its keyword arguments, the shard's rows)
instead of carrying images or models: the worker rebuilds the dataset from its name (checking the split's
content fingerprint), runs the encoder's registered ``shard_rows`` on the shard's rows with the batches the
local extraction uses, and writes the shard into the shared cache folder with
:func:`cca_bench.features.store.shard` (atomic files). Finished shards are never resubmitted, so a killed
run resumes; the client then assembles the shards exactly as a local extraction does. Workers must see the
data root and the cache folder at the same paths (a shared file system) and import this package.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from cca_bench.errors import UserError
from cca_bench.extras import require


@dataclass(frozen=True)
class ExtractJob:
    """What a shard task needs: dataset (name, data root, builder options), split name and content
    fingerprint, image encoder name, its keyword arguments (no progress bar, no shard folder), the shard folder."""

    dataset: str
    data_root: str
    dataset_options: tuple
    split: str
    fingerprint: str
    encoder: str
    kwargs: tuple
    shard_dir: str

    @classmethod
    def make(cls, dataset: str, data_root, dataset_options: dict, split, encoder: str, kwargs: dict) -> ExtractJob:
        # paths absolute: a worker resolves a relative one against its own working directory, not this one's
        kw = {
            k: (str(v.absolute()) if isinstance(v, Path) else v)
            for k, v in kwargs.items()
            if k not in ("progress", "shard_dir")
        }
        return cls(
            dataset,
            str(Path(data_root).absolute()),
            tuple(sorted(dataset_options.items())),
            split.name,
            split.fingerprint(),
            encoder,
            tuple(sorted(kw.items())),
            str(Path(kwargs["shard_dir"]).absolute()),
        )


@functools.lru_cache(maxsize=2)
def _split(dataset: str, data_root: str, options: tuple, split: str):
    """(split, dataset) built on the worker (once per process)."""
    from cca_bench.datasets import get_dataset

    ds = get_dataset(dataset, Path(data_root), **dict(options))
    return ds.split(split), ds


def run_shard(job: ExtractJob, lo: int, hi: int) -> str:
    """Compute and save shard rows lo..hi of ``job`` (on a worker); returns the shard's file name."""
    from cca_bench.features import load_all, store
    from cca_bench.registry import IMAGE_ENCODERS

    load_all()
    split, dataset = _split(job.dataset, job.data_root, job.dataset_options, job.split)
    if split.fingerprint() != job.fingerprint:
        raise UserError(
            f"{job.dataset}/{job.split} differs on the Dask worker (fingerprint "
            f"{split.fingerprint()} != {job.fingerprint}): workers must see the same data root"
        )
    rows = IMAGE_ENCODERS.meta(job.encoder)["shard_rows"]
    kwargs = dict(job.kwargs)
    if kwargs.get("data_root") is not None:
        kwargs["data_root"] = Path(kwargs["data_root"])
    store.shard(Path(job.shard_dir), lo, hi, lambda a, b: rows(split, dataset, a, b, **kwargs))
    return store.shard_files(Path(job.shard_dir), lo, hi)[0].name


def missing_shards(shard_dir: Path, n: int, shard_size: int) -> list[tuple[int, int]]:
    """The (lo, hi) shards of n rows whose files are not both in ``shard_dir``."""
    from cca_bench.features import store

    return [
        (lo, hi)
        for lo, hi in store.shard_ranges(n, shard_size)
        if not all(f.is_file() for f in store.shard_files(shard_dir, lo, hi))
    ]


def extract_shards(
    job: ExtractJob, n: int, scheduler: str | None = None, shard_size: int | None = None, progress: bool = False
) -> list[str]:
    """Run the missing shards of ``job`` (n images) as tasks on the Dask cluster at ``scheduler`` (default:
    the current client, else a local cluster; see :func:`cca_bench.linalg.dask_client`), with a bar of the
    images done (stderr) when ``progress``; returns the names of the shard files written."""
    import sys

    distributed = require("dask.distributed", "--backend dask")
    from tqdm import tqdm

    from cca_bench.features import store
    from cca_bench.linalg import dask_client

    size = store.SHARD_SIZE if shard_size is None else shard_size
    todo = missing_shards(Path(job.shard_dir), n, size)
    if not todo:
        return []
    Path(job.shard_dir).mkdir(parents=True, exist_ok=True)
    desc = f"{job.encoder} {job.dataset}/{job.split} on the Dask cluster"
    with (
        dask_client(scheduler),
        tqdm(
            total=n,
            initial=n - sum(hi - lo for lo, hi in todo),
            unit="img",
            desc=desc,
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        client = distributed.get_client()
        futures = [client.submit(run_shard, job, lo, hi, pure=False) for lo, hi in todo]
        rows = {f.key: hi - lo for f, (lo, hi) in zip(futures, todo)}
        for done in distributed.as_completed(futures):
            done.result()  # a failed shard raises here
            bar.update(rows[done.key])
        written = [f.result() for f in futures]
    unseen = missing_shards(Path(job.shard_dir), n, size)
    if unseen:  # else this machine would extract them all again, without a word
        raise UserError(
            f"the Dask workers wrote {len(unseen)} feature shard(s) into {job.shard_dir}, but this machine does not "
            "see them there: the workers need the data root at this machine's path (a shared file system; "
            "docs/cluster.md, section 2)"
        )
    return written
