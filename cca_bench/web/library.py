"""The web app's read-only view of the roots: run records, saved models, their files, galleries and images.

Nothing here writes under the data or results root. URLs name runs, models and files by their names only,
and every name is looked up in a listing of its folder (never joined into a path as given); files are then
checked once more with :func:`cca_bench.fsio.resolve_inside`, so ``..``, absolute paths and symlinks that
leave the root are refused. Galleries (a split encoded and embedded through a saved model) are built by
:func:`cca_bench.search.open_gallery`; the few most recently used galleries, datasets and qualitative
examples are kept in memory. Features and parsed datasets already in the cache are read from it, missing ones
are computed in memory and not written.
"""
from __future__ import annotations

import io
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

from cca_bench.errors import UserError

FILE_KINDS = {"runs": (".json",), "models": (".json", ".safetensors", ".png")}  # what /files/ may serve
IMAGE_SIDE = 256  # longest side of the PNGs the app serves
GALLERIES_KEPT = 4  # in memory at once, least recently used dropped first (each holds a split's embeddings)
DATASETS_KEPT = 2  # parsed datasets (COCO's is about a gigabyte in Python objects)
EXAMPLES_KEPT = 16  # qualitative-page results (small)


class Missing(UserError):
    """A run, model, split, image or file that the roots do not hold (the app answers 404)."""


RUN_KEYS = ("method", "dataset", "split", "features", "distance", "protocol", "metrics")


def _is_run(record: dict) -> bool:
    """Whether a JSON file under runs/ holds what the leaderboard needs of a run record."""
    from cca_bench.metrics import TASK_NAMES

    return (all(k in record for k in RUN_KEYS) and isinstance(record["metrics"], dict)
            and all(isinstance(record["metrics"].get(t), dict) for t in TASK_NAMES))


