"""The one writer and the one path check: atomic files, devices/FIFOs/symlinks written through, stale
temporary files swept, dataset paths kept inside their folder."""

import os
import stat
import subprocess
import sys

import pytest

from cca_bench import fsio
from cca_bench.errors import UserError
from cca_bench.fsio import resolve_inside, sweep_stale_tmp, write_atomic


def put(data: bytes):
    return lambda f: f.write(data)


def test_regular_file_is_replaced_atomically_and_no_temporary_file_stays(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_atomic(target, put(b"one"))
    write_atomic(target, put(b"two"))
    assert target.read_bytes() == b"two" and os.listdir(tmp_path / "sub") == ["a.json"]

    def half(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, half)
    assert target.read_bytes() == b"two" and os.listdir(tmp_path / "sub") == ["a.json"]


def test_symlink_stays_a_symlink_and_its_file_gets_the_bytes(tmp_path):
    (tmp_path / "real.md").write_text("old")
    os.symlink("real.md", tmp_path / "link.md")
    write_atomic(tmp_path / "link.md", put(b"new"))
    assert (tmp_path / "link.md").is_symlink() and (tmp_path / "real.md").read_text() == "new"


def test_device_node_is_written_through_not_replaced(tmp_path):
    try:
        os.mknod(tmp_path / "full", 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # what /dev/full is
        os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("creating device nodes needs root")
    write_atomic(tmp_path / "null", put(b"gone"))
    with pytest.raises(OSError, match="No space left") as e:
        write_atomic(tmp_path / "full", put(b"x" * 100_000))
    assert e.value.filename == str(tmp_path / "full")
    assert all(stat.S_ISCHR(os.lstat(tmp_path / n).st_mode) for n in ("full", "null"))
    assert sorted(os.listdir(tmp_path)) == ["full", "null"]


def test_fifo_is_written_through_and_one_nobody_reads_is_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="no process is reading"):
        write_atomic(fifo, put(b"x"))
    # the reader is this process's own end, open before the write: no child to wait for, none left running, no
    # clock (a `cat` started in a child was polled for 2 s and stayed alive when the write never came)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomic(fifo, put(b"through the pipe"))  # 16 bytes: within the pipe's buffer, so it never blocks
        assert os.read(reader, 64) == b"through the pipe"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_dev_stdout_writes_after_what_was_printed(tmp_path):
    """``--html /dev/stdout > out.txt``: the page follows the printed table, in a file and in a pipe."""
    code = (
        "import sys; from pathlib import Path; from cca_bench.fsio import write_atomic\n"
        "print('table'); write_atomic(Path('/dev/stdout'), lambda f: f.write(b'page\\n')); print('end')"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        subprocess.run([sys.executable, "-c", code], stdout=f, check=True, env=env)
    assert out.read_text() == "table\npage\nend\n"
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, env=env)
    assert piped.stdout == b"table\npage\nend\n"
    assert (
        os.path.islink("/dev/stdout")
        or not os.path.exists("/dev/stdout")
        or not stat.S_ISREG(os.lstat("/dev/stdout").st_mode)
    )


def test_directory_and_path_below_a_file_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        write_atomic(tmp_path, put(b"x"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        write_atomic(tmp_path / "f" / "g" / "h.txt", put(b"x"))


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporary_files_of_dead_processes_are_swept_once(tmp_path, monkeypatch):
    monkeypatch.setattr(fsio, "_SWEPT", set())
    stale, mine = tmp_path / f"m.json.{dead_pid()}.tmp", tmp_path / f"other.json.{os.getpid()}.tmp"
    parent = tmp_path / f"x.npy.{os.getppid()}.tmp"
    for p in (stale, mine, parent):
        p.write_text("partial")
    write_atomic(tmp_path / "m.json", put(b"{}"))
    assert not stale.exists() and mine.exists() and parent.exists()  # running processes keep theirs
    assert sweep_stale_tmp(tmp_path) == []  # once per folder and process


def test_two_threads_writing_one_target_each_write_their_own_temporary_file(tmp_path):
    """Two threads of one process (the web app's, an evaluation's helper) write the same file at once: each
    writes its own temporary file, so the target ends whole (one of the two contents, not a mix of both or a
    truncated one) and neither write fails. Planted bug: a temporary name from the pid alone (both threads open
    the same file, the second truncates the first's half, and the second rename finds nothing to rename)."""
    import threading

    target = tmp_path / "counts.npy"
    both_writing = threading.Barrier(2, timeout=10)
    errors = []

    def write(byte):
        def slow(f):
            f.write(byte * 4096)
            f.flush()
            both_writing.wait()  # both temporary files open and half written
            f.write(byte * 4096)

        try:
            write_atomic(target, slow)
        except Exception as e:  # noqa: BLE001 (collected, asserted below)
            errors.append(e)

    threads = [threading.Thread(target=write, args=(b,)) for b in (b"a", b"b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in (b"a" * 8192, b"b" * 8192)
    assert sorted(os.listdir(tmp_path)) == ["counts.npy"]


def test_a_kill_between_the_renames_leaves_a_consistent_model(tmp_path, monkeypatch):
    """save_arrays renames the .safetensors, then the .json: killed in between, the new weights sit beside the
    old .json. The model loads whole from the safetensors (k = 5, not the old 2) and the .json is flagged;
    the killed process's temporary .json is swept by the next write in that folder."""
    import numpy as np

    from cca_bench.methods.base import load_arrays, save_arrays

    path = tmp_path / "models" / "m"
    save_arrays(path, {"w": np.ones((3, 2), np.float32)}, {"method": "cca", "n_components_": 2})
    real_replace = os.replace

    def killed_at_json(src, dst):
        if str(dst).endswith(".json"):
            os.rename(src, f"{dst}.{dead_pid()}.tmp")  # as a SIGKILL would leave it: the temporary file stays
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_at_json)
    with pytest.raises(KeyboardInterrupt):
        save_arrays(path, {"w": np.zeros((3, 5), np.float32)}, {"method": "cca", "n_components_": 5})
    monkeypatch.setattr(os, "replace", real_replace)
    with pytest.warns(UserWarning, match=r"m\.json does not describe m\.safetensors .*stopped between"):
        arrays, config = load_arrays(path)
    assert config["n_components_"] == 5 and arrays["w"].shape == (3, 5)
    assert len(list(path.parent.glob("*.tmp"))) == 1
    monkeypatch.setattr(fsio, "_SWEPT", set())  # "the next run": a new process
    save_arrays(path, arrays, {k: v for k, v in config.items() if k != "model_id"})
    assert not list(path.parent.glob("*.tmp"))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_arrays(path)[1]["n_components_"] == 5  # consistent again: no warning


def test_model_id_ties_the_json_to_its_safetensors(tmp_path):
    import json

    import numpy as np

    from cca_bench.methods.base import load_arrays, save_arrays

    save_arrays(tmp_path / "m", {"w": np.arange(4.0)}, {"method": "cca", "params": {"k": 1}})
    copy = json.loads((tmp_path / "m.json").read_text())
    arrays, config = load_arrays(tmp_path / "m")
    assert copy == config and len(config["model_id"]) == 16
    (tmp_path / "m.json").unlink()  # the copy is not needed to load
    with pytest.warns(UserWarning, match="does not describe"):
        assert load_arrays(tmp_path / "m")[1] == config


def test_resolve_inside(tmp_path):
    root = tmp_path / "ds"
    (root / "images" / "sub").mkdir(parents=True)
    (root / "images" / "a.jpg").write_text("x")
    outside = tmp_path / "secret.jpg"
    outside.write_text("x")
    os.symlink(outside, root / "images" / "out.jpg")
    os.symlink(root / "images" / "a.jpg", root / "images" / "in.jpg")
    os.symlink(tmp_path, root / "images" / "escape")
    images = root / "images"
    assert resolve_inside(images, "a.jpg", "w") == (images / "a.jpg").resolve()
    assert resolve_inside(images, "in.jpg", "w") == (images / "a.jpg").resolve()
    assert resolve_inside(images, "sub/../a.jpg", "w") == (images / "a.jpg").resolve()
    assert resolve_inside(images, "missing/b.jpg", "w") == images.resolve() / "missing" / "b.jpg"
    for entry, why in (
        ("/etc/hostname", "absolute path"),
        ("../x.jpg", "leaves"),
        ("out.jpg", "leaves"),
        ("escape/secret.jpg", "leaves"),
        ("sub/../../../secret.jpg", "leaves"),
        ("..", "leaves"),
        ("sub\0/a.jpg", "NUL byte"),
    ):
        with pytest.raises(UserError, match=f"^data.json: images\\[1\\]: .*{why}"):
            resolve_inside(images, entry, "data.json: images[1]")
    linked = tmp_path / "linked"  # an image folder that is itself a link (kept on another disk) is fine
    os.symlink(images, linked)
    assert resolve_inside(linked, "a.jpg", "w") == (images / "a.jpg").resolve()


def test_a_real_kill_leaves_a_temporary_file_that_the_next_process_sweeps(tmp_path):
    """SIGKILL while a file is being written: the target is untouched, the temporary file stays; the next
    process that writes into the folder removes it."""
    import signal
    import time

    target = tmp_path / "RESULTS.md"
    target.write_text("before")
    code = (
        "import sys, time; from pathlib import Path; from cca_bench.fsio import write_atomic\n"
        "def slow(f):\n    f.write(b'half'); f.flush(); print('writing', flush=True); time.sleep(60)\n"
        f"write_atomic(Path({str(target)!r}), slow)"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline() == b"writing\n"
    finally:  # killed whatever happened: a failed assertion leaves no child sleeping
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    (leftover,) = tmp_path.glob(f"RESULTS.md.{proc.pid}-*.tmp")
    assert target.read_text() == "before" and leftover.read_bytes() == b"half"
    for _ in range(100):  # the pid is gone once the kernel has reaped it
        if not fsio.pid_alive(proc.pid):
            break
        time.sleep(0.01)
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from pathlib import Path; from cca_bench.fsio import write_atomic\n"
            f"write_atomic(Path({str(target)!r}), lambda f: f.write(b'after'))",
        ],
        check=True,
        env=env,
    )
    assert sorted(os.listdir(tmp_path)) == ["RESULTS.md"] and target.read_text() == "after"
