"""The dSprites factors: their classes and values, image indices, the grid's metadata, and
the sprites graph's binned factors.

dSprites (Matthey, Higgins, Hassabis, Lerchner, 2017) is every combination of six factors,
one 64 x 64 binary image each (0/1 as ``uint8``), in a fixed order::

    color (1: white)  shape (3: square, ellipse, heart)  scale (6: linspace(0.5, 1, 6))
    orientation (40: linspace(0, 2 pi, 40), both ends included)
    posX (32: linspace(0, 1, 32))  posY (32: linspace(0, 1, 32))

    1 x 3 x 6 x 40 x 32 x 32 = 737,280 images; posY varies fastest, then posX, orientation,
    scale, shape. index = classes . (737280, 245760, 40960, 1024, 32, 1)

A reduced grid (tests, previews) keeps some classes of each factor; its
classes then index the kept values (:func:`select_classes`). The metadata is the official
archive's, rebuilt from
these facts (:func:`metadata`), and stored as JSON beside a grid (:func:`metadata_json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from causalvae.errors import CausalVAEError, unknown

LATENTS_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENTS_SIZES = (1, 3, 6, 40, 32, 32)
#: ``index = classes . LATENTS_BASES`` (the official notebook's ``latents_bases``).
LATENTS_BASES = (737280, 245760, 40960, 1024, 32, 1)
N_IMAGES = 737280
SHAPES = ("square", "ellipse", "heart")
RESOLUTION = 64


class GridError(CausalVAEError):
    """A grid directory or an official archive that is missing, foreign or malformed."""


class Metadata(dict):
    """The archive's metadata dict. ``m[()]`` returns ``m`` itself, so the official loading
    idiom ``metadata = dataset_zip["metadata"][()]`` works on it unchanged."""

    def __getitem__(self, key):
        if key == ():
            return self
        return super().__getitem__(key)


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


def as_classes(classes: Any) -> np.ndarray:
    """Factor-class vectors as int64 ``(..., 6)``: a color column of 0 is added to 5 columns."""
    c = np.asarray(classes, dtype=np.int64)
    if c.shape[-1:] == (5,):  # without the color column
        c = np.concatenate([np.zeros(c.shape[:-1] + (1,), np.int64), c], axis=-1)
    if c.shape[-1:] != (6,):
        raise GridError(f"factor classes need 6 columns {LATENTS_NAMES} (or 5 without color), got shape {c.shape}")
    return c


def latents_to_index(classes: Any, sizes: Sequence[int] = LATENTS_SIZES) -> np.ndarray:
    """The image index of factor-class vectors ``(..., 6)`` (or ``(..., 5)`` without color)."""
    c = as_classes(classes)
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
    c = as_classes(classes)
    pv = possible_values()
    cols = []
    for k, name in enumerate(LATENTS_NAMES):
        vals = pv[name] if selection is None else pv[name][np.asarray(selection[k])]
        cols.append(vals[c[..., k]])
    return np.stack(cols, axis=-1)


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


# ---------------------------------------------------------------------------- selections and metadata


def select_classes(select: Mapping[str, Sequence[int]] | None = None) -> tuple[np.ndarray, ...]:
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
    sel = selection if selection is not None else select_classes(None)
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


def metadata_json(meta: Mapping[str, Any]) -> str:
    """The metadata as JSON text (arrays as lists), as a grid directory stores it."""

    def plain(x):
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, Mapping):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, tuple):
            return list(x)
        return x

    return json.dumps(plain(dict(meta)), indent=2) + "\n"


def metadata_from_json(text: str, where: Path) -> Metadata:
    """The metadata of a grid directory's JSON text, checked (``where`` names the file)."""
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


def selection_of(meta: Mapping[str, Any], where: Path) -> tuple[np.ndarray, ...]:
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
