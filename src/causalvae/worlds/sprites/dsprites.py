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

The renderer is calibrated on real dSprites frames (the 160 frames of the official
``dsprites.gif`` at hand, ``bench/bench_sprites_real.py``): the official images were drawn
as vector shapes by Love2D (OpenGL) and rasterised without anti-aliasing, and the rules below
reproduce them (:func:`best_matches` finds an exact match for nearly every frame).

**Geometry.** Coordinates are pixels, x to the right and y *down* (image rows); pixel
``(row r, column c)`` covers ``[c, c + 1] x [r, r + 1]``. ``posX = 0`` is the left of the
position range, ``posY = 0`` its top: position class ``i`` puts the sprite's centre at
``16 + 32 i / 31`` px (x; y likewise), i.e. the official values ``[0, 1]`` map to the central
half of the frame, 16 .. 48 px. Positions are therefore 32/31 px apart and each samples the
outline at its own sub-pixel offset. A sprite is drawn on a 33 x 33 canvas pasted at column
``i``, row ``j`` (so no pixel of any sprite can leave the frame; no outline reaches farther
than 15.5 px from its centre, so none is cut by its canvas).

**Shapes** at scale 1 (a scale multiplies every length): a square of side 19.2 px (0.3 of
the unit canvas: 20 x 20 px upright at position 0); an ellipse of semi-axes 12.77 x 7.21 px
(long axis horizontal at orientation 0); a heart 19.2 px wide, the parametric heart
``x = 16 sin^3 t``, ``y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t`` times (0.6, 0.662),
lifted 1.44 px (lobes up and tip down at orientation 0). The ellipse's and heart's sizes
are fitted to the real frames. An orientation ``theta`` turns the sprite counter-clockwise
on screen about its centre.

**Rasterisation.** Every outline is a polygon (4 vertices; 720 for the ellipse and the
heart), and a pixel is 1 when its centre lies inside it (even-odd rule, a scanline fill): the
point sampling of a GPU rasteriser. All pixel centres any position can put on a canvas lie
on one lattice 1/31 px fine around the sprite's centre, so a (shape, scale, orientation) is
scanned once over that lattice (1024 x 1024 points) and each position's canvas is a strided
slice of it (:func:`position_block`, :func:`write_grid`); a single canvas (:func:`sprite`)
goes through the same arithmetic, so both give the same pixels. Orientation class 39
(2 pi) is drawn as class 0, so the first and the last orientation give identical pictures,
as in the official grid.

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
    "read_frames",
    "best_matches",
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
#: Side of the canvas a sprite is drawn on: the canvas of position class i spans columns
#: i .. i + 32 (rows likewise), so 31 + 33 = 64 keeps every sprite in the frame.
CANVAS = 33
#: Position classes are 32/31 px apart: the sprite's centre is at 16 + 32 i / 31 px, so the
#: pixel centres of all positions lie on a lattice 1/31 px fine around the sprite's centre.
LATTICE = 31
_LATTICE_N = LATTICE * CANVAS + 1  # 1024 lattice points per axis cover every canvas
_LATTICE_MID = (_LATTICE_N - 1) / 2  # lattice point m is (m - 511.5) / 31 px from the centre
_LATTICE_MIN_GROUP = 24  # images() cuts a triple's images from its lattice from this many on
_OUTLINE_VERTICES = 720  # vertices of the ellipse's and the heart's outline polygons
#: Scale-1 sizes in pixels, fitted to the official images (see the module docstring).
SQUARE_HALF = 9.6
ELLIPSE_AXES = (12.77, 7.21)
#: The heart: the parametric heart curve times (x, y) factors, lifted by HEART_LIFT px.
HEART_K = (0.6, 0.662)
HEART_LIFT = 1.44

