"""Search a split through a fitted model: text -> images, image -> captions, image -> similar images.

The gallery (one split) is encoded by the cached feature pipeline and embedded by the method's
``embed_images`` / ``embed_texts``; the user's query goes through the same text or image encoder as a
one-item :class:`~cca_bench.features.store.FeatureSet`, so any method of the protocol works.

Top-k is exact by default: one similarity product per gallery chunk and ``argpartition`` (no full sort),
memory O(queries x chunk). For large galleries FAISS (``pip install cca_bench[faiss]``) offers an exact
``IndexFlatIP`` / ``IndexFlatL2`` (``faiss``) and an approximate HNSW graph (``hnsw``, Malkov & Yashunin 2018).
Scores are those of :func:`cca_bench.metrics.similarity`: cosine, dot, or minus the squared euclidean distance.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cca_bench.datasets.base import CaptionDataset, Split, open_rgb, tokenize
from cca_bench.errors import UserError
from cca_bench.extras import require
from cca_bench.features.store import FeatureSet
from cca_bench.metrics import prepare, refuse_flat_queries, similarity
from cca_bench.registry import Registry
from cca_bench.retrieved import best_first, keep_top, sample_and_worst

CHUNK_ROWS = 65536  # gallery rows per similarity block
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 40, 256  # recall@10 0.999 on 20k x 64 gaussian rows
THUMB_SIDE = 128
INDEXES = Registry("search index")


# ------------------------------------------------------------------------------------------------ top-k


def top_k(
    queries: np.ndarray, gallery: np.ndarray, k: int, distance: str = "cosine", chunk: int = CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k: queries (q, d), gallery (n, d) -> scores (q, k') float32 and ids (q, k') int64, best
    first, k' = min(k, n). Hits with equal scores are listed by gallery id (which of several items tied at the
    k-th score is kept is not specified)."""
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    q = queries.shape[0]  # dense or scipy CSR rows alike
    best_s, best_i = np.empty((q, 0), np.float32), np.empty((q, 0), np.int64)
    for start in range(0, gallery.shape[0], chunk):  # dense or scipy CSR rows alike
        s = similarity(queries, gallery[start : start + chunk], distance)
        ids = np.broadcast_to(np.arange(start, start + s.shape[1], dtype=np.int64), s.shape)
        s, ids = keep_top(s, ids, k)
        best_s, best_i = keep_top(np.concatenate([best_s, s], 1), np.concatenate([best_i, ids], 1), k)
    return best_first(best_s, best_i)


@INDEXES.register("exact", help="exact chunked similarity + argpartition (default)")
class ExactIndex:
    """Brute force over the gallery (n, d); ``search(queries, k)`` -> (scores, ids) as :func:`top_k`."""

    def __init__(self, gallery: np.ndarray, distance: str = "cosine"):
        # cosine: normalise the gallery once; every search is then a dot product with normalised queries
        self.gallery, self.distance = prepare(gallery, distance), distance
        self.metric = "dot" if distance == "cosine" else distance

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return top_k(prepare(queries, self.distance), self.gallery, k, self.metric)


def _faiss():
    return require("faiss", "FAISS indexes")


@INDEXES.register("faiss", help="FAISS IndexFlatIP (cosine, dot) / IndexFlatL2 (euclidean): exact")
class FaissIndex:
    """A FAISS index over the prepared gallery rows (L2-normalised for cosine); same scores as ExactIndex."""

    def __init__(self, gallery: np.ndarray, distance: str = "cosine"):
        from cca_bench.sparse_rows import is_sparse

        if is_sparse(gallery):  # a FAISS index holds dense rows: 414k-anchor ASIF rows would not fit
            raise UserError(
                f"--index {type(self).__name__.removesuffix('Index').lower()} takes dense embeddings; "
                "this gallery's are sparse (asif above 4 GB dense): use --index exact"
            )
        faiss = _faiss()
        x = np.ascontiguousarray(prepare(gallery, distance))
        self.distance = distance
        self.index = self._make(
            faiss, x.shape[1], faiss.METRIC_L2 if distance == "euclidean" else faiss.METRIC_INNER_PRODUCT
        )
        self.index.add(x)

    def _make(self, faiss, d: int, metric: int):
        return faiss.IndexFlat(d, metric)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k < 1:
            raise UserError(f"k must be at least 1, got {k}")
        q = np.ascontiguousarray(prepare(queries, self.distance))
        scores, ids = self.index.search(q, min(k, self.index.ntotal))  # id -1: HNSW found fewer than k
        return (-scores if self.distance == "euclidean" else scores), ids.astype(np.int64)


