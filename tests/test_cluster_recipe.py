"""docs/cluster.md's recipe works as written: its SLURM configuration renders the job script it promises
(dask-jobqueue's ``job_script()``, no SLURM needed), and its Python fit snippet runs against a LocalCluster of
2 worker processes and gives the local fit."""

import contextlib
import io
import re
from pathlib import Path

import dask_jobqueue
import numpy as np
from dask.distributed import LocalCluster

from cca_bench.methods.ridge import RidgeMap

DOC = Path(__file__).resolve().parents[1] / "docs" / "cluster.md"


def snippet(name: str) -> str:
    """The fenced python block right after ``<!-- snippet: name -->`` in docs/cluster.md."""
    m = re.search(rf"<!-- snippet: {name} -->\s*```python\n(.*?)\n```", DOC.read_text(), re.S)
    assert m, f"docs/cluster.md has no '{name}' snippet"
    return m.group(1)


def test_slurm_recipe_renders_the_documented_job_script(monkeypatch):
    """Planted bugs caught: the prologue line exporting the data root dropped from the doc (workers would look
    for features elsewhere), and ``processes=2`` dropped (one worker of 16 threads per job)."""
    scaled = []
    monkeypatch.setattr(dask_jobqueue.SLURMCluster, "scale", lambda self, n=None, **kw: scaled.append(kw or n))
    code = snippet("slurm").replace('"port": 8786', '"port": 0').replace('":8787"', "None")  # free ports in CI
    out, ns = io.StringIO(), {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), ns)
    try:
        script = ns["cluster"].job_script()
    finally:
        ns["cluster"].close()
    lines = script.splitlines()
    for directive in ("#SBATCH -p cpu", "#SBATCH -A my-project", "#SBATCH --cpus-per-task=16", "#SBATCH -t 02:00:00"):
        assert directive in lines, script
    assert any(re.fullmatch(r"#SBATCH --mem=\d+G", line) for line in lines), script
    worker = next(i for i, line in enumerate(lines) if not line.startswith("#") and "dask" in line and "worker" in line)
    prologue = lines.index("export CCA_BENCH_DATA=/shared/cca/data")
    assert lines.index("source /shared/envs/cca/bin/activate") < worker and prologue < worker
    assert "--nworkers 2" in lines[worker] and "--nthreads 8" in lines[worker]
    assert ns["cluster"].scheduler_address in lines[worker]
    assert scaled[0] == {"jobs": 4} and script in out.getvalue()


def test_fit_snippet_runs_on_a_local_cluster(tmp_path, monkeypatch):
    """The doc's API block, with features as .npy files read by 2 worker processes, fits the local model.
    Planted bug caught: the snippet forgetting ``backend="dask"`` (no task reaches the cluster)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 8)).astype(np.float32)
    index = np.repeat(np.arange(120), 2)
    y = (x[index] @ rng.standard_normal((8, 5)) + rng.standard_normal((240, 5))).astype(np.float32)
    for name, a in (("images", x), ("captions", y), ("image_index", index)):
        np.save(tmp_path / f"train_{name}.npy", a)
    monkeypatch.setenv("CCA_FEATURES", tmp_path.as_uri())
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        ns = {"cluster": cluster}
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(snippet("fit"), str(DOC), "exec"), ns)
        done = " ".join(cluster.scheduler.task_prefixes)
        assert "file_rows" in done and "indexed_block_products" in done, done
    want = RidgeMap().fit(x, y, index)
    np.testing.assert_allclose(ns["model"].x_weights_, want.x_weights_, rtol=1e-5, atol=1e-6)
