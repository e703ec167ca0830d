"""Failure views of stored runs, no model needed: what each run retrieved (its ranks file's top-10), the same
queries across runs labelled by their own run, and where one run succeeds while another fails.

Captions and images come from the split the run was scored on when the data root can rebuild it; else items are
named by position ("caption 12"). A run scored on a subset of captions (``evaluate --image-index``) names its
captions by their row in the embedding file, since the split's captions do not line up with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cca_bench.errors import UserError

EXAMPLE_K = 5  # hits per query on the examples page
WINS_N = 8  # queries per list on the wins page


@dataclass
class Labels:
    """What a run's item positions show as: ``captions`` (n_txt,), ``image_ids`` (n_img,), ``image_index``
    (n_txt,) image of each caption (from the run's ranks file), ``image_run``: the run whose split serves the
    images (None: no images)."""

    captions: list
    image_ids: list
    image_index: object
    image_run: str | None


@dataclass
class Stored:
    """A run's ranks, top-10 (None for runs stored before they were kept) and labels."""

    run: dict
    ranks: object
    top10: tuple | None
    labels: Labels


def stored(lib, run: dict) -> Stored:
    """The run's stored ranks and top-10 with its labels, read once per run file and ranks file and kept.
    UserError when the run kept no readable ranks file."""
    from cca_bench.results import load_ranks, load_top10

    stem = Path(run["_file"]).stem

    def make():
        ranks = load_ranks(run)
        try:
            top10 = load_top10(run, ranks)
        except UserError:
            top10 = None
        return Stored(run, ranks, top10, labels(lib, run, ranks))

    return lib.computed(("stored", stem, run_stamps(lib, run)), make)


def run_stamps(lib, run: dict) -> tuple:
    """When the run's JSON and its ranks file (None: none) last changed: part of the keys of what is kept."""
    name = run.get("ranks_file")
    ranks_path = Path(run["_file"]).with_name(name) if isinstance(name, str) and Path(name).name == name else None
    return lib.stamp(run["_file"]), lib.stamp(ranks_path) if ranks_path and ranks_path.is_file() else None


def labels(lib, run: dict, ranks) -> Labels:
    """Captions and image ids of the run's split where they line up with the run's ranks, else positions."""
    split = lib.run_split(run)
    n_img, n_txt = ranks.n_images, len(ranks.image_index)
    subset = isinstance(run.get("embeddings"), dict) and "image_index" in run["embeddings"]
    captions = (
        list(split.captions)
        if split is not None and not subset and split.n_captions == n_txt
        else [f"caption {j} of the run" for j in range(n_txt)]
    )
    image_ids = list(split.image_ids) if split is not None else [f"image {i}" for i in range(n_img)]
    has_images = split is not None and split.loader is not None
    return Labels(captions, image_ids, ranks.image_index, Path(run["_file"]).stem if has_images else None)


def example_entries(s: Stored, seed: int = 0, k: int = EXAMPLE_K) -> dict:
    """:func:`cca_bench.retrieved.stored_examples` of a stored run (first seed)."""
    from cca_bench.retrieved import stored_examples

    if s.top10 is None:
        raise UserError(
            f"{Path(s.run['_file']).name}: its ranks file keeps no top-10 retrieved items (stored "
            "before they were kept): run run_benchmark / evaluate again"
        )
    return stored_examples(s.ranks.rank("i2t")[0], s.ranks.rank("t2i")[0], s.ranks.image_index, s.top10, k=k, seed=seed)


def wins(a: Stored, b: Stored, n: int = WINS_N) -> dict:
    """:func:`cca_bench.retrieved.contrast` of two stored runs as template values: per task, ``a_wins`` and
    ``b_wins`` rows ``{query, ranks: (winner's, loser's), winner_hits, loser_hits}`` (hits from each run's
    top-10 where kept)."""
    from cca_bench.retrieved import contrast

    found = contrast(a.ranks, b.ranks, n)
    out = {}
    for task, lists in found.items():
        out[task] = {}
        for name, (win, lose) in (("a_wins", (a, b)), ("b_wins", (b, a))):
            out[task][name] = [
                {
                    "query": query_row(a.labels, task, q),
                    "ranks": (r1, r2),
                    "winner_hits": hits(win, task, q),
                    "loser_hits": hits(lose, task, q),
                }
                for q, r1, r2 in lists[name]
            ]
    return out


def query_row(lab: Labels, task: str, q: int) -> dict:
    """A query's template values: an image (annotation) or a caption and its image (search)."""
    if task == "image_annotation":
        return {"id": q, "image": q, "image_id": lab.image_ids[q], "alt": _first_caption(lab, q)}
    i = int(lab.image_index[q])
    return {
        "id": q,
        "caption": lab.captions[q],
        "image": i,
        "image_id": lab.image_ids[i],
        "alt": _first_caption(lab, i),
    }


def hits(s: Stored, task: str, q: int, k: int = 3) -> list[dict] | None:
    """The run's top-k for query q (None when its ranks file kept no top-10)."""
    if s.top10 is None:
        return None
    lab = s.labels
    top = [int(h) for h in s.top10[0 if task == "image_annotation" else 1][q, :k] if h >= 0]
    if task == "image_annotation":
        return [{"caption": lab.captions[j], "correct": int(lab.image_index[j]) == q} for j in top]
    truth = int(lab.image_index[q])
    return [
        {"image": i, "image_id": lab.image_ids[i], "correct": i == truth, "alt": _first_caption(lab, i)} for i in top
    ]


def _first_caption(lab: Labels, i: int) -> str:
    import numpy as np

    where = np.flatnonzero(np.asarray(lab.image_index) == i)
    return lab.captions[where[0]] if len(where) else lab.image_ids[i]


def wins_page():
    """``/wins?a=RUN&b=RUN[&n=N]``: the queries where run A succeeds and run B fails most, and the reverse,
    with images, captions and each run's top hits."""
    from flask import render_template, request

    from cca_bench.web.common import lib as _lib
    from cca_bench.web.figures import curve_label

    lib = _lib()
    stems = [request.args.get("a") or "", request.args.get("b") or ""]
    if not all(stems) or stems[0] == stems[1]:
        raise UserError("choose two different runs: /wins?a=RUN&b=RUN")
    n = request.args.get("n") or str(WINS_N)
    if not (n.isascii() and n.isdigit()) or not 1 <= int(n) <= 100:
        raise UserError(f"n {n!r} is not a whole number from 1 to 100")
    runs = [lib.run(s) for s in stems]
    a, b = (stored(lib, r) for r in runs)
    return render_template(
        "wins.html",
        a=stems[0],
        b=stems[1],
        labels=[curve_label(r) for r in runs],
        run=runs[0],
        lists=wins(a, b, int(n)),
        image_run=a.labels.image_run,
        n=int(n),
    )