@INDEXES.register("hnsw", help="FAISS IndexHNSWFlat: approximate, for million-item galleries")
class HNSWIndex(FaissIndex):
    """HNSW graph (M = 32 links, efConstruction 40, efSearch 256): sub-linear search, recall just below 1."""

    def _make(self, faiss, d: int, metric: int):
        index = faiss.IndexHNSWFlat(d, HNSW_M, metric)
        index.hnsw.efConstruction, index.hnsw.efSearch = HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH
        return index


# ------------------------------------------------------------------------------------------------ gallery


@dataclass
class Gallery:
    """A split ready to search: its features (cached pipeline), the fitted model, and the feature pipelines that
    encode queries (restored from the model file, as for ``run_benchmark``)."""

    dataset: CaptionDataset
    split: Split
    features: FeatureSet
    model: object
    spec: object  # config.FeatureSpec
    opts: object  # benchmark.Options (search sits above the orchestrator)
    pipelines: object = None  # features.pipelines.Pipelines fitted with the model


def open_gallery(
    method: str,
    dataset_name: str,
    split_name: str,
    features: str,
    opts,
    cache_dir: Path | None | str = "opts",
    read_only_cache: bool = False,
    dataset: CaptionDataset | None = None,
) -> Gallery:
    """Load the model ``generate`` saved and encode ``split_name`` with the same pipelines (cached).

    ``read_only_cache``: read the split's features from the cache when both arrays are there, else compute them
    in memory (the web app never writes into the data root). ``dataset``: the dataset already loaded (by its
    name and ``opts``), so it is not built twice."""
    from cca_bench.benchmark import load_dataset, load_model, model_path, saved_pipelines
    from cca_bench.config import FeatureSpec

    spec = FeatureSpec.parse(features)
    dataset = dataset or load_dataset(dataset_name, opts)
    model = load_model(method, dataset_name, spec, opts)
    pipes = saved_pipelines(model_path(method, dataset_name, spec, opts), spec, opts)
    where = opts.locations
    if cache_dir == "opts":
        cache_dir = where.cache_dir
    if read_only_cache and not (where.cache and pipes.cached(dataset, split_name, where.cache_dir)):
        cache_dir = None
    fs = pipes.encode(dataset, split_name, {}, cache_dir, opts.log)
    return Gallery(dataset, dataset.split(split_name), fs, model, spec, opts, pipes)


def _one_pair(g: Gallery, images: np.ndarray, texts: np.ndarray, tokens: list[list[str]]) -> FeatureSet:
    """A FeatureSet of one image and one caption (the query side real, the other zeros)."""
    return FeatureSet(
        images=np.asarray(images, np.float32),
        texts=np.asarray(texts, np.float32),
        image_index=np.zeros(1, np.int64),
        tokens=tokens,
        meta={**g.features.meta, "split": "query"},
        word_vectors=g.features.word_vectors,
    )


def text_query(g: Gallery, text: str) -> FeatureSet:
    """The caption ``text`` through the gallery's text pipeline (the fitted IDF / Fisher-vector encoder saved
    with the model, or a sentence model reading the raw caption)."""
    texts = g.pipelines.text.encode_query(text)
    return _one_pair(g, np.zeros((1, g.features.images.shape[1])), texts, [tokenize(text)])


def image_query(g: Gallery, path: str | Path) -> FeatureSet:
    """The photo at ``path`` through the gallery's image pipeline, as a one-image FeatureSet."""
    images = g.pipelines.image.encode_query(path, g.dataset)
    return _one_pair(g, images, np.zeros((1, g.features.texts.shape[1])), [[]])


# ------------------------------------------------------------------------------------------------ search


def _first_captions(split: Split) -> dict[int, str]:
    """Image position -> its first caption in the split (so a hit can be judged without opening it)."""
    images, first = np.unique(split.image_index, return_index=True)
    return {int(i): split.captions[j] for i, j in zip(images, first)}


def _image_rows(split: Split, ids: np.ndarray, scores: np.ndarray) -> list[dict]:
    paths, captions = split.image_paths, _first_captions(split)
    return [
        {
            "rank": r + 1,
            "image": int(i),
            "image_id": split.image_ids[i],
            "path": str(paths[i]) if paths is not None and Path(paths[i]).is_file() else "-",
            "caption": captions.get(int(i), "-"),
            "score": float(s),
        }
        for r, (i, s) in enumerate(zip(ids, scores))
    ]


def _caption_rows(split: Split, ids: np.ndarray, scores: np.ndarray) -> list[dict]:
    return [
        {
            "rank": r + 1,
            "caption": split.captions[j],
            "image": int(split.image_index[j]),
            "image_id": split.image_ids[split.image_index[j]],
            "score": float(s),
        }
        for r, (j, s) in enumerate(zip(ids, scores))
    ]


def _check_text(text: str) -> None:
    if not tokenize(text):
        raise UserError(f"the text query {text!r} holds no word")


