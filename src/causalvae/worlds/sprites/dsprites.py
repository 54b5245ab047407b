"""The dSprites factor grid, rendered locally, and the official archive, read safely.

dSprites (Matthey, Higgins, Hassabis, Lerchner, 2017) is every combination of six factors,
one 64 x 64 binary image each (0/1 as ``uint8``), in a fixed order::

    color (1: white)  shape (3: square, ellipse, heart)  scale (6: linspace(0.5, 1, 6))
    orientation (40: linspace(0, 2 pi, 40), both ends included)
    posX (32: linspace(0, 1, 32))  posY (32: linspace(0, 1, 32))

    1 x 3 x 6 x 40 x 32 x 32 = 737,280 images; posY varies fastest, then posX, orientation,
    scale, shape. index = classes . (737280, 245760, 40960, 1024, 32, 1)

This module never downloads anything. It draws the same grid itself (:func:`write_grid`,
``causalvae generate dsprites``) and reads the official archive
``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` when a user has one
(:func:`read_official`, with ``allow_pickle=False``: the archive's pickled ``metadata`` entry
is never unpickled, the metadata is rebuilt from the known facts). Both come back under the
official key names (``imgs``, ``latents_values``, ``latents_classes``, ``metadata``), so code
written for the archive runs on ours unchanged, including ``metadata = d["metadata"][()]``.

**Geometry.** Coordinates are pixels, x to the right and y *down* (image rows): ``posX = 0``
is the left of the position range, ``posY = 0`` its top. A sprite is drawn once per
(shape, scale, orientation) on a 33 x 33 canvas centred on its own centre and pasted at the
1024 positions by array slicing: position class ``(i, j)`` puts the canvas's top-left corner
at column ``i``, row ``j``, so the sprite's centre is at ``16.5 + i`` (x) and ``16.5 + j``
(y) in continuous pixel coordinates. The 32 positions are one pixel apart and cover the
central 32 x 32 square (centres 16.5 .. 47.5); as the canvas spans ``i .. i + 32`` and
``i <= 31``, no pixel of any sprite can leave the frame, and no sprite is clipped by its
canvas (the farthest point of any sprite is 13.7 px from its centre; the canvas half-width is 16.5).

**Shapes** at scale 1 (a scale multiplies every length): a square of side 19 px; an ellipse
of semi-axes 13 x 7 px (long axis horizontal at orientation 0); a heart 24 px wide and
22.4 px tall (the parametric heart ``x = 16 sin^3 t``, ``y = 13 cos t - 5 cos 2t - 2 cos 3t
- cos 4t`` times 0.75, lobes up and tip down at orientation 0, centred on its bounding box).
An orientation ``theta`` turns the sprite counter-clockwise on screen about its centre.

**Rasterisation.** Supersampling: each pixel holds 8 x 8 sample points; a sample is inside
by the shape's exact test (rotated back into the shape's frame) and a pixel is 1 when more
than half of its samples are. The square and ellipse are tested analytically; the heart by
looking up a 2048 x 2048 mask of its polygon (600 vertices) drawn once with Pillow (a mask
cell is 1/64 px at scale 1). Orientation class 39 (2 pi) is drawn as class 0, so the first
and the last orientation give identical pictures, as in the official grid.

**Symmetry.** :func:`equivalent` lists, for a factor combination, every combination whose
image differs from it by at most ``k`` pixels, with ``k`` per shape and scale
(:data:`SYMMETRY_K`, see its note): 0 = 2 pi, a square's quarter turns and an ellipse's half
turn, as nearly as the grid has them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import zipfile
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from causalvae.errors import CausalVAEError, unknown
from causalvae.io import open_npy, replace_dir, staging_dir

__all__ = [
    "ARCHIVE_NAME",
    "LATENTS_NAMES",
    "LATENTS_SIZES",
    "LATENTS_BASES",
    "N_IMAGES",
    "SHAPES",
    "SYMMETRY_K",
    "SYMMETRY_PERIOD",
    "GridError",
    "Metadata",
    "possible_values",
    "latents_to_index",
    "index_to_latents",
    "all_classes",
    "classes_to_values",
    "sprite",
    "render_sprite",
    "image",
    "images",
    "position_block",
    "metadata",
    "write_grid",
    "load_grid",
    "read_official",
    "read_images",
    "orientation_differences",
    "symmetry_tolerances",
    "symmetry_k",
    "equivalent",
    "equivalent_indices",
    "GRAPH_BINS",
    "STYLE_FIELDS",
    "graph_classes",
    "sheet",
]

ARCHIVE_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
LATENTS_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENTS_SIZES = (1, 3, 6, 40, 32, 32)
#: ``index = classes . LATENTS_BASES`` (the official notebook's ``latents_bases``).
LATENTS_BASES = (737280, 245760, 40960, 1024, 32, 1)
N_IMAGES = 737280
SHAPES = ("square", "ellipse", "heart")
RESOLUTION = 64
#: Side of the canvas a sprite is drawn on; 64 - 31 (positions) + 0 = 33 keeps it in frame.
CANVAS = 33
SUPERSAMPLE = 8
#: Scale-1 sizes in pixels (see the module docstring).
SQUARE_HALF = 9.5
ELLIPSE_AXES = (13.0, 7.0)
HEART_K = 0.75
_HEART_MASK_RES = 64  # mask cells per pixel at scale 1
_HEART_MASK_HALF = 16.0  # the mask covers [-16, 16]^2 px at scale 1

#: The symmetry tolerance k (pixels) of each shape at each scale class (0.5 .. 1.0).
#:
#: The grid only approximates the symmetries: its step 2 pi / 39 does not divide 90 or 180
#: degrees, so the grid orientation nearest to a square's quarter turn or an ellipse's half
#: turn is up to half a step (4.6 degrees) off, and its image differs by a few pixels. k is
#: the smallest tolerance that accepts, for *every* orientation, the nearest grid
#: orientation(s) to each of its exact symmetric images (measured on this renderer by
#: :func:`symmetry_tolerances`). The heart has no symmetry: k = 0 keeps only identical
#: images (0 = 2 pi). With these k no change of shape, scale or position, alone or with any
#: orientation, comes within k pixels (the nearest is 13 px away at scale 0.5 and 26 px at
#: scale 1: docs/sprites.md), so :func:`equivalent` only has to compare orientations.
SYMMETRY_K: dict[str, tuple[int, ...]] = {
    "square": (8, 16, 16, 24, 24, 28),
    "ellipse": (8, 10, 10, 14, 18, 20),
    "heart": (0, 0, 0, 0, 0, 0),
}
#: The rotations that map each shape onto itself.
SYMMETRY_PERIOD = {"square": math.pi / 2, "ellipse": math.pi, "heart": 2 * math.pi}

_FORMAT_DTYPES = {"imgs": np.uint8, "latents_values": np.float64, "latents_classes": np.int64}


class GridError(CausalVAEError):
    """A grid directory or an official archive that is missing, foreign or malformed."""


class Metadata(dict):
    """The archive's metadata dict. ``m[()]`` returns ``m`` itself, so the official loading
    idiom ``metadata = dataset_zip["metadata"][()]`` works on it unchanged."""

    def __getitem__(self, key):
        if key == ():
            return self
        return super().__getitem__(key)


# ---------------------------------------------------------------------------- the grid


def possible_values() -> dict[str, np.ndarray]:
    """Each factor's values (as in the official ``latents_possible_values``)."""
    return {
        "color": np.array([1.0]),
        "shape": np.array([1.0, 2.0, 3.0]),
        "scale": np.linspace(0.5, 1.0, 6),
        "orientation": np.linspace(0.0, 2 * np.pi, 40),
        "posX": np.linspace(0.0, 1.0, 32),
        "posY": np.linspace(0.0, 1.0, 32),
    }


