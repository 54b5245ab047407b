"""dSprites, rendered locally and read safely: one import for the sprites world's grid.

The work is done in four modules of this package, whose public names are all here:

- :mod:`.factors`: the six factors, their classes and values, image indices, the metadata;
- :mod:`.render`: the renderer, calibrated on real dSprites frames, and the symmetries;
- :mod:`.grid`: the grid writer (``causalvae generate dsprites``) and its reader;
- :mod:`.archive`: the official archive's reader (never downloaded, never unpickled).

``python -m causalvae.worlds.sprites.dsprites sheet OUT.png`` draws a contact sheet of the grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from causalvae.worlds.sprites.archive import ARCHIVE_NAME, read_images, read_official
from causalvae.worlds.sprites.factors import (
    GRAPH_BINS,
    LATENTS_BASES,
    LATENTS_NAMES,
    LATENTS_SIZES,
    N_IMAGES,
    RESOLUTION,
    SHAPES,
    STYLE_FIELDS,
    GridError,
    Metadata,
    all_classes,
    classes_to_values,
    graph_classes,
    index_to_latents,
    latents_bases,
    latents_to_index,
    metadata,
    possible_values,
)
from causalvae.worlds.sprites.grid import load_grid, write_grid
from causalvae.worlds.sprites.render import (
    SYMMETRY_K,
    SYMMETRY_PERIOD,
    best_matches,
    equivalent,
    equivalent_indices,
    image,
    images,
    lattice,
    orientation_differences,
    position_block,
    read_frames,
    render_sprite,
    sprite,
    symmetry_k,
    symmetry_tolerances,
)

#: The lattice under its old name (bench/bench_grid.py times it).
_lattice = lattice

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
    "RESOLUTION",
    "latents_bases",
    "STYLE_FIELDS",
    "graph_classes",
    "lattice",
    "sheet",
]

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
