"""CaptionDataset and Split: image ids, captions, tokens and which image each caption describes."""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import string
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cca_bench.errors import UserError

_PUNCT = str.maketrans("", "", string.punctuation)


def tokenize(text: str) -> list[str]:
    """Karpathy-style tokens: lower case, punctuation deleted (``t-shirt`` -> ``tshirt``), split on space."""
    return text.lower().translate(_PUNCT).split()


def caption_text(value, where: str) -> str:
    """``value`` if it is Unicode text a caption can be, else a UserError naming ``where`` (file and row).

    A null, number, byte string or record is not silently turned into the caption "None", "5", "b'..'" or
    "raw"; a lone surrogate (a JSON ``\\ud800`` escape) is refused here, not when the caption is written out.
    """
    if not isinstance(value, str):
        kind = "null" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"
        raise UserError(f"{where}: a caption must be text, got {kind}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UserError(
            f"{where}: caption holds a lone surrogate {value[e.start]!r} at character {e.start} "
            "(an unpaired \\u escape): not Unicode text"
        ) from None
    return value


def open_rgb(path: Path, draft: tuple[int, int] | None = None):
    """Open an image file as an RGB ``PIL.Image`` (grey, palette, CMYK, alpha are converted).

    ``draft=(w, h)`` lets the JPEG decoder shrink by 1/2, 1/4 or 1/8 while keeping at least w x h pixels
    (much faster decoding when the consumer resizes anyway). Missing or unreadable files raise UserError.
    """
    from PIL import Image

    _name_bomb_warnings(Image)
    if isinstance(path, (str, os.PathLike)):
        _regular_file(path)
    try:
        with Image.open(path) as im:
            _warn_if_huge(Image, im, path)
            if draft is not None:
                im.draft("RGB", draft)
            return im.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"image file not found: {path}") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read image {path}: {e}") from None


