"""search: exact top-k, FAISS indexes, and the CLI end to end on a small shapes set."""

import sys

import numpy as np
import pytest

from cca_bench.__main__ import main
from cca_bench.datasets import get_dataset
from cca_bench.errors import UserError
from cca_bench.metrics import similarity
from cca_bench.search import INDEXES, top_k

SMALL = ["-D", "n_train=300", "-D", "n_val=40", "-D", "n_test=60", "-q"]
SEARCH = ["search", "cca", "shapes", "glove50_tinyimage"]
RED, CIRCLE = ("red", "scarlet"), ("circle", "disc")


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    roots = ["--data-root", str(tmp / "data"), "--results-root", str(tmp / "results")]
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", *SMALL, *roots]) == 0
    return roots


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    return get_dataset("shapes", tmp_path_factory.mktemp("unused"), n_train=300, n_val=40, n_test=60).split("test")


def table_rows(out: str) -> list[list[str]]:
    """The body rows of the markdown table printed by `search`, cells stripped."""
    lines = [line for line in out.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def captions_of(split, image: int) -> list[str]:
    return [c for c, i in zip(split.captions, split.image_index) if i == image]


def mentions(caption: str, words) -> bool:
    return any(w in caption.split() for w in words)


def has_red_circle(split, image: int) -> bool:
    from cca_bench.datasets.shapes import scene

    return any(o.colour == "red" and o.shape == "circle" for o in scene(0, "test", image))


def test_text_query_finds_red_circles(roots, test_split, capsys):
    assert main([*SEARCH, "--text", "a red circle", "-k", "10", *SMALL, *roots]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert [int(r[0]) for r in rows] == list(range(1, 11))
    scores = [float(r[-1]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    images = [test_split.image_ids.index(r[1]) for r in rows]
    top_caption = captions_of(test_split, images[0])[0]
    assert mentions(top_caption, RED) and mentions(top_caption, CIRCLE)
    # 3 of the 60 test scenes hold a red circle: chance would put the best of them near rank 15
    assert any(has_red_circle(test_split, i) for i in images[:5])


def test_image_query_returns_its_own_captions(roots, test_split, tmp_path, capsys):
    photo = tmp_path / "scene.png"
    test_split.load_image(7).save(photo)
    assert main([*SEARCH, "--image", str(photo), "-k", "5", *SMALL, *roots]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) == 5 and sum(r[2] == "test-00007" for r in rows) >= 3
    assert rows[0][1] in captions_of(test_split, 7)


def test_similar_query_puts_the_same_image_first(roots, test_split, tmp_path, capsys):
    photo = tmp_path / "scene.png"
    test_split.load_image(11).save(photo)
    assert main([*SEARCH, "--similar", str(photo), "-k", "3", *SMALL, *roots]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[0][1] == "test-00011" and float(rows[0][-1]) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("index", ["exact", "faiss"])
def test_html_page_embeds_thumbnails_and_escapes_text(roots, tmp_path, index, capsys):
    if index == "faiss":
        import faiss  # noqa: F401  (the faiss extra, in the test extra)
    page = tmp_path / "out.html"
    query = "<script>alert(1)</script> a red circle"
    assert main([*SEARCH, "--text", query, "--html", str(page), "--index", index, *SMALL, *roots]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.count('<img src="data:image/jpeg;base64,') == 10
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>" not in text
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("flag", ["--image", "--similar"])
def test_missing_query_image_is_a_one_line_error(roots, tmp_path, flag, capsys):
    missing = tmp_path / "no_such_photo.jpg"
    assert main([*SEARCH, flag, str(missing), *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no_such_photo.jpg" in err[0]


def test_query_without_known_words_is_an_error(roots, capsys):
    assert main([*SEARCH, "--text", "zzqxv", *SMALL, *roots]) == 2
    assert "zzqxv" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- top-k


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclidean"])
@pytest.mark.parametrize("k", [1, 7, 500])
def test_exact_top_k_matches_a_full_argsort(distance, k):
    rng = np.random.default_rng(0)
    queries, gallery = rng.normal(size=(4, 16)), rng.normal(size=(300, 16))
    scores, ids = top_k(queries, gallery, k, distance, chunk=64)  # several chunks to merge
    full = similarity(queries, gallery, distance)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), rtol=1e-6)


def test_equal_scores_are_ordered_by_id():
    gallery = np.array([[1.0, 0], [0, 1], [1, 0], [0, 1], [1, 0], [0.5, 0.5]])
    scores, ids = top_k(np.array([[1.0, 0]]), gallery, 4, chunk=4)
    assert ids.tolist() == [[0, 2, 4, 5]]  # three ties at 1.0 in two chunks, listed by id


def test_missing_faiss_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(UserError, match=r"pip install 'cca_bench\[faiss\]'"):
        INDEXES.get("faiss")(np.ones((3, 2)), "cosine")


@pytest.mark.parametrize("distance", ["cosine", "dot"])
def test_faiss_flat_agrees_with_exact(distance):
    import faiss  # noqa: F401

    rng = np.random.default_rng(1)
    gallery, queries = rng.normal(size=(2000, 32)).astype(np.float32), rng.normal(size=(20, 32)).astype(np.float32)
    s_exact, i_exact = INDEXES.get("exact")(gallery, distance).search(queries, 10)
    s_faiss, i_faiss = INDEXES.get("faiss")(gallery, distance).search(queries, 10)
    np.testing.assert_array_equal(i_faiss, i_exact)
    np.testing.assert_allclose(s_faiss, s_exact, atol=1e-5)


def test_hnsw_recall_at_10():
    import faiss  # noqa: F401

    rng = np.random.default_rng(2)
    gallery, queries = rng.normal(size=(20000, 64)).astype(np.float32), rng.normal(size=(200, 64)).astype(np.float32)
    _, exact = INDEXES.get("exact")(gallery, "cosine").search(queries, 10)
    _, approx = INDEXES.get("hnsw")(gallery, "cosine").search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.95


def test_query_photo_is_checked_before_the_gallery(tmp_path, capsys):
    # no model was generated under these roots: the missing photo is still the error reported
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]
    assert main([*SEARCH, "--similar", str(tmp_path / "gone.png"), *SMALL, *roots]) == 2
    assert "gone.png" in capsys.readouterr().err


def test_precomputed_features_cannot_encode_a_photo(tmp_path):
    from cca_bench.config import FeatureSpec
    from cca_bench.features.options import FeatureOptions
    from cca_bench.features.pipelines import Pipelines
    from cca_bench.search import Gallery, image_query

    spec = FeatureSpec.parse("glove50_precomp")
    gallery = Gallery(None, None, None, None, spec, None, Pipelines.of(spec, FeatureOptions(), tmp_path))
    with pytest.raises(UserError, match="cannot encode"):
        image_query(gallery, tmp_path / "photo.jpg")


def test_captions_are_escaped_in_html_and_markdown(tmp_path):
    from PIL import Image

    from cca_bench.datasets.base import Split
    from cca_bench.search import SearchResult, markdown_table, render_html

    photo = tmp_path / "q.png"
    Image.new("RGB", (20, 10), (200, 0, 0)).save(photo)
    split = Split(
        "toy",
        "test",
        ["a&b"],
        ['<img src=x onerror="alert(1)"> | pipe'],
        [["x"]],
        [0],
        [0],
        loader=lambda i: Image.new("RGB", (8, 8)),
    )
    rows = [{"rank": 1, "caption": split.captions[0], "image": 0, "image_id": "a&b", "score": 0.5}]
    result = SearchResult("image", str(photo), split, rows, "cosine")
    page = render_html(result)
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page and 'onerror="' not in page
    assert "a&amp;b" in page and page.count('<img src="data:image/jpeg;base64,') == 2  # the query and the hit
    assert "\\| pipe" in markdown_table(result)


def test_unreadable_query_image_is_a_one_line_error(roots, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a JPEG")
    assert main([*SEARCH, "--image", str(broken), *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.jpg" in err[0]


@pytest.mark.parametrize("queries", [[], ["--text", "a dog", "--similar", "x.png"]])
def test_exactly_one_query_kind(queries, capsys):
    with pytest.raises(SystemExit) as e:
        main([*SEARCH, *queries])
    assert e.value.code == 2
    assert "--text" in capsys.readouterr().err