def latents_bases(sizes: Sequence[int] = LATENTS_SIZES) -> np.ndarray:
    """``concatenate(sizes[::-1].cumprod()[::-1][1:], [1])`` as in the official notebook."""
    s = np.asarray(sizes, dtype=np.int64)
    return np.concatenate([s[::-1].cumprod()[::-1][1:], [1]]).astype(np.int64)


def _as_classes(classes: Any) -> np.ndarray:
    c = np.asarray(classes, dtype=np.int64)
    if c.shape[-1:] == (5,):  # without the color column
        c = np.concatenate([np.zeros(c.shape[:-1] + (1,), np.int64), c], axis=-1)
    if c.shape[-1:] != (6,):
        raise GridError(f"factor classes need 6 columns {LATENTS_NAMES} (or 5 without color), got shape {c.shape}")
    return c


def latents_to_index(classes: Any, sizes: Sequence[int] = LATENTS_SIZES) -> np.ndarray:
    """The image index of factor-class vectors ``(..., 6)`` (or ``(..., 5)`` without color)."""
    c = _as_classes(classes)
    bad = (c < 0) | (c >= np.asarray(sizes))
    if bad.any():
        row = c[np.nonzero(bad.any(axis=-1))][0] if c.ndim > 1 else c
        raise GridError(f"factor classes {row.tolist()} out of range for sizes {list(sizes)}")
    return c @ latents_bases(sizes)


def index_to_latents(index: Any, sizes: Sequence[int] = LATENTS_SIZES) -> np.ndarray:
    """The factor-class vectors ``(..., 6)`` of image indices."""
    idx = np.asarray(index, dtype=np.int64)
    total = math.prod(sizes)
    if ((idx < 0) | (idx >= total)).any():
        raise GridError(f"image index out of range 0..{total - 1}")
    return np.stack(np.unravel_index(idx, tuple(sizes)), axis=-1).astype(np.int64)


