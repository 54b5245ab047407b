"""How well one drawing per shape, turned, scaled and moved by bilinear resampling, can draw
the sprites world's pictures at all: the ceiling of a decoder placed with
``--place-mode similarity``. For each shape the true outline (the renderer's, at scale 1,
upright, centred) is drawn as sharp logits (+10 inside, -10 outside) at the picture's size, at
twice and at four times it; each of 3,000 dataset pictures is then drawn by ``nets.transform``
from that drawing with the picture's exact scale, angle and place (no model, no learning), and
compared with the picture (IoU, plain). The same with smooth logits, the signed distance to
the outline in pixels: bilinear resampling of a smooth field puts an edge between the
drawing's pixels, of a saturated one on its pixel step. Writes a Markdown table.

    python docs/templateceiling.py --data data/sprites --out docs/reports/sprites/template-ceiling.md
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from causalvae.io import atomic_write_text
from causalvae.nets import transform
from causalvae.worlds.sprites.render import _outline, _scan, images

SHAPES = ("square", "ellipse", "heart")
SIZE = 64  # the sprites world's pictures


def drawing(shape: int, factor: int, smooth: bool = False) -> torch.Tensor:
    """The upright scale-1 outline of ``shape`` centred on a picture ``factor`` times the
    picture's size: sharp logits (+10 / -10), or with ``smooth`` the signed distance to the
    outline in picture pixels (positive inside); (1, 1, R, R)."""
    r = SIZE * factor
    at = ((2 * np.arange(r) + 1) / r - 1) * (SIZE / 2)  # pixel centres, in picture pixels from the centre
    vx, vy = _outline(shape, 1.0, 0.0)
    inside = _scan(vx, vy, at, at).astype(bool)
    if not smooth:
        return torch.from_numpy(inside.astype(np.float32))[None, None] * 20 - 10
    xs, ys = np.meshgrid(at, at)  # columns, rows
    points = np.stack([xs.ravel(), ys.ravel()], 1)
    a = np.stack([vx, vy], 1)
    ab = np.roll(a, -1, 0) - a
    dist = np.full(len(points), np.inf)
    for i in range(len(a)):  # the distance to each edge of the outline polygon
        ap = points - a[i]
        t = np.clip(ap @ ab[i] / (ab[i] @ ab[i]), 0.0, 1.0)
        dist = np.minimum(dist, np.linalg.norm(ap - t[:, None] * ab[i], axis=1))
    signed = np.where(inside.ravel(), dist, -dist).reshape(r, r)
    return torch.from_numpy(signed.astype(np.float32))[None, None]


def ceiling(classes: np.ndarray, factor: int, smooth: bool = False) -> dict[str, np.ndarray]:
    """IoU per picture of each shape: the drawing transformed to the picture's exact factors."""
    pictures = images(classes) > 0
    out = {}
    for shape, name in enumerate(SHAPES):
        m = classes[:, 1] == shape
        c = classes[m]
        scale = 0.5 + 0.1 * c[:, 2]  # the grid's scale values
        angle = c[:, 3] * 2 * math.pi / 39  # counter-clockwise on screen; transform turns clockwise
        cx, cy = (c[:, k] * 32 / 31 + 15.5 for k in (4, 5))  # the sprite's centre, in pixel indices
        params = torch.tensor(np.stack([(2 * cx + 1) / SIZE - 1, (2 * cy + 1) / SIZE - 1, np.log(scale), -angle], 1), dtype=torch.float32)
        with torch.no_grad():
            drawn = transform(drawing(shape, factor, smooth).expand(len(c), -1, -1, -1).contiguous(), params, SIZE)[:, 0].numpy() > 0
        truth = pictures[m]
        out[name] = (drawn & truth).sum((1, 2)) / (drawn | truth).sum((1, 2))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a sprites dataset (its truth_grid.npy: each picture's grid classes)")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    grid = np.load(Path(a.data) / "truth_grid.npy", allow_pickle=False)
    classes = grid[np.random.default_rng(0).choice(len(grid), min(a.n, len(grid)), replace=False)]
    lines = [
        f"Each shape's true outline drawn once (upright, scale 1) at the picture's size or twice it, as sharp logits (+10 inside, -10 outside) or smooth ones (the signed distance to the outline), then turned, scaled and moved to each of {len(classes):,} dataset pictures' exact factors by bilinear resampling (`nets.transform`), against the picture: IoU, mean (and the worst picture's); no model (`python docs/templateceiling.py`):",
        "",
        "| drawing | " + " | ".join(SHAPES) + " | all |",
        "|---|" + "---:|" * (len(SHAPES) + 1),
    ]
    for smooth in (False, True):
        for factor in (1, 2):
            ious = ceiling(classes, factor, smooth)
            cells = [f"{ious[s].mean():.3f} ({ious[s].min():.2f})" for s in SHAPES]
            every = np.concatenate([ious[s] for s in SHAPES])
            kind = "smooth logits" if smooth else "sharp logits"
            lines.append(f"| {kind}, {SIZE * factor} x {SIZE * factor} | " + " | ".join(cells) + f" | {every.mean():.3f} ({every.min():.2f}) |")
    atomic_write_text(Path(a.out), "\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