#: The symmetry tolerance k (pixels) of each shape at each scale class (0.5 .. 1.0).
#:
#: The grid only approximates the symmetries: its step 2 pi / 39 does not divide 90 or 180
#: degrees, so the grid orientation nearest to a square's quarter turn or an ellipse's half
#: turn is up to half a step (4.6 degrees) off, and its image differs by a few pixels. k is
#: the smallest tolerance that accepts, for *every* orientation, the nearest grid
#: orientation(s) to each of its exact symmetric images (measured on this renderer by
#: :func:`symmetry_tolerances`, over every position: the sub-pixel offset of a position
#: changes the difference by a few pixels). The heart has no symmetry: k = 0 keeps only
#: identical images (0 = 2 pi). With these k no change of shape, scale or position, alone or
#: with any orientation, comes within k pixels (checked around a sample of images in
#: tests/test_sprites.py), so :func:`equivalent` only has to compare orientations.
SYMMETRY_K: dict[str, tuple[int, ...]] = {
    "square": (12, 16, 32, 22, 28, 37),
    "ellipse": (8, 10, 14, 16, 19, 22),
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


def _outline(shape: int, scale: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The sprite's outline polygon: vertex columns x (right) and rows y (down), in pixels
    from the sprite's centre, turned ``angle`` radians counter-clockwise on screen."""
    if shape == 0:
        h = SQUARE_HALF
        u, v = np.array([-h, h, h, -h]), np.array([h, h, -h, -h])
    elif shape == 1:
        t = np.arange(_OUTLINE_VERTICES) * (2 * np.pi / _OUTLINE_VERTICES)
        u, v = ELLIPSE_AXES[0] * np.cos(t), ELLIPSE_AXES[1] * np.sin(t)
    elif shape == 2:
        t = np.arange(_OUTLINE_VERTICES) * (2 * np.pi / _OUTLINE_VERTICES)
        u = HEART_K[0] * 16 * np.sin(t) ** 3
        v = HEART_K[1] * (13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)) + HEART_LIFT
    else:
        raise GridError(f"shape class {shape} out of range 0..2")
    u, v = u * scale, v * scale  # shape frame: u right, v up
    c, s = math.cos(angle), math.sin(angle)
    return c * u - s * v, -(s * u + c * v)


def _scan(vx: np.ndarray, vy: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``inside[r, c]``: 1 when the point ``(xs[c], ys[r])`` lies inside the polygon
    ``(vx, vy)`` (even-odd rule), else 0 (uint8); ``ys`` and ``xs`` ascending.

    A scanline fill: edge ``e`` crosses row ``y`` when ``min(y_e, y_e+1) <= y < max(...)``,
    at ``x = x_e + (y - y_e) * slope_e``, and a point is inside when an odd number of
    crossings lie strictly left of it. Every point goes through the same arithmetic,
    whichever rows and columns are asked for together, so a canvas cut from a lattice
    equals the canvas drawn alone.
    """
    x1, y1 = np.roll(vx, -1), np.roll(vy, -1)
    lo = np.searchsorted(ys, np.minimum(vy, y1), side="left")
    hi = np.searchsorted(ys, np.maximum(vy, y1), side="left")
    count = hi - lo  # rows each edge crosses (0 for a horizontal edge)
    edge = np.repeat(np.arange(len(vx)), count)
    row = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count) + lo[edge]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (x1 - vx) / (y1 - vy)
    at = vx[edge] + (ys[row] - vy[edge]) * slope[edge]
    flips = np.zeros((len(ys), len(xs) + 1), dtype=np.uint8)  # counts wrap at 256: parity kept
    np.add.at(flips, (row, np.searchsorted(xs, at, side="right")), 1)
    return np.cumsum(flips[:, :-1], axis=1, dtype=np.uint8) & 1


def _points(posclass: int) -> np.ndarray:
    """Sample points (pixel centres) of the 33 canvas columns (or rows) at position class
    ``posclass``, in pixels from the sprite's centre: lattice points ``31 k + 31 - posclass``
    of :func:`_lattice_points`."""
    m = LATTICE * np.arange(CANVAS) + LATTICE - int(posclass)
    return (m - _LATTICE_MID) / LATTICE


def _lattice_points() -> np.ndarray:
    """Every pixel centre any position class can put on a canvas, from the sprite's centre:
    ``(m - 511.5) / 31`` for ``m = 0 .. 1023`` (one thirty-first of a pixel apart)."""
    return (np.arange(_LATTICE_N) - _LATTICE_MID) / LATTICE


def render_sprite(shape: int, scale: float, angle: float, posx: int = 0, posy: int = 0) -> np.ndarray:
    """Draw one sprite on its 33 x 33 canvas for position classes ``(posx, posy)``, uint8 0/1.

    ``shape`` is a class (0 square, 1 ellipse, 2 heart), ``scale`` and ``angle`` (radians,
    counter-clockwise) are values. The canvas goes at column ``posx`` and row ``posy`` of the
    frame; the sprite's centre is at ``16 + posx / 31`` (x) and ``16 + posy / 31`` (y) on it.
    """
    if not 0 <= int(shape) < 3:
        raise GridError(f"shape class {shape} out of range 0..2")
    for name, v in (("posX", posx), ("posY", posy)):
        if not 0 <= int(v) < 32:
            raise GridError(f"{name} class {v} out of range 0..31")
    vx, vy = _outline(int(shape), float(scale), float(angle))
    return _scan(vx, vy, _points(posy), _points(posx))


def _check_triple(shape: int, scale: int, orientation: int) -> None:
    for name, v in (("shape", shape), ("scale", scale), ("orientation", orientation)):
        size = LATENTS_SIZES[LATENTS_NAMES.index(name)]
        if not 0 <= int(v) < size:
            raise GridError(f"{name} class {v} out of range 0..{size - 1}")


def _triple_values(shape: int, scale: int, orientation: int) -> tuple[int, float, float]:
    """Shape class, scale value and angle of a class triple; orientation 39 (2 pi) is drawn
    as orientation 0."""
    _check_triple(shape, scale, orientation)
    pv = possible_values()
    return int(shape), float(pv["scale"][int(scale)]), float(pv["orientation"][int(orientation) % 39])


@lru_cache(maxsize=8192)
def sprite(shape: int, scale: int, orientation: int, posx: int = 0, posy: int = 0) -> np.ndarray:
    """The 33 x 33 canvas of a (shape, scale, orientation) class triple at position classes
    ``(posx, posy)`` (read-only, cached); :func:`image` pastes it at column ``posx``, row
    ``posy``. Positions are 32/31 px apart, so each one samples the outline at its own
    sub-pixel offset. Orientation class 39 (2 pi) is the same picture as class 0.
    """
    out = render_sprite(*_triple_values(shape, scale, orientation), posx=posx, posy=posy)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=2)
def _lattice(shape: int, scale: int, orientation: int) -> np.ndarray:
    """The inside test of one class triple at every point of :func:`_lattice_points` (1024 x
    1024, rows down): the canvas of position ``(i, j)`` is ``[31 - j :: 31, 31 - i :: 31]``."""
    vx, vy = _outline(*_triple_values(shape, scale, orientation))
    pts = _lattice_points()
    # Only points within the outline's bounding box can be inside: scan those alone.
    r0, r1 = np.searchsorted(pts, [vy.min(), vy.max()], side="left")
    c0, c1 = np.searchsorted(pts, vx.min(), side="left"), np.searchsorted(pts, vx.max(), side="right")
    out = np.zeros((_LATTICE_N, _LATTICE_N), dtype=np.uint8)
    out[r0:r1, c0:c1] = _scan(vx, vy, pts[r0:r1], pts[c0:c1])
    out.setflags(write=False)
    return out


def _canvas(lattice: np.ndarray, posx: int, posy: int) -> np.ndarray:
    """The canvas at position classes ``(posx, posy)``, cut from a triple's lattice."""
    return lattice[LATTICE - posy :: LATTICE, LATTICE - posx :: LATTICE][:CANVAS, :CANVAS]


def position_block(shape: int, scale: int, orientation: int, posx: Sequence[int] | None = None, posy: Sequence[int] | None = None) -> np.ndarray:
    """The images of one sprite at positions ``posx`` x ``posy`` (classes; default all 32):
    ``(len(posx), len(posy), 64, 64)`` uint8, posY fastest as in the official order."""
    xs = np.arange(32) if posx is None else np.asarray(posx, dtype=np.int64)
    ys = np.arange(32) if posy is None else np.asarray(posy, dtype=np.int64)
    for name, v in (("posX", xs), ("posY", ys)):
        if ((v < 0) | (v > 31)).any():
            raise GridError(f"{name} classes must be in 0..31, got {v.tolist()}")
    lat = _lattice(shape, scale, orientation)
    out = np.zeros((len(xs), len(ys), RESOLUTION, RESOLUTION), dtype=np.uint8)
    for a, i in enumerate(xs.tolist()):
        for b, j in enumerate(ys.tolist()):
            out[a, b, j : j + CANVAS, i : i + CANVAS] = _canvas(lat, i, j)
    return out


def image(classes: Any) -> np.ndarray:
    """The 64 x 64 image of one factor-class vector (6 columns, or 5 without color)."""
    c = _as_classes(classes)
    if c.shape != (6,):
        raise GridError(f"image() takes one class vector, got shape {c.shape}; use images()")
    latents_to_index(c)
    out = np.zeros((RESOLUTION, RESOLUTION), dtype=np.uint8)
    x0, y0 = int(c[4]), int(c[5])
    out[y0 : y0 + CANVAS, x0 : x0 + CANVAS] = sprite(int(c[1]), int(c[2]), int(c[3]), x0, y0)
    return out


def images(classes: Any) -> np.ndarray:
    """The images ``(N, 64, 64)`` of factor-class vectors ``(N, 6)`` (or ``(N, 5)``).

    Images that share a (shape, scale, orientation) triple are cut from its lattice when
    there are many of them (identical pixels, fewer scanlines)."""
    c = _as_classes(classes).reshape(-1, 6)
    latents_to_index(c)
    out = np.zeros((len(c), RESOLUTION, RESOLUTION), dtype=np.uint8)
    triples, group = np.unique(c[:, 1:4], axis=0, return_inverse=True)
    for g, (sh, sc, o) in enumerate(triples.tolist()):
        rows = np.flatnonzero(group.ravel() == g)
        if len(rows) >= _LATTICE_MIN_GROUP:
            lat = _lattice(sh, sc, o)
            for r in rows.tolist():
                x0, y0 = int(c[r, 4]), int(c[r, 5])
                out[r, y0 : y0 + CANVAS, x0 : x0 + CANVAS] = _canvas(lat, x0, y0)
        else:
            for r in rows.tolist():
                x0, y0 = int(c[r, 4]), int(c[r, 5])
                out[r, y0 : y0 + CANVAS, x0 : x0 + CANVAS] = sprite(sh, sc, o, x0, y0)
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


# ---------------------------------------------------------------------------- real frames


def read_frames(path: str | os.PathLike) -> np.ndarray:
    """The frames of an animated GIF of dSprites images (such as the official repository's
    ``dsprites.gif``) as ``(N, 64, 64)`` uint8 0/1 (a pixel is 1 when brighter than mid-grey)."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise GridError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            frames = [np.asarray(f.convert("L")) for f in ImageSequence.Iterator(im)]
    except (UnidentifiedImageError, OSError) as exc:
        raise GridError(f"{path}: not a readable image ({exc})") from None
    out = np.stack(frames)
    if out.shape[1:] != (RESOLUTION, RESOLUTION):
        raise GridError(f"{path}: frames are {out.shape[2]}x{out.shape[1]}; dSprites frames are {RESOLUTION}x{RESOLUTION}")
    return (out > 127).astype(np.uint8)


def _stats(img: np.ndarray) -> tuple[int, int, int, float, float]:
    """Area, bounding-box height and width, centroid column and row of a binary picture."""
    rows, cols = np.nonzero(img)
    if not len(rows):
        return 0, 0, 0, 0.0, 0.0
    return len(rows), int(np.ptp(rows)) + 1, int(np.ptp(cols)) + 1, float(cols.mean()), float(rows.mean())


def best_matches(frames: Any, *, reach: int = 2, area_slack: float = 0.15, box_slack: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """For each binary 64 x 64 frame, the grid image that overlaps it best: its IoU
    (intersection over union of the 1-pixels) ``(N,)`` and its factor classes ``(N, 6)``.

    The search is narrowed, not exhaustive: a (shape, scale, orientation) triple is tried
    when its sprite at position (0, 0) has an area within ``area_slack`` of the frame's and
    a bounding box within ``box_slack`` px of the frame's in both sides; its positions,
    within ``reach`` classes of where its centroid meets the frame's. Every image tried is
    an exact grid image, so each IoU is a lower bound of the frame's best over the whole
    grid (and is exact when it is 1). Frames with no candidate get IoU 0 and classes -1.
    """
    f = np.asarray(frames).astype(bool)
    if f.ndim != 3 or f.shape[1:] != (RESOLUTION, RESOLUTION):
        raise GridError(f"frames must be (N, {RESOLUTION}, {RESOLUTION}), got shape {f.shape}")
    triples = [(sh, sc, o) for sh in range(3) for sc in range(6) for o in range(39)]
    tstats = {t: _stats(sprite(*t)) for t in triples}
    todo: dict[tuple[int, int, int], list[tuple[int, int, int]]] = {}
    fstats = [_stats(fr) for fr in f]
    for k, (area, h, w, cx, cy) in enumerate(fstats):
        if not area:
            continue
        for t, (ta, th, tw, tx, ty) in tstats.items():
            if abs(ta - area) > area_slack * area or abs(th - h) > box_slack or abs(tw - w) > box_slack:
                continue
            i0, j0 = round((cx - tx) * LATTICE / 32), round((cy - ty) * LATTICE / 32)
            for i in range(max(0, i0 - reach), min(31, i0 + reach) + 1):
                for j in range(max(0, j0 - reach), min(31, j0 + reach) + 1):
                    todo.setdefault(t, []).append((k, i, j))
    best = np.zeros(len(f))
    classes = np.full((len(f), 6), -1, dtype=np.int64)
    for t, jobs in todo.items():
        lat = _lattice(*t)
        for k, i, j in jobs:
            canvas = _canvas(lat, i, j).astype(bool)
            inter = int(np.count_nonzero(canvas & f[k, j : j + CANVAS, i : i + CANVAS]))
            iou = inter / (fstats[k][0] + int(np.count_nonzero(canvas)) - inter)
            if iou > best[k]:
                best[k] = iou
                classes[k] = (0, *t, i, j)
    return best, classes


# ---------------------------------------------------------------------------- symmetry


@lru_cache(maxsize=256)
def orientation_differences(shape: int, scale: int, posx: int = 0, posy: int = 0) -> np.ndarray:
    """Pixels differing between the 40 orientations of one (shape, scale) sprite at position
    classes ``(posx, posy)``: (40, 40), read-only.

    Each position samples the outline at its own sub-pixel offset, so the table depends on
    the position (by a few pixels at most).
    """
    s = np.stack([sprite(shape, scale, o, posx, posy) for o in range(40)]).reshape(40, -1).astype(np.int32)
    area = s.sum(axis=1)
    out = area[:, None] + area[None, :] - 2 * (s @ s.T)
    out.setflags(write=False)
    return out


def _per_position(lattice: np.ndarray) -> np.ndarray:
    """Sums of a lattice-sized array over each position's canvas points: ``(31, 31)``, the
    position classes ``(i, j)`` at ``[(31 - j) % 31, (31 - i) % 31]`` (classes 0 and 31
    share the offset; they differ only in lattice points no sprite reaches)."""
    n = LATTICE * CANVAS
    return lattice[:n, :n].reshape(CANVAS, LATTICE, CANVAS, LATTICE).sum(axis=(0, 2), dtype=np.int64)


def symmetry_tolerances() -> dict[str, tuple[int, ...]]:
    """Measure :data:`SYMMETRY_K`: per shape and scale class, the largest difference (pixels),
    over every orientation and every position, between an image and the image of the
    nearest grid orientation to one of its exact symmetric turns (ties: the closer image).
    Every position at once, from the lattices of the 39 distinct orientations (a few
    seconds); the heart's only symmetry is the full turn, k = 0 (0 = 2 pi)."""
    angles = possible_values()["orientation"]
    out = {}
    for sh, name in enumerate(SHAPES):
        period = SYMMETRY_PERIOD[name]
        turns = int(round(2 * math.pi / period))
        if turns == 1:
            out[name] = (0,) * 6
            continue
        row = []
        for sc in range(6):
            lats = [_lattice.__wrapped__(sh, sc, o) for o in range(39)]
            pair: dict[tuple[int, int], np.ndarray] = {}
            worst = 0
            for i in range(40):
                for m in range(1, turns + 1):
                    dist = np.abs((angles - angles[i] - m * period + math.pi) % (2 * math.pi) - math.pi)
                    nearest = np.flatnonzero(dist <= dist.min() + 1e-9)
                    best = None
                    for n in nearest.tolist():
                        key = tuple(sorted((i % 39, n % 39)))
                        if key not in pair:
                            pair[key] = _per_position(lats[key[0]] ^ lats[key[1]])
                        best = pair[key] if best is None else np.minimum(best, pair[key])
                    worst = max(worst, int(best.max()))
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
    d = orientation_differences(int(c[1]), int(c[2]), int(c[4]), int(c[5]))[int(c[3])]
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
