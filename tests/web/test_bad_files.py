"""No run record or ranks file can take a page down (issue 25.2, the web's part): each malformed case of the
audit beside good runs; every page answers 200 (the bad run skipped with a visible note, or its own page a 404),
and an `evaluate --image-index` run beside a normal one leaves the leaderboard and compare page answering."""

import hashlib
import io
import json
import os
import shutil
import threading

import numpy as np
import pytest

from cca_bench.__main__ import main
from cca_bench.web import create_app

MODEL = "cca__shapes[n_test=60,n_train=300,n_val=40]__glove50_tinyimage"  # what conftest.web_roots fits
RUN, RIDGE = f"{MODEL}__test__full__cosine", f"{MODEL}@ridge__test__full__cosine"
GOOD_PAGES = [
    "/",
    "/?view=models",
    "/leaderboard.csv",
    f"/compare?run={RUN}&run={RIDGE}",
    f"/run/{RUN}",
    f"/run/{RUN}/examples",
    f"/wins?a={RUN}&b={RIDGE}",
]

BAD_JSON = {  # the audit's malformed run records (issue 25)
    "ci_task_list": {"ci": {"image_annotation": [0, 1]}},
    "ci_rsum_only": {"ci": {"rsum": [1, 2]}},
    "ci_rsum_text": {"ci": {"rsum": "wide"}},
    "seed_sd_text": {"seed_sd": {"rsum": "abc"}},
    "seed_sd_list": {"seed_sd": [1]},
    "params_label_number": {"params_label": 5},
    "model_number": {"model": 5},
}


def _with_ranks(results, name: str, record: dict, arrays: dict) -> None:
    """A run JSON ``name`` whose ranks file holds ``arrays`` (its sha256 recorded, so only the content is bad)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (results / "runs" / f"{name}.ranks.npz").write_bytes(buf.getvalue())
    record = {**record, "ranks_file": f"{name}.ranks.npz", "ranks_sha256": hashlib.sha256(buf.getvalue()).hexdigest()}
    (results / "runs" / f"{name}.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def bad_roots(web_roots, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    results = tmp / "results"
    shutil.copytree(web_roots[1], results)
    record = json.loads((results / "runs" / f"{RUN}.json").read_text())
    for name, change in BAD_JSON.items():
        (results / "runs" / f"{name}.json").write_text(json.dumps({**record, **change}))
    (results / "runs" / "nested.json").write_text("[" * 100_000 + "]" * 100_000)  # 200 KB: a RecursionError
    good = dict(np.load(results / "runs" / record["ranks_file"]))
    _with_ranks(results, "zero_d_index", record, {**good, "image_index": np.array(3)})
    _with_ranks(results, "fold_gap", record, {**good, "fold": np.repeat([0, 2], 30)})
    _with_ranks(results, "top10_floats", record, {**good, "i2t_top10": good["i2t_top10"] * 0.5})
    fifo = results / "runs" / "fifo.ranks.npz"
    os.mkfifo(fifo)
    (results / "runs" / "fifo.json").write_text(json.dumps({**record, "ranks_file": fifo.name}))
    return web_roots[0], results


def _get_all(client, urls) -> dict:
    """{url: status} of every url, each in a thread that may take at most 60 s (a FIFO read would block)."""
    out = {}

    def get(url):
        out[url] = client.get(url).status_code

    for url in urls:
        t = threading.Thread(target=get, args=(url,), daemon=True)
        t.start()
        t.join(60)
        out.setdefault(url, "hung")
    return out


def test_no_bad_file_takes_a_page_down(bad_roots):
    """Every page of the good runs answers 200 beside the bad files, and the leaderboard names each bad run file.
    Planted bugs it caught: read_run not catching RecursionError (the nested file: / answered 500) and no check
    of the shapes of ``ci`` and ``seed_sd`` (500 on / and /compare), both before the run-record schema
    (runrecord.problem) landed, which now guards them; load_ranks letting the TypeError of a 0-d image_index
    through (500), and a FIFO read as a ranks file (the leaderboard hung)."""
    data_root, results = bad_roots
    app = create_app(data_root, results)
    app.config["LOADING_WAIT_S"] = 60
    c = app.test_client()
    statuses = _get_all(c, GOOD_PAGES)
    assert statuses == {url: 200 for url in GOOD_PAGES}
    board = c.get("/").get_data(as_text=True)
    for name in [*BAD_JSON, "nested"]:
        assert f"Skipped run file {name}.json" in board, name
    bad_ranks = ["zero_d_index", "fold_gap", "top10_floats", "fifo"]
    pages = [f"/run/{n}{tail}" for n in [*BAD_JSON, "nested", *bad_ranks] for tail in ("", "/examples", "/recall.png")]
    pages += [f"/compare?run={RUN}&run={n}" for n in bad_ranks] + [f"/wins?a={RUN}&b={n}" for n in bad_ranks]
    statuses = _get_all(c, pages)
    assert {u: s for u, s in statuses.items() if s not in (200, 400, 404)} == {}
    for n in bad_ranks:  # a run whose ranks file is bad is still a run: its page and the comparison answer
        assert statuses[f"/run/{n}"] == 200 and statuses[f"/compare?run={RUN}&run={n}"] == 200, n


def test_a_subset_run_beside_a_normal_run(web_roots, tmp_path):
    """An `evaluate --image-index` run (2 of each image's 5 captions, the use docs/bring_your_own.md documents)
    beside the normal runs of its split: the leaderboard and the compare page answer 200 and say why the two
    are not paired. Planted bug it caught (before the marks on main skipped such runs themselves): the
    leaderboard's marks raising the 'not the same test images' error (a 400 for the whole leaderboard)."""
    results = tmp_path / "results"
    shutil.copytree(web_roots[1], results)
    g = create_app(web_roots[0], results).config["LIBRARY"].gallery(MODEL, "test")
    keep = np.flatnonzero(np.arange(len(g.features.image_index)) % 5 < 2)
    np.save(tmp_path / "img.npy", g.model.embed_images(g.features).astype(np.float32))
    np.save(tmp_path / "txt.npy", g.model.embed_texts(g.features)[keep].astype(np.float32))
    np.save(tmp_path / "index.npy", g.features.image_index[keep])
    assert (
        main(
            [
                "evaluate",
                "shapes",
                "test",
                "--images",
                str(tmp_path / "img.npy"),
                "--texts",
                str(tmp_path / "txt.npy"),
                "--image-index",
                str(tmp_path / "index.npy"),
                "--name",
                "subset",
                "-D",
                "n_train=300",
                "-D",
                "n_val=40",
                "-D",
                "n_test=60",
                "-q",
                "--data-root",
                str(web_roots[0]),
                "--results-root",
                str(results),
            ]
        )
        == 0
    )
    subset = next(p.stem for p in (results / "runs").glob("subset*.json"))
    app = create_app(web_roots[0], results)
    app.config["LOADING_WAIT_S"] = 60
    c = app.test_client()
    board = c.get("/")
    assert board.status_code == 200 and subset in board.get_data(as_text=True)
    page = c.get(f"/compare?run={RUN}&run={subset}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "No paired test of run 2 against run 1" in text
    assert "did not rank the same test images and captions" in text
    assert "ranked other queries" in text
    assert c.get(f"/run/{subset}/examples").status_code == 200
