"""Flickr8k as distributed: ``Flickr8k.token.txt`` (``name.jpg#k<TAB>caption``) + split lists of image names.

Hodosh, Young and Hockenmaier (JAIR 2013). Images come in the order of their first line in the token file,
each image's captions in the order of ``k``; an image in none of the three lists belongs to no split. The
text files may sit in the folder or in ``Flickr8k_text/``; images in ``Flicker8k_Dataset/`` (the archive's
spelling), ``Flickr8k_Dataset/``, ``images/`` or the folder.
"""

from __future__ import annotations

from pathlib import Path

from cca_bench.datasets.layouts import LAYOUTS, Entry, assemble, caption, file_media, utf8_text
from cca_bench.errors import UserError

TOKEN_FILE = "Flickr8k.token.txt"
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
TEXT_DIRS = (".", "Flickr8k_text")
IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "images", ".")


def text_dir(folder: Path) -> Path | None:
    return next((folder / d for d in TEXT_DIRS if (folder / d / TOKEN_FILE).is_file()), None)


def _detect(folder: Path) -> list[str]:
    d = text_dir(folder)
    if d is None or not any((d / f).is_file() for f in SPLIT_FILES.values()):
        return []
    return [str((d / TOKEN_FILE).relative_to(folder))]


def _lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file; bytes that are not UTF-8 are refused with their line, never replaced."""
    try:
        return utf8_text(path.read_bytes(), str(path)).splitlines()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None


def read_tokens(path: Path) -> dict[str, list[tuple[int, str]]]:
    """{image name: [(k, caption), ...]} in the file's order of first appearance."""
    out: dict[str, list[tuple[int, str]]] = {}
    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        head, tab, text = line.partition("\t")
        name, hash_, k = head.strip().rpartition("#")
        if not tab or not hash_ or not k.isdigit():
            raise UserError(f"{path} line {n}: expected 'name.jpg#k<TAB>caption'")
        out.setdefault(name, []).append((int(k), text))
    return out


@LAYOUTS.register(
    "flickr8k_tokens",
    detect=_detect,
    help="Flickr8k's Flickr8k.token.txt + Flickr_8k.{train,dev,test}Images.txt",
    tree="""
NAME/
  Flickr8k.token.txt             name.jpg#k<TAB>caption   (these four may sit in Flickr8k_text/)
  Flickr_8k.trainImages.txt      one image name a line
  Flickr_8k.devImages.txt        the val split
  Flickr_8k.testImages.txt
  Flicker8k_Dataset/*.jpg        (or Flickr8k_Dataset/, images/)
""",
)
def load_flickr8k_tokens(folder: Path, name: str, cache_dir: Path | None = None):
    d = text_dir(folder)
    split_of = {}
    for split, f in SPLIT_FILES.items():
        if (d / f).is_file():
            split_of.update({line.strip(): split for line in _lines(d / f) if line.strip()})
    tokens = read_tokens(d / TOKEN_FILE)
    where = f"{d / TOKEN_FILE}: image {{!r}}"
    entries = [
        Entry(
            image, split_of.get(image), [caption(c, where.format(image)) for _, c in sorted(caps, key=lambda kc: kc[0])]
        )
        for image, caps in tokens.items()
    ]
    return assemble(
        name,
        folder,
        entries,
        file_media(folder, entries, IMAGE_DIRS, str(d / TOKEN_FILE)),
        f"Flickr8k token file {d / TOKEN_FILE}",
    )
