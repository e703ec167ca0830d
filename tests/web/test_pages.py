"""The leaderboard that leads to an answer (R-sum, sort and filters in the URL, best marks, intervals, CSV,
models x datasets) and the compare page (issue 21.1, 21.2), through Flask's test client."""

import csv
import io
import json
import re
import shutil

import flask  # noqa: F401,E402  (the web extra, in the test extra)
import pytest

from cca_bench.web import create_app

MODEL = "cca__shapes[n_test=60,n_train=300,n_val=40]__glove50_tinyimage"  # what conftest.web_roots fits
RUN, DOT, RIDGE = (f"{MODEL}__test__full__cosine", f"{MODEL}__test__full__dot", f"{MODEL}@ridge__test__full__cosine")


@pytest.fixture(scope="module")
def client(web_roots):
    app = create_app(*web_roots)
    app.config["LOADING_WAIT_S"] = 120  # the test client waits for models instead of getting the loading page
    return app.test_client()


def _record(web_roots, stem: str) -> dict:
    return json.loads((web_roots[1] / "runs" / f"{stem}.json").read_text())


def _rsum(record: dict) -> float:
    return sum(record["metrics"][t][k] for t in ("image_annotation", "image_search") for k in ("R@1", "R@5", "R@10"))


def _method_cells(page: str) -> list[str]:
    return re.findall(r'<a href="/run/[^"]+" title="run page of [^"]+">([^<]+)</a>', page)


def test_leaderboard_sorts_by_rsum_and_marks_the_best(client, web_roots):
    page = client.get("/").get_data(as_text=True)
    stems = re.findall(r'name="run" value="([^"]+)"', page)
    sums = [_rsum(_record(web_roots, s)) for s in stems]
    assert len(stems) == 3 and sums == sorted(sums, reverse=True)  # best R-sum first
    assert _method_cells(page) == ["cca"] * 3 and page.count("tag=ridge") == 1  # the tag names the variant
    assert f">{max(sums):.1f}</strong>" in page  # the best R-sum in bold
    assert 'data-col="R-sum" aria-sort="descending"' in page
    up = client.get("/?sort=t2i+R%401&order=asc").get_data(as_text=True)
    t2i = [
        _record(web_roots, s)["metrics"]["image_search"]["R@1"] for s in re.findall(r'name="run" value="([^"]+)"', up)
    ]
    assert t2i == sorted(t2i) and 'data-col="t2i R@1" aria-sort="ascending"' in up
    assert 'name="sort" value="t2i R@1"' in up  # a filter change keeps the sort


def test_csv_download_is_the_table_shown(client, web_roots):
    r = client.get("/leaderboard.csv?sort=t2i+R%401&order=asc&features=glove50_tinyimage")
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["Params"].endswith("tag=ridge") for row in rows] == [True, False, False]  # t2i R@1 ascending
    assert [float(row["t2i R@1"]) for row in rows] == sorted(float(row["t2i R@1"]) for row in rows)
    assert float(rows[0]["R-sum"]) == pytest.approx(_rsum(_record(web_roots, RIDGE)), abs=1e-3)
    page = client.get("/?features=glove50_tinyimage").get_data(as_text=True)
    assert 'href="/leaderboard.csv?features=glove50_tinyimage"' in page


def test_models_by_datasets_view_has_an_average(client, web_roots):
    page = client.get("/?view=models").get_data(as_text=True)
    assert (
        'id="matrix"' in page
        and ">Average (1)</th>" in page
        and "shapes[n_test=60,n_train=300,n_val=40] / full" in page
    )
    assert page.count("<tr>") == 1 + 3  # header and one row per model variant and distance
    assert f"{_rsum(_record(web_roots, RIDGE)):.1f}" in page