def _check_photo(path: str) -> None:
    open_rgb(Path(path))  # a missing or unreadable file is a UserError naming it


class Mode(NamedTuple):
    """A kind of query: what it finds, how to check and encode it, which model method embeds each side, how
    rows look."""

    label: str
    check: Callable[[str], None]
    encode: Callable[[Gallery, str], FeatureSet]
    embed_query: str
    embed_gallery: str
    rows: Callable[[Split, np.ndarray, np.ndarray], list[dict]]


MODES = {
    "text": Mode("images matching the text", _check_text, text_query, "embed_texts", "embed_images", _image_rows),
    "image": Mode(
        "captions describing the photo", _check_photo, image_query, "embed_images", "embed_texts", _caption_rows
    ),
    "similar": Mode(
        "images similar to the photo", _check_photo, image_query, "embed_images", "embed_images", _image_rows
    ),
}


def check_query(mode: str, query: str) -> None:
    """Fail early (before the gallery is encoded) on an empty text or a missing / unreadable photo."""
    MODES[mode].check(query)


@dataclass
class SearchResult:
    """What a search returns: the query, its kind, the gallery split and one dict per hit, best first."""

    mode: str
    query: str
    split: Split
    rows: list[dict]
    distance: str


def search(
    g: Gallery, mode: str, query: str, k: int = 10, distance: str = "cosine", index: str = "exact"
) -> SearchResult:
    """Top-k of the gallery for a query: ``text`` -> images, ``image`` -> captions, ``similar`` -> images.

    Rows: images ``{rank, image, image_id, path, score}``; captions ``{rank, caption, image, image_id, score}``.
    """
    m = MODES[mode]
    m.check(query)
    q = getattr(g.model, m.embed_query)(m.encode(g, query))
    gallery = getattr(g.model, m.embed_gallery)(g.features)
    refuse_flat_queries(q, gallery, distance, f"query {query!r}")
    scores, ids = INDEXES.get(index)(gallery, distance).search(q, k)
    found = ids[0] >= 0
    return SearchResult(mode, query, g.split, m.rows(g.split, ids[0][found], scores[0][found]), distance)


# ------------------------------------------------------------------------------------------------ examples


def _examples(
    queries: np.ndarray,
    ranks1: np.ndarray,
    q_emb: np.ndarray,
    g_emb: np.ndarray,
    k: int,
    distance: str,
    q_fold: np.ndarray,
    g_fold: np.ndarray,
) -> list[dict]:
    """``{query, rank, hits, scores}`` per query (in the order given): its 1-based rank and its top-k gallery
    ids, best first, searched among the gallery items of its own fold (``q_fold`` / ``g_fold``: fold of each
    query / gallery item)."""
    found = {}
    for f in np.unique(q_fold[queries]):
        sel, gallery = queries[q_fold[queries] == f], np.flatnonzero(g_fold == f)
        scores, ids = top_k(q_emb[sel], g_emb[gallery], k, distance)
        found.update({int(q): (gallery[i], s) for q, i, s in zip(sel, ids, scores)})
    return [
        {
            "query": int(q),
            "rank": int(r) if r == int(r) else float(r),
            "hits": found[int(q)][0].tolist(),
            "scores": found[int(q)][1].tolist(),
        }
        for q, r in zip(queries, ranks1)
    ]


