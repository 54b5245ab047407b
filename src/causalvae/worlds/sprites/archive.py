"""The dSprites archive reader: the official ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``,
read safely, and rows of a full grid read without loading it.

causalvae never downloads anything: this reads the archive when a user has one
(:func:`read_official`, with ``allow_pickle=False``: the archive's pickled ``metadata`` entry
is never unpickled, the metadata is rebuilt from the known facts). Fields, dtypes and shapes
are checked from the .npy headers before anything is loaded. :func:`read_images` takes the
images at given indices from the archive or from a grid directory (:mod:`.grid`) with little
memory.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from causalvae.worlds.sprites.factors import LATENTS_SIZES, RESOLUTION, GridError, all_classes, classes_to_values, metadata, select_classes, selection_of
from causalvae.worlds.sprites.grid import load_grid

ARCHIVE_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"

_FORMAT_DTYPES = {"imgs": np.uint8, "latents_values": np.float64, "latents_classes": np.int64}


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
    sel = select_classes(select)
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
    sel = select_classes(select)
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
        if found != sizes or not all(np.array_equal(a, b) for a, b in zip(selection_of(grid["metadata"], src), sel)):
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