def test_intervals_and_marks_are_shown_where_runs_have_them(web_roots, tmp_path):
    """Runs store 95% intervals and their per-query ranks; the leaderboard shows the intervals and marks the runs
    not significantly worse than the best; a run stored before intervals shows none."""
    results = tmp_path / "results"
    shutil.copytree(web_roots[1], results)
    record = _record(web_roots, DOT)
    old = {k: v for k, v in record.items() if k not in ("ci", "ci_method", "ranks_file", "ranks_sha256")}
    (results / "runs" / f"{DOT}.json").write_text(json.dumps(old))
    c = create_app(web_roots[0], results).test_client()
    page = c.get("/").get_data(as_text=True)
    rsum_ci = _record(web_roots, RUN)["ci"]["rsum"]
    assert f"{rsum_ci[0]:.1f}&ndash;{rsum_ci[1]:.1f}" in page
    assert page.count('class="ci"') == 2 * 11  # two runs' 10 metrics and R-sum; the old run has none
    assert page.count("&dagger;</span>") >= 1  # on 60 test images most differences are not significant
    run_page = c.get(f"/run/{RUN}").get_data(as_text=True)
    ci = _record(web_roots, RUN)["ci"]["image_annotation"]["R@1"]
    assert f"{ci[0]:.1f}&ndash;{ci[1]:.1f}" in run_page and "10,000 resamples" in run_page


def test_compare_two_runs_side_by_side(client, web_roots):
    r = client.get(f"/compare?run={RUN}&run={RIDGE}")
    page = r.get_data(as_text=True)
    assert r.status_code == 200
    a, b = _record(web_roots, RUN), _record(web_roots, RIDGE)
    delta = _rsum(b) - _rsum(a)
    assert f"{delta:+.1f}" in page and f"{_rsum(a):.1f}" in page and f"{_rsum(b):.1f}" in page
    test = re.search(
        r"Run 2 &minus; run 1, R-sum: ([-+]\d+\.\d)\s+\[([-+]\d+\.\d), ([-+]\d+\.\d)\] \(95% paired "
        r"interval\), p ([<=]) ([\d.]+)",
        page,
    )
    assert test and float(test[1]) == pytest.approx(delta, abs=0.051)  # the paired test on the stored ranks
    assert float(test[2]) <= float(test[1]) <= float(test[3]) and 0 < float(test[5]) <= 1
    png = client.get(f"/compare.png?run={RUN}&run={RIDGE}")
    assert png.status_code == 200 and png.data[:4] == b"\x89PNG"


def test_compare_table_sentence_and_cli_give_one_delta_interval_and_p(client, web_roots, capsys):
    """The R-sum row of the table, the sentence under it and the CLI's `significance` print the same delta,
    interval and p-value (one default of resamples and seed, one printed form of p). Planted bug it caught: the
    table's tests with 2,000 resamples (as before) against the sentence's 10,000."""
    from cca_bench.__main__ import main
    from cca_bench.results import load_ranks
    from cca_bench.stats import PAIRED_RESAMPLES, PAIRED_SEED, format_p, paired_test

    page = client.get(f"/compare?run={RUN}&run={RIDGE}").get_data(as_text=True)
    a, b = (
        load_ranks(_record(web_roots, s) | {"_file": str(web_roots[1] / "runs" / f"{s}.json")}) for s in (RIDGE, RUN)
    )
    t = paired_test(a, b, "rsum", resamples=PAIRED_RESAMPLES, seed=PAIRED_SEED)
    interval, p = f"[{t['ci'][0]:+.1f}, {t['ci'][1]:+.1f}]", format_p(t["p_value"], PAIRED_RESAMPLES)
    rsum_row = page[page.index('<th scope="row">R-sum</th>') :].split("</tr>")[0]
    assert f'{t["delta"]:+.1f}<span class="ci">{interval} {p.replace(" ", chr(0xA0))}' in rsum_row
    assert f"R-sum: {t['delta']:+.1f}\n{interval} (95% paired interval), {p}" in page
    assert main(["significance", RIDGE, RUN, "--results-root", str(web_roots[1])]) == 0
    assert p in capsys.readouterr().out


def test_compare_batch_gives_every_metric_each_pairs_lone_test(web_roots):
    """The page's tests of 3 runs (one stats.paired_tests batch) are, for every metric row and every later run,
    stats.paired_test of that run against the first with the one default, bit for bit. Planted bug it caught:
    the batch's pairs as (first, later) (every delta and interval of the page mirrored)."""
    from cca_bench.results import COLUMN_METRIC, load_ranks
    from cca_bench.stats import PAIRED_RESAMPLES, PAIRED_SEED, paired_test
    from cca_bench.web.compare import metric_rows, paired_tests_against_first

    runs = [_record(web_roots, s) | {"_file": str(web_roots[1] / "runs" / f"{s}.json")} for s in (RUN, RIDGE, DOT)]
    ranks = [load_ranks(r) for r in runs]
    rows = metric_rows(runs, paired_tests_against_first(ranks, list(COLUMN_METRIC.values())))
    assert len(rows) == 11
    for row in rows:
        for k, d in enumerate(row["deltas"], 1):
            lone = paired_test(ranks[k], ranks[0], COLUMN_METRIC[row["name"]], PAIRED_RESAMPLES, PAIRED_SEED)
            assert d["result"] == lone and (d["ci"], d["p"]) == (lone["ci"], lone["p_value"]), (row["name"], k)