def retrieval_examples(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    image_index: np.ndarray,
    distance: str = "cosine",
    k: int = 5,
    n_sample: int = 8,
    n_worst: int = 5,
    seed: int = 0,
    folds: int = 1,
) -> dict:
    """Qualitative examples of one evaluated split, for both directions.

    Args:
        image_emb: (n_img, d); text_emb: (n_txt, d); image_index: (n_txt,) image of each caption.
        folds: the run's image folds (COCO 1k protocol: 5 consecutive folds of 1,000): each query is ranked
            and searched within its own fold, as the metrics were; 1 = the whole split.
    Returns:
        ``{"image_annotation": {"sample": [...], "worst": [...]}, "image_search": {...}}``; each entry is
        ``{"query", "rank", "hits", "scores"}``: the query's position (an image for annotation, a caption for
        search), its rank as :func:`cca_bench.metrics.fold_ranks` gives it (1-based, the default tie rule's
        expected rank, a whole number unless the ground truth ties; an
        image takes its best caption's rank), and its top-k gallery ids (captions / images, positions in the
        whole split) with their scores. ``sample``: ``n_sample`` queries drawn with ``seed`` (in query order);
        ``worst``: the ``n_worst`` queries with the largest rank, worst first (ties by query order).
    """
    from cca_bench.metrics import fold_ranks, fold_slices

    image_index = np.asarray(image_index, dtype=np.int64)
    n_img, n_txt = image_emb.shape[0], text_emb.shape[0]  # dense or scipy CSR rows
    captioned = np.bincount(image_index, minlength=n_img) > 0
    r_i2t, r_t2i = np.zeros(n_img), np.zeros(n_txt)  # expected ranks: halves where ties are
    image_fold = np.zeros(n_img, dtype=np.int64)
    for f, (images, (ri, rt)) in enumerate(
        zip(fold_slices(n_img, folds), fold_ranks(image_emb, text_emb, image_index, distance, folds))
    ):
        image_fold[images] = f
        r_i2t[images[captioned[images]]] = ri  # ranks of the fold's images that have captions
        r_t2i[np.isin(image_index, images)] = rt  # of the fold's captions, in caption order
    text_fold = image_fold[image_index]
    with_captions = np.flatnonzero(captioned)
    sides = {
        "image_annotation": (with_captions, r_i2t + 1, image_emb, text_emb, image_fold, text_fold),
        "image_search": (np.arange(n_txt), r_t2i + 1, text_emb, image_emb, text_fold, image_fold),
    }
    rng, out = np.random.default_rng(seed), {}
    for task, (queries, r1, q_emb, g_emb, q_fold, g_fold) in sides.items():
        sample, worst = sample_and_worst(rng, r1[queries], n_sample, n_worst)
        out[task] = {
            name: _examples(queries[pos], r1[queries[pos]], q_emb, g_emb, k, distance, q_fold, g_fold)
            for name, pos in (("sample", sample), ("worst", worst))
        }
    return out


# ------------------------------------------------------------------------------------------------ rendering

COLUMNS = {
    "caption": ("rank", "caption", "image id", "score"),
    "path": ("rank", "image id", "path", "caption", "score"),
    "image": ("rank", "image id", "caption", "score"),
}


def _columns(result: SearchResult) -> tuple[str, ...]:
    """Caption hits, or image hits with their file paths; no path column where no hit has a file (rendered or
    embedded images, precomputed features)."""
    if result.mode == "image":
        return COLUMNS["caption"]
    return COLUMNS["path"] if any(r.get("path", "-") != "-" for r in result.rows) else COLUMNS["image"]


def _cell(row: dict, column: str) -> str:
    value = row[column.replace(" ", "_")]
    return f"{value:.4f}" if column == "score" else str(value)


def markdown_table(result: SearchResult) -> str:
    """The hits as a GitHub markdown table (captions' ``|``, ``<``, ``>`` escaped: :func:`cca_bench.cells.md_cell`)."""
    from tabulate import tabulate

    from cca_bench.cells import md_cell

    cols = _columns(result)
    body = [[md_cell(_cell(r, c)) for c in cols] for r in result.rows]
    return tabulate(body, list(cols), tablefmt="github", disable_numparse=True)


def thumbnail_uri(image, side: int = THUMB_SIDE) -> str:
    """A PIL image as a ``data:image/jpeg;base64,...`` URI of at most side x side pixels."""
    im = image.convert("RGB")
    im.thumbnail((side, side))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri: str | None) -> str:
    return f'<img src="{uri}" alt="">' if uri else "-"


def _query_html(result: SearchResult) -> str:
    text = html.escape(str(result.query))
    return text if result.mode == "text" else f"{text}<br>{_img(thumbnail_uri(open_rgb(Path(result.query))))}"


def _rows_html(result: SearchResult) -> str:
    """One table row per hit: the hit's image as a thumbnail (when the split has pixels), then the columns."""
    split, cols = result.split, _columns(result)
    images = {r["image"] for r in result.rows} if split.loader is not None else set()
    if split.image_paths is not None:  # an image missing on disk gets "-", not a failed page
        images = {i for i in images if Path(split.image_paths[i]).is_file()}
    thumbs = {i: thumbnail_uri(split.load_image(i)) for i in images}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("image", *cols))
    return f"<tr>{head}</tr>\n" + "".join(
        f"<tr><td>{_img(thumbs.get(r['image']))}</td>"
        + "".join(f"<td>{html.escape(_cell(r, c))}</td>" for c in cols)
        + "</tr>\n"
        for r in result.rows
    )


def render_html(result: SearchResult) -> str:
    """A self-contained HTML page: the query, then each hit with its thumbnail; all text escaped."""
    split = result.split
    title = html.escape(f"{split.dataset}/{split.name}: {MODES[result.mode].label} ({result.distance})")
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>\n'
        "<style>body{font-family:sans-serif}td,th{padding:4px 8px;border-bottom:1px solid #ddd;"
        "text-align:left}</style></head>\n"
        f"<body><h1>{title}</h1>\n<p>query: {_query_html(result)}</p>\n"
        f"<table>\n{_rows_html(result)}</table></body></html>\n"
    )
