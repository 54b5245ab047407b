"""The dSprites grid writer: the whole factor grid (or a reduced one) as a directory of
memory-mappable arrays, under the official archive's key names, and its reader.

A grid directory holds ``imgs.npy`` (uint8 ``(N, 64, 64)``), ``latents_values.npy``,
``latents_classes.npy`` and ``metadata.json``; ``causalvae generate dsprites`` writes the
full one (737,280 images, 3.0 GB). :func:`load_grid` returns the same keys as the official
archive, so code written for the archive runs on it unchanged, including
``metadata = d["metadata"][()]``.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from causalvae.errors import CausalVAEError
from causalvae.io import open_npy, replace_dir, staging_dir
from causalvae.worlds.sprites.factors import RESOLUTION, GridError, all_classes, classes_to_values, metadata, metadata_from_json, metadata_json, select_classes
from causalvae.worlds.sprites.render import position_block

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
    sel = select_classes(select)
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
        (stage / "metadata.json").write_text(metadata_json(metadata(sel)))
        replace_dir(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out



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
    meta = metadata_from_json(mf.read_text(), mf)
    sizes = tuple(int(s) for s in meta["latents_sizes"])
    n = math.prod(sizes)
    return {
        "imgs": _load_npy(root / "imgs.npy", np.uint8, (n, RESOLUTION, RESOLUTION)),
        "latents_values": np.asarray(_load_npy(root / "latents_values.npy", np.float64, (n, 6))),
        "latents_classes": np.asarray(_load_npy(root / "latents_classes.npy", np.int64, (n, 6))),
        "metadata": meta,
    }
