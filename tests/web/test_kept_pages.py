"""What the web app draws and computes once and keeps: figures and the compare page's paired tests, checked with
spies on the drawing and testing functions (Agg draws the same bytes twice, so equal bytes prove nothing)."""

import os

from cca_bench.web import create_app

MODEL = "cca__shapes[n_test=60,n_train=300,n_val=40]__glove50_tinyimage"  # what conftest.web_roots fits
RUN, RIDGE = f"{MODEL}__test__full__cosine", f"{MODEL}@ridge__test__full__cosine"
DOT = f"{MODEL}__test__full__dot"


def spy(monkeypatch, module, name: str) -> list:
    """Replace ``module.name`` by a wrapper that records each call's arguments; returns the record."""
    calls, real = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_figures_are_drawn_once_per_set_of_files(web_roots, tmp_path, monkeypatch):
    """Planted bug it caught: Library.figure_png drawing on every request (the cache bypassed)."""
    import shutil

    from cca_bench import plots

    results = tmp_path / "results"
    shutil.copytree(web_roots[1], results)
    drawn = spy(monkeypatch, plots, "recall_figure")
    c = create_app(web_roots[0], results).test_client()
    for _ in range(3):
        assert c.get(f"/run/{RUN}/recall.png").status_code == 200
        assert c.get(f"/compare.png?run={RUN}&run={RIDGE}").status_code == 200
    assert len(drawn) == 2  # one run's curves, one comparison
    run_file = results / "runs" / f"{RUN}.json"
    os.utime(run_file, ns=(run_file.stat().st_atime_ns, run_file.stat().st_mtime_ns + 10**9))  # the run changed
    assert c.get(f"/run/{RUN}/recall.png").status_code == 200
    assert len(drawn) == 3


def test_compare_tests_are_computed_once_per_set_of_runs(web_roots, monkeypatch):
    """The paired tests of a compared set of runs (one per metric) run once, in one batch, then a repeated
    request reuses them. Planted bugs it caught: computing metric_rows on every request; one paired_tests
    call per metric (the draws made again for each)."""
    from cca_bench import stats

    tested = spy(monkeypatch, stats, "paired_tests")
    app = create_app(*web_roots)
    app.config["LOADING_WAIT_S"] = 120
    c = app.test_client()
    first = c.get(f"/compare?run={RUN}&run={RIDGE}").get_data(as_text=True)
    assert len(tested) == 1  # one batch: R-sum and 2 x 5 metrics, the second run against the first
    assert [len(pairs) * len(metrics) for _, pairs, metrics, *_ in tested] == [11]
    again = c.get(f"/compare?run={RUN}&run={RIDGE}&sample=3").get_data(as_text=True)
    assert len(tested) == 1
    assert first.split("<h2>R@K curves</h2>")[0] == again.split("<h2>R@K curves</h2>")[0]


def test_compare_tests_are_kept_per_pair_of_runs(web_roots, monkeypatch):
    """Another set of runs with the same first run makes only the pairs it does not share, and its page shows
    the kept pair's very numbers. Planted bug it caught: the pairs kept only with their whole set (the shared
    pair made again)."""
    from cca_bench import stats

    tested = spy(monkeypatch, stats, "paired_tests")
    app = create_app(*web_roots)
    app.config["LOADING_WAIT_S"] = 120
    c = app.test_client()
    two = c.get(f"/compare?run={RUN}&run={RIDGE}").get_data(as_text=True)
    three = c.get(f"/compare?run={RUN}&run={RIDGE}&run={DOT}").get_data(as_text=True)
    assert [len(pairs) for _, pairs, *_ in tested] == [1, 1]  # (ridge, run), then (dot, run) alone
    assert tested[1][0][1] is not tested[0][0][1]  # the second batch scored the dot run, not ridge again

    def run2_rsum(page: str) -> str:  # the R-sum row's first interval and p: run 2 against run 1
        return page.split('<th scope="row">R-sum</th>')[1].split('<span class="ci">')[1].split("</span>")[0]

    assert run2_rsum(two) == run2_rsum(three) and run2_rsum(two).startswith("[")


def test_compare_answers_before_its_tests_are_done(web_roots, monkeypatch):
    """While the paired tests are computed the page shows the values and deltas and reloads itself; then the
    tests. Planted bug it caught: waiting for the tests without a bound (no page for a minute on COCO)."""
    import threading

    from cca_bench import stats

    release = threading.Event()
    real = stats.paired_tests

    def slow(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats, "paired_tests", slow)
    app = create_app(*web_roots)
    app.config["LOADING_WAIT_S"] = 0.2
    c = app.test_client()
    page = c.get(f"/compare?run={RUN}&run={RIDGE}").get_data(as_text=True)
    assert 'id="tests-pending"' in page and 'http-equiv="refresh"' in page and "R-sum" in page
    release.set()
    app.config["LOADING_WAIT_S"] = 60
    done = c.get(f"/compare?run={RUN}&run={RIDGE}").get_data(as_text=True)
    assert 'id="tests-pending"' not in done and "(95% paired interval)" in done
