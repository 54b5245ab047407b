"""The Morpho-MNIST morphology, written from its description (Castro et al. 2019,
"Morpho-MNIST: quantitative assessment and diagnostics for representation learning").

A digit's stroke is measured and changed at ``SCALE`` times its resolution:

- **measure** (:func:`thickness`): upscale the picture (a cubic spline), keep the pixels at
  least half as bright as its brightest (the stroke), thin the stroke to its one-pixel
  skeleton (Zhang and Suen's thinning, :func:`skeleton`) and read the Euclidean distance
  transform on it. The stroke is twice as thick as the distance from its centre line to its
  edge, so::

      thickness = 2 * mean(distance to the background at skeleton pixels) / SCALE   (pixels)

- **thicken or thin** (:func:`morph`): dilation or erosion of the upscaled stroke
  by a disc of radius r. A disc of radius r grows (shrinks) a shape to exactly the points
  within r of it (farther than r inside it), so both are a threshold of the stroke's signed
  distance field ``phi`` (positive inside): dilation keeps ``phi > -r``, erosion
  ``phi > r``, for any real r: fractional radii need no interpolation between discs. The
  edge is drawn anti-aliased (one upscaled pixel wide) and the picture is downscaled by
  averaging blocks of ``SCALE x SCALE``. The radius is chosen so that the *measured*
  thickness of the final 8-bit picture equals the target: a first guess from the measured thickness of
  the source (``r = SCALE * (target - measured) / 2``: a dilation by r widens a stroke by 2r),
  then secant steps on the measurement itself, until it is within ``TOLERANCE`` or after
  ``MAX_STEPS`` measurements (the best radius is kept);
- **set the intensity** (:func:`set_intensity`, inside :func:`morph`): scale the grey levels so that the median of
  the bright pixels (those at least half as bright as the brightest) equals the target, and
  round to 8 bits.

Everything is numpy and scipy.ndimage; it is deterministic (no randomness).

    >>> import numpy as np
    >>> bar = np.zeros((28, 28)); bar[4:24, 12:15] = 1.0     # a vertical bar, 3 pixels wide
    >>> round(thickness(bar), 1)
    3.0
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: The upscaling factor of measurement and morphology (Morpho-MNIST's).
SCALE = 4
#: The stroke: pixels at least this fraction of the brightest.
THRESHOLD = 0.5
#: Stop choosing the radius when the measured thickness is this close to the target (pixels).
TOLERANCE = 0.02
#: At most this many measurements per target.
MAX_STEPS = 6


def upscale(image: np.ndarray) -> np.ndarray:
    """The picture ``SCALE`` times larger (a cubic spline of its pixel areas), in [0, max]."""
    up = ndimage.zoom(np.asarray(image, dtype=np.float64), SCALE, order=3, mode="grid-constant", grid_mode=True)
    return np.clip(up, 0.0, None)


def stroke(image: np.ndarray) -> np.ndarray:
    """The upscaled stroke: a boolean mask of the upscaled pixels at least ``THRESHOLD`` of the brightest."""
    up = upscale(image)
    top = up.max()
    return up >= THRESHOLD * top if top > 0 else np.zeros(up.shape, dtype=bool)


def _deletable(step: int) -> np.ndarray:
    """For each of the 256 neighbourhoods (bit k set: neighbour P(k+2) is stroke, P2 north,
    then clockwise), whether Zhang and Suen's sub-iteration ``step`` deletes the pixel."""
    table = np.zeros(256, dtype=bool)
    for code in range(256):
        p = [(code >> k) & 1 for k in range(8)]  # P2..P9
        b = sum(p)
        a = sum(1 for k in range(8) if p[k] == 0 and p[(k + 1) % 8] == 1)
        p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
        if step == 0:
            shape = p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
        else:
            shape = p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
        table[code] = 2 <= b <= 6 and a == 1 and shape
    return table


_TABLES = (_deletable(0), _deletable(1))
#: The weight of each neighbour in the neighbourhood code (P2 north = bit 0, then clockwise).
_CODE = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], dtype=np.int32)