def all_classes(sizes: Sequence[int] = LATENTS_SIZES) -> np.ndarray:
    """Every factor-class vector in the official order, ``(prod(sizes), 6)`` int64."""
    return np.indices(tuple(sizes), dtype=np.int64).reshape(len(sizes), -1).T.copy()


def classes_to_values(classes: Any, selection: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Factor values ``(..., 6)`` float64 of class vectors (``selection``: a reduced grid's
    official class indices per factor; classes then index into it)."""
    c = _as_classes(classes)
    pv = possible_values()
    cols = []
    for k, name in enumerate(LATENTS_NAMES):
        vals = pv[name] if selection is None else pv[name][np.asarray(selection[k])]
        cols.append(vals[c[..., k]])
    return np.stack(cols, axis=-1)


# ---------------------------------------------------------------------------- rendering


@lru_cache(maxsize=1)
def _heart_mask() -> np.ndarray:
    from PIL import Image, ImageDraw

    t = np.linspace(0.0, 2 * np.pi, 600, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    y = y - (y.max() + y.min()) / 2
    x, y = x * HEART_K, y * HEART_K
    n = int(2 * _HEART_MASK_HALF * _HEART_MASK_RES)
    cols = (x + _HEART_MASK_HALF) * _HEART_MASK_RES
    rows = (_HEART_MASK_HALF - y) * _HEART_MASK_RES  # y up -> rows down
    im = Image.new("1", (n, n), 0)
    ImageDraw.Draw(im).polygon(list(zip(cols.tolist(), rows.tolist())), fill=1)
    return np.asarray(im, dtype=bool)


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The shape's exact inside test at scale 1 (u right, v up, pixels from its centre)."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= SQUARE_HALF
    if shape == 1:
        a, b = ELLIPSE_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if shape == 2:
        mask = _heart_mask()
        n = mask.shape[0]
        c = np.floor((u + _HEART_MASK_HALF) * _HEART_MASK_RES).astype(np.int64)
        r = np.floor((_HEART_MASK_HALF - v) * _HEART_MASK_RES).astype(np.int64)
        ok = (c >= 0) & (c < n) & (r >= 0) & (r < n)
        out = np.zeros(u.shape, dtype=bool)
        out[ok] = mask[r[ok], c[ok]]
        return out
    raise GridError(f"shape class {shape} out of range 0..2")


@lru_cache(maxsize=4)
def _samples(canvas: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample offsets from the canvas centre: x right, y up, SUPERSAMPLE^2 per pixel."""
    t = (np.arange(canvas * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - canvas / 2
    x, y = np.meshgrid(t, -t)
    return x, y


def render_sprite(shape: int, scale: float, angle: float, canvas: int = CANVAS) -> np.ndarray:
    """Draw one sprite on a ``canvas`` x ``canvas`` grid centred on it, uint8 0/1.

    ``shape`` is a class (0 square, 1 ellipse, 2 heart), ``scale`` and ``angle`` (radians,
    counter-clockwise) are values. A bigger ``canvas`` shows that nothing is clipped.
    """
    if not 0 <= int(shape) < 3:
        raise GridError(f"shape class {shape} out of range 0..2")
    x, y = _samples(int(canvas))
    c, s = math.cos(angle), math.sin(angle)
    u = (c * x + s * y) / scale
    v = (-s * x + c * y) / scale
    inside = _inside(int(shape), u, v)
    k = SUPERSAMPLE
    cover = inside.reshape(canvas, k, canvas, k).sum(axis=(1, 3))
    return (cover * 2 > k * k).astype(np.uint8)


@lru_cache(maxsize=None)
def sprite(shape: int, scale: int, orientation: int) -> np.ndarray:
    """The 33 x 33 sprite of a (shape, scale, orientation) class triple (read-only, cached).

    Orientation class 39 (2 pi) is the same picture as class 0 and is drawn as class 0.
    """
    for name, v in (("shape", shape), ("scale", scale), ("orientation", orientation)):
        size = LATENTS_SIZES[LATENTS_NAMES.index(name)]
        if not 0 <= int(v) < size:
            raise GridError(f"{name} class {v} out of range 0..{size - 1}")
    pv = possible_values()
    o = int(orientation) % 39
    out = render_sprite(int(shape), float(pv["scale"][scale]), float(pv["orientation"][o]))
    out.setflags(write=False)
    return out


def position_block(shape: int, scale: int, orientation: int, posx: Sequence[int] | None = None, posy: Sequence[int] | None = None) -> np.ndarray:
    """The images of one sprite at positions ``posx`` x ``posy`` (classes; default all 32):
    ``(len(posx), len(posy), 64, 64)`` uint8, posY fastest as in the official order."""
    xs = np.arange(32) if posx is None else np.asarray(posx, dtype=np.int64)
    ys = np.arange(32) if posy is None else np.asarray(posy, dtype=np.int64)
    field = np.zeros((RESOLUTION + 31, RESOLUTION + 31), dtype=np.uint8)
    field[31 : 31 + CANVAS, 31 : 31 + CANVAS] = sprite(shape, scale, orientation)
    windows = np.lib.stride_tricks.sliding_window_view(field, (RESOLUTION, RESOLUTION))
    # windows[i, j] = field[i:i+64, j:j+64] has the sprite's canvas at row 31 - i, column 31 - j.
    return windows[(31 - ys)[None, :], (31 - xs)[:, None]]


def image(classes: Any) -> np.ndarray:
    """The 64 x 64 image of one factor-class vector (6 columns, or 5 without color)."""
    c = _as_classes(classes)
    if c.shape != (6,):
        raise GridError(f"image() takes one class vector, got shape {c.shape}; use images()")
    latents_to_index(c)
    out = np.zeros((RESOLUTION, RESOLUTION), dtype=np.uint8)
    x0, y0 = int(c[4]), int(c[5])
    out[y0 : y0 + CANVAS, x0 : x0 + CANVAS] = sprite(int(c[1]), int(c[2]), int(c[3]))
    return out


def images(classes: Any) -> np.ndarray:
    """The images ``(N, 64, 64)`` of factor-class vectors ``(N, 6)`` (or ``(N, 5)``)."""
    c = _as_classes(classes).reshape(-1, 6)
    latents_to_index(c)
    out = np.zeros((len(c), RESOLUTION, RESOLUTION), dtype=np.uint8)
    for i, (_, sh, sc, o, x0, y0) in enumerate(c.tolist()):
        out[i, y0 : y0 + CANVAS, x0 : x0 + CANVAS] = sprite(sh, sc, o)
    return out


# ---------------------------------------------------------------------------- the causal variant

#: The sprites graph's coarse factors: graph value b of each covers the grid classes
#: ``size * b .. size * b + size - 1``; which one is exogenous style (an *offset*).
GRAPH_BINS = {"orientation": 5, "posX": 4, "posY": 4}
#: The style fields of a sprites dataset: the offset of each binned factor within its bin.
STYLE_FIELDS = ("orientation_offset", "posX_offset", "posY_offset")


def graph_classes(values: Mapping[str, Any], offsets: Mapping[str, Any]) -> np.ndarray:
    """The official class vectors ``(N, 6)`` of sprites-graph units.

    ``values`` maps shape, scale, orientation, posX and posY to value indices of the sprites
    graph; ``offsets`` maps orientation, posX and posY to the offset within the bin
    (0 .. 4, 0 .. 3, 0 .. 3), or the STYLE_FIELDS names to the same.
    """
    def get(m: Mapping[str, Any], *names: str) -> np.ndarray:
        for name in names:
            if name in m:
                return np.asarray(m[name], dtype=np.int64)
        raise GridError(f"missing '{names[0]}'")

    shape, scale = get(values, "shape"), get(values, "scale")
    cols = [np.zeros_like(shape), shape, scale]
    for name, size in GRAPH_BINS.items():
        off = get(offsets, name, f"{name}_offset")
        if ((off < 0) | (off >= size)).any():
            raise GridError(f"{name} offsets must be in 0..{size - 1}")
        cols.append(get(values, name) * size + off)
    out = np.stack(np.broadcast_arrays(*cols), axis=-1)
    latents_to_index(out)
    return out


# ---------------------------------------------------------------------------- metadata


def _selection(select: Mapping[str, Sequence[int]] | None) -> tuple[np.ndarray, ...]:
    """Per factor, the official classes a (reduced) grid keeps, in increasing order."""
    select = dict(select or {})
    for name in select:
        if name not in LATENTS_NAMES:
            raise unknown("factor", str(name), LATENTS_NAMES, error=GridError)
    out = []
    for name, size in zip(LATENTS_NAMES, LATENTS_SIZES):
        sel = np.arange(size) if name not in select else np.asarray(select[name], dtype=np.int64).ravel()
        if sel.size == 0 or (sel < 0).any() or (sel >= size).any() or (np.diff(sel) <= 0).any():
            raise GridError(f"selection of '{name}' must be increasing classes in 0..{size - 1}, got {sel.tolist()}")
        out.append(sel)
    return tuple(out)


def metadata(selection: Sequence[np.ndarray] | None = None, source: str = "rendered by causalvae") -> Metadata:
    """The official metadata rebuilt from the known facts (of a reduced grid when given)."""
    pv = possible_values()
    sel = selection if selection is not None else _selection(None)
    values = {name: pv[name][np.asarray(s)] for name, s in zip(LATENTS_NAMES, sel)}
    return Metadata(
        {
            "title": "dSprites dataset",
            "description": (
                "Disentanglement test Sprites dataset: procedurally generated 2D shapes from 6 "
                "disentangled latent factors (color, shape, scale, orientation, posX, posY). "
                "Every combination appears exactly once, in a fixed order; no noise."
            ),
            "version": 1,
            "latents_names": LATENTS_NAMES,
            "latents_sizes": np.array([len(s) for s in sel], dtype=np.int64),
            "latents_possible_values": values,
            "source": source,
        }
    )


def _metadata_json(meta: Mapping[str, Any]) -> str:
    def plain(x):
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, Mapping):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, tuple):
            return list(x)
        return x

    return json.dumps(plain(dict(meta)), indent=2) + "\n"


def _metadata_from_json(text: str, where: Path) -> Metadata:
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GridError(f"{where}: corrupt metadata ({exc})") from None
    if not isinstance(raw, dict):
        raise GridError(f"{where}: the metadata must be a JSON object")
    for key in ("latents_names", "latents_sizes", "latents_possible_values"):
        if key not in raw:
            raise GridError(f"{where}: the metadata has no '{key}'")
    if list(raw["latents_names"]) != list(LATENTS_NAMES):
        raise GridError(f"{where}: latents_names {raw['latents_names']} are not {list(LATENTS_NAMES)}")
    meta = Metadata(raw)
    meta["latents_names"] = tuple(raw["latents_names"])
    meta["latents_sizes"] = np.asarray(raw["latents_sizes"], dtype=np.int64)
    pvs = raw["latents_possible_values"]
    if not isinstance(pvs, dict) or set(pvs) != set(LATENTS_NAMES):
        raise GridError(f"{where}: latents_possible_values must list {list(LATENTS_NAMES)}")
    meta["latents_possible_values"] = {k: np.asarray(pvs[k], dtype=np.float64) for k in LATENTS_NAMES}
    if meta["latents_sizes"].shape != (6,) or [len(meta["latents_possible_values"][k]) for k in LATENTS_NAMES] != meta["latents_sizes"].tolist():
        raise GridError(f"{where}: latents_sizes do not match latents_possible_values")
    return meta


def _selection_of(meta: Mapping[str, Any], where: Path) -> tuple[np.ndarray, ...]:
    """The official classes of a (reduced) grid's possible values."""
    pv = possible_values()
    out = []
    for name in LATENTS_NAMES:
        vals = np.asarray(meta["latents_possible_values"][name], dtype=np.float64)
        idx = np.array([int(np.argmin(np.abs(pv[name] - v))) for v in vals], dtype=np.int64)
        if idx.size and not np.allclose(pv[name][idx], vals, atol=1e-6):
            raise GridError(f"{where}: the values of '{name}' are not dSprites values")
        out.append(idx)
    return tuple(out)


# ---------------------------------------------------------------------------- writing


def write_grid(
    out: str | os.PathLike,
    progress: Callable[[int], None] | None = None,
    *,
    force: bool = False,
    select: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """Write the factor grid to the directory ``out``: ``imgs.npy`` (memory-mappable uint8
    ``(N, 64, 64)``), ``latents_values.npy``, ``latents_classes.npy`` and ``metadata.json``.

    The images are streamed to disk in the official order, one (shape, scale, orientation)
    block of positions at a time, so memory stays small. Writing is atomic (a hidden
    staging directory renamed into place); an existing ``out`` is replaced only with
    ``force``. ``select`` (``{"scale": [0, 5], ...}``) writes a reduced grid of those
    classes only (for tests and previews; its classes then index the reduced values).
    ``progress`` is called with the number of images written so far.
    """
    out = Path(out)
    sel = _selection(select)
    sizes = tuple(len(s) for s in sel)
    n = math.prod(sizes)
    try:
        stage = staging_dir(out, force=force, marker="metadata.json", what="dSprites grid")
    except CausalVAEError as exc:
        raise GridError(str(exc)) from None
    try:
        mm = np.lib.format.open_memmap(stage / "imgs.npy", mode="w+", dtype=np.uint8, shape=(n, RESOLUTION, RESOLUTION))
        offset = mm.offset
        del mm
        done = 0
        # Sequential writes through a file handle (rather than through the memory map) keep
        # the resident memory small: written pages belong to the page cache, not to us.
        with open(stage / "imgs.npy", "r+b") as fh:
            fh.seek(offset)
            for sh in sel[1]:
                for sc in sel[2]:
                    for o in sel[3]:
                        block = position_block(int(sh), int(sc), int(o), sel[4], sel[5])
                        fh.write(memoryview(block).cast("B"))
                        done += block.shape[0] * block.shape[1]
                        if progress is not None:
                            progress(done)
        classes = all_classes(sizes)
        np.save(stage / "latents_classes.npy", classes, allow_pickle=False)
        np.save(stage / "latents_values.npy", classes_to_values(classes, sel), allow_pickle=False)
        (stage / "metadata.json").write_text(_metadata_json(metadata(sel)))
        replace_dir(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


# ---------------------------------------------------------------------------- reading


def _load_npy(path: Path, dtype, shape: tuple) -> np.ndarray:
    return open_npy(path, dtype, shape, GridError)


def load_grid(path: str | os.PathLike) -> dict[str, Any]:
    """Open a grid directory written by :func:`write_grid`.

    Returns ``{"imgs": memmap (N, 64, 64) uint8, "latents_values": (N, 6) float64,
    "latents_classes": (N, 6) int64, "metadata": Metadata}``: the official archive's keys.
    Shapes and dtypes are checked; the images stay on disk.
    """
    root = Path(path)
    if not root.exists():
        raise GridError(f"{root}: no such grid directory")
    if not root.is_dir():
        hint = " (an official .npz archive is read with read_official)" if root.suffix == ".npz" else ""
        raise GridError(f"{root}: not a directory{hint}")
    mf = root / "metadata.json"
    if not mf.exists():
        raise GridError(f"{root}: not a dSprites grid directory (no metadata.json)")
    meta = _metadata_from_json(mf.read_text(), mf)
    sizes = tuple(int(s) for s in meta["latents_sizes"])
    n = math.prod(sizes)
    return {
        "imgs": _load_npy(root / "imgs.npy", np.uint8, (n, RESOLUTION, RESOLUTION)),
        "latents_values": np.asarray(_load_npy(root / "latents_values.npy", np.float64, (n, 6))),
        "latents_classes": np.asarray(_load_npy(root / "latents_classes.npy", np.int64, (n, 6))),
        "metadata": meta,
    }


def _read_header(fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    """An .npy header's (shape, fortran order, dtype); the stream is left at the data."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    return np.lib.format.read_array_header_2_0(fh)


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype, int]]:
    """Each member's (shape, dtype) read from its .npy header, without loading (or
    unpickling) anything."""
    if not path.exists():
        raise GridError(f"{path}: no such file (the official archive is {ARCHIVE_NAME}; causalvae never downloads it)")
    if path.is_dir():
        raise GridError(f"{path}: is a directory, not the .npz archive (a grid directory is opened with load_grid)")
    if not zipfile.is_zipfile(path):
        raise GridError(f"{path}: not a .npz archive (not a zip file)")
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    try:
                        shape, fortran, dtype = _read_header(fh)
                    except ValueError as exc:
                        raise GridError(f"{path}: entry '{info.filename}' is not a valid .npy array ({exc})") from None
                out[info.filename[:-4]] = (tuple(shape), np.dtype(dtype), bool(fortran))
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise GridError(f"{path}: corrupt .npz archive ({exc})") from None
    return out


def _check_archive(path: Path, sel: Sequence[np.ndarray]) -> int:
    """Validate the fields, dtypes and shapes of an official archive; returns N."""
    headers = _npz_headers(path)
    sizes = tuple(len(s) for s in sel)
    n = math.prod(sizes)
    expected = {"imgs": (n, RESOLUTION, RESOLUTION), "latents_values": (n, 6), "latents_classes": (n, 6)}
    missing = [k for k in expected if k not in headers]
    if missing:
        found = ", ".join(sorted(headers)) or "none"
        raise GridError(f"{path}: the archive has no '{missing[0]}' entry (found: {found}); expected imgs, latents_values, latents_classes")
    for key, shape in expected.items():
        shp, dtype, fortran = headers[key]
        want = np.dtype(_FORMAT_DTYPES[key])
        if dtype.hasobject:
            raise GridError(f"{path}: '{key}' holds pickled Python objects (dtype object); expected {want.name} — refusing to unpickle it")
        if dtype != want:
            raise GridError(f"{path}: '{key}' has dtype {dtype}; expected {want.name}")
        if shp != shape:
            raise GridError(f"{path}: '{key}' has shape {shp}; expected {shape}")
        if fortran:
            raise GridError(f"{path}: '{key}' is stored in Fortran order; expected C order")
    return n


def _check_latents(path: Path, values: np.ndarray, classes: np.ndarray, sel: Sequence[np.ndarray]) -> None:
    sizes = tuple(len(s) for s in sel)
    want = all_classes(sizes)
    if not np.array_equal(classes, want):
        row = int(np.flatnonzero((classes != want).any(axis=1))[0])
        raise GridError(
            f"{path}: latents_classes row {row} is {classes[row].tolist()}, expected {want[row].tolist()} "
            "(the images are not in the official order)"
        )
    vals = classes_to_values(want, sel)
    if not np.allclose(values, vals, rtol=0, atol=1e-6):
        row = int(np.flatnonzero(~np.isclose(values, vals, rtol=0, atol=1e-6).all(axis=1))[0])
        raise GridError(f"{path}: latents_values row {row} is {values[row].tolist()}, expected {vals[row].tolist()}")


def read_official(npz_path: str | os.PathLike, *, select: Mapping[str, Sequence[int]] | None = None) -> dict[str, Any]:
    """Read the official archive ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``.

    Loads with ``allow_pickle=False``: the archive's ``metadata`` entry (a pickle) is never
    read; the metadata is rebuilt from the known facts. Fields, dtypes and shapes are checked
    from the .npy headers before anything is loaded, and the latents are checked against the
    official order. Returns the archive's keys, like :func:`load_grid`; ``imgs`` is read into
    memory (3 GB for the full archive, as numpy's own loader does). ``select`` describes a
    reduced grid (tests).
    """
    path = Path(npz_path)
    sel = _selection(select)
    _check_archive(path, sel)
    try:
        with np.load(path, allow_pickle=False) as z:
            values = z["latents_values"]
            classes = z["latents_classes"]
            _check_latents(path, values, classes, sel)
            imgs = z["imgs"]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise GridError(f"{path}: unreadable archive ({exc})") from None
    return {"imgs": imgs, "latents_values": values, "latents_classes": classes, "metadata": metadata(sel, source=f"official archive {path.name}")}


def read_images(
    source: str | os.PathLike,
    indices: Any,
    out: np.ndarray | None = None,
    *,
    select: Mapping[str, Sequence[int]] | None = None,
) -> np.ndarray:
    """The images ``(M, 64, 64)`` at official ``indices`` from a full grid: a directory of
    :func:`write_grid` or the official .npz archive.

    The archive is streamed once (only the rows asked for are kept) and a grid directory is
    read row by row, so memory stays small. ``out`` (an ``(M, 64, 64)`` uint8 array, e.g. a
    view of a dataset's memory map) receives the rows; it is returned. ``select`` names the
    reduced grid the source must be (tests); ``indices`` are then its rows.
    """
    src = Path(source)
    sel = _selection(select)
    sizes = tuple(len(s) for s in sel)
    total = math.prod(sizes)
    idx = np.asarray(indices, dtype=np.int64).ravel()
    if ((idx < 0) | (idx >= total)).any():
        raise GridError(f"image index out of range 0..{total - 1}")
    if out is None:
        out = np.empty((len(idx), RESOLUTION, RESOLUTION), dtype=np.uint8)
    elif out.shape != (len(idx), RESOLUTION, RESOLUTION) or out.dtype != np.uint8:
        raise GridError(f"out must be uint8 {(len(idx), RESOLUTION, RESOLUTION)}, got {out.dtype} {out.shape}")
    order = np.argsort(idx, kind="stable")
    if src.is_dir():
        grid = load_grid(src)
        found = tuple(int(s) for s in grid["metadata"]["latents_sizes"])
        if found != sizes or not all(np.array_equal(a, b) for a, b in zip(_selection_of(grid["metadata"], src), sel)):
            what = "the full grid" if sizes == LATENTS_SIZES else "the reduced grid"
            raise GridError(f"{src}: a grid of sizes {list(found)}; {what} {list(sizes)} is needed")
        _pread_rows(src / "imgs.npy", int(grid["imgs"].offset), idx, order, out)
    elif not src.exists():
        raise GridError(f"{src}: no such grid directory or archive (causalvae never downloads dSprites)")
    else:
        _check_archive(src, sel)
        try:
            with np.load(src, allow_pickle=False) as z:
                _check_latents(src, z["latents_values"], z["latents_classes"], sel)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise GridError(f"{src}: unreadable archive ({exc})") from None
        _stream_npz_rows(src, "imgs.npy", idx, order, out)
    return out


def _pread_rows(path: Path, offset: int, idx: np.ndarray, order: np.ndarray, out: np.ndarray) -> None:
    """Rows of an uncompressed (N, 64, 64) uint8 .npy file by positioned reads, in file
    order (indexing its memory map instead maps far more of the file than it reads)."""
    row = RESOLUTION * RESOLUTION
    fd = os.open(path, os.O_RDONLY)
    try:
        for k in order.tolist():
            i = int(idx[k])
            data = os.pread(fd, row, offset + i * row)
            if len(data) != row:
                raise GridError(f"{path}: truncated at image {i}")
            out[k] = np.frombuffer(data, dtype=np.uint8).reshape(RESOLUTION, RESOLUTION)
    finally:
        os.close(fd)


def _stream_npz_rows(path: Path, member: str, idx: np.ndarray, order: np.ndarray, out: np.ndarray, block: int = 4096) -> None:
    """Rows ``idx`` of a (possibly compressed) .npz member, read once from start to the
    last row needed, ``block`` rows at a time."""
    if not len(idx):
        return
    row = RESOLUTION * RESOLUTION
    sorted_idx = idx[order]
    last = int(sorted_idx[-1])
    try:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            shape, _, _ = _read_header(fh)
            k = 0
            start = 0
            while start <= last:
                count = min(block, int(shape[0]) - start)
                data = fh.read(count * row)
                if len(data) != count * row:
                    raise GridError(f"{path}: '{member}' is truncated")
                chunk = np.frombuffer(data, dtype=np.uint8).reshape(count, RESOLUTION, RESOLUTION)
                stop = int(np.searchsorted(sorted_idx, start + count, side="left"))
                if stop > k:
                    out[order[k:stop]] = chunk[sorted_idx[k:stop] - start]
                k = stop
                start += count
    except GridError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise GridError(f"{path}: unreadable archive ({exc})") from None


# ---------------------------------------------------------------------------- symmetry


@lru_cache(maxsize=None)
def orientation_differences(shape: int, scale: int) -> np.ndarray:
    """Pixels differing between the 40 orientations of one (shape, scale) sprite: (40, 40).

    Images of the same shape, scale and position differ exactly as their sprites do (a sprite
    is never clipped), so this one table serves all 1024 positions.
    """
    s = np.stack([sprite(shape, scale, o) for o in range(40)]).reshape(40, -1).astype(np.int32)
    area = s.sum(axis=1)
    out = area[:, None] + area[None, :] - 2 * (s @ s.T)
    out.setflags(write=False)
    return out


def symmetry_tolerances() -> dict[str, tuple[int, ...]]:
    """Measure :data:`SYMMETRY_K`: per shape and scale class, the largest difference (pixels)
    between an orientation and the nearest grid orientation to one of its exact symmetric
    images (ties: the closer image). Renders all 720 sprites (about 2 s the first time)."""
    angles = possible_values()["orientation"]
    out = {}
    for sh, name in enumerate(SHAPES):
        period = SYMMETRY_PERIOD[name]
        turns = int(round(2 * math.pi / period))
        row = []
        for sc in range(6):
            diff = orientation_differences(sh, sc)
            worst = 0
            for i in range(40):
                for m in range(1, turns + 1):
                    dist = np.abs((angles - angles[i] - m * period + math.pi) % (2 * math.pi) - math.pi)
                    nearest = np.flatnonzero(dist <= dist.min() + 1e-9)
                    worst = max(worst, int(diff[i, nearest].min()))
            row.append(worst)
        out[name] = tuple(row)
    return out


def symmetry_k(shape: int, scale: int) -> int:
    """The tolerance k of :data:`SYMMETRY_K` for a shape and scale class."""
    return SYMMETRY_K[SHAPES[int(shape)]][int(scale)]


def equivalent(classes: Any, k: int | None = None) -> np.ndarray:
    """Every factor combination whose image differs from that of ``classes`` by at most
    ``k`` pixels, as official class vectors ``(M, 6)`` (itself included), in index order.

    ``k`` defaults to the shape's and scale's :data:`SYMMETRY_K`, which holds 0 = 2 pi and
    the grid's nearest approximations of a square's quarter turns and an ellipse's half
    turn. No change of shape, scale or position comes that close (see :data:`SYMMETRY_K`),
    so the candidates are the 40 orientations of the same shape, scale and position; with a
    larger explicit ``k`` the result still only lists orientations.
    """
    c = _as_classes(classes)
    if c.shape != (6,):
        raise GridError(f"equivalent() takes one class vector, got shape {c.shape}")
    latents_to_index(c)
    if k is None:
        k = symmetry_k(int(c[1]), int(c[2]))
    d = orientation_differences(int(c[1]), int(c[2]))[int(c[3])]
    orients = np.flatnonzero(d <= k)
    out = np.repeat(c[None, :], len(orients), axis=0)
    out[:, 3] = orients
    return out


def equivalent_indices(classes: Any, k: int | None = None) -> np.ndarray:
    """The official image indices of :func:`equivalent`."""
    return latents_to_index(equivalent(classes, k))


# ---------------------------------------------------------------------------- looking at it


def sheet(scale: int = 3):
    """A contact sheet (PIL image): per shape, its six scales and two extreme positions,
    then eight orientations; captions give the classes and values."""
    from causalvae.pictures import contact_sheet

    pv = possible_values()
    tiles, captions = [], []
    for sh in range(3):
        for sc in range(6):
            tiles.append((sh, sc, 0, 15, 15))
        tiles += [(sh, 5, 4, 0, 0), (sh, 5, 4, 31, 31)]
        for o in range(0, 40, 5):
            tiles.append((sh, 5, o, 8 + o // 2, 15))
    for sh, sc, o, x, y in tiles:
        deg = math.degrees(pv["orientation"][o])
        captions.append(f"{SHAPES[sh]} s={pv['scale'][sc]:.1f}\nor={o} ({deg:.0f} deg)\nx={x} y={y}")
    imgs = images([(0, sh, sc, o, x, y) for sh, sc, o, x, y in tiles]) * 255
    return contact_sheet(imgs, captions, columns=8, scale=scale)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m causalvae.worlds.sprites.dsprites sheet OUT.png``: write the contact sheet."""
    import argparse
    import io

    from causalvae.io import atomic_write_bytes

    ap = argparse.ArgumentParser(prog="python -m causalvae.worlds.sprites.dsprites")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("sheet", help="write the contact sheet of the factor grid")
    sp.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    buf = io.BytesIO()
    sheet().save(buf, format="PNG")
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
