"""The web app's curves page: the stored curves' numbers and their figure (issue 28.1)."""

import json

import flask  # noqa: F401  (required by the test extra: imported, not skipped)
import pytest

from cca_bench.__main__ import main
from cca_bench.web import create_app

SMALL = ["-D", "n_train=300", "-D", "n_val=40", "-D", "n_test=60", "-q"]


@pytest.fixture(scope="module")
def curve_roots(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("curves")
    roots = ["--data-root", str(tmp / "data"), "--results-root", str(tmp / "results")]
    assert (
        main(
            ["curve", "cca", "shapes", "glove50_tinyimage", "--train-sizes", "40,all", "--seeds", "0,1", *SMALL, *roots]
        )
        == 0
    )
    return tmp / "data", tmp / "results"


def test_curves_page_shows_the_stored_numbers_and_figure(curve_roots):
    """Planted bugs caught: the page reading the first seed's R-sum instead of the seed mean, and the figure
    route left unregistered (its image 404s)."""
    data, results = curve_roots
    client = create_app(data, results).test_client()
    page = client.get("/curves")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    curve = json.loads(next((results / "curves").glob("*.json")).read_text())
    for p in curve["points"]:
        assert f"<td>{p['rsum']:.1f}</td>" in body
    assert f"[{curve['points'][0]['rsum_ci'][0]:.1f}, {curve['points'][0]['rsum_ci'][1]:.1f}]" in body
    png = client.get("/curves/shapes.png")
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/curves/nothing.png").status_code == 404


def test_curves_page_without_curves_says_how_to_make_them(tmp_path):
    """Planted bug caught: a missing curves folder raising instead of the empty page."""
    page = create_app(tmp_path / "data", tmp_path / "results").test_client().get("/curves")
    assert page.status_code == 200 and 'id="no-curves"' in page.get_data(as_text=True)
