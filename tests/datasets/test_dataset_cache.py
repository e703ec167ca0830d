"""Parsed-dataset cache: a second load reads DATA/cache/datasets and gives the same dataset; edits rebuild it."""

import json
import os

import numpy as np

from cca_bench.datasets import get_dataset
from tests.datasets.test_karpathy import IMAGES, karpathy_json, write_images


def _same(a, b):
    assert (a.name, a.root, a.description, a.image_encoders) == (b.name, b.root, b.description, b.image_encoders)
    assert list(a.splits) == list(b.splits)
    for s in a.splits:
        x, y = a.splits[s], b.splits[s]
        assert (x.image_ids, x.captions, x.tokens, x.image_paths, x.extra) == (
            y.image_ids,
            y.captions,
            y.tokens,
            y.image_paths,
            y.extra,
        )
        assert np.array_equal(x.image_index, y.image_index) and np.array_equal(x.image_rows, y.image_rows)
        assert x.fingerprint() == y.fingerprint()
        assert np.array_equal(np.asarray(x.load_image(0)), np.asarray(y.load_image(0)))


def _folder(tmp_path, images=IMAGES):
    folder = tmp_path / "data" / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps(karpathy_json(images)))
    write_images(folder / "images", [fn for fn, _, _ in IMAGES])
    return tmp_path / "data"


def identity(path) -> tuple:
    """(inode, device, bytes) of a file: the atomic writer renames a new file over it, so a rewrite changes the
    inode even when the content and a coarse file system's mtime stay the same."""
    st = path.stat()
    return st.st_ino, st.st_dev, path.read_bytes()


def test_second_load_comes_from_the_cache(tmp_path):
    root = _folder(tmp_path)
    first = get_dataset("tiny", root)
    cached = list((root / "cache" / "datasets").glob("tiny-karpathy-*.npz"))
    assert len(cached) == 1
    before = identity(cached[0])
    second = get_dataset("tiny", root)
    _same(first, second)
    assert identity(cached[0]) == before  # read, not rewritten (planted: an unconditional write fails here)
    assert second.split("train").tokens[2] == ["two", "cats", "sleep"]


def test_an_edited_source_or_a_damaged_entry_is_rebuilt(tmp_path):
    root = _folder(tmp_path)
    get_dataset("tiny", root)
    changed = [(fn, s, [c + " Again." for c in caps]) for fn, s, caps in IMAGES]
    path = root / "tiny" / "dataset.json"
    path.write_text(json.dumps(karpathy_json(changed)))
    os.utime(path, ns=(1, 1))  # size and mtime both change in real edits; either is enough
    assert get_dataset("tiny", root).split("test").captions == ["A man surfing. Again."]
    for f in (root / "cache" / "datasets").glob("*.npz"):
        f.write_bytes(b"not a zip")
    assert get_dataset("tiny", root).split("test").captions == ["A man surfing. Again."]


def test_strings_with_separator_characters_are_not_cached(tmp_path):
    odd = [(fn, s, [c.replace(" ", "\x1e", 1) for c in caps]) for fn, s, caps in IMAGES]
    root = _folder(tmp_path, odd)
    assert get_dataset("tiny", root).split("test").captions == ["A\x1eman surfing."]
    assert not list((root / "cache" / "datasets").glob("*.npz"))
    assert get_dataset("tiny", root).split("test").captions == ["A\x1eman surfing."]


def _planted(root, name, layout):
    """Replace the one cache entry of ``name`` by a different dataset under the same key (a marker caption)."""
    from cca_bench.datasets.cache import pack
    from cca_bench.fsio import write_atomic

    (entry,) = (root / "cache" / "datasets").glob(f"{name}-{layout}-*.npz")
    ds = get_dataset(name, root)
    ds.split("test").captions[0] = "PLANTED"
    write_atomic(entry, lambda f: np.savez(f, **pack(ds)))
    assert get_dataset(name, root).split("test").captions == ["PLANTED"]  # the entry is what a cached load reads
    return entry


def test_no_cache_neither_reads_nor_writes_the_parsed_cache(tmp_path):
    """--no-cache (``parsed_cache=False``) parses the source again, for a folder and a registered name alike."""
    import shutil

    root = _folder(tmp_path)
    shutil.copytree(root / "tiny", root / "flickr8k")
    for name in ("tiny", "flickr8k"):
        assert get_dataset(name, root, parsed_cache=False).split("test").captions == ["A man surfing."]
    assert not (root / "cache").exists()  # nothing written
    for name in ("tiny", "flickr8k"):
        get_dataset(name, root)
        entry = _planted(root, name, "karpathy")
        before = identity(entry)
        assert get_dataset(name, root, parsed_cache=False).split("test").captions == ["A man surfing."]
        assert identity(entry) == before  # nor rewritten


def test_cli_no_cache_bypasses_the_parsed_cache(tmp_path):
    from cca_bench.__main__ import main

    root = _folder(tmp_path)
    get_dataset("tiny", root)
    entry = _planted(root, "tiny", "karpathy")
    out = tmp_path / "out"
    assert main(["export-split", "tiny", "test", str(out), "--no-cache", "--data-root", str(root), "-q"]) == 0
    assert (out / "captions.txt").read_text().splitlines() == ["A man surfing."]
    assert main(["export-split", "tiny", "test", str(out), "--data-root", str(root), "-q"]) == 0
    assert (out / "captions.txt").read_text().splitlines() == ["PLANTED"]
    assert entry.exists()


def test_read_only_reads_entries_and_writes_none(tmp_path):
    """The web app's mode: an entry a command wrote is read; a missing one is not written."""
    from cca_bench.datasets.cache import read_only

    root = _folder(tmp_path)
    with read_only():
        assert get_dataset("tiny", root).split("test").captions == ["A man surfing."]
    assert not list((root / "cache").rglob("*.npz"))
    get_dataset("tiny", root)
    _planted(root, "tiny", "karpathy")
    with read_only():
        assert get_dataset("tiny", root).split("test").captions == ["PLANTED"]


def test_an_edited_entry_cannot_point_outside_the_dataset(tmp_path):
    """The paths in an entry are checked again when a split is read: an entry rewritten to name a file
    elsewhere is refused (naming the entry), and a data root whose image folder is absent still caches."""
    import pytest

    from cca_bench.datasets import cache
    from cca_bench.errors import UserError

    root = _folder(tmp_path)
    get_dataset("tiny", root)
    entry = next((root / "cache" / "datasets").glob("tiny-karpathy-*.npz"))
    arrays = dict(np.load(entry, allow_pickle=False))
    n = len(bytes(arrays["test.paths"]).decode().split(cache.RS))
    arrays["test.paths"] = np.frombuffer(cache.RS.join(["/etc/hostname"] * n).encode(), np.uint8)
    np.savez(entry, **arrays)
    ds = get_dataset("tiny", root)
    with pytest.raises(UserError, match="cached image path '/etc/hostname' is not inside the dataset's folders"):
        ds.split("test")
    assert ds.split("train").n_images == 3  # the other splits' paths are sound

    import shutil

    shutil.rmtree(root / "tiny" / "images")  # no image folder: paths were never resolved, and still load
    first = get_dataset("tiny", root).split("test").image_paths
    assert get_dataset("tiny", root).split("test").image_paths == first
