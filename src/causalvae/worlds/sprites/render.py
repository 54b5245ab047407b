"""The dSprites renderer: every image of the factor grid (:mod:`.factors`), drawn locally.

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

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from causalvae.worlds.sprites.factors import LATENTS_NAMES, LATENTS_SIZES, RESOLUTION, SHAPES, GridError, as_classes, latents_to_index, possible_values

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
def lattice(shape: int, scale: int, orientation: int) -> np.ndarray:
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


def place(lat: np.ndarray, posx: int, posy: int) -> np.ndarray:
    """The canvas at position classes ``(posx, posy)``, cut from a triple's lattice."""
    return lat[LATTICE - posy :: LATTICE, LATTICE - posx :: LATTICE][:CANVAS, :CANVAS]


def position_block(shape: int, scale: int, orientation: int, posx: Sequence[int] | None = None, posy: Sequence[int] | None = None) -> np.ndarray:
    """The images of one sprite at positions ``posx`` x ``posy`` (classes; default all 32):
    ``(len(posx), len(posy), 64, 64)`` uint8, posY fastest as in the official order."""
    xs = np.arange(32) if posx is None else np.asarray(posx, dtype=np.int64)
    ys = np.arange(32) if posy is None else np.asarray(posy, dtype=np.int64)
    for name, v in (("posX", xs), ("posY", ys)):
        if ((v < 0) | (v > 31)).any():
            raise GridError(f"{name} classes must be in 0..31, got {v.tolist()}")
    lat = lattice(shape, scale, orientation)
    out = np.zeros((len(xs), len(ys), RESOLUTION, RESOLUTION), dtype=np.uint8)
    for a, i in enumerate(xs.tolist()):
        for b, j in enumerate(ys.tolist()):
            out[a, b, j : j + CANVAS, i : i + CANVAS] = place(lat, i, j)
    return out


def image(classes: Any) -> np.ndarray:
    """The 64 x 64 image of one factor-class vector (6 columns, or 5 without color)."""
    c = as_classes(classes)
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
    c = as_classes(classes).reshape(-1, 6)
    latents_to_index(c)
    out = np.zeros((len(c), RESOLUTION, RESOLUTION), dtype=np.uint8)
    triples, group = np.unique(c[:, 1:4], axis=0, return_inverse=True)
    for g, (sh, sc, o) in enumerate(triples.tolist()):
        rows = np.flatnonzero(group.ravel() == g)
        if len(rows) >= _LATTICE_MIN_GROUP:
            lat = lattice(sh, sc, o)
            for r in rows.tolist():
                x0, y0 = int(c[r, 4]), int(c[r, 5])
                out[r, y0 : y0 + CANVAS, x0 : x0 + CANVAS] = place(lat, x0, y0)
        else:
            for r in rows.tolist():
                x0, y0 = int(c[r, 4]), int(c[r, 5])
                out[r, y0 : y0 + CANVAS, x0 : x0 + CANVAS] = sprite(sh, sc, o, x0, y0)
    return out



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
        lat = lattice(*t)
        for k, i, j in jobs:
            canvas = place(lat, i, j).astype(bool)
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


def _per_position(lat: np.ndarray) -> np.ndarray:
    """Sums of a lattice-sized array over each position's canvas points: ``(31, 31)``, the
    position classes ``(i, j)`` at ``[(31 - j) % 31, (31 - i) % 31]`` (classes 0 and 31
    share the offset; they differ only in lattice points no sprite reaches)."""
    n = LATTICE * CANVAS
    return lat[:n, :n].reshape(CANVAS, LATTICE, CANVAS, LATTICE).sum(axis=(0, 2), dtype=np.int64)


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
            lats = [lattice.__wrapped__(sh, sc, o) for o in range(39)]
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
    c = as_classes(classes)
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