def test_compare_shows_the_same_queries_for_both_models(client):
    page = client.get(f"/compare?run={RUN}&run={RIDGE}").get_data(as_text=True)
    blocks = page.split('class="example search"')[1:]
    assert len(blocks) == 8
    for block in blocks:  # each sampled caption, answered by both models
        assert block.count('class="who"') == 2 and "tag=ridge" in block
    captions = re.findall(r"&ldquo;(.+?)&rdquo;", page)
    other = re.findall(
        r"&ldquo;(.+?)&rdquo;", client.get(f"/compare?run={RUN}&run={RIDGE}&sample=1").get_data(as_text=True)
    )
    assert captions != other and len(other) == 8
    assert 'id="more-samples"' in page and "sample=1" in page


@pytest.mark.parametrize(
    "query, status, message",
    [
        (f"run={RUN}", 400, "choose two or more runs"),
        (f"run={RUN}&run=nope", 404, "no run named"),
        (f"run={RUN}&run={RIDGE}&sample=x", 400, "not a whole number"),
        (f"run={RUN}&run={RIDGE}&sample=%C2%B2", 400, "not a whole number"),  # '²'.isdigit() is True, int('²') raises
        (f"run={RUN}&run={RIDGE}&sample=%D9%A3", 400, "not a whole number"),  # Arabic-Indic 3: int() takes it
    ],
)
def test_compare_refuses_what_it_cannot_compare(client, query, status, message):
    r = client.get(f"/compare?{query}")
    assert r.status_code == status and message in r.get_data(as_text=True)


