"""Pictures in and out: display conversion, the strict PNG reader, difference maps, sheets.

Every interface (the CLI, the viewer, the figures) turns pictures into pixels through this
module, so a binary picture (stored 0/1) is shown as 0/255 in one place only, and a user's
PNG is checked the same way wherever it comes in.

- :func:`display`: model or dataset pictures as displayable ``uint8`` pixels;
- :func:`to_255`: pictures on the 0-255 scale (binary ones scaled), for pixel distances;
- :func:`decode_png` / :func:`read_png_file`: a user's PNG as a model input, refused with
  one clear reason when it is not an opaque 8-bit PNG of the model's size;
- :func:`difference_map`: where two pictures differ, scaled so the largest change is white;
- :func:`contact_sheet`, :func:`titled`, :func:`png_bytes`: sheets of captioned tiles.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

from causalvae.errors import CausalVAEError
from causalvae.worlds.sheet import PAD, contact_sheet

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
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


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
    """``img`` under a one-line title."""
    out = Image.new("RGB", (img.width, img.height + 22), (255, 255, 255))
    out.paste(img, (0, 22))
    ImageDraw.Draw(out).text((6, 5), text, fill=(0, 0, 0))
    return out
