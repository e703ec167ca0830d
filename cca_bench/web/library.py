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
from pathlib import Path

from cca_bench.errors import UserError
from cca_bench.web.kept import Kept

FILE_KINDS = {"runs": (".json",), "models": (".json", ".safetensors", ".png"), "cv": (".json", ".md")}  # /files/
IMAGE_SIDE = 256  # longest side of the PNGs the app serves
GALLERIES_KEPT = 4  # in memory at once, least recently used dropped first (each holds a split's embeddings)
DATASETS_KEPT = 2  # parsed datasets (COCO's is about a gigabyte in Python objects)
EXAMPLES_KEPT = 16  # qualitative-page results (small)
FIGURES_KEPT = 64  # PNG bytes of drawn figures (R@K curves, comparisons, CV grids)
PAIRS_KEPT = 256  # paired tests of one run against another, every metric of the compare page (small)


class Missing(UserError):
    """A run, model, split, image or file that the roots do not hold (the app answers 404)."""


class Library:
    """Runs, models and galleries under ``results_root`` and ``data_root``, for the web app (read-only)."""

    def __init__(self, data_root: Path, results_root: Path, device: str = "auto"):
        self.data_root, self.results_root, self.device = Path(data_root), Path(results_root), device
        # each key is made in its own thread: a model being loaded never holds up requests for another one
        self._galleries, self._datasets = Kept(GALLERIES_KEPT), Kept(DATASETS_KEPT)
        self._examples, self._figures = Kept(EXAMPLES_KEPT), Kept(FIGURES_KEPT)
        self._computed = Kept(FIGURES_KEPT)  # significance marks and other results of many files
        self._pairs = Kept(PAIRS_KEPT)
        self._image_roots: list[str] | None = None

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
            runs[Path(name).stem] = r
        return runs, bad

    def run(self, stem: str) -> dict:
        """The run with this id, or the one its short id, a unique prefix or its configuration name (the newest
        run of it) names (:func:`cca_bench.results.find_run`)."""
        from cca_bench.results import find_run

        runs, _ = self.runs()
        if stem in runs:
            return runs[stem]
        try:
            return find_run(list(runs.values()), stem, folder=self.results_root / "runs")
        except UserError as e:
            raise Missing(str(e)) from None

    # ------------------------------------------------------------------------------------------ models

    def models(self) -> list[str]:
        """Names of the saved models (``models/<name>.json`` beside ``<name>.safetensors``), sorted."""
        folder = self.results_root / "models"
        if not folder.is_dir():
            return []
        return sorted(
            f.name[: -len(".json")]
            for f in folder.glob("*.json")
            if f.with_name(f.name[: -len(".json")] + ".safetensors").is_file()
        )

    def has_model(self, name: str | None) -> bool:
        return bool(name) and name in self.models()

    def model_config(self, name: str) -> dict:
        """The saved model's config as its weights file records it (:func:`cca_bench.methods.base.read_config`:
        the safetensors metadata, not the ``.json`` copy a killed ``generate`` can leave stale)."""
        from cca_bench.methods.base import read_config

        path = self.file("models", f"{name}.safetensors")
        return read_config(path.with_name(name))

    def cv_report(self, name: str) -> dict | None:
        """The CV report ``generate --cv`` wrote for the model (``cv/<name>.json``), or None."""
        try:
            report = json.loads(self.file("cv", f"{name}.json").read_text())
        except (Missing, OSError, ValueError):
            return None
        needed = isinstance(report, dict) and all(k in report for k in ("grid", "best", "rows", "select"))
        return report if needed and isinstance(report["grid"], dict) and isinstance(report["rows"], list) else None

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

    def gallery(self, model: str, split: str, wait: float | None = None):
        """The ``split`` of the dataset ``model`` was fitted on, encoded and ready to search (kept in memory).
        ``wait``: seconds to wait for a gallery being built before raising :class:`~cca_bench.web.kept.Loading`
        (None: as long as it takes)."""
        if not self.has_model(model):
            raise Missing(f"no saved model named {model!r} under {self.results_root / 'models'}: run `generate` first")
        key = (model, split, self._stamp(model))  # a model fitted again under the same name is reopened
        return self._galleries.get(key, lambda: self._open(model, split), wait, f"model {model} on {split}")

    def _open(self, model: str, split: str):
        from cca_bench.datasets.cache import read_only
        from cca_bench.search import open_gallery

        method, dataset, features, opts, ds = self._saved(model)
        if split not in ds.splits:
            raise Missing(f"{dataset} has no split {split!r} (it has {', '.join(ds.splits)})")
        with read_only():  # the split's features are read from the cache when there, else computed in memory
            return open_gallery(method, dataset, split, features, opts, read_only_cache=True, dataset=ds)

    def _saved(self, model: str) -> tuple:
        """(method, dataset name, features, Options, CaptionDataset) of a saved model; the dataset is loaded once
        (a Karpathy JSON can take seconds to parse; the DATASETS_KEPT most recently used are kept)."""
        from cca_bench.benchmark import Options, load_dataset, saved_model_options

        def load():
            from cca_bench.datasets.cache import read_only

            base = Options.of(
                data_root=self.data_root, results_root=self.results_root, device=self.device, progress=False
            )
            method, dataset, features, opts = saved_model_options(model, self.model_config(model), base)
            with read_only():  # a parsed dataset a command cached is read; none is written
                return method, dataset, features, opts, load_dataset(dataset, opts)

        return self._datasets.get((model, self._stamp(model)), load, what=f"the dataset of {model}")

    def _stamp(self, model: str) -> tuple:
        """When the model's files last changed."""
        return tuple(self.file("models", f"{model}{ext}").stat().st_mtime_ns for ext in (".json", ".safetensors"))

    def splits(self, model: str) -> list[str]:
        """The split names of the dataset ``model`` was fitted on."""
        return list(self._saved(model)[4].splits)

    def examples(
        self, model: str, split: str, distance: str, folds: int = 1, seed: int = 0, wait: float | None = None
    ) -> dict:
        """:func:`cca_bench.search.retrieval_examples` of the model on the split, ranked within ``folds``
        image folds as the run was (COCO 1k: 5), the sample drawn with ``seed`` (the same seed draws the same
        queries for every model of a split); the EXAMPLES_KEPT most recently used are kept."""
        from cca_bench.search import retrieval_examples

        def make():
            g = self.gallery(model, split)
            emb_i, emb_t = g.model.embed_images(g.features), g.model.embed_texts(g.features)
            return retrieval_examples(emb_i, emb_t, g.features.image_index, distance, folds=folds, seed=seed)

        key = (model, split, distance, folds, seed, self._stamp(model))
        return self._examples.get(key, make, wait, f"examples of {model} on {split}")

    def figure_png(self, key, draw) -> bytes:
        """PNG bytes of the matplotlib figure ``draw()`` returns, drawn once per ``key`` (include the files'
        stamps in it) and kept."""

        def make():
            buf = io.BytesIO()
            draw().savefig(buf, format="png")
            return buf.getvalue()

        return self._figures.get(key, make, what="a figure")

    def computed(self, key, make, wait: float | None = None, what: str = "a computation"):
        """``make()`` once per ``key`` (include the files' stamps in it), then kept. ``wait``: seconds to wait
        for it before :class:`~cca_bench.web.kept.Loading` (it goes on in the background); None: as long as it
        takes."""
        return self._computed.get(key, make, wait, what)

    def computed_pairs(self, keys: list, make_many) -> list:
        """The value of each key (one per pair of run files: include their stamps), the missing ones made
        together by ``make_many(missing keys)`` in the calling thread, then kept (:meth:`Kept.get_many`)."""
        return self._pairs.get_many(keys, make_many, "paired tests")

    @staticmethod
    def stamp(path) -> int:
        """When a file last changed (part of the keys of what is drawn from it)."""
        return Path(path).stat().st_mtime_ns

    # ------------------------------------------------------------------------------------------ a run's split

    def run_split(self, run: dict):
        """:func:`cca_bench.benchmark.run_split` of a run, its dataset kept with the DATASETS_KEPT most recently
        used."""
        from cca_bench.benchmark import run_split

        return run_split(run, self.data_root, lambda key, load: self._datasets.get(key, load, what="a dataset"))

    def run_image_png(self, run: dict, i: int) -> bytes:
        """Image ``i`` of the split a run was scored on, as :meth:`image_png` serves a model's."""
        split = self.run_split(run)
        if split is None:
            raise Missing(f"the split of run {Path(run['_file']).stem} cannot be rebuilt from the data root")
        return self._png_of(split, i)

    # ------------------------------------------------------------------------------------------ images

    def image_png(self, model: str, split: str, i: int) -> bytes:
        """Image ``i`` of the split as PNG bytes (at most IMAGE_SIDE pixels a side), through the dataset's
        loader; an image file must lie inside the data root."""
        return self._png_of(self.gallery(model, split).split, i)

    def _png_of(self, s, i: int) -> bytes:
        """Image ``i`` of the Split ``s`` as PNG bytes (at most IMAGE_SIDE pixels a side)."""
        if not 0 <= i < s.n_images:
            raise Missing(f"{s.dataset}/{s.name} has no image {i} (it has {s.n_images})")
        if s.loader is None:
            raise Missing(f"{s.dataset}/{s.name} has only precomputed features, no images")
        if s.image_paths is not None:
            self._check_image_path(s.image_paths[i])
        image = s.load_image(i)
        image.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    def _check_image_path(self, path) -> None:
        """An image file must lie inside the data root, or inside a folder that a symlink in a dataset folder
        points at (``DATA/flickr8k/images -> /disk/Flicker8k_Dataset``, as the README allows; the dataset
        readers already refused entries that leave their image folder)."""
        real = os.path.realpath(path)
        if not any(real.startswith(root.rstrip(os.sep) + os.sep) for root in self._allowed_image_roots()):
            raise Missing(f"image {Path(path).name} lies outside the data root")

    def _allowed_image_roots(self) -> list[str]:
        """The data root and the targets of folder symlinks up to two levels below it (found once)."""
        if self._image_roots is None:
            links = [
                p
                for pattern in ("*", "*/*", "*/*/*")
                for p in self.data_root.glob(pattern)
                if p.is_symlink() and p.is_dir() and "cache" not in p.relative_to(self.data_root).parts[:1]
            ]
            self._image_roots = [os.path.realpath(self.data_root)] + [os.path.realpath(p) for p in links]
        return self._image_roots

    def has_images(self, model: str, split: str) -> bool:
        try:
            return self.gallery(model, split).split.loader is not None
        except UserError:
            return False
