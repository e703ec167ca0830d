"""The search page: a caption finds images, a photo (uploaded) or a gallery image finds captions and similar
images; every hit leads on (an image to its captions and look-alikes, a caption to its images)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from cca_bench.errors import UserError

TOP_K = 10  # hits on the search page
MAX_UPLOAD_PIXELS = 40_000_000  # an uploaded photo's width x height, read from its header before decoding


def _form(lib, values) -> dict:
    from cca_bench.web.library import Missing

    models = lib.models()
    model = values.get("model") or (models[0] if models else None)
    if model and model not in models:
        raise Missing(f"no saved model named {model!r} under {lib.results_root / 'models'}: run `generate` first")
    splits = lib.splits(model) if model else []
    split = values.get("split") or ("test" if "test" in splits else (splits[0] if splits else None))
    if split and splits and split not in splits:
        raise Missing(f"{model} was fitted on a dataset with no split {split!r} (it has {', '.join(splits)})")
    return {
        "models": models,
        "model": model,
        "splits": splits,
        "split": split,
        "distance": values.get("distance") or "cosine",
        "q": values.get("q", ""),
        "image": values.get("image"),
    }


def search_page():
    from flask import render_template, request

    from cca_bench.metrics import DISTANCES
    from cca_bench.web.common import MAX_UPLOAD_MB
    from cca_bench.web.common import lib as _lib
    from cca_bench.web.common import wait as _wait

    lib = _lib()
    form = _form(lib, request.values)
    if form["distance"] not in DISTANCES:
        raise UserError(f"unknown distance {form['distance']!r} (choose {', '.join(DISTANCES)})")
    results, message, status = {}, None, 200
    try:
        if form["model"] and request.method == "POST":
            results = _photo_search(lib, form, request.files.get("photo"))
        elif form["model"] and form["image"] is not None:
            results = _gallery_image(lib.gallery(form["model"], form["split"], wait=_wait()), form)
        elif form["model"] and form["q"].strip():
            results = _text_search(lib.gallery(form["model"], form["split"], wait=_wait()), form)
    except UserError as e:
        if type(e).__name__ == "Missing":
            raise
        message, status = str(e), 400  # the form stays, with what was wrong above it
    images = bool(results) and lib.has_images(form["model"], form["split"])
    return render_template(
        "search.html",
        form=form,
        results=results,
        images=images,
        distances=DISTANCES,
        max_mb=MAX_UPLOAD_MB,
        message=message,
    ), status


def _text_search(g, form: dict) -> dict:
    from cca_bench.search import search

    return {"text": search(g, "text", form["q"], TOP_K, form["distance"]).rows}


def _gallery_image(g, form: dict) -> dict:
    """Image ``form["image"]`` of the gallery as the query: its own captions, the captions the model ranks
    first for it, and the images most like it (the image itself first)."""
    import numpy as np

    from cca_bench.search import _caption_rows, _image_rows, top_k
    from cca_bench.web.library import Missing

    text = str(form["image"])
    if not text.isdigit() or int(text) >= g.split.n_images:
        raise Missing(f"{g.split.dataset}/{g.split.name} has no image {text!r} (it has {g.split.n_images})")
    i = int(text)
    emb_i, emb_t = g.model.embed_images(g.features), g.model.embed_texts(g.features)
    captions = top_k(emb_i[i : i + 1], emb_t, TOP_K, form["distance"])
    similar = top_k(emb_i[i : i + 1], emb_i, TOP_K, form["distance"])
    own = [g.split.captions[j] for j in np.flatnonzero(np.asarray(g.split.image_index) == i)]
    return {
        "image": {"i": i, "image_id": g.split.image_ids[i], "captions": own},
        "captions": _caption_rows(g.split, captions[1][0], captions[0][0]),
        "similar": _image_rows(g.split, similar[1][0], similar[0][0]),
    }


def _photo_search(lib, form: dict, upload) -> dict:
    """Top captions and similar images for an uploaded photo, read through a file without a name."""
    from cca_bench.datasets.base import open_rgb
    from cca_bench.search import search, thumbnail_uri

    if upload is None or not upload.filename:
        raise UserError("choose a photo to upload")
    data = upload.read()
    if not data:
        raise UserError("the uploaded photo is empty")
    check_pixels(data)
    g = lib.gallery(form["model"], form["split"])
    # a file without a name (O_TMPFILE, or unlinked at once): nothing is left on disk, even after a kill -9
    with tempfile.TemporaryFile(prefix="cca_bench_upload_") as f:
        f.write(data)
        f.flush()
        path = Path(f"/dev/fd/{f.fileno()}")
        photo = thumbnail_uri(open_rgb(path), 192)
        captions = search(g, "image", str(path), TOP_K, form["distance"])
        similar = search(g, "similar", str(path), TOP_K, form["distance"])
    return {"photo": photo, "photo_name": upload.filename, "captions": captions.rows, "similar": similar.rows}


def check_pixels(data: bytes, limit: int = MAX_UPLOAD_PIXELS) -> None:
    """Refuse an image whose header declares more than ``limit`` pixels, before any pixel is decoded (a small
    PNG can declare 30,000 x 30,000 pixels: gigabytes once decoded)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                width, height = im.size
    except Image.DecompressionBombError:  # Pillow's own refusal, from the header too (above twice its limit)
        raise UserError(
            f"the uploaded photo declares more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels; at most "
            f"{limit:,} are decoded"
        ) from None
    except (OSError, ValueError, SyntaxError):
        raise UserError("cannot read image: the upload is not an image file Pillow can read (PNG, JPEG, ...)") from None
    if width * height > limit:
        raise UserError(
            f"the uploaded photo is {width} x {height} = {width * height:,} pixels; at most {limit:,} are decoded"
        )
