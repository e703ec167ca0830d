"""Failure views of every run (issue 24.6): the examples page of an `evaluate` run from its stored top-10, the
compare page's answers labelled by their own run, and where one run succeeds while another fails."""

import json
import re
import shutil

import numpy as np
import pytest

from cca_bench.__main__ import main
from cca_bench.results import load_ranks, load_top10
from cca_bench.web import create_app

MODEL = "cca__shapes[n_test=60,n_train=300,n_val=40]__glove50_tinyimage"  # what conftest.web_roots fits
RUN, DOT = f"{MODEL}__test__full__cosine", f"{MODEL}__test__full__dot"
SMALL = ["-D", "n_train=300", "-D", "n_val=40", "-D", "n_test=60", "-q"]


@pytest.fixture(scope="module")
def roots(web_roots, tmp_path_factory):
    """The web roots plus a real `evaluate` run ("my_model": the CCA model's embeddings with noise added to the
    images, so its ranks differ from the model's), and the dot run's ranks file removed (a run without ranks)."""
    tmp = tmp_path_factory.mktemp("failures")
    results = tmp / "results"
    shutil.copytree(web_roots[1], results)
    dot = json.loads((results / "runs" / f"{DOT}.json").read_text())
    (results / "runs" / dot["ranks_file"]).unlink()
    g = create_app(web_roots[0], results).config["LIBRARY"].gallery(MODEL, "test")
    emb_i, emb_t = g.model.embed_images(g.features), g.model.embed_texts(g.features)
    noise = np.random.default_rng(0).normal(size=emb_i.shape) * np.abs(emb_i).mean() * 1.5
    np.save(tmp / "img.npy", (emb_i + noise).astype(np.float32))
    np.save(tmp / "txt.npy", emb_t.astype(np.float32))
    assert (
        main(
            [
                "evaluate",
                "shapes",
                "test",
                "--images",
                str(tmp / "img.npy"),
                "--texts",
                str(tmp / "txt.npy"),
                "--name",
                "my_model",
                *SMALL,
                "--data-root",
                str(web_roots[0]),
                "--results-root",
                str(results),
            ]
        )
        == 0
    )
    np.save(tmp / "shuffled.npy", emb_t[np.random.default_rng(1).permutation(len(emb_t))].astype(np.float32))
    assert (
        main(
            [
                "evaluate",
                "shapes",
                "test",
                "--images",
                str(tmp / "img.npy"),
                "--texts",
                str(tmp / "shuffled.npy"),
                "--name",
                "misaligned",
                *SMALL,
                "--data-root",
                str(web_roots[0]),
                "--results-root",
                str(results),
            ]
        )
        == 0
    )
    evaluated = [p.stem for p in (results / "runs").glob("my_model*.json")]
    assert len(evaluated) == 1
    return web_roots[0], results, evaluated[0]


def stored(results, stem):
    path = results / "runs" / f"{stem}.json"
    record = json.loads(path.read_text()) | {"_file": str(path)}
    ranks = load_ranks(record)
    return ranks, load_top10(record, ranks)


def answers(page: str, task: str) -> list[tuple[int, list[tuple[str, str, int]]]]:
    """[(query, [(run stem, label, rank)])] of the compare page's shared queries of ``task``."""
    kind = "annotation" if task == "image_annotation" else "search"
    out = []
    for block in page.split(f'<div class="example {kind}" data-query="')[1:]:
        block = block.split("<h3>")[0].split("</main>")[0]
        who = re.findall(r'<div class="who" data-run="([^"]+)">(.+?): rank (\d+(?:\.\d+)?)</div>', block)
        out.append((int(block.split('"')[0]), [(s, label, float(r)) for s, label, r in who]))
    return out


