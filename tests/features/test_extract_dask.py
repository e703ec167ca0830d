"""`--backend dask` extracts a split's missing image shards as tasks on a cluster of worker processes:
the same features as a local extraction, and finished shards are not recomputed."""

import dataclasses
import json
import os
from pathlib import Path

import dask.distributed  # noqa: F401,E402  (the dask extra, in the test extra)
import numpy as np
import pytest

from cca_bench.__main__ import main
from cca_bench.benchmark import Options, load_dataset
from cca_bench.features import distributed, store
from cca_bench.features.image import encode_tinyimage
from cca_bench.features.image_pipeline import ImagePipeline

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["-D", "n_train=150", "-D", "n_val=10", "-D", "n_test=30", "-q", "--reg", "1e-2"]


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes that import this checkout (PYTHONPATH), as a real cluster's workers would."""
    from dask.distributed import LocalCluster

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([old] if old else []))
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
            yield c.scheduler_address
    finally:
        os.environ.pop("PYTHONPATH") if old is None else os.environ.update(PYTHONPATH=old)


def image_cache(root: Path) -> dict:
    """{split: features} of the image arrays in a data root's cache."""
    out = {}
    for meta in (root / "cache").glob("*.json"):
        key = json.loads(meta.read_text())
        if key.get("kind") == "image":
            out[key["split"]] = np.load(meta.with_suffix(".npy"))
    return out