class FileLoader:
    """``loader(i)`` of a split: opens ``paths[i]`` as RGB (a class, not a closure, so it pickles; shared by the
    readers of every layout whose images are files)."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __call__(self, i: int):
        return open_rgb(self.paths[i])


def _regular_file(path) -> None:
    """A UserError unless ``path`` is a regular file (after symlinks): opening a FIFO for reading blocks until
    someone writes to it, and a device can be endless, so neither is opened as an image."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"image file not found: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read image {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{path} is not a regular file (a FIFO, device or folder): not read as an image")


@functools.lru_cache(maxsize=1)
def _name_bomb_warnings(Image) -> None:
    """Pillow's decompression-bomb warning does not name the file: silence it once, :func:`_warn_if_huge`
    says the same with the file's name."""
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


_HUGE_WARNED: set[str] = set()  # files already warned about: one warning per file however often it is opened


def _warn_if_huge(Image, im, path) -> None:
    """One warning naming ``path`` when the image is above Pillow's decompression-bomb limit (up to twice
    it; beyond, Pillow refuses with DecompressionBombError)."""
    limit, n = Image.MAX_IMAGE_PIXELS, im.width * im.height
    if limit and n > limit and str(path) not in _HUGE_WARNED:
        _HUGE_WARNED.add(str(path))
        warnings.warn(
            f"image {path} has {im.width} x {im.height} = {n:,} pixels, above Pillow's "
            f"decompression-bomb limit of {limit:,}: read anyway (it may take much memory and time)",
            stacklevel=2,
        )


@dataclass
class Split:
    """One split of a dataset.

    Attributes:
        dataset, name: e.g. ``flickr8k``, ``test``.
        image_ids: (n_img,) stable string ids (file names for file-based datasets).
        captions: (n_txt,) raw caption strings.
        tokens: (n_txt,) token lists (Karpathy tokens when the source has them, else :func:`tokenize`).
        image_index: (n_txt,) int64; caption j describes image ``image_index[j]`` of this split.
        image_rows: (n_img,) int64 row of each image in the dataset's global image order (the column of
            Karpathy's ``vgg_feats.mat``, the row of a precomputed ``.npy``).
        loader: ``loader(i) -> PIL.Image`` for image i of this split, or None when only precomputed
            features exist.
        image_paths: (n_img,) paths of the image files when they are files, else None.
    """

    dataset: str
    name: str
    image_ids: list[str]
    captions: list[str]
    tokens: list[list[str]]
    image_index: np.ndarray
    image_rows: np.ndarray
    loader: Callable[[int], object] | None = None
    image_paths: list[Path] | None = None
    extra: dict = field(default_factory=dict)
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        self.image_index = np.asarray(self.image_index, dtype=np.int64)
        self.image_rows = np.asarray(self.image_rows, dtype=np.int64)
        n_img, n_txt = len(self.image_ids), len(self.captions)
        if len(self.tokens) != n_txt or len(self.image_index) != n_txt:
            raise UserError(
                f"{self.dataset}/{self.name}: {n_txt} captions but {len(self.tokens)} token lists and "
                f"{len(self.image_index)} image indices"
            )
        if n_txt and (self.image_index.min() < 0 or self.image_index.max() >= n_img):
            raise UserError(f"{self.dataset}/{self.name}: a caption points to an image outside 0..{n_img - 1}")

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_captions(self) -> int:
        return len(self.captions)

    def load_image(self, i: int):
        """Image i as an RGB ``PIL.Image``."""
        if self.loader is None:
            raise UserError(
                f"{self.dataset}/{self.name} has no image files, only precomputed features: "
                "use the image encoder made for it (vgg_karpathy or precomp)"
            )
        return self.loader(i)

    def fingerprint(self) -> str:
        """A short hash of ids, captions and pairing: any change to the split changes it (cache keys).

        Computed once per Split (it reads every caption; the cache keys of both encoders need it)."""
        if self._fingerprint is not None:
            return self._fingerprint
        h = hashlib.sha1()
        h.update(f"{self.dataset}/{self.name}".encode())
        for s in self.image_ids:
            h.update(s.encode() + b"\0")
        for s in self.captions:
            h.update(s.encode() + b"\0")
        h.update(self.image_index.tobytes())
        h.update(self.image_rows.tobytes())
        self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def subset(self, images: np.ndarray) -> Split:
        """The split restricted to the given image positions (captions follow their images)."""
        images = np.asarray(images, dtype=np.int64)
        remap = np.full(self.n_images, -1, dtype=np.int64)
        remap[images] = np.arange(len(images))
        keep = np.flatnonzero(remap[self.image_index] >= 0)
        loader = None if self.loader is None else (lambda i, _l=self.loader, _im=images: _l(int(_im[i])))
        return Split(
            dataset=self.dataset,
            name=self.name,
            image_ids=[self.image_ids[i] for i in images],
            captions=[self.captions[j] for j in keep],
            tokens=[self.tokens[j] for j in keep],
            image_index=remap[self.image_index[keep]],
            image_rows=self.image_rows[images],
            loader=loader,
            image_paths=None if self.image_paths is None else [self.image_paths[i] for i in images],
            extra=dict(self.extra),
        )


@dataclass
class CaptionDataset:
    """A named dataset: its folder (if any) and its splits.

    ``splits`` maps split names (``train``, ``val``, ``test``, and others such as ``testall``) to Split.
    ``train`` already includes Karpathy's ``restval``. ``image_encoders`` lists precomputed-feature encoders
    the dataset offers (``vgg_karpathy``, ``precomp``).
    """

    name: str
    root: Path | None
    splits: dict[str, Split]
    description: str = ""
    image_encoders: tuple[str, ...] = ()

    def split(self, name: str) -> Split:
        try:
            return self.splits[name]
        except KeyError:
            raise UserError(f"dataset {self.name!r} has no split {name!r} (it has: {', '.join(self.splits)})") from None


def parse_options(dataset: str, options: dict, defaults: dict, minimum: dict | None = None) -> dict:
    """Builder options merged over ``defaults``, CLI strings converted to the default's type.

    ``-D n_train=200`` arrives as the string "200"; bools accept 1/0, true/false, yes/no. Unknown options,
    unconvertible values and values below ``minimum[key]`` raise a UserError naming the option.
    """
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise UserError(f"{dataset}: unknown option {unknown[0]!r} (valid: {', '.join(defaults)})")
    out = dict(defaults)
    for key, value in options.items():
        out[key] = _convert(dataset, key, value, type(defaults[key]))
        low = (minimum or {}).get(key)
        if low is not None and out[key] < low:
            raise UserError(f"{dataset}: option {key}={out[key]} must be at least {low}")
    return out


def _convert(dataset: str, key: str, value, kind: type):
    if isinstance(value, str):
        text = value.strip().lower()
        if kind is bool and text in ("1", "true", "yes", "0", "false", "no"):
            return text in ("1", "true", "yes")
        if kind is int and text.lstrip("-").isdigit():
            return int(text)
    elif kind is bool and isinstance(value, (bool, np.bool_)):
        return bool(value)
    elif kind is int and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    elif kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    raise UserError(f"{dataset}: option {key}={value!r} is not a valid {'integer' if kind is int else kind.__name__}")
