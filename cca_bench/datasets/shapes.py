"""Shapes: a builtin synthetic dataset of captioned scenes (coloured shapes on a 3x3 grid), drawn by Pillow.

Scenes. Image i of split s is ``scene(seed, s, i)``, a function of (seed, split, i) only, so the loader
re-renders it on demand and building the dataset stores no pixels. A scene holds 1 to 3 objects (weights
1:2:2), in distinct cells of a 3x3 grid, with distinct colours; each object has a shape, a colour, a size
(``small`` / ``large``) and a small jitter inside its cell (objects never overlap).

Hard twins. Mean word vectors see a bag of words; two scenes whose captions hold the same words in a
different order or binding defeat them. So an odd image is, with probability ``TWIN_RATE``, a twin of the
even image before it (when that one has 2+ objects): either its colours rotated among the objects
("a red circle and a blue square" -> "a blue circle and a red square") or mirrored left/right (top/bottom
when every object sits in the middle column) ("red circle left of a blue square" -> "... right of ...").

Grammar (``[x]`` optional, ``x|y`` a choice, synonyms chosen at random):

    NP     := a[n] [SIZE] COLOUR SHAPE | a[n] [SIZE] SHAPE in COLOUR
    SIZE   := small|little|tiny (small) ; large|big (large)
    COLOUR := red|scarlet ; orange ; yellow ; green ; blue ; purple|violet ; pink ; black
    SHAPE  := circle|disc ; square ; triangle ; star ; diamond|rhombus ; hexagon ; cross
    LOC    := in the top left corner|at the top left ; at the top|near the top ; ... ; in the centre|in the middle
    REL    := to the left of|left of ; to the right of|right of ; above|over ; below|under|beneath
              (horizontal when the columns differ, vertical when the rows differ, a random one when both)
    one object:  NP LOC | there is NP LOC | LOC there is NP | (a picture|an image|a drawing) of NP LOC
                 | LOC, a SHAPE that is SIZE and COLOUR
    2-3 objects: NP LOC, NP LOC and NP LOC | LOC there is NP, [and] NP LOC[ and NP LOC]
                 | NP REL NP[, and NP LOC] | the picture shows NP, NP and NP;
                   the C S is REL the C S[ and the C S is LOC]
                 | (two|three) shapes: NP LOC, ... and NP LOC

The objects are shuffled for every caption, so word order varies; 5 distinct captions per image. Every
caption names every object's colour and shape (sizes may be left out), which the tests check.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cca_bench.datasets.base import CaptionDataset, Split, parse_options, tokenize
from cca_bench.registry import DATASETS

CAPTIONS_PER_IMAGE = 5
TWIN_RATE = 0.5
GRID = 3
RADIUS = {"small": 0.24, "large": 0.42}  # fractions of a cell; + JITTER < 0.5 so objects never overlap
JITTER = 0.06
BACKGROUND = (235, 235, 235)
SUPERSAMPLE = 2

COLOURS: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "red": ((215, 40, 40), ("red", "scarlet")),
    "orange": ((245, 140, 20), ("orange",)),
    "yellow": ((240, 205, 20), ("yellow",)),
    "green": ((40, 160, 60), ("green",)),
    "blue": ((40, 80, 215), ("blue",)),
    "purple": ((140, 60, 170), ("purple", "violet")),
    "pink": ((245, 130, 190), ("pink",)),
    "black": ((25, 25, 25), ("black",)),
}
SIZES = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
LOCATIONS = {
    (0, 0): ("in the top left corner", "at the top left"),
    (0, 1): ("at the top", "near the top"),
    (0, 2): ("in the top right corner", "at the top right"),
    (1, 0): ("on the left", "on the left side"),
    (1, 1): ("in the centre", "in the middle"),
    (1, 2): ("on the right", "on the right side"),
    (2, 0): ("in the bottom left corner", "at the bottom left"),
    (2, 1): ("at the bottom", "near the bottom"),
    (2, 2): ("in the bottom right corner", "at the bottom right"),
}
RELATIONS = {
    "left": ("to the left of", "left of"),
    "right": ("to the right of", "right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
NUMBERS = {2: "two", 3: "three"}
_N_OBJECTS = (1, 2, 2, 3, 3)  # 1:2:2
_COLOUR_NAMES = sorted(COLOURS)
_SIZE_NAMES = sorted(SIZES)


class Obj(NamedTuple):
    """One object of a scene: names, grid cell (row, col) and jitter (dy, dx) in fractions of a cell."""

    shape: str
    colour: str
    size: str
    row: int
    col: int
    dy: float
    dx: float


# --- drawing: one function per shape, (draw, cx, cy, r, fill) ---------------------------------------


def _polygon(cx: float, cy: float, radii: tuple[float, ...], n: int, start_deg: float) -> list[tuple]:
    """n*len(radii) vertices around (cx, cy), radii cycling (a star alternates outer and inner)."""
    k = n * len(radii)
    angles = [math.radians(start_deg + 360 * j / k) for j in range(k)]
    return [
        (cx + radii[j % len(radii)] * math.cos(a), cy + radii[j % len(radii)] * math.sin(a))
        for j, a in enumerate(angles)
    ]


def _cross(cx: float, cy: float, r: float) -> list[tuple]:
    w = 0.35 * r
    pts = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r), (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r)]
    return [(cx + x, cy + y) for x, y in pts]


_DRAW: dict[str, Callable] = {
    "circle": lambda d, x, y, r, f: d.ellipse([x - r, y - r, x + r, y + r], fill=f),
    "square": lambda d, x, y, r, f: d.rectangle([x - 0.85 * r, y - 0.85 * r, x + 0.85 * r, y + 0.85 * r], fill=f),
    "triangle": lambda d, x, y, r, f: d.polygon(_polygon(x, y + 0.15 * r, (r,), 3, -90), fill=f),
    "star": lambda d, x, y, r, f: d.polygon(_polygon(x, y + 0.05 * r, (r, 0.45 * r), 5, -90), fill=f),
    "diamond": lambda d, x, y, r, f: d.polygon(_polygon(x, y, (r,), 4, -90), fill=f),
    "hexagon": lambda d, x, y, r, f: d.polygon(_polygon(x, y, (r,), 6, 0), fill=f),
    "cross": lambda d, x, y, r, f: d.polygon(_cross(x, y, r), fill=f),
}
SHAPES: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc"),
    "square": ("square",),
    "triangle": ("triangle",),
    "star": ("star",),
    "diamond": ("diamond", "rhombus"),
    "hexagon": ("hexagon",),
    "cross": ("cross",),
}
_SHAPE_NAMES = sorted(SHAPES)


# --- scenes ------------------------------------------------------------------------------------------


def _pick(rng: random.Random, seq):
    """``rng.choice(seq)`` at a fraction of the cost (one C call; this is the hot loop of the build)."""
    return seq[int(rng.random() * len(seq))]


def _shuffled(rng: random.Random, seq) -> list:
    return sorted(seq, key=lambda _: rng.random())


def _rng(seed: int, split: str, i: int, purpose: str) -> random.Random:
    """A generator seeded by a string (sha512 inside ``random``: the same on every run and platform)."""
    return random.Random(f"shapes/{seed}/{split}/{i}/{purpose}")


def base_scene(seed: int, split: str, i: int) -> tuple[Obj, ...]:
    """A fresh random scene of 1-3 objects in distinct cells with distinct colours."""
    rng = _rng(seed, split, i, "scene")
    n = _pick(rng, _N_OBJECTS)
    cells = rng.sample(range(GRID * GRID), n)
    colours = rng.sample(_COLOUR_NAMES, n)
    return tuple(
        Obj(
            _pick(rng, _SHAPE_NAMES),
            colour,
            _pick(rng, _SIZE_NAMES),
            cell // GRID,
            cell % GRID,
            round(JITTER * (2 * rng.random() - 1), 3),
            round(JITTER * (2 * rng.random() - 1), 3),
        )
        for cell, colour in zip(cells, colours)
    )


def swap_colours(objs: tuple[Obj, ...]) -> tuple[Obj, ...]:
    """Colours rotated by one object: same words, other bindings."""
    return tuple(o._replace(colour=objs[(k + 1) % len(objs)].colour) for k, o in enumerate(objs))


def mirror(objs: tuple[Obj, ...]) -> tuple[Obj, ...]:
    """Left/right mirror image (top/bottom when every object is in the middle column)."""
    if all(o.col == GRID // 2 for o in objs):
        return tuple(o._replace(row=GRID - 1 - o.row, dy=-o.dy) for o in objs)
    return tuple(o._replace(col=GRID - 1 - o.col, dx=-o.dx) for o in objs)


TWINS: dict[str, Callable] = {"swap_colours": swap_colours, "mirror": mirror}


def scene(seed: int, split: str, i: int) -> tuple[Obj, ...]:
    """The scene of image i of ``split``: a base scene, or for odd i maybe a hard twin of scene i-1."""
    if i % 2 == 1:
        rng = _rng(seed, split, i, "twin")
        if rng.random() < TWIN_RATE:
            parent = base_scene(seed, split, i - 1)
            if len(parent) >= 2:
                return TWINS[_pick(rng, sorted(TWINS))](parent)
    return base_scene(seed, split, i)


def render(objs: tuple[Obj, ...], image_size: int = 128):
    """The scene as an (image_size, image_size) RGB ``PIL.Image`` (drawn 2x larger, then downsampled)."""
    from PIL import Image, ImageDraw

    big = image_size * SUPERSAMPLE
    cell = big / GRID
    image = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for o in objs:
        cx, cy = (o.col + 0.5 + o.dx) * cell, (o.row + 0.5 + o.dy) * cell
        _DRAW[o.shape](draw, cx, cy, RADIUS[o.size] * cell, COLOURS[o.colour][0])
    return image.resize((image_size, image_size), Image.Resampling.LANCZOS)


# --- captions ----------------------------------------------------------------------------------------


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _np(o: Obj, rng: random.Random) -> str:
    """A noun phrase naming the object's colour and shape, with its size 70 % of the time."""
    size = _pick(rng, SIZES[o.size]) + " " if rng.random() < 0.7 else ""
    colour, shape = _pick(rng, COLOURS[o.colour][1]), _pick(rng, SHAPES[o.shape])
    if rng.random() < 0.75:
        return _a(f"{size}{colour} {shape}")
    return _a(f"{size}{shape} in {colour}")