@pytest.mark.parametrize("first", [True, False])
def test_compare_labels_every_answer_with_its_own_run(roots, first):
    """Each answer on the compare page carries the label of the run it comes from, and that run's own rank (from
    its ranks file) and top hits, with the `evaluate` run listed first and last and a run without ranks between.
    Planted bug it caught: labelling answers by position over all runs (the template's `labels[loop.index0]`,
    as before): the run without ranks shifts every later label."""
    data_root, results, evaluated = roots
    order = [evaluated, DOT, RUN] if first else [RUN, DOT, evaluated]
    c = create_app(data_root, results).test_client()
    page = c.get("/compare?" + "&".join(f"run={s}" for s in order)).get_data(as_text=True)
    own = {s: stored(results, s) for s in (evaluated, RUN)}
    label = {evaluated: "my_model", RUN: "cca"}
    assert "no per-query ranks stored" in page and "misaligned" not in page
    for task, t in (("image_annotation", 0), ("image_search", 1)):
        shown = answers(page, task)
        assert len(shown) == 8
        for query, who in shown:
            assert [s for s, *_ in who] == [s for s in order if s != DOT]
            for stem, text, rank in who:
                assert text.startswith(label[stem] + " ")
                ranks = own[stem][0].rank("i2t" if t == 0 else "t2i")
                assert rank == ranks[0, query] + 1
    # the evaluate run's hits are its own top-10
    block = page.split('<div class="example annotation" data-query="')[1]
    query = int(block.split('"')[0])
    mine = block.split(f'data-run="{evaluated}"')[1].split("</ol>")[0]
    captions = re.findall(r"<li class=\"(?:correct|wrong)\">(?:<span[^>]*>&#10003;</span> )?(.+?)</li>", mine)
    split_captions = (
        create_app(data_root, results)
        .config["LIBRARY"]
        .run_split(json.loads((results / "runs" / f"{evaluated}.json").read_text()))
        .captions
    )
    assert captions == [split_captions[j] for j in own[evaluated][1][0][query, :3]]


def test_an_evaluate_run_has_its_examples_page(roots):
    """An `evaluate` run (no saved model) gets its qualitative page from its ranks file: its own ranks, hits and
    the images of its split. Planted bug it caught: answering 404 for runs without a saved model (as before)."""
    data_root, results, evaluated = roots
    c = create_app(data_root, results).test_client()
    run_page = c.get(f"/run/{evaluated}").get_data(as_text=True)
    quoted = evaluated.replace("[", "%5B").replace("]", "%5D")
    assert f'href="/run/{quoted}/examples"' in run_page
    r = c.get(f"/run/{evaluated}/examples")
    page = r.get_data(as_text=True)
    assert r.status_code == 200
    assert page.count('class="example annotation"') == 8 + 5 and page.count('class="example search"') == 8 + 5
    ranks, _ = stored(results, evaluated)
    worst = sorted((ranks.rank("t2i")[0] + 1).tolist(), reverse=True)[:5]
    shown = [float(x) for x in re.findall(r'<span class="rank">rank (\d+(?:\.\d+)?)</span>', page)]
    assert shown[-5:] == worst  # the worst image-search queries, worst first
    assert f"/run/{quoted}/image/" in page


def test_wins_lists_where_each_run_succeeds_and_the_other_fails(roots):
    """/wins?a=&b= lists the queries in the order of retrieved.contrast, each with both runs' ranks."""
    from cca_bench.retrieved import contrast

    data_root, results, evaluated = roots
    c = create_app(data_root, results).test_client()
    page = c.get(f"/wins?a={RUN}&b={evaluated}&n=4").get_data(as_text=True)
    want = contrast(stored(results, RUN)[0], stored(results, evaluated)[0], 4)
    for task in ("image_annotation", "image_search"):
        for name in ("a_wins", "b_wins"):
            part = page.split(f'id="{task}-{name.replace("_", "-")}"')[1].split("<h2>")[0]
            queries = [int(q) for q in re.findall(r'data-query="(\d+)"', part)]
            ranks = [float(r) for r in re.findall(r"rank (\d+(?:\.\d+)?)", part)]
            assert queries == [q for q, *_ in want[task][name]]
            assert ranks == [r for _, r1, r2 in want[task][name] for r in (r1, r2)]
    assert c.get(f"/wins?a={RUN}&b={RUN}").status_code == 400
    assert c.get(f"/wins?a={RUN}&b={evaluated}&n=%C2%B2").status_code == 400


