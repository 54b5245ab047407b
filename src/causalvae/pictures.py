"""Pictures in and out: display conversion, the strict PNG reader, difference maps, sheets.

Every interface (the CLI, the viewer, the figures) turns pictures into pixels through this
module, so a binary picture (stored 0/1) is shown as 0/255 in one place only, and a user's
PNG is checked the same way wherever it comes in.

- :func:`display`: model or dataset pictures as displayable ``uint8`` pixels;
- :func:`to_255`: pictures on the 0-255 scale (binary ones scaled), for pixel distances;
- :func:`decode_png` / :func:`read_png_file`: a user's PNG as a model input, refused with
  one clear reason when it is not an opaque 8-bit PNG of the model's size;
- :func:`difference_map`: where two pictures differ, scaled so the largest change is white;
- :func:`shifted`: pictures moved by a few whole pixels at random (training augmentation);
- :func:`contact_sheet`, :func:`titled`, :func:`png_bytes`: sheets of captioned tiles
  (tiles enlarged with NEAREST so the real pixels stay visible; captions under each tile in
  Pillow's default font, wrapped on spaces to the tile's width)::

      contact_sheet(images, captions, columns=8).save("sheet.png")
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from causalvae.errors import CausalVAEError

__all__ = ["PAD", "contact_sheet", "decode_png", "difference_map", "display", "png_bytes", "read_png_file", "rgb", "titled", "to_255"]


def _array(images) -> np.ndarray:
    return images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)


def to_255(images, binary: bool) -> np.ndarray:
    """Pictures on the 0-255 scale: binary (0/1) ones times 255, the others as they are."""
    arr = _array(images)
    return arr.astype(np.uint8) * np.uint8(255) if binary else arr


def display(images, binary: bool, *, channels_first: bool = False) -> np.ndarray:
    """Pictures as displayable ``uint8`` pixels: ``(..., H, W, 3)`` for colour, ``(..., H, W)``
    for one channel (binary pictures scaled to 0/255). ``images`` is ``(..., H, W, C)``, or
    ``(..., C, H, W)`` with ``channels_first`` (a model's tensors)."""
    arr = _array(images)
    if channels_first:
        arr = np.moveaxis(arr, -3, -1)
    if arr.shape[-1] == 1:
        arr = arr[..., 0]
    return np.ascontiguousarray(to_255(arr, binary).astype(np.uint8))


def rgb(pixels: np.ndarray) -> np.ndarray:
    """Displayable pixels as ``(..., H, W, 3)`` (a grey picture repeated on three channels)."""
    arr = np.asarray(pixels)
    return arr if arr.shape[-1:] == (3,) and arr.ndim >= 3 else np.repeat(arr[..., None], 3, axis=-1)


def difference_map(a: torch.Tensor, b: torch.Tensor, binary: bool) -> tuple[np.ndarray, float]:
    """Where two model pictures (uint8 ``(C, H, W)``) differ: the largest change over the
    channels, scaled so the largest is white (binary pictures: every changed pixel white).
    Returns the grey ``(H, W)`` uint8 map and the largest change (0-255; binary: 0 or 1)."""
    diff = (a.float() - b.float()).abs().amax(0)
    top = float(diff.max())
    if binary:
        return ((diff > 0).numpy() * 255).astype(np.uint8), top
    return (diff * (255.0 / max(top, 1.0))).round().clamp(0, 255).to(torch.uint8).numpy(), top


def decode_png(data: bytes, channels: int, size: int, binary: bool) -> torch.Tensor:
    """The bytes of a PNG as a ``(1, C, H, W)`` uint8 model input, checked against the model's
    size and colour mode before its pixels are decoded. Only the PNG decoder sees the bytes;
    pictures with too many pixels, 16-bit or float pixels, or transparent pixels are refused.
    Binary models read a grey picture as 0/1 (above 127: 1)."""
    from causalvae.io import check_png_header

    try:  # the pixel count is read from the header, before anything is decoded
        header = check_png_header(data, "the picture")
    except CausalVAEError:
        raise CausalVAEError(f"the picture has too many pixels; this model needs {size}x{size}") from None
    if header is not None and header != (size, size):
        raise CausalVAEError(f"the picture is {header[0]}x{header[1]}; this model needs {size}x{size}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=["PNG"])  # no other decoder sees the bytes
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise CausalVAEError(f"the picture has too many pixels; this model needs {size}x{size}") from None
    except UnidentifiedImageError:
        raise CausalVAEError("the upload is not a PNG picture: send a PNG") from None
    except Exception as exc:  # a damaged PNG: Pillow raises ValueError, OSError, SyntaxError...
        raise CausalVAEError(f"the PNG is damaged and cannot be read ({exc})") from None
    with im:
        if im.format != "PNG":
            raise CausalVAEError(f"the upload is a {im.format} picture; send a PNG")
        if im.size != (size, size):
            raise CausalVAEError(f"the picture is {im.size[0]}x{im.size[1]}; this model needs {size}x{size}")
        if channels == 3 and im.mode not in ("RGB", "RGBA", "P"):
            raise CausalVAEError(f"the picture's mode is {im.mode}; this model needs a colour (RGB) picture")
        if im.mode in ("I;16", "I;16B", "I", "F"):
            raise CausalVAEError(f"the picture has {im.mode} pixels; send an 8-bit PNG")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. Pillow's note on palette transparency
                rgba = im.convert("RGBA")
                arr = np.asarray(rgba.convert("RGB" if channels == 3 else "L"))
                alpha = np.asarray(rgba)[..., 3]
        except Exception as exc:  # truncated or corrupt pixel data
            raise CausalVAEError(f"the PNG is damaged and cannot be decoded ({exc})") from None
        if (alpha < 255).any():
            raise CausalVAEError("the picture has transparent pixels; send an opaque PNG (the model draws no transparency)")
    if channels == 1:
        arr = ((arr > 127).astype(np.uint8) if binary else arr)[..., None]
    # A copy: Pillow's pixels are read-only, and a grey picture's transpose is no copy.
    return torch.from_numpy(np.array(arr.transpose(2, 0, 1)))[None]


#: The largest PNG file :func:`read_png_file` reads, in bytes.
MAX_FILE_BYTES = 16 * 2**20


def read_png_file(path: str | os.PathLike, channels: int, size: int, binary: bool) -> torch.Tensor:
    """A PNG file as a model input (:func:`decode_png`); errors name the file."""
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            raise CausalVAEError(f"{path}: the file is larger than {MAX_FILE_BYTES:,} bytes; this model needs a {size}x{size} PNG")
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise CausalVAEError(f"{path}: not a readable picture ({exc.strerror or exc})") from None
    try:
        return decode_png(data, channels, size, binary)
    except CausalVAEError as exc:
        raise CausalVAEError(f"{path}: {exc}") from None


def png_bytes(pixels: np.ndarray | Image.Image) -> bytes:
    """A uint8 ``(H, W, 3)`` or ``(H, W)`` array (or a PIL image) encoded as PNG."""
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.ascontiguousarray(pixels))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def titled(img: Image.Image, text: str) -> Image.Image:
    """``img`` under a title, wrapped to the picture's width."""
    font = _font(12)
    lines = _wrap(text, max(img.width - 12, 40), ImageDraw.Draw(Image.new("RGB", (1, 1))), font) or [""]
    top = 8 + 15 * len(lines)
    out = Image.new("RGB", (img.width, img.height + top), (255, 255, 255))
    out.paste(img, (0, top))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((6, 4 + 15 * i), line, fill=(0, 0, 0), font=font)
    return out


# ------------------------------------------------------------------------------ contact sheets

PAD = 4  # pixels between tiles and around the sheet
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans (shipped with matplotlib, a dependency) at ``size`` pixels: Pillow's own
    scalable font draws a space two pixels wide, which runs captions' words together."""
    path = _dejavu()
    if path is not None:
        return ImageFont.truetype(path, size)
    try:  # Pillow >= 10.1: a scalable default font
        return ImageFont.load_default(size=size)
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


@functools.cache
def _dejavu() -> str | None:
    """The path of matplotlib's DejaVuSans.ttf, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
        if os.path.isfile(path):
            return path
    return None


def named_value(name: str, text: str) -> str:
    """A value as a caption shows it: a word alone (``square``), a number with its variable's
    name (``scale=0.6``), since a row of bare numbers ("0.6 1 2 0") says nothing."""
    try:
        float(text)
    except ValueError:
        return text
    return f"{name}={text}"


def _wrap(text: str, width: int, draw: ImageDraw.ImageDraw, font) -> list[str]:
    """``text`` cut into lines no wider than ``width`` pixels (on spaces; an over-long
    word is cut after its ``=`` when its name fits, so that a value is never split, else by
    characters). Explicit newlines are kept."""
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
                eq = word.find("=") + 1
                if 0 < eq < len(word) and draw.textlength(word[:eq], font=font) <= width:
                    cut = eq  # "intensity=" above "235", never "intensity=2" above "35"
                else:
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


def warped(images: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Each picture of ``images`` (N, C, H, W; uint8) turned by an angle drawn uniformly
    within ``degrees`` either way, scaled by a factor within ``1 +- degrees / 120`` and sheared
    within ``+- degrees / 80`` (12 degrees: +-10% and +-0.15), about its centre, with bilinear
    interpolation rounded back to whole values (a binary picture stays binary); the uncovered
    border repeats the picture's edge pixels. ``degrees`` 0: the pictures themselves."""
    if not degrees:
        return images
    import torch
    import torch.nn.functional as F

    n = len(images)
    turn = np.deg2rad(rng.uniform(-degrees, degrees, n))
    scale = 1.0 + rng.uniform(-1.0, 1.0, n) * degrees / 120.0
    shear = rng.uniform(-1.0, 1.0, n) * degrees / 80.0
    theta = np.zeros((n, 2, 3), dtype=np.float32)  # output -> input coordinates
    theta[:, 0, 0], theta[:, 0, 1] = np.cos(turn) / scale, -np.sin(turn) / scale + shear
    theta[:, 1, 0], theta[:, 1, 1] = np.sin(turn) / scale, np.cos(turn) / scale
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    grid = F.affine_grid(torch.from_numpy(theta), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.round().clamp(0, float(np.iinfo(images.dtype).max) if images.dtype.kind == "u" else None).numpy().astype(images.dtype)


def shifted(images: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each picture of ``images`` (N, C, H, W) moved by a whole number of pixels drawn
    uniformly from ``-shift .. shift`` on each axis; the uncovered border repeats the picture's
    edge pixels (its background, when nothing touches the edge). ``shift`` 0: the pictures
    themselves."""
    if not shift:
        return images
    n, _, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (shift, shift), (shift, shift)), mode="edge")
    dy, dx = rng.integers(0, 2 * shift + 1, (2, n))
    rows = dy[:, None] + np.arange(h)[None, :]  # (N, H)
    cols = dx[:, None] + np.arange(w)[None, :]  # (N, W)
    return padded[np.arange(n)[:, None, None, None], np.arange(images.shape[1])[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