def test_compare_refuses_runs_of_different_splits(web_roots, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(web_roots[1], results)
    record = _record(web_roots, RUN)
    (results / "runs" / "val.json").write_text(json.dumps({**record, "split": "val"}))
    r = create_app(web_roots[0], results).test_client().get(f"/compare?run={RUN}&run=val")
    assert r.status_code == 400 and "not on one split" in r.get_data(as_text=True)


def test_compare_shows_the_paired_test(web_roots, tmp_path, monkeypatch):
    """The page renders the statistics' paired test (its contract: delta, ci, p_value, test, n_images,
    resamples, metric), called with the one default of resamples and seed, and, where a run kept no ranks,
    says why there is none."""
    from cca_bench import stats

    results = tmp_path / "results"
    shutil.copytree(web_roots[1], results)
    dot = json.loads((results / "runs" / f"{DOT}.json").read_text())
    (results / "runs" / dot["ranks_file"]).unlink()
    calls = []

    def paired_tests(runs, pairs, metrics, resamples=None, seed=None):
        calls.extend((runs[i], runs[j], metric, resamples, seed) for i, j in pairs for metric in metrics)
        result = {
            "delta": -5.04,
            "ci": [-9.5, -0.25],
            "p_value": 0.0123,
            "test": "paired sign-flip permutation test",
            "n_images": 60,
            "resamples": 10000,
            "metric": "rsum",
        }
        return [{metric: result for metric in metrics} for _ in pairs]

    monkeypatch.setattr(stats, "paired_tests", paired_tests)
    page = (
        create_app(web_roots[0], results)
        .test_client()
        .get(f"/compare?run={RUN}&run={RIDGE}&run={DOT}")
        .get_data(as_text=True)
    )
    assert "-5.0\n[-9.5, -0.2] (95% paired interval), p = 0.012" in page and "; 60 test images" in page
    assert "significant at the 5% level" in page
    assert f"No paired test of run 3 against run 1: {results / 'runs' / dot['ranks_file']}: the ranks file" in page
    # run 2 against run 1: one test per metric row (the R-sum sentence reuses the row's); run 3 has no ranks
    assert all(r == stats.PAIRED_RESAMPLES and s == stats.PAIRED_SEED for *_, r, s in calls)
    assert sorted(m for _, _, m, *_ in calls) == sorted(
        ["rsum", *(f"{d}:{k}" for d in ("i2t", "t2i") for k in ("R@1", "R@5", "R@10", "median_rank", "mean_rank"))]
    )
    assert page.count("[-9.5, -0.2] p\xa0=\xa00.012&nbsp;*") == 11


def test_run_page_shows_what_is_saved(web_roots, tmp_path):
    """Fit time, OOV rates, a trained model's curves (the history VSE saves) and the CV grid as a heat map."""
    results = tmp_path / "results"
    shutil.copytree(web_roots[1], results)
    from cca_bench.methods.base import load_arrays, save_arrays

    arrays, config = load_arrays(results / "models" / MODEL)  # the web app reads the config the weights record
    config.pop("model_id")
    config["history_"] = [{"epoch": 1, "loss": 0.9, "val_rsum": 250.0}, {"epoch": 2, "loss": 0.5, "val_rsum": 301.5}]
    save_arrays(results / "models" / MODEL, arrays, config)
    grid = {"n_components": [10, 20], "reg": [0.1, 1.0], "eig_power": [1.0]}
    rows = [
        {"n_components": k, "reg": r, "eig_power": 1.0, "rsum": 100.0 + k + r, "medr_sum": 4.0}
        for k in grid["n_components"]
        for r in grid["reg"]
    ]
    (results / "cv").mkdir()
    (results / "cv" / f"{MODEL}.json").write_text(
        json.dumps({"grid": grid, "rows": rows, "best": rows[-1], "select": "rsum"})
    )
    c = create_app(web_roots[0], results).test_client()
    page = c.get(f"/run/{RUN}").get_data(as_text=True)
    assert f"{config['timings']['fit']:.1f} s" in page and "test: 0.0%, train: 0.0%" in page
    assert "n_components = 20, reg = 1, eig_power = 1" in page
    for url in (f"/model/{MODEL}/training.png", f"/model/{MODEL}/cv.png"):
        assert url.replace("[", "%5B").replace("]", "%5D") in page
        png = c.get(url)
        assert png.status_code == 200 and png.data[:4] == b"\x89PNG", url
    assert c.get(f"/model/{MODEL}@ridge/training.png").status_code == 404  # CCA stores no training curves
    assert c.get(f"/model/{MODEL}@ridge/cv.png").status_code == 404


def test_a_query_with_no_known_word_keeps_the_form(client):
    r = client.get(f"/search?model={MODEL}&split=test&q=qwzx+vbnm")
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and 'id="text-search"' in page and 'id="search-message"' in page
    assert "has no word with a glove50 vector" in page and 'value="qwzx vbnm"' in page


def test_search_results_lead_on(client, web_roots):
    """Images link to their captions and look-alikes, captions to the images they find; names are shown."""
    from cca_bench.datasets import get_dataset

    split = get_dataset("shapes", web_roots[0], n_train=300, n_val=40, n_test=60).split("test")
    page = client.get(f"/search?model={MODEL}&split=test&q=a+red+circle").get_data(as_text=True)
    linked = [int(i) for i in re.findall(r'href="/search\?[^"]*image=(\d+)"', page)]
    names = re.findall(r'<span class="name">([^<]+)</span>', page)
    assert len(linked) == 10 and names == [split.image_ids[i] for i in linked]
    r = client.get(f"/search?model={MODEL}&split=test&image={linked[0]}")
    image_page = r.get_data(as_text=True)
    assert r.status_code == 200 and f"Image {split.image_ids[linked[0]]}" in image_page
    similar = image_page[image_page.index('id="similar-results"') :]
    assert re.findall(r"image=(\d+)", similar)[0] == str(linked[0])  # the image itself is most like it
    own = [c for c, i in zip(split.captions, split.image_index) if i == linked[0]]
    assert all(html_escape(c) in image_page for c in own)
    found = image_page[image_page.index('id="caption-results"') :]
    assert len(re.findall(r'<li><a href="/search\?[^"]*q=', found)) == 10  # each caption finds its images
    assert client.get(f"/search?model={MODEL}&split=test&image=60").status_code == 404
    assert client.get(f"/search?model={MODEL}&split=test&image=-1").status_code == 404


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)
