"""A new text encoder needs nothing but a registry entry: the pipelines, generate, run_benchmark and search take it
as they take the builtin ones (a word-vector table gets IDF weighting and the saved fitted state for free)."""

import json
import zlib

import numpy as np
import pytest

from cca_bench.__main__ import main
from cca_bench.registry import TEXT_ENCODERS

SMALL = ["-D", "n_train=300", "-D", "n_val=40", "-D", "n_test=60", "-q"]
WORDS = (
    "red green blue yellow purple orange white black circle square triangle star small large big tiny a an the "
    "on in of and with left right top bottom above below next to is are"
).split()


def word_vector(word: str, dim: int = 16) -> np.ndarray:
    """A fixed pseudo-random vector per word (seeded by its CRC32)."""
    return np.random.default_rng(zlib.crc32(word.encode())).standard_normal(dim).astype(np.float32)


def load_tinywords(data_root, path=None):
    """A 16-d word-vector table of a few dozen words (the whole of the new encoder)."""
    from cca_bench.features.text import WordVectors

    return WordVectors("tinywords", list(WORDS), np.stack([word_vector(w) for w in WORDS]), source="test")


class CharTrigrams:
    """A tiny 'sentence model': character trigrams of the raw caption hashed into 32 dims, L2-normalised."""

    def encode(self, captions: list[str]) -> np.ndarray:
        out = np.zeros((len(captions), 32), np.float32)
        for i, c in enumerate(captions):
            for j in range(len(c) - 2):
                out[i, zlib.crc32(c[j : j + 3].encode()) % 32] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


def make_chartrigrams(data_root, path=None, *, device="auto", batch_size=64, progress=True):
    return CharTrigrams()


ENTRIES = {"tinywords": (load_tinywords, {}), "chartri": (make_chartrigrams, {"kind": "sentence"})}


@pytest.fixture
def registered():
    """Register the test's encoders the way a module would (one decorated function each), then remove them."""
    TEXT_ENCODERS.names()  # the builtin entries first
    for name, (fn, meta) in ENTRIES.items():
        TEXT_ENCODERS.register(name, help="test encoder", builtin=True, files=[], **meta)(fn)
    yield
    for name in ENTRIES:
        del TEXT_ENCODERS._items[name], TEXT_ENCODERS._meta[name]


@pytest.mark.parametrize("encoder, options", [("tinywords", []), ("tinywords", ["--idf"]), ("chartri", [])])
def test_a_registry_entry_is_all_a_text_encoder_needs(registered, encoder, options, tmp_path, capsys):
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]
    features = f"{encoder}_tinyimage"
    assert main(["generate", "cca", "shapes", features, "--reg", "1e-2", *options, *SMALL, *roots]) == 0
    assert main(["run_benchmark", "cca", "shapes", "test", features, *options, *SMALL, *roots]) == 0
    (run,) = (tmp_path / "results" / "runs").glob("*.json")
    record = json.loads(run.read_text())
    assert record["features"] == features + ("+idf" if options else "")
    assert record["n_captions"] == 300
    # colours and shapes are in both views: well above chance (R@10 of 60 images = 16.7; measured 77-86)
    assert record["metrics"]["image_search"]["R@10"] > 30
    capsys.readouterr()
    assert (
        main(["search", "cca", "shapes", features, "--text", "a red circle", "-k", "3", *options, *SMALL, *roots]) == 0
    )
    assert capsys.readouterr().out.count("\n| ") >= 3  # a markdown table with three hits


def test_options_a_new_sentence_encoder_does_not_take_are_refused(registered, tmp_path, capsys):
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]
    assert main(["generate", "cca", "shapes", "chartri_tinyimage", "--pooling", "gmm", *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chartri is a sentence encoder" in err[0]