def test_dask_extraction_equals_local_extraction(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(store, "SHARD_SIZE", 64)  # the client cuts the shards: 150 train images -> 3 tasks
    real, written = distributed.extract_shards, []
    monkeypatch.setattr(distributed, "extract_shards", lambda *a, **k: written.extend(real(*a, **k)) or written)
    for backend in ("numpy", "dask"):
        roots = ["--data-root", str(tmp_path / backend / "data"), "--results-root", str(tmp_path / backend / "res")]
        extra = ["--dask-scheduler", cluster] if backend == "dask" else []
        assert (
            main(["generate", "cca", "shapes", "glove50_tinyimage", "--backend", backend, *extra, *SMALL, *roots]) == 0
        )
    assert len(written) == 3  # the workers wrote every train shard
    assert (
        main(
            [
                "run_benchmark",
                "cca",
                "shapes",
                "test",
                "glove50_tinyimage",
                "--backend",
                "dask",
                "--dask-scheduler",
                cluster,
                *SMALL[:-2],
                "--data-root",
                str(tmp_path / "dask" / "data"),
                "--results-root",
                str(tmp_path / "dask" / "res"),
            ]
        )
        == 0
    )
    assert len(written) == 4  # run_benchmark's test split: one more shard, on the workers too
    local, dask = image_cache(tmp_path / "numpy" / "data"), image_cache(tmp_path / "dask" / "data")
    ds = load_dataset("shapes", Options.of(dataset_options={"n_train": "150", "n_val": "10", "n_test": "30"}))
    local["test"] = encode_tinyimage(ds.split("test"), ds, progress=False)  # a local extraction of the same split
    assert sorted(dask) == ["test", "train"] and local["train"].shape == (150, 768)
    for split in local:
        np.testing.assert_array_equal(dask[split], local[split])
    assert not list((tmp_path / "dask" / "data" / "cache").glob("*.shards"))  # assembled and cleaned up


def test_dask_extraction_resumes_from_finished_shards(cluster, tmp_path):
    opts = Options.of(
        data_root=tmp_path / "data", dataset_options={"n_train": "150", "n_val": "10", "n_test": "30"}, progress=False
    )
    data_root = opts.locations.data_root
    dataset = load_dataset("shapes", opts)
    pipe = ImagePipeline("tinyimage", opts.features, data_root, opts.dataset_options)
    split = dataset.split("train")
    key = pipe.key(dataset, split)
    shards = store.shard_dir(data_root / "cache", key)
    kwargs = pipe.kwargs(shards)
    job = distributed.ExtractJob.make("shapes", data_root, opts.dataset_options, split, "tinyimage", kwargs)
    first = store.shard_files(shards, 0, 64)[0]
    distributed.run_shard(job, 0, 64)  # a run killed after its first shard
    before = first.stat().st_mtime_ns
    written = distributed.extract_shards(job, split.n_images, cluster, shard_size=64)
    assert sorted(written) == ["rows_000000064_000000128.npy", "rows_000000128_000000150.npy"]
    assert first.stat().st_mtime_ns == before
    assert distributed.extract_shards(job, split.n_images, cluster, shard_size=64) == []  # nothing left
    assembled = store.compute_sharded(shards, split.n_images, lambda lo, hi: pytest.fail("recomputed"), 64)[0]
    np.testing.assert_array_equal(assembled, encode_tinyimage(split, dataset, progress=False))


def test_a_worker_that_sees_other_data_is_refused(cluster, tmp_path):
    opts = Options.of(data_root=tmp_path, dataset_options={"n_train": "20", "n_val": "5", "n_test": "5"})
    dataset = load_dataset("shapes", opts)
    split = dataset.split("train")
    job = distributed.ExtractJob.make(
        "shapes",
        tmp_path,
        {"n_train": "21", "n_val": "5", "n_test": "5"},
        split,
        "tinyimage",
        {"shard_dir": tmp_path / "s", "batch_size": 64},
    )
    from cca_bench.errors import UserError

    with pytest.raises(UserError, match="differs on the Dask worker"):
        distributed.extract_shards(job, split.n_images, cluster)


def test_a_relative_data_root_and_an_unshared_one(tmp_path, monkeypatch):
    """Workers whose working directory is not this process's: a relative --data-root is the client's (made
    absolute before it travels), and shards written where this machine does not see them are one line, not a
    silent local extraction of the whole split. Planted bugs caught: the job's paths left relative (the workers
    write under their own working directory and the command stops); no check of the written shards (the
    relative shard folder below is extracted again here without a word)."""
    from dask.distributed import LocalCluster

    from cca_bench.errors import UserError

    for d in ("workers", "client"):
        (tmp_path / d).mkdir()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.chdir(tmp_path / "workers")  # where the worker processes start
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        monkeypatch.chdir(tmp_path / "client")
        real, jobs = distributed.extract_shards, []
        monkeypatch.setattr(distributed, "extract_shards", lambda *a, **k: jobs.append(a) or real(*a, **k))
        argv = ["generate", "ridge", "shapes", "glove50_tinyimage", "--backend", "dask", "--dask-scheduler"]
        assert main([*argv, c.scheduler_address, *SMALL[:-2], "--data-root", "d", "--results-root", "r"]) == 0
        (job, n, _), *_ = jobs
        assert job.shard_dir.startswith(str(tmp_path / "client" / "d")) and not (tmp_path / "workers" / "d").exists()
        with pytest.raises(UserError, match=r"wrote 1 feature shard\(s\) into shards, but this machine does not"):
            real(dataclasses.replace(job, shard_dir="shards"), n, c.scheduler_address)


def test_cluster_extraction_shows_its_progress(cluster, tmp_path, capsys):
    """The images done on the cluster are one bar on stderr that reaches the split's size, and the shards'
    assembly here draws no second bar. Planted bugs caught: no bar while the workers extract (the command
    was silent, then drew the assembly's bar stuck at 0/150); the assembly's bar drawn again."""
    import re

    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "res")]
    argv = ["generate", "ridge", "shapes", "glove50_tinyimage", "--backend", "dask", "--dask-scheduler", cluster]
    assert main([*argv, *SMALL[:6], *roots]) == 0
    bars = [s for s in re.split(r"[\r\n]", capsys.readouterr().err) if "shapes/train" in s and "img" in s]
    assert bars and all("on the Dask cluster" in s for s in bars), bars
    assert "150/150" in bars[-1]
