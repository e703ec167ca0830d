"""dask_client: what goes wrong with a cluster (a typo in its address, no scheduler there, workers without this
package, the scheduler going away mid-work) is one line naming the address, never a traceback or a wait without
end."""

import logging
import os
import subprocess
import sys
import threading
import time

import dask
import dask.distributed  # noqa: F401  (the dask extra, in the test extra)
import pytest
from dask.distributed import Client, LocalCluster

from cca_bench.__main__ import main
from cca_bench.errors import UserError
from cca_bench.linalg import dask_client


@pytest.mark.parametrize("address", ["tcp//127.0.0.1:8786", "localhost", "127.0.0.1:port"])
def test_a_typo_in_the_address_is_one_line_at_once(address):
    """Planted bugs caught: Client(address) unguarded (a ValueError / OSError traceback); the address not
    resolved first (a host that cannot exist waits out the 30 s connect timeout)."""
    start = time.monotonic()
    with pytest.raises(UserError, match="cannot reach the Dask scheduler"):
        dask_client(address)
    assert time.monotonic() - start < 10


def test_no_scheduler_at_the_address():
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(UserError, match=r"cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'"):
            dask_client("tcp://127.0.0.1:1")


def test_the_cli_says_it_in_one_line(tmp_path, capsys):
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "res")]
    argv = ["generate", "ridge", "shapes", "glove50_tinyimage", "--backend", "dask", "--dask-scheduler", "tcp//x:1"]
    assert main([*argv, "-D", "n_train=20", "-D", "n_val=5", "-D", "n_test=5", "-q", *roots]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the Dask scheduler at 'tcp//x:1'") and len(err.splitlines()) == 1
    assert not (tmp_path / "res" / "models").exists()


WITHOUT = (
    "raise ImportError('not installed on this worker')\n",
    r"tcp://\S+ of the Dask cluster at \S+ cannot import cca_bench",
)
OLDER = ("__version__ = '0.0.1'\n", r"tcp://\S+ of \S+ runs cca_bench 0.0.1, this client")


@pytest.mark.parametrize("package, says", [WITHOUT, OLDER], ids=["without", "older"])
def test_workers_without_the_package_are_named(tmp_path, package, says):
    """A `dask worker` process that cannot import cca_bench (here: another cca_bench first on its path) is
    refused before any task is sent; one with another version is a warning. Planted bugs caught: no check (a
    task then kills such a worker, and the work waits for workers without end); no version comparison."""
    fake = tmp_path / "cca_bench"
    fake.mkdir()
    (fake / "__init__.py").write_text(package)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with (
        LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        cmd = [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address, "--nthreads", "1"]
        worker = subprocess.Popen(cmd, env=env, cwd=tmp_path, stderr=subprocess.DEVNULL)
        try:
            client.wait_for_workers(1, timeout=60)
            refused = pytest.raises(UserError, match=says) if package == WITHOUT[0] else pytest.warns(match=says)
            with refused, dask_client(cluster.scheduler_address):
                pass
        finally:
            worker.terminate()
            worker.wait(30)


def test_losing_the_scheduler_mid_work_is_one_line(caplog):
    """Planted bugs caught: the distributed errors of a lost scheduler not translated (a FutureCancelledError
    traceback); the client closed with its logger on (distributed logs a traceback of its cancelled
    reconnection above the one line)."""
    cluster = LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None)
    with pytest.raises(UserError, match="lost the Dask scheduler at "):
        with dask_client(cluster.scheduler_address):
            threading.Timer(0.5, cluster.close).start()
            dask.compute(dask.delayed(time.sleep)(3))
    logged = [r for r in caplog.records if r.name == "distributed.client" and r.levelno >= logging.ERROR]
    assert not logged, logged


def test_a_file_the_workers_do_not_see_is_named(tmp_path):
    """A feature file that the workers cannot open (here: removed once this process read its header, as a path
    on a disk of this machine's own would be) is one line naming it. Planted bug caught: FileNotFoundError not
    translated (a traceback from the worker)."""
    import numpy as np

    from cca_bench.linalg import dask_moments, npy_rows

    np.save(tmp_path / "x.npy", np.ones((20, 3), np.float32))
    x = npy_rows(str(tmp_path / "x.npy"))
    (tmp_path / "x.npy").unlink()
    with LocalCluster(n_workers=1, processes=False, protocol="tcp", dashboard_address=None) as cluster:
        with pytest.raises(UserError, match=f"cannot read {tmp_path / 'x.npy'}: the workers need the data root"):
            dask_moments(x, np.ones((20, 2), np.float32), scheduler=cluster.scheduler_address)


def test_a_scheduler_without_workers_says_so():
    """Planted bug caught: no word (the command then waits for a worker in silence)."""
    with LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=None) as cluster:
        with pytest.warns(UserWarning, match=f"no Dask worker has joined {cluster.scheduler_address} yet"):
            with dask_client(cluster.scheduler_address):
                pass


def test_a_task_that_kills_its_workers_is_one_line():
    """Planted bug caught: KilledWorker not translated (a traceback naming a task key)."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
            with pytest.raises(UserError, match=r"Dask workers of \S+ died running .* smaller --chunk-rows"):
                with dask_client(cluster.scheduler_address):
                    dask.compute(dask.delayed(os._exit)(1))