def test_kcca_cv_run_page_shows_its_heat_map(tmp_path):
    """A real `generate kcca --cv` on a small shapes set (its default grid holds landmarks = None): the run page
    shows the CV heat map and /model/<name>/cv.png is a PNG. Planted bug it caught: formatting the knob values
    with {v:g} (None is no number): a 404 whose message blamed the file."""
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]
    small = ["-D", "n_train=100", "-D", "n_val=30", "-D", "n_test=30", "-q"]
    assert (
        main(
            [
                "generate",
                "kcca",
                "shapes",
                "glove50_tinyimage",
                "--cv",
                "--cv-components",
                "2,4",
                "--cv-reg",
                "0.1",
                "--cv-gamma",
                "1,2",
                "--cv-eig-power",
                "1",
                *small,
                *roots,
            ]
        )
        == 0
    )
    assert main(["run_benchmark", "kcca", "shapes", "test", "glove50_tinyimage", *small, *roots]) == 0
    model = "kcca__shapes[n_test=30,n_train=100,n_val=30]__glove50_tinyimage"
    assert json.loads((tmp_path / "results" / "cv" / f"{model}.json").read_text())["grid"]["landmarks"] == [None]
    c = create_app(tmp_path / "data", tmp_path / "results").test_client()
    page = c.get(f"/run/{model}__test__full__cosine").get_data(as_text=True)
    assert 'id="cv-grid"' in page and "landmarks = default" in page
    png = c.get(f"/model/{model}/cv.png")
    assert png.status_code == 200 and png.data[:4] == b"\x89PNG"


def test_a_run_at_chance_level_says_so(roots):
    """An `evaluate` run whose caption rows are shuffled (not aligned with the split) is marked "at chance" on
    the leaderboard; the fitted runs are not. Planted bugs it caught: the badge left out of the template, and a rule
    that flags only intervals reaching half the chance R-sum (CHANCE_FACTOR 0.5)."""
    data_root, results, _ = roots
    page = create_app(data_root, results).test_client().get("/").get_data(as_text=True)
    rows = [r for r in page.split("<tr class=") if 'name="run"' in r]
    flagged = [re.search(r'value="([^"]+)"', r)[1] for r in rows if 'class="chance"' in r]
    assert len(rows) == 5 and [f.split("__")[0] for f in flagged] == ["misaligned"]


def test_significance_examples_lists_both_directions(roots, capsys):
    """`significance A B --examples 2` prints, per direction, the queries of retrieved.contrast with both runs'
    ranks and the queries' captions, A's wins and B's wins each under its own heading. Planted bug it caught:
    the reverse lists printed with the ranks of A and B swapped."""
    from cca_bench.retrieved import contrast

    data_root, results, evaluated = roots
    capsys.readouterr()
    assert (
        main(
            [
                "significance",
                RUN,
                evaluated,
                "--examples",
                "2",
                "--results-root",
                str(results),
                "--data-root",
                str(data_root),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    (ra, _), (rb, _) = stored(results, RUN), stored(results, evaluated)
    want, back = contrast(ra, rb, 2), contrast(rb, ra, 2)
    split = (
        create_app(data_root, results)
        .config["LIBRARY"]
        .run_split(json.loads((results / "runs" / f"{RUN}.json").read_text()))
    )
    part = out.split("image search: A succeeds, B fails")[1].split("image search: B succeeds")[0]
    for q, r_a, r_b in want["image_search"]["a_wins"]:
        assert f"{split.captions[q]!r} (of {split.image_ids[split.image_index[q]]}): rank A {r_a:g}, B {r_b:g}" in part
    part = out.split("image annotation: B succeeds, A fails")[1].split("image search")[0]
    for q, r_b, r_a in back["image_annotation"]["a_wins"]:
        assert f"{split.image_ids[q]}: rank A {r_a:g}, B {r_b:g}" in part