def skeleton(mask: np.ndarray) -> np.ndarray:
    """The one-pixel-wide skeleton of a boolean mask by Zhang and Suen's parallel thinning
    (Communications of the ACM 27(3), 1984): two sub-iterations, each deleting at once every
    stroke pixel with 2 to 6 stroke neighbours, exactly one 0 -> 1 transition around it, and
    (first) P2*P4*P6 = P4*P6*P8 = 0 or (second) P2*P4*P8 = P2*P6*P8 = 0, until none is
    deleted. Each pixel's neighbourhood is coded as 8 bits and looked up in a table."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, dtype=bool)
    if not mask.any():
        return out
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    img = np.pad(mask[r0:r1, c0:c1], 1).astype(np.int32)
    changed = True
    while changed:
        changed = False
        for table in _TABLES:
            code = ndimage.correlate(img, _CODE, mode="constant")
            delete = (img == 1) & table[code]
            if delete.any():
                img[delete] = 0
                changed = True
    out[r0:r1, c0:c1] = img[1:-1, 1:-1].astype(bool)
    return out


def thickness(image: np.ndarray) -> float:
    """The mean stroke thickness of a grey picture, in its own pixels (0 for an empty picture)."""
    mask = stroke(image)
    skel = skeleton(mask)
    if not skel.any():
        return 0.0
    dist = ndimage.distance_transform_edt(mask)
    return float(2.0 * dist[skel].mean() / SCALE)


def signed_distance(image: np.ndarray) -> np.ndarray:
    """The upscaled stroke's signed distance field, in upscaled pixels: positive inside, the
    edge (halfway between a stroke pixel and a background pixel) at 0."""
    mask = stroke(image)
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    return np.where(mask, inside - 0.5, 0.5 - outside)


def draw(phi: np.ndarray, radius: float) -> np.ndarray:
    """The stroke dilated by a disc of ``radius`` upscaled pixels (eroded when negative),
    anti-aliased and downscaled: float64 in [0, 1] at the original size."""
    high = np.clip(phi + radius + 0.5, 0.0, 1.0)
    h, w = high.shape[0] // SCALE, high.shape[1] // SCALE
    return high.reshape(h, SCALE, w, SCALE).mean(axis=(1, 3))


def morph(image: np.ndarray, target_thickness: float, target_intensity: float) -> tuple[np.ndarray, float]:
    """The picture's stroke thickened or thinned to measure ``target_thickness`` pixels, then
    inked to ``target_intensity``: ``(uint8 picture, its measured thickness)``. The radius is
    chosen on the measurement of the final 8-bit picture, so the thickness it reports is the
    one anybody measuring the picture finds."""
    return morph_prepared(signed_distance(image), thickness(image), target_thickness, target_intensity)


def morph_prepared(phi: np.ndarray, measured: float, target_thickness: float, target_intensity: float) -> tuple[np.ndarray, float]:
    """:func:`morph` of a source known by its signed distance field and measured thickness."""
    floor = 0.75 - float(phi.max())  # an erosion never removes the whole stroke

    def final(radius: float) -> np.ndarray:
        return set_intensity(draw(phi, radius), target_intensity)

    tried: list[tuple[float, float]] = []  # (radius, measured thickness)
    radius = SCALE * (target_thickness - measured) / 2.0
    for _ in range(MAX_STEPS):
        radius = max(radius, floor)
        if any(r == radius for r, _ in tried):
            break
        tried.append((radius, thickness(final(radius))))
        if abs(tried[-1][1] - target_thickness) <= TOLERANCE:
            break
        radius = _next_radius(tried, target_thickness)
    best = min(tried, key=lambda rt: abs(rt[1] - target_thickness))
    return final(best[0]), best[1]


def _next_radius(tried: list[tuple[float, float]], target: float) -> float:
    """A secant step through the two latest measurements (a slope of SCALE / 2 first, as a
    disc of radius r widens a stroke by 2r upscaled pixels), bracketed by the measurements
    already on either side of the target."""
    r, t = tried[-1]
    slope = 2.0 / SCALE
    if len(tried) > 1:
        r0, t0 = tried[-2]
        if r != r0 and (t - t0) / (r - r0) > 0.05:
            slope = (t - t0) / (r - r0)
    guess = r + (target - t) / slope
    below = [rr for rr, tt in tried if tt < target]
    above = [rr for rr, tt in tried if tt > target]
    lo, hi = (max(below) if below else -np.inf), (min(above) if above else np.inf)
    if not lo < guess < hi and np.isfinite(lo) and np.isfinite(hi):
        guess = 0.5 * (lo + hi)
    return float(guess)


def bright(image: np.ndarray) -> np.ndarray:
    """The bright pixels: at least ``THRESHOLD`` of the brightest."""
    image = np.asarray(image, dtype=np.float64)
    top = image.max()
    return image >= THRESHOLD * top if top > 0 else np.zeros(image.shape, dtype=bool)


def intensity(image: np.ndarray) -> float:
    """The median grey level of a picture's bright pixels (0 for an empty picture)."""
    image = np.asarray(image, dtype=np.float64)
    mask = bright(image)
    return float(np.median(image[mask])) if mask.any() else 0.0


def set_intensity(image: np.ndarray, target: float) -> np.ndarray:
    """The picture's grey levels scaled so that the median of its bright pixels is ``target``,
    rounded to uint8. Scaling keeps which pixels are bright until pixels clip at 255; then
    the brightest is 255 and dimmer pixels join the bright ones, lowering their median, so the
    scale is found by bisection on the median of the final 8-bit picture."""
    image = np.asarray(image, dtype=np.float64)
    median = intensity(image)
    if median <= 0:
        return np.zeros(image.shape, dtype=np.uint8)

    def ink(scale: float) -> np.ndarray:
        return np.clip(np.rint(image * scale), 0, 255).astype(np.uint8)

    lo = hi = target / median
    best = ink(lo)
    if abs(intensity(best) - target) <= 0.5:
        return best
    for _ in range(20):  # the median rises with the scale: bracket the target, then bisect
        if intensity(ink(lo)) <= target:
            break
        lo /= 1.5
    for _ in range(20):
        if intensity(ink(hi)) >= target:
            break
        hi *= 1.5
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if intensity(ink(mid)) < target else (lo, mid)
    return min((best, ink(lo), ink(hi)), key=lambda im: abs(intensity(im) - target))
