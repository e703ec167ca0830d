"""Hostile input, round three (issue 25 items 2-6): ranks files bounded before they are read, numeric flags with
ranges, inert CSV and markdown, no silent substitution. Every case: one line on stderr, the right exit status,
no traceback, nothing stored and nothing written outside the roots (the case folder is compared whole)."""
import hashlib
import io
import json
import os
import threading
import time
import zipfile

import numpy as np
import pytest
from test_cli_hostile import FEAT, SMALL, W, case, fitted, snapshot, unchanged  # noqa: F401 (fixtures)

from cca_bench.__main__ import main


def the_run(w) -> tuple:
    """(run JSON path, its record, its ranks file path) of the one run the fixture stored."""
    [path] = sorted((w / "results" / "runs").glob("*.json"))
    record = json.loads(path.read_text())
    return path, record, path.with_name(record["ranks_file"])


def replace_ranks(w, data: bytes | None = None, **arrays) -> None:
    """Write ``data`` (or the stored ranks with ``arrays`` replaced) as the run's ranks file and record its sha256
    in the run JSON, so that only the checks of the file's content stand in the way."""
    path, record, ranks = the_run(w)
    if data is None:
        with np.load(ranks, allow_pickle=False) as z:
            members = {k: z[k] for k in z.files} | arrays
        buf = io.BytesIO()
        np.savez(buf, **members)
        data = buf.getvalue()
    ranks.write_bytes(data)
    record["ranks_sha256"] = hashlib.sha256(data).hexdigest()
    path.write_text(json.dumps(record))


def bomb(w, n=20_000_000):
    """A deflated .npz whose image_annotation member honestly declares ``n`` int64 (160 MB for 20M) in a few
    hundred KB: the header matches the member's recorded size, so only the uncompressed bound refuses it."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (n,)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("image_annotation.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            block = bytes(1_000_000)
            for _ in range(8 * n // len(block)):
                f.write(block)
    replace_ranks(w, buf.getvalue())


def fifo_ranks(w):
    """The ranks file replaced by a FIFO. A writer thread feeds a reader that opens it anyway, so a regression
    fails on the message instead of hanging the suite; with no reader the thread gives up after 10 s."""
    _, _, ranks = the_run(w)
    ranks.unlink()
    os.mkfifo(ranks)

    def write_if_read():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                fd = os.open(ranks, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody reads it
                time.sleep(0.05)
                continue
            os.write(fd, b"not a ranks file")
            os.close(fd)
            return

    threading.Thread(target=write_if_read, daemon=True).start()


def link_ranks(w, target):
    _, _, ranks = the_run(w)
    ranks.unlink()
    os.symlink(target, ranks)


def outside_copy(w):
    """The ranks file moved outside the runs folder, a symlink left in its place."""
    _, _, ranks = the_run(w)
    os.rename(ranks, w / "outside.npz")
    os.symlink(w / "outside.npz", ranks)


SIG = ["significance", "{run}", "{run}"]

RANKS_CASES = [
    # (name, set-up, expected message) -- significance of the run against itself, and compare --significance
    ("ranks file is a FIFO", fifo_ranks, "is not a regular file (a FIFO, device or folder)"),
    ("ranks file links to /dev/zero", lambda w: link_ranks(w, "/dev/zero"), "leaves"),
    ("ranks file links outside the runs folder", outside_copy, "leaves"),
    ("compressed member declaring 160 MB", bomb, "claim 160000128 bytes uncompressed"),
    ("0-d image_index", lambda w: replace_ranks(w, image_index=np.array(3)), "inconsistent rank arrays"),
    ("fold numbers with a gap", lambda w: replace_ranks(w, fold=np.repeat([0, 2], 10)), "without a gap"),
]


@pytest.mark.parametrize("name, setup, message", RANKS_CASES, ids=[c[0] for c in RANKS_CASES])
def test_hostile_ranks_file(name, setup, message, case, capsys):
    """significance: one line naming the ranks file, exit 2; compare --significance: the run takes no part in the
    marks and the command still answers. Planted bugs: results.load_ranks reading with ``path.read_bytes()``
    (FIFO: the writer thread's bytes then fail on the sha256, not "not a regular file"; /dev/zero: not run
    planted, it reads ~1 GB), no link check in fsio.read_regular (the outside copy is read and accepted),
    read_npz without the uncompressed total (numpy allocated 160 MB and failed later on another message),
    query_ranks checking ``len(image_index)`` before its ndim (TypeError traceback) and fold only for
    monotonicity (the gap passed)."""
    w, roots = case
    setup(w)
    run = str(the_run(w)[0])
    before = snapshot(w)
    capsys.readouterr()
    rc = main(["significance", run, run, *roots])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert "ranks" in err[0]
    assert main(["compare", "--significance", "-q", *roots]) == 0
    after = snapshot(w)
    assert unchanged({k: v for k, v in before.items() if not k.startswith("results/RESULTS")},
                     {k: v for k, v in after.items() if not k.startswith("results/RESULTS")})