class Library:
    """Runs, models and galleries under ``results_root`` and ``data_root``, for the web app (read-only)."""

    def __init__(self, data_root: Path, results_root: Path, device: str = "auto"):
        self.data_root, self.results_root, self.device = Path(data_root), Path(results_root), device
        self._lock = threading.RLock()  # re-entered: a gallery needs its dataset, examples need their gallery
        self._galleries: OrderedDict = OrderedDict()
        self._datasets: OrderedDict = OrderedDict()
        self._examples: OrderedDict = OrderedDict()

    def _kept(self, store: OrderedDict, key, make, limit: int):
        """``store[key]``, made by ``make()`` when absent; ``store`` keeps the ``limit`` most recently used."""
        with self._lock:
            if key in store:
                store.move_to_end(key)
                return store[key]
            store[key] = value = make()
            while len(store) > limit:
                store.popitem(last=False)
            return value

    # ------------------------------------------------------------------------------------------ runs

    def runs(self) -> tuple[dict[str, dict], list[str]]:
        """Run file stem -> run record (``_file`` = its path), and the names of unreadable run files."""
        from cca_bench.results import load_runs

        records, bad = load_runs(self.results_root)
        runs = {}
        for r in records:
            name = Path(r["_file"]).name
            if not self._inside("runs", name):
                bad.append(f"{name} (it points outside {self.results_root})")
                continue
            if not _is_run(r):
                bad.append(f"{name} (not a run record)")
                continue
            runs[Path(name).stem] = r
        return runs, bad

    def run(self, stem: str) -> dict:
        runs, _ = self.runs()
        if stem not in runs:
            raise Missing(f"no run named {stem!r} under {self.results_root / 'runs'}")
        return runs[stem]

    # ------------------------------------------------------------------------------------------ models

    def models(self) -> list[str]:
        """Names of the saved models (``models/<name>.json`` beside ``<name>.safetensors``), sorted."""
        folder = self.results_root / "models"
        if not folder.is_dir():
            return []
        return sorted(f.name[:-len(".json")] for f in folder.glob("*.json")
                      if f.with_name(f.name[:-len(".json")] + ".safetensors").is_file())

    def has_model(self, name: str | None) -> bool:
        return bool(name) and name in self.models()

    def model_config(self, name: str) -> dict:
        """The saved model's JSON (without its arrays)."""
        path = self.file("models", f"{name}.json")
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"cannot read the saved model {path.name}: {e}") from None

    def figure(self, name: str, key: str) -> Path | None:
        """``models/<name>.<key>.png`` (``generate`` writes ``spectrum`` for CCA), or None."""
        try:
            return self.file("models", f"{name}.{key}.png")
        except Missing:
            return None

    # ------------------------------------------------------------------------------------------ files

    def file(self, kind: str, name: str) -> Path:
        """A file of ``RESULTS/<kind>/`` by name, if it is listed there and stays inside the root."""
        folder = self.results_root / kind
        if kind not in FILE_KINDS or not name.endswith(FILE_KINDS[kind]) or not folder.is_dir():
            raise Missing(f"no file {name!r} in {kind}")
        if name not in {f.name for f in folder.iterdir()}:
            raise Missing(f"no file {name!r} in {folder}")
        path = self._inside(kind, name)
        if path is None:
            raise Missing(f"{kind}/{name} points outside {self.results_root}")
        if not path.is_file():
            raise Missing(f"no file {name!r} in {folder}")
        return path

    def _inside(self, kind: str, name: str) -> Path | None:
        """``RESULTS/<kind>/<name>`` resolved (symlinks followed) if it stays inside the results root."""
        from cca_bench.fsio import resolve_inside

        try:
            return resolve_inside(self.results_root, os.path.join(kind, name), f"{kind}/{name}")
        except UserError:
            return None

    # ------------------------------------------------------------------------------------------ galleries

    def gallery(self, model: str, split: str):
        """The ``split`` of the dataset ``model`` was fitted on, encoded and ready to search (kept in memory)."""
        if not self.has_model(model):
            raise Missing(f"no saved model named {model!r} under {self.results_root / 'models'}: "
                          "run `generate` first")
        key = (model, split, self._stamp(model))  # a model fitted again under the same name is reopened
        return self._kept(self._galleries, key, lambda: self._open(model, split), GALLERIES_KEPT)

    def _open(self, model: str, split: str):
        from cca_bench.datasets.cache import read_only
        from cca_bench.search import open_gallery

        method, dataset, features, opts, ds = self._saved(model)
        if split not in ds.splits:
            raise Missing(f"{dataset} has no split {split!r} (it has {', '.join(ds.splits)})")
        with read_only():  # the split's features are read from the cache when there, else computed in memory
            return open_gallery(method, dataset, split, features, opts, read_only_cache=True)

    def _saved(self, model: str) -> tuple:
        """(method, dataset name, features, Options, CaptionDataset) of a saved model; the dataset is loaded once
        (a Karpathy JSON can take seconds to parse; the DATASETS_KEPT most recently used are kept)."""
        from cca_bench.benchmark import Options, load_dataset, saved_model_options

        def load():
            from cca_bench.datasets.cache import read_only

            base = Options(data_root=self.data_root, results_root=self.results_root, device=self.device,
                           progress=False)
            method, dataset, features, opts = saved_model_options(model, self.model_config(model), base)
            with read_only():  # a parsed dataset a command cached is read; none is written
                return method, dataset, features, opts, load_dataset(dataset, opts)

        return self._kept(self._datasets, (model, self._stamp(model)), load, DATASETS_KEPT)

    def _stamp(self, model: str) -> tuple:
        """When the model's files last changed."""
        return tuple(self.file("models", f"{model}{ext}").stat().st_mtime_ns for ext in (".json", ".safetensors"))

    def splits(self, model: str) -> list[str]:
        """The split names of the dataset ``model`` was fitted on."""
        return list(self._saved(model)[4].splits)

    def examples(self, model: str, split: str, distance: str, folds: int = 1) -> dict:
        """:func:`cca_bench.search.retrieval_examples` of the model on the split, ranked within ``folds``
        image folds as the run was (COCO 1k: 5); the EXAMPLES_KEPT most recently used are kept."""
        from cca_bench.search import retrieval_examples

        def make():
            g = self.gallery(model, split)
            emb_i, emb_t = g.model.embed_images(g.features), g.model.embed_texts(g.features)
            return retrieval_examples(emb_i, emb_t, g.features.image_index, distance, folds=folds)

        return self._kept(self._examples, (model, split, distance, folds, self._stamp(model)), make, EXAMPLES_KEPT)

    # ------------------------------------------------------------------------------------------ images

    def image_png(self, model: str, split: str, i: int) -> bytes:
        """Image ``i`` of the split as PNG bytes (at most IMAGE_SIDE pixels a side), through the dataset's
        loader; an image file must lie inside the data root."""
        g = self.gallery(model, split)
        s = g.split
        if not 0 <= i < s.n_images:
            raise Missing(f"{s.dataset}/{s.name} has no image {i} (it has {s.n_images})")
        if s.loader is None:
            raise Missing(f"{s.dataset}/{s.name} has only precomputed features, no images")
        if s.image_paths is not None:
            self._inside_data(s.image_paths[i])
        image = s.load_image(i)
        image.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    def _inside_data(self, path) -> None:
        from cca_bench.fsio import resolve_inside

        try:
            resolve_inside(self.data_root, os.path.relpath(Path(path).absolute(), self.data_root.absolute()), "image")
        except UserError:
            raise Missing(f"image {Path(path).name} lies outside the data root") from None

    def has_images(self, model: str, split: str) -> bool:
        try:
            return self.gallery(model, split).split.loader is not None
        except UserError:
            return False
