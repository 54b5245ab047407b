"""Contact sheets: many small images in one grid, each with a caption, to look at a world.

Any world whose renderer returns images as ``(N, H, W, 3)`` ``uint8`` arrays (RGB, HWC)
can use it::

    from causalvae.worlds.sheet import contact_sheet
    contact_sheet(images, captions, columns=8).save("sheet.png")

Tiles are enlarged with NEAREST so the real pixels stay visible; captions are written
under each tile in Pillow's default font, wrapped on spaces to the tile's width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["contact_sheet"]

PAD = 4  # pixels between tiles and around the sheet
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:  # Pillow >= 10.1: a scalable default font
        return ImageFont.load_default(size=size)
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(text: str, width: int, draw: ImageDraw.ImageDraw, font) -> list[str]:
    """``text`` cut into lines no wider than ``width`` pixels (on spaces; an over-long
    word is cut by characters). Explicit newlines are kept."""
    lines: list[str] = []
    for para in str(text).split("\n"):
        line = ""
        for word in para.split(" "):
            cand = f"{line} {word}" if line else word
            if draw.textlength(cand, font=font) <= width:
                line = cand
                continue
            if line:
                lines.append(line)
            while draw.textlength(word, font=font) > width and len(word) > 1:
                cut = len(word)
                while cut > 1 and draw.textlength(word[:cut], font=font) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def contact_sheet(
    images: np.ndarray,
    captions: Sequence[str] | None = None,
    columns: int = 8,
    scale: int = 3,
    font_size: int = 11,
) -> Image.Image:
    """A grid of ``images`` (``(N, H, W, 3)`` or ``(N, H, W)`` ``uint8``), ``columns`` per
    row, each tile enlarged ``scale`` times (NEAREST) with its caption underneath.

    ``captions`` (one string per image, may contain newlines) is optional; with none, the
    tiles are packed without caption space. Returns an RGB :class:`PIL.Image.Image`.
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"images must have shape (N, H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {arr.dtype}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    arr = arr[..., :3]
    n, h, w, _ = arr.shape
    if n == 0:
        raise ValueError("images is empty")
    if int(columns) < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    if int(scale) < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if captions is not None and len(captions) != n:
        raise ValueError(f"captions has {len(captions)} entries for {n} images")
    columns, scale = int(columns), int(scale)
    tw, th = w * scale, h * scale
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(c, tw, probe, font) for c in captions] if captions is not None else None
    line_h = font_size + 2
    cap_h = (max(len(c) for c in wrapped) * line_h + 2) if wrapped else 0
    rows = -(-n // columns)
    cols = min(columns, n)
    sheet = Image.new("RGB", (PAD + cols * (tw + PAD), PAD + rows * (th + cap_h + PAD)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        r, c = divmod(i, columns)
        x = PAD + c * (tw + PAD)
        y = PAD + r * (th + cap_h + PAD)
        tile = Image.fromarray(np.ascontiguousarray(arr[i]), "RGB")
        if scale != 1:
            tile = tile.resize((tw, th), Image.Resampling.NEAREST)
        sheet.paste(tile, (x, y))
        if wrapped:
            for k, line in enumerate(wrapped[i]):
                draw.text((x, y + th + 1 + k * line_h), line, fill=TEXT, font=font)
    return sheet
