"""Word-vector loaders (every file format on tiny files) and the mean-word-vector caption encoder."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from cca_bench.errors import UserError
from cca_bench.features.text import MeanVectorEncoder, WordVectors
from cca_bench.registry import TEXT_ENCODERS

WORDS = ["dog", "cat", "car", "the", "Paris"]
VECS = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1], [2, 2, 2]], dtype=np.float32)


def load(name, tmp_path, path=None):
    return TEXT_ENCODERS.get(name)(tmp_path, None if path is None else str(path))


def write_text(path, words, vecs, header=True):
    lines = [f"{len(words)} {vecs.shape[1]}"] if header else []
    lines += [w + " " + " ".join(repr(float(x)) for x in v) for w, v in zip(words, vecs)]
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def assert_table(wv, words=WORDS, vecs=VECS):
    assert isinstance(wv, WordVectors)
    assert wv.words == words and len(wv) == len(words) and wv.dim == vecs.shape[1]
    assert wv.vectors.dtype == np.float32
    np.testing.assert_allclose(wv.vectors, vecs, rtol=1e-6)
    assert wv.index["cat"] == 1


# ------------------------------------------------------------------------------------------- loaders


def test_registry_entries_have_metadata():
    for name in ("glove50", "word2vec", "fasttext", "numberbatch", "glove"):
        meta = TEXT_ENCODERS.meta(name)
        assert meta["help"] and isinstance(meta["builtin"], bool) and isinstance(meta["files"], list)
    assert TEXT_ENCODERS.meta("glove50")["builtin"] is True


def test_glove50_builtin(tmp_path):
    wv = load("glove50", tmp_path)
    assert wv.vectors.shape == (400_000, 50) and len(wv.words) == 400_000
    assert load("glove50", tmp_path) is wv  # cached per process

    def cos(a, b):
        x, y = wv.get(a), wv.get(b)
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    assert cos("dog", "cat") > cos("dog", "car")
    assert wv.get("notawordxyzzy") is None
    with pytest.raises(UserError, match="glove"):
        load("glove50", tmp_path, tmp_path / "x.txt")


def test_word2vec_binary_default_path(tmp_path):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(3)
    kv.add_vectors(WORDS, VECS)
    (tmp_path / "vectors").mkdir()
    kv.save_word2vec_format(str(tmp_path / "vectors/GoogleNews-vectors-negative300.bin"), binary=True)
    wv = load("word2vec", tmp_path)
    assert_table(wv)
    assert wv.find("paris") == 4  # capitalised fallback for cased tables
    assert wv.get("unknown") is None


@pytest.mark.parametrize("name,file", [("word2vec", "w.txt"), ("fasttext", "wiki.vec"), ("glove", "g.vec.gz")])
def test_text_with_header(tmp_path, name, file):
    assert_table(load(name, tmp_path, write_text(tmp_path / file, WORDS, VECS)))


def test_fasttext_default_second_file(tmp_path):
    (tmp_path / "vectors").mkdir()
    write_text(tmp_path / "vectors/crawl-300d-2M.vec", WORDS, VECS)
    assert_table(load("fasttext", tmp_path))


def test_glove_without_header_and_spaced_word(tmp_path):
    words = WORDS + ["at . com"]  # glove.840B holds a few words with spaces
    vecs = np.vstack([VECS, [[3, 4, 5]]]).astype(np.float32)
    (tmp_path / "vectors").mkdir()
    write_text(tmp_path / "vectors/glove.6B.300d.txt", words, vecs, header=False)
    assert_table(load("glove", tmp_path), words, vecs)


def test_numberbatch_keeps_english(tmp_path):
    keys = ["/c/en/dog", "/c/fr/chien", "/c/en/cat", "/c/en/ice_cream", "/c/de/hund"]
    vecs = np.arange(15, dtype=np.float32).reshape(5, 3)
    (tmp_path / "vectors").mkdir()
    write_text(tmp_path / "vectors/numberbatch-en-19.08.txt.gz", keys, vecs)
    wv = load("numberbatch", tmp_path)
    assert wv.words == ["dog", "cat", "ice_cream"]
    np.testing.assert_array_equal(wv.vectors, vecs[[0, 2, 3]])


def test_fasttext_bin_subword_oov(tmp_path):
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    sentences = [["a", "dog", "runs", "on", "the", "grass"], ["a", "cat", "sleeps", "on", "the", "sofa"]] * 5
    model = FastText(sentences, vector_size=8, min_count=1, epochs=2, bucket=2000, seed=0, workers=1)
    save_facebook_model(model, str(tmp_path / "tiny.bin"))
    wv = load("fasttext", tmp_path, tmp_path / "tiny.bin")
    assert "dog" in wv.index and wv.dim == 8
    oov = wv.get("doggies")
    assert "doggies" not in wv.index and oov is not None and np.abs(oov).sum() > 0
    enc = MeanVectorEncoder(wv).fit([["dog"]])
    x = enc.transform([["doggies"]])
    assert enc.n_empty_ == 0 and enc.oov_rate_ == 0.0
    np.testing.assert_allclose(x[0], oov, rtol=1e-5)


def test_missing_files_name_the_paths(tmp_path):
    with pytest.raises(UserError) as e:
        load("glove", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "vectors/glove.6B.300d.txt") in msg and "glove.840B.300d.txt" in msg
    assert "--text-path" in msg and "\n" not in msg
    with pytest.raises(UserError, match="nope.bin"):
        load("word2vec", tmp_path, tmp_path / "nope.bin")


@pytest.mark.parametrize(
    "name,file,content",
    [
        ("word2vec", "bad.bin", bytes(range(256)) * 8),
        ("glove", "bad.txt", b"hello world\nthis is not a vector file\n"),
        ("glove", "bad2.txt", b"dog 1.0 2.0\ncat 1.0 oops\n"),
        ("fasttext", "short.vec", b"3 2\ndog 1 2\ncat 3 4\n"),
        ("numberbatch", "bad.txt.gz", b"not gzip at all"),
        ("fasttext", "bad.bin", b"\x00\x01garbage"),
    ],
)
def test_garbage_files_raise_user_error(tmp_path, name, file, content):
    path = tmp_path / file
    path.write_bytes(content)
    with pytest.raises(UserError, match=file):
        load(name, tmp_path, path)


def test_nan_vectors_raise_user_error(tmp_path):
    path = tmp_path / "nan.txt"
    path.write_text("dog 1.0 2.0\ncat nan 1.0\n")
    with pytest.raises(UserError, match="NaN") as e:
        load("glove", tmp_path, path)
    assert "nan.txt" in str(e.value)


# ------------------------------------------------------------------------------------------- encoder


@pytest.fixture
def wv():
    return WordVectors("tiny", WORDS, VECS)


def test_mean_matches_hand_computation(wv):
    enc = MeanVectorEncoder(wv).fit([])
    x = enc.transform([["dog", "car", "zzz"], ["dog", "dog", "cat"], ["paris"]])
    assert x.dtype == np.float32 and x.shape == (3, 3)
    np.testing.assert_allclose(x[0], (VECS[0] + VECS[2]) / 2)
    np.testing.assert_allclose(x[1], (2 * VECS[0] + VECS[1]) / 3, rtol=1e-6)
    np.testing.assert_allclose(x[2], VECS[4])
    assert enc.n_empty_ == 0 and math.isclose(enc.oov_rate_, 1 / 7)


def test_idf_weights_match_hand_computation(wv):
    train = [["dog", "the"], ["the", "cat"], ["the", "the", "car"]]
    enc = MeanVectorEncoder(wv, idf=True).fit(train)
    n = 3
    idf = {w: math.log((1 + n) / (1 + df)) + 1 for w, df in {"the": 3, "dog": 1, "cat": 1, "car": 1}.items()}
    for w, v in idf.items():
        assert math.isclose(enc.idf_[w], v)
    assert math.isclose(enc.max_idf_, math.log(1 + n) + 1)
    x = enc.transform([["dog", "the"], ["paris", "the"]])
    expect0 = (idf["dog"] * VECS[0] + idf["the"] * VECS[3]) / (idf["dog"] + idf["the"])
    expect1 = (enc.max_idf_ * VECS[4] + idf["the"] * VECS[3]) / (enc.max_idf_ + idf["the"])  # unseen word
    np.testing.assert_allclose(x, np.stack([expect0, expect1]), rtol=1e-6)


def test_stopwords_removed_and_empty_caption_is_zero(wv):
    enc = MeanVectorEncoder(wv, stopwords=True).fit([["the", "dog"]])
    x = enc.transform([["the", "dog"], ["zzz", "qqq"], ["the"], []])
    np.testing.assert_allclose(x[0], VECS[0])
    np.testing.assert_array_equal(x[1:], 0)
    assert enc.n_empty_ == 3 and not np.isnan(x).any()
    assert enc.oov_rate_ == 2 / 3  # dog, zzz, qqq: stop words are not counted
    enc = MeanVectorEncoder(wv).fit([])
    x = enc.transform([["zzz"], ["dog"]])
    assert enc.n_empty_ == 1 and not np.isnan(x).any() and not x[0].any()


def test_normalize_words(wv):
    x = MeanVectorEncoder(wv, normalize_words=True).fit([]).transform([["dog", "paris"]])
    np.testing.assert_allclose(x[0], (VECS[0] + VECS[4] / np.linalg.norm(VECS[4])) / 2, rtol=1e-6)


def test_estimator_protocol(wv):
    from sklearn.base import clone

    enc = MeanVectorEncoder(wv, idf=True, stopwords=True)
    with pytest.raises(RuntimeError, match="fit"):
        enc.transform([["dog"]])
    copy = clone(enc)
    assert copy.get_params() == enc.get_params() and copy.vectors is wv  # the table is shared
    cfg = enc.config()
    assert json.loads(json.dumps(cfg)) == cfg and cfg["idf"] and cfg["stopwords"] and cfg["vectors"] == "tiny"
    assert MeanVectorEncoder(wv).fit([]).transform([]).shape == (0, 3)