def _loc(o: Obj, rng: random.Random) -> str:
    return _pick(rng, LOCATIONS[(o.row, o.col)])


def _rel(a: Obj, b: Obj, rng: random.Random) -> str:
    """How a sits relative to b (their cells differ in a row, a column or both)."""
    options = []
    if a.col != b.col:
        options.append("left" if a.col < b.col else "right")
    if a.row != b.row:
        options.append("above" if a.row < b.row else "below")
    return _pick(rng, RELATIONS[_pick(rng, options)])


def _the(o: Obj, rng: random.Random) -> str:
    return f"the {_pick(rng, COLOURS[o.colour][1])} {_pick(rng, SHAPES[o.shape])}"


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _placed(objs, rng) -> list[str]:
    return [f"{_np(o, rng)} {_loc(o, rng)}" for o in objs]


def _t_there_is(objs, rng) -> str:
    head = f"{_loc(objs[0], rng)} there is {_np(objs[0], rng)}"
    rest = _placed(objs[1:], rng)
    return head if not rest else f"{head}, " + ("and " if len(rest) == 1 else "") + _and(rest)


def _t_relation(objs, rng) -> str:
    text = f"{_np(objs[0], rng)} {_rel(objs[0], objs[1], rng)} {_np(objs[1], rng)}"
    return text if len(objs) == 2 else f"{text}, and " + _placed(objs[2:], rng)[0]


