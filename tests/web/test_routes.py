"""Every route of the web app through Flask's test client: contents, errors, escaping, traversal, read-only."""

import html
import io
import json
import re
import shutil
from html.parser import HTMLParser

import flask  # noqa: F401,E402  (the web extra, in the test extra)
import pytest
from PIL import Image

from cca_bench.__main__ import main
from cca_bench.web import create_app

MODEL = "cca__shapes[n_test=60,n_train=300,n_val=40]__glove50_tinyimage"  # what conftest.web_roots fits
RUN = f"{MODEL}__test__full__cosine"


class Tables(HTMLParser):
    """The text of every <table> cell, as [table][row][cell]."""

    def __init__(self, html: str):
        super().__init__()
        self.tables, self._cell = [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def client(web_roots):
    return create_app(*web_roots).test_client()


def text(response) -> str:
    return response.get_data(as_text=True)


def unescaped(response) -> str:
    return html.unescape(text(response))


def test_leaderboard_shows_the_numbers_compare_prints(client, web_roots, tmp_path, capsys):
    copy = tmp_path / "results"
    shutil.copytree(web_roots[1], copy)
    capsys.readouterr()
    assert main(["compare", "--results-root", str(copy), "--columns", "all"]) == 0
    md = [
        [c.strip() for c in line.strip("|").split("|")][:-1]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("|") and not line.startswith("|--")
    ]  # [:-1]: the run id column the page lacks
    r = client.get("/")
    assert r.status_code == 200 and "shapes" in text(r)
    html_rows = [row[1:] for table in Tables(text(r)).tables for row in table]  # without the compare ticks

    def by_run(rows):  # {(params, distance): {column: the numbers of its cell (value, then interval)}}
        head = rows[0]
        return {
            (row[head.index("Params")], row[head.index("Distance")]): {
                c: re.findall(r"-?\d+(?:\.\d+)?", cell) if c.startswith(("i2t", "t2i", "R-sum")) else cell
                for c, cell in zip(head, row)
            }
            for row in rows[1:]
        }

    assert by_run(html_rows) == by_run(md)  # the three runs, cell for cell (values and intervals)
    assert len(md) == 4 and sorted(row[4] for row in md[1:]) == ["cosine", "cosine", "dot"]
    head = html_rows[0]
    assert head[:2] == ["Method", "R-sum"] and any("tag=ridge" in row[head.index("Params")] for row in html_rows[1:])
    rsum = [float(row[1].split()[0]) for row in html_rows[1:]]
    assert rsum == sorted(rsum, reverse=True)  # best R-sum first
    assert all(row[head.index("i2t MedR")].split()[0].isdigit() for row in html_rows[1:])  # medians as integers
    assert f'href="/run/{RUN.replace("[", "%5B").replace("]", "%5D")}"' in text(r)


def test_leaderboard_filters_by_method_and_features(client):
    assert "shapes" in text(client.get("/?method=cca&features=glove50_tinyimage"))
    r = client.get("/?features=word2vec_vgg19")
    assert r.status_code == 200 and "No rows match this filter" in text(r)
    assert "No rows match" in text(client.get("/?method=vse"))
    assert "Kiros" in text(client.get("/?published=1"))  # every published row, as compare --published


def test_empty_results_root_says_what_to_do(tmp_path):
    c = create_app(tmp_path / "data", tmp_path / "results").test_client()
    r = c.get("/")
    assert r.status_code == 200 and "No runs stored yet" in text(r) and "run_benchmark" in text(r)
    r = c.get("/search")
    assert r.status_code == 200 and "No saved models" in text(r)


def test_run_page(client):
    r = client.get(f"/run/{RUN}")
    page = text(r)
    assert r.status_code == 200
    for needle in (
        "glove50_tinyimage",
        "Image Annotation",
        "Image Search",
        "Parameters",
        "Timings",
        "Versions",
        "numpy",
        "reg",
        "recall.png",
        ".spectrum.png",
        "/files/runs/",
        "/examples",
        ".safetensors",
    ):
        assert needle in page, needle
    png = client.get(f"/run/{RUN}/recall.png")
    assert png.status_code == 200 and png.data[:4] == b"\x89PNG"
    spectrum = client.get(f"/files/models/{MODEL}.spectrum.png")
    assert spectrum.status_code == 200 and spectrum.data[:4] == b"\x89PNG"
    run_file = client.get(f"/files/runs/{RUN}.json")
    assert run_file.status_code == 200 and json.loads(run_file.data)["method"] == "cca"
    model_file = client.get(f"/files/models/{MODEL}.safetensors")
    assert model_file.status_code == 200 and "attachment" in model_file.headers["Content-Disposition"]


def test_run_metrics_are_the_run_files(client, web_roots):
    record = json.loads((web_roots[1] / "runs" / f"{RUN}.json").read_text())
    tables = Tables(text(client.get(f"/run/{RUN}"))).tables
    shown = [t for t in tables if t and t[0][:1] == ["R@1"]]
    for table, task in zip(shown, ("image_annotation", "image_search")):
        m = record["metrics"][task]
        assert [cell.split()[0] for cell in table[1]] == [f"{m[k]:.1f}" for k in ("R@1", "R@5", "R@10")] + [
            f"{m['median_rank']:.0f}",
            f"{m['mean_rank']:.1f}",
        ]  # the median rank of one fold is a whole number


def test_model_page(client):
    r = client.get(f"/model/{MODEL}")
    assert r.status_code == 200 and "Canonical-correlation spectrum" in text(r) and RUN in text(r)


def test_examples_page_marks_ground_truth(client, web_roots):
    r = client.get(f"/run/{RUN}/examples")
    page = text(r)
    assert r.status_code == 200
    assert page.count('class="example annotation"') == 8 + 5 and page.count('class="example search"') == 8 + 5
    assert "&#10003;" in page or "\u2713" in page
    stem = RUN.replace("[", "%5B").replace("]", "%5D")
    assert f"/run/{stem}/image/" in page  # images of the run's split, no model needed
    assert client.get(re.search(r'src="(/run/[^"]+/image/\d+\.png)"', page)[1]).data[:4] == b"\x89PNG"


def test_text_search_finds_red_circles(client):
    from cca_bench.datasets.shapes import scene

    r = client.get(f"/search?model={MODEL}&split=test&q=a+red+circle")
    page = text(r)
    assert r.status_code == 200 and page.count('class="hit"') == 10
    srcs = [s.split('"')[0] for s in page[page.index('id="text-results"') :].split('src="')[1:]]
    images = [int(s.rsplit("/", 1)[1].removesuffix(".png")) for s in srcs]
    assert len(images) == 10 and srcs[0].startswith(f"/image/{MODEL.replace('[', '%5B').replace(']', '%5D')}/test/")
    # 3 of the 60 test scenes hold a red circle (as in tests/test_search.py): one is among the top 5
    assert any(o.colour == "red" and o.shape == "circle" for i in images[:5] for o in scene(0, "test", i))
    src = srcs[0]
    png = client.get(src)
    assert png.status_code == 200 and Image.open(io.BytesIO(png.data)).format == "PNG"


def test_photo_search_finds_the_photo_and_its_captions(client, web_roots):
    from cca_bench.datasets import get_dataset

    split = get_dataset("shapes", web_roots[0], n_train=300, n_val=40, n_test=60).split("test")
    buf = io.BytesIO()
    split.load_image(7).save(buf, format="PNG")
    r = client.post(
        "/search",
        data={
            "model": MODEL,
            "split": "test",
            "distance": "cosine",
            "photo": (io.BytesIO(buf.getvalue()), "<b>photo</b>.png"),
        },
        content_type="multipart/form-data",
    )
    page = text(r)
    assert r.status_code == 200, page
    assert "&lt;b&gt;photo&lt;/b&gt;.png" in page and "<b>photo</b>" not in page
    similar = page[page.index('id="similar-results"') :]
    assert similar.split('src="')[1].split('"')[0].endswith("/test/7.png")  # itself first
    assert page.count("<li>") >= 10  # top captions


def test_uploads_are_limited_and_checked(client):
    big = client.post(
        "/search",
        data={"model": MODEL, "photo": (io.BytesIO(b"\0" * (11 * 2**20)), "big.png")},
        content_type="multipart/form-data",
    )
    assert big.status_code == 413 and "at most 10 MB" in text(big)
    bad = client.post(
        "/search",
        data={"model": MODEL, "photo": (io.BytesIO(b"not an image"), "x.png")},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 400 and "cannot read image" in text(bad)
    none = client.post("/search", data={"model": MODEL}, content_type="multipart/form-data")
    assert none.status_code == 400 and "choose a photo" in text(none)


@pytest.mark.parametrize(
    "url, message",
    [
        ("/run/nope", "no run named"),
        ("/run/nope/examples", "no run named"),
        ("/run/nope/recall.png", "no run named"),
        ("/model/nope", "no saved model named"),
        ("/search?model=nope&q=red", "no saved model named"),
        ("/image/nope/test/0.png", "no saved model named"),
        (f"/image/{MODEL}/tset/0.png", "no split 'tset'"),
        (f"/image/{MODEL}/test/60.png", "has no image 60"),
        (f"/search?model={MODEL}&split=tset&q=red", "no split 'tset'"),
    ],
)
def test_missing_things_are_clear_404_pages(client, url, message):
    r = client.get(url)
    assert r.status_code == 404 and message in unescaped(r)


def test_bad_queries_are_400_pages(client):
    r = client.get(f"/search?model={MODEL}&q=%3F%3F%3F")
    assert r.status_code == 400 and "holds no word" in text(r)
    r = client.get(f"/search?model={MODEL}&q=red&distance=manhattan")
    assert r.status_code == 400 and "unknown distance" in text(r)


TRAVERSALS = [
    "/files/runs/../../secret.json",
    "/files/runs/..%2F..%2Fsecret.json",
    "/files/runs/%2e%2e%2f%2e%2e%2fsecret.json",
    "/files/runs/%2E%2E/%2E%2E/secret.json",
    "/files/runs/..%5C..%5Csecret.json",
    "/files/runs/%2Fetc%2Fpasswd",
    "/files/runs//etc/passwd",
    "/files/..%2F..%2Fsecret.json/x.json",
    "/files/..%2Fsecret.json/x.json",
    "/files/cache/x.npy",
    "/files/models/..%2Fruns%2F" + RUN + ".json",
    "/files/runs/evil.json",
    "/files/models/evil.png",
    "/static/../../secret.json",
    "/static/%2e%2e/%2e%2e/secret.json",
    "/static/..%2F..%2F..%2Fsecret.json",
    "/image/..%2F..%2Fsecret.json/test/0.png",
    "/run/..%2F..%2Fsecret",
    "/run/%2e%2e%2fsecret",
    "/model/..%2F..%2Fsecret",
    "/search?model=..%2F..%2Fsecret&q=red",
    "/search?model=/etc/passwd&q=red",
    "/run/evil",
    "/model/evil",
]


@pytest.fixture(scope="module")
def evil_links(web_roots):
    """Symlinks inside the results root that point at the secret beside it."""
    data, results = web_roots
    secret = results.parent / "secret.json"
    links = [
        results / "runs" / "evil.json",
        results / "models" / "evil.png",
        results / "models" / "evil.json",
        results / "models" / "evil.safetensors",
    ]
    for link in links:
        link.symlink_to(secret)
    yield
    for link in links:
        link.unlink()


@pytest.mark.parametrize("url", TRAVERSALS)
def test_no_url_reaches_outside_the_roots(client, evil_links, url):
    r = client.get(url)
    assert r.status_code in (400, 404) and b"TOPSECRET" not in r.data, url


def test_captions_and_names_are_escaped(client, web_roots, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(web_roots[1], results)
    record = json.loads((results / "runs" / f"{RUN}.json").read_text())
    record.update(method="<script>alert(1)</script>", features="external", model="<img src=x onerror=alert(2)>")
    record.pop("recall_curve")
    (results / "runs" / "byo.json").write_text(json.dumps(record))
    c = create_app(web_roots[0], results).test_client()
    for url in ("/", "/run/byo"):
        page = text(c.get(url))
        assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<img src=x" not in page
    page = text(c.get(f"/search?model={MODEL}&q=%3Cscript%3Ealert(3)%3C/script%3E+red+circle"))
    assert "<script>alert(3)" not in page and "&lt;script&gt;alert(3)" in page


def test_evaluate_runs_without_a_model_are_listed_and_explained(client, web_roots, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(web_roots[1], results)
    record = json.loads((results / "runs" / f"{RUN}.json").read_text())
    record.update(method="my-clip", features="external", model="my-clip__shapes__external", params={}, params_label="")
    for key in ("recall_curve", "timings", "model_config"):
        record.pop(key)
    (results / "runs" / "my-clip__shapes__external__test__full__cosine.json").write_text(json.dumps(record))
    c = create_app(web_roots[0], results).test_client()
    board = text(c.get("/"))
    assert "my-clip" in board and "external" in board
    page = c.get("/run/my-clip__shapes__external__test__full__cosine")
    assert page.status_code == 200 and "no saved model file" in text(page) and "/examples" in text(page)
    examples = c.get("/run/my-clip__shapes__external__test__full__cosine/examples")  # from its stored top-10
    assert examples.status_code == 200 and text(examples).count('class="example search"') == 8 + 5


def _snapshot(*roots) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in root.rglob("*")}


def test_the_app_never_writes_under_the_roots(web_roots):
    before = _snapshot(*web_roots)
    c = create_app(*web_roots).test_client()
    for url in (
        "/",
        f"/run/{RUN}",
        f"/run/{RUN}/recall.png",
        f"/run/{RUN}/examples",
        f"/model/{MODEL}",
        f"/search?model={MODEL}&q=blue+square",
        f"/search?model={MODEL}&split=val&q=blue+square",
        f"/image/{MODEL}/val/3.png",
        f"/files/runs/{RUN}.json",
    ):
        assert c.get(url).status_code == 200, url
    assert _snapshot(*web_roots) == before  # the uncached val split was encoded in memory only


def test_pages_are_locked_to_this_server(client, web_roots):
    r = client.get("/")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert client.get("/", headers={"Host": "attacker.example:8000"}).status_code == 400  # DNS rebinding
    anywhere = create_app(*web_roots, host="0.0.0.0").test_client()
    assert anywhere.get("/", headers={"Host": "myhost.lan:8000"}).status_code == 200


def test_missing_flask_is_a_one_line_hint(monkeypatch, tmp_path):
    import sys

    from cca_bench.errors import UserError

    monkeypatch.setitem(sys.modules, "flask", None)
    with pytest.raises(UserError, match=r"pip install"):
        create_app(tmp_path, tmp_path)


def test_a_model_fitted_again_is_reopened(web_roots, tmp_path):
    import os

    results = tmp_path / "results"
    shutil.copytree(web_roots[1], results)
    lib = create_app(web_roots[0], results).config["LIBRARY"]
    first = lib.gallery(MODEL, "test")
    assert lib.gallery(MODEL, "test") is first  # kept in memory
    weights = results / "models" / f"{MODEL}.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # as `generate` rewriting it
    assert lib.gallery(MODEL, "test") is not first


def test_memory_held_by_the_library_is_bounded(web_roots, tmp_path, monkeypatch):
    """Datasets, galleries and qualitative examples are kept for the few most recently used keys only: a model
    fitted again and again (a new key each time) does not grow the app's memory."""
    import os

    from cca_bench.web import library

    monkeypatch.setattr(library, "EXAMPLES_KEPT", 3)
    results = tmp_path / "results"
    shutil.copytree(web_roots[1], results)
    lib = create_app(web_roots[0], results).config["LIBRARY"]
    weights = results / "models" / f"{MODEL}.safetensors"
    for n in range(6):
        stat = weights.stat()
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # as `generate` rewriting it
        first = lib.examples(MODEL, "test", "cosine")
        assert lib.examples(MODEL, "test", "cosine") is first  # reused while it is recent
        assert (len(lib._datasets), len(lib._galleries), len(lib._examples)) == (
            min(n + 1, library.DATASETS_KEPT),
            min(n + 1, library.GALLERIES_KEPT),
            min(n + 1, 3),
        )


def test_examples_page_ranks_within_the_runs_folds(client, web_roots, tmp_path):
    """A run scored in folds (COCO 1k protocol) gets its qualitative examples ranked within each fold, and the page
    says which gallery was used; a full-split run says it ranked over the whole split. Both the stored top-10 of a
    run scored in 2 folds (evaluation.score, results.write_run) and, for a run stored without ranks, its model."""
    from cca_bench.evaluation import RunOptions, score
    from cca_bench.results import write_run
    from cca_bench.web.common import example_rows

    results = tmp_path / "results"
    shutil.copytree(web_roots[1], results)
    record = json.loads((results / "runs" / f"{RUN}.json").read_text())
    app = create_app(web_roots[0], results)
    lib = app.config["LIBRARY"]
    g = lib.gallery(MODEL, "test")
    emb = (g.model.embed_images(g.features), g.model.embed_texts(g.features))
    stored = score([emb], g.features.image_index, "cosine", 2, RunOptions(bootstrap=None), {})
    kept = {k: v for k, v in record.items() if k not in ("run_id", "ranks_file", "ranks_sha256")}
    folded = write_run(results, {**kept, "protocol": "1k", "folds": 2, **stored}).stem
    page = text(app.test_client().get(f"/run/{folded}/examples"))
    assert "within the query's fold: protocol 1k splits the 60 images into 2 consecutive folds of 30" in page
    assert "over the whole split (60 images)" in text(client.get(f"/run/{RUN}/examples"))
    ranks = stored["_ranks"]
    shown = [float(r) for r in re.findall(r"rank (\d+(?:\.\d+)?)", page)]
    hits = re.findall(r'<figure class="(?:correct|wrong)"><img src="/run/[^"]+/image/(\d+)\.png"', page)
    assert set(shown) <= set((ranks.rank("t2i")[0] + 1).tolist()) | set((ranks.rank("i2t")[0] + 1).tolist()) and hits
    for block in page.split('class="example search"')[1:]:  # each caption's hits come from its own fold
        block = block.split("<h2>")[0]
        query = int(re.search(r'<figure class="(?:correct|wrong|gt)"><img src="/run/[^"]+/image/(\d+)', block)[1])
        assert len({int(i) // 30 for i in re.findall(r"/image/(\d+)\.png", block)}) == 1, query
    # a run stored without ranks: its model ranks within the folds
    without = {k: v for k, v in record.items() if k not in ("ranks_file", "ranks_sha256")}
    (results / "runs" / "old.json").write_text(json.dumps({**without, "protocol": "1k", "folds": 2}))
    page = text(app.test_client().get("/run/old/examples"))
    split, ex = g.split, lib.examples(MODEL, "test", "cosine", 2)
    for e in example_rows(split, ex["image_search"]["sample"], "search"):
        assert {h["image"] // 30 for h in e["hits"]} == {e["query"]["image"] // 30}  # hits from the caption's fold
    shown = [int(r) for r in re.findall(r"rank (\d+)", page)]  # the page shows the in-fold ranks, in its order
    assert shown == [
        e["rank"]
        for task, kind in (
            ("image_annotation", "sample"),
            ("image_search", "sample"),
            ("image_annotation", "worst"),
            ("image_search", "worst"),
        )
        for e in ex[task][kind]
    ]


def test_the_app_never_writes_a_parsed_dataset(tmp_path):
    """A model fitted on a Karpathy-JSON folder: the app reads that dataset, cached features or not, and writes
    no parsed-dataset cache entry (nor anything else) under the roots."""
    from tests.datasets.test_layouts import synthetic, write_karpathy

    data, results = tmp_path / "data", tmp_path / "results"
    (data / "kp").mkdir(parents=True)
    write_karpathy(data / "kp", synthetic())
    roots = ["--data-root", str(data), "--results-root", str(results)]
    assert main(["generate", "cca", "kp", "glove50_tinyimage", "--reg", "1e-2", "-q", *roots]) == 0
    shutil.rmtree(data / "cache" / "datasets")
    before = _snapshot(data, results)
    c = create_app(data, results).test_client()
    for split in ("train", "test"):  # train's features are cached, test's are not
        r = c.get(f"/search?model=cca__kp__glove50_tinyimage&split={split}&q=a+red+square")
        assert r.status_code == 200 and 'class="hit"' in text(r), split
    assert _snapshot(data, results) == before
