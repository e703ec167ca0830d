"""What every page module of the web app shares: the request's Library, how long a page waits for a model
being loaded, the upload limit, and the template values of qualitative examples."""

from __future__ import annotations

from cca_bench.web.library import Library

MAX_UPLOAD_MB = 10


def wait() -> float:
    """Seconds a page waits for a model being loaded before it shows the page that reloads itself."""
    from flask import current_app

    return current_app.config["LOADING_WAIT_S"]


def lib() -> Library:
    from flask import current_app

    return current_app.config["LIBRARY"]


def example_rows(split, entries: list[dict], task: str) -> list[dict]:
    """Template values of qualitative examples: the query and each hit, the ground truth marked; every image
    carries its first caption as ``alt`` text (its name when it has none). ``split``: a Split, or anything with
    its ``captions``, ``image_ids`` and ``image_index`` (:class:`cca_bench.web.failures.Labels`); entries
    without scores (a stored top-10) show none."""
    captions: dict[int, str] = {}
    for j, i in enumerate(split.image_index):
        captions.setdefault(int(i), split.captions[j])
    out = []
    for e in entries:
        e = e if e.get("scores") is not None else {**e, "scores": [None] * len(e["hits"])}  # stored top-10
        if task == "image_annotation":
            truth = [j for j, i in enumerate(split.image_index) if i == e["query"]]
            hits = [
                {
                    "caption": split.captions[j],
                    "image": int(split.image_index[j]),
                    "score": s,
                    "correct": int(split.image_index[j]) == e["query"],
                }
                for j, s in zip(e["hits"], e["scores"])
            ]
            query = {
                "image": e["query"],
                "image_id": split.image_ids[e["query"]],
                "truth": [split.captions[j] for j in truth],
            }
        else:
            gt = int(split.image_index[e["query"]])
            hits = [
                {
                    "image": i,
                    "image_id": split.image_ids[i],
                    "score": s,
                    "correct": i == gt,
                    "alt": captions.get(int(i), split.image_ids[i]),
                }
                for i, s in zip(e["hits"], e["scores"])
            ]
            query = {"caption": split.captions[e["query"]], "image": gt, "image_id": split.image_ids[gt]}
        query["alt"] = captions.get(int(query["image"]), query["image_id"])
        out.append({"query": query, "rank": e["rank"], "hits": hits})
    return out