def _t_definite(objs, rng) -> str:
    nps = _and([_np(o, rng) for o in objs])
    text = f"the picture shows {nps}; {_the(objs[0], rng)} is {_rel(objs[0], objs[1], rng)} {_the(objs[1], rng)}"
    return text if len(objs) == 2 else f"{text} and {_the(objs[2], rng)} is {_loc(objs[2], rng)}"


def _t_property(objs, rng) -> str:
    o = objs[0]
    colour, shape = _pick(rng, COLOURS[o.colour][1]), _pick(rng, SHAPES[o.shape])
    return f"{_loc(o, rng)}, {_a(shape)} that is {_pick(rng, SIZES[o.size])} and {colour}"


TEMPLATES_ONE: dict[str, Callable] = {
    "plain": lambda objs, rng: _placed(objs, rng)[0],
    "there_is": _t_there_is,
    "there_is_after": lambda objs, rng: "there is " + _placed(objs, rng)[0],
    "picture": lambda objs, rng: f"{_pick(rng, ('a picture', 'an image', 'a drawing'))} of {_placed(objs, rng)[0]}",
    "property": _t_property,
}
TEMPLATES_MANY: dict[str, Callable] = {
    "list": lambda objs, rng: _and(_placed(objs, rng)),
    "there_is": _t_there_is,
    "relation": _t_relation,
    "definite": _t_definite,
    "count": lambda objs, rng: f"{NUMBERS[len(objs)]} shapes: " + _and(_placed(objs, rng)),
}


def captions_for(objs: tuple[Obj, ...], seed: int, split: str, i: int) -> list[str]:
    """CAPTIONS_PER_IMAGE distinct captions of the scene; templates cycle in a random order."""
    rng = _rng(seed, split, i, "captions")
    templates = TEMPLATES_ONE if len(objs) == 1 else TEMPLATES_MANY
    order = _shuffled(rng, sorted(templates))
    out: list[str] = []
    for attempt in range(50 * CAPTIONS_PER_IMAGE):
        shuffled = _shuffled(rng, objs)
        text = templates[order[attempt % len(order)]](shuffled, rng)
        if text not in out:
            out.append(text)
            if len(out) == CAPTIONS_PER_IMAGE:
                return out
    raise RuntimeError(f"shapes: could not make {CAPTIONS_PER_IMAGE} distinct captions for {objs}")


# --- dataset -----------------------------------------------------------------------------------------


def _load(seed: int, split: str, image_size: int, i: int):
    """Loader body (module level so that ``functools.partial`` of it pickles for worker processes)."""
    return render(scene(seed, split, i), image_size)


def _split(name: str, n: int, offset: int, seed: int, image_size: int) -> Split:
    captions: list[str] = []
    for i in range(n):
        captions.extend(captions_for(scene(seed, name, i), seed, name, i))
    return Split(
        dataset="shapes",
        name=name,
        image_ids=[f"{name}-{i:05d}" for i in range(n)],
        captions=captions,
        tokens=[tokenize(c) for c in captions],
        image_index=np.repeat(np.arange(n, dtype=np.int64), CAPTIONS_PER_IMAGE),
        image_rows=offset + np.arange(n, dtype=np.int64),
        loader=functools.partial(_load, seed, name, image_size),
        image_paths=None,
        extra={"seed": seed, "image_size": image_size},
    )


_DEFAULTS = {"n_train": 6000, "n_val": 1000, "n_test": 1000, "image_size": 128, "seed": 0}
_MINIMUM = {"n_train": 0, "n_val": 0, "n_test": 0, "image_size": 32, "seed": 0}


@DATASETS.register(
    "shapes",
    help="synthetic coloured shapes with 5 captions each: word order and binding matter (builtin)",
    builtin=True,
)
def build_shapes(data_root: Path, **options) -> CaptionDataset:
    """Build the shapes dataset: splits of n_train / n_val / n_test images, rows in that order.

    Options (CLI strings accepted): n_train=6000, n_val=1000, n_test=1000, image_size=128, seed=0.
    """
    opts = parse_options("shapes", options, _DEFAULTS, _MINIMUM)
    sizes = {"train": opts["n_train"], "val": opts["n_val"], "test": opts["n_test"]}
    image_size, seed = opts["image_size"], opts["seed"]
    offsets = np.cumsum([0, *sizes.values()])
    splits = {name: _split(name, n, int(off), seed, image_size) for (name, n), off in zip(sizes.items(), offsets)}
    return CaptionDataset(
        name="shapes",
        root=None,
        splits=splits,
        description=f"synthetic shapes scenes (seed {seed}, {image_size}px), 5 captions per image",
    )
