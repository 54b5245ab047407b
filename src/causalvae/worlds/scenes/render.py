"""The procedural renderer of the scene world: two game characters in a duel.

The image's parents are the six labels of :data:`LABELS` (indices in the value order of
``scenes.yaml``); the exogenous *style* (:data:`STYLE_FIELDS`: each character's offset and
size, the background shade) is the variation the labels do not explain.

Everything is drawn by this module's own code, with Pillow and numpy only:

- **Sprites.** A character is a little puppet: a skeleton (hip, lean of the torso, two
  arms and two legs, each a chain of angles) dressed with polygons and circles in *units*
  (the character's feet at the origin, facing +x, y down; a standing character is about
  100 units tall). :func:`_build_satyr` and :func:`_build_golem` dress it; the pose tables
  (:data:`_SATYR_POSES`, :data:`_GOLEM_POSES`) give the angles. A sprite is rasterised
  :data:`SUPERSAMPLE` times larger with ``ImageDraw`` (each body part outlined in a dark
  line, then filled), reduced by area averaging of premultiplied RGBA (clean anti-aliased
  edges), cropped to its content and kept in a cache keyed by (resolution, character,
  type, pose, facing, scale level).
- **Scale** is continuous for the user but quantised for the cache to multiples of
  :data:`SCALE_STEP` (0.02: 16 levels over the default range 0.85..1.15; one level is
  under one pixel of character height at 64x64).
- **Positions** are continuous: a sprite lands at a sub-pixel position by bilinear
  splitting of its premultiplied pixels, so the image moves smoothly with the offsets.
  With no offset the anchors are whole pixels and sprites are pasted unfiltered.
- **Composition** (numpy): the background (sky gradient and sandy ground, its colours
  interpolated in a three-stop palette dusk -> morning -> day by the background shade,
  a matrix product over the batch), then the reactor, then the actor (whose weapon is in
  front when they overlap), each alpha-blended at its anchor.

Actor (left, facing right): Attack (lunge, weapon swung forward), Taunt (arms up, a "!"
mark), Walk (mid-stride). Reactor (right, mirrored to face the actor): Dying (lying on its
back, X eyes), Hurt (recoiling backwards, a red impact star), Idle (standing), Attack (the
actor's attack pose, mirrored).

Satyr (horned head, goatee, backward-bent goat legs with hooves, furry lower body):
type1 green tunic + wooden club, brown fur; type2 red armour with gold trim, helmet and
spear, dark fur; type3 purple robe + staff with a glowing cyan orb, pale fur.
Golem (blocky stone body, small head sunk between boulder shoulders, big fists):
type1 grey stone, yellow eyes, bare fists; type2 mossy green stone with moss patches and
a war hammer; type3 dark basalt with glowing orange lava cracks and orange crystal spikes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from causalvae.errors import CausalVAEError, suggest

__all__ = [
    "LABELS",
    "VALUES",
    "STYLE_FIELDS",
    "RESOLUTIONS",
    "StyleRanges",
    "SceneRenderer",
    "RenderError",
]


class RenderError(CausalVAEError):
    """Bad input to the scene renderer (labels, style, resolution, ranges)."""


#: The image's parents, in this order; each label is an index into its values below.
LABELS = ("actor", "actor_type", "action", "reactor", "reactor_type", "reaction")

#: The value names of each label, in the graph's value order (``scenes.yaml``).
VALUES: dict[str, tuple[str, ...]] = {
    "actor": ("Satyr", "Golem"),
    "actor_type": ("type1", "type2", "type3"),
    "action": ("Attack", "Taunt", "Walk"),
    "reactor": ("Satyr", "Golem"),
    "reactor_type": ("type1", "type2", "type3"),
    "reaction": ("Dying", "Hurt", "Idle", "Attack"),
}

#: The exogenous style of one image, one float per field.
STYLE_FIELDS = ("actor_dx", "actor_dy", "actor_scale", "reactor_dx", "reactor_dy", "reactor_scale", "background")

RESOLUTIONS = (64, 96, 128)

# ---------------------------------------------------------------------------- geometry

#: One unit as a fraction of the image size, at character scale 1 (a standing character
#: is ~100 units tall, i.e. ~70% of the image height).
UNIT = 0.007
#: The anchors (the point between the feet) as fractions of the image size.
ACTOR_X, REACTOR_X, GROUND_Y = 0.26, 0.74, 0.90
#: The character's core (torso and head; limbs and weapons may reach beyond it), in units
#: around the anchor: half its width and its height. StyleRanges keeps it inside the frame.
CORE_HALF_WIDTH, CORE_HEIGHT = 22.0, 96.0
#: How far behind its anchor (in units) a lying (Dying) character's head end reaches; the
#: rest of the body lies toward the opponent.
DYING_BACK = 30.0
#: Scale levels of the sprite cache.
SCALE_STEP = 0.02
#: Hard limits on a style value passed to render (beyond the sampling ranges).
SCALE_LIMITS = (0.5, 1.5)
OFFSET_LIMIT = 0.25
#: Sprites are drawn this many times larger, then reduced by area averaging.
SUPERSAMPLE = 4

#: The art's poses: the actor's actions, then the reactor's reactions (Attack drawn once).
POSES = ("Attack", "Taunt", "Walk", "Dying", "Hurt", "Idle")


# ---------------------------------------------------------------------------- style ranges


def _pair(name: str, value: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise RenderError(f"StyleRanges.{name} must be a (low, high) pair of numbers, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise RenderError(f"StyleRanges.{name} must be finite, got ({lo}, {hi})")
    if lo > hi:
        raise RenderError(f"StyleRanges.{name}: low {lo} > high {hi}")
    return lo, hi


@dataclass(frozen=True)
class StyleRanges:
    """The uniform sampling ranges of the style, each a ``(low, high)`` pair.

    - ``offset_x``, ``offset_y``: each character's displacement from its anchor, as a
      fraction of the image size (+x right, +y down);
    - ``scale``: each character's size factor;
    - ``background``: the background shade in [0, 1] (0 dusk, 0.5 morning, 1 day).

    Validated on construction: low <= high, scale > 0 (within ``SCALE_LIMITS``),
    background within [0, 1], and offsets small enough that each character's core (torso
    and head) stays inside the frame at the largest scale.
    """

    offset_x: tuple[float, float] = (-0.06, 0.06)
    offset_y: tuple[float, float] = (-0.04, 0.04)
    scale: tuple[float, float] = (0.85, 1.15)
    background: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _pair(f.name, getattr(self, f.name)))
        s_lo, s_hi = self.scale
        if s_lo <= 0:
            raise RenderError(f"StyleRanges.scale must be > 0, got low {s_lo}")
        if s_lo < SCALE_LIMITS[0] or s_hi > SCALE_LIMITS[1]:
            raise RenderError(f"StyleRanges.scale must lie within {SCALE_LIMITS}, got {self.scale}")
        b_lo, b_hi = self.background
        if b_lo < 0 or b_hi > 1:
            raise RenderError(f"StyleRanges.background must lie within [0, 1], got {self.background}")
        half_w = CORE_HALF_WIDTH * UNIT * s_hi
        height = CORE_HEIGHT * UNIT * s_hi
        x_lo, x_hi = self.offset_x
        # actor's left edge and (mirror) reactor's right edge; both anchors are symmetric
        if ACTOR_X + x_lo - half_w < 0 or REACTOR_X + x_hi + half_w > 1:
            raise RenderError(
                f"StyleRanges.offset_x {self.offset_x} moves a character out of the frame at scale "
                f"{s_hi} (the left character's core spans {ACTOR_X:.2f} +- {half_w:.3f} of the width)"
            )
        y_lo, y_hi = self.offset_y
        if GROUND_Y + y_lo - height < 0 or GROUND_Y + y_hi > 1:
            raise RenderError(
                f"StyleRanges.offset_y {self.offset_y} moves a character out of the frame at scale "
                f"{s_hi} (feet at {GROUND_Y:.2f}, core height {height:.3f} of the image)"
            )


# ---------------------------------------------------------------------------- vector sketch

_INK = (34, 26, 30)  # outline colour


def _d(theta: float) -> np.ndarray:
    """Unit vector at ``theta`` degrees from straight down, turning toward +x (forward)."""
    t = math.radians(theta)
    return np.array([math.sin(t), math.cos(t)])


def _rot(p: np.ndarray, phi: float, origin: np.ndarray) -> np.ndarray:
    """Rotate points ``p`` (..., 2) by ``phi`` degrees about ``origin`` (screen coords, y
    down: positive phi turns an up-pointing vector forward)."""
    c, s = math.cos(math.radians(phi)), math.sin(math.radians(phi))
    q = np.asarray(p, float) - origin
    return np.stack([q[..., 0] * c - q[..., 1] * s, q[..., 0] * s + q[..., 1] * c], -1) + origin


class _Frame:
    """A local frame: origin and rotation (degrees); maps local points (x forward, y down)
    to the parent's coordinates."""

    def __init__(self, origin, angle: float = 0.0):
        self.o = np.asarray(origin, float)
        self.a = float(angle)

    def __call__(self, *pts) -> np.ndarray:
        p = np.asarray(pts, float).reshape(-1, 2)
        out = _rot(p, self.a, np.zeros(2)) + self.o
        return out[0] if len(pts) == 1 else out


class _Sketch:
    """Shapes in units, grouped into parts; a part is outlined as a whole then filled."""

    def __init__(self) -> None:
        self.parts: list[tuple[bool, list[tuple]]] = []
        self.ground: list[np.ndarray] = []  # points that rest on the ground

    def part(self, outline: bool = True) -> list[tuple]:
        shapes: list[tuple] = []
        self.parts.append((outline, shapes))
        return shapes

    def transform(self, fn) -> None:
        for _, shapes in self.parts:
            for i, s in enumerate(shapes):
                kind = s[0]
                if kind == "poly":
                    shapes[i] = ("poly", fn(s[1]), s[2])
                elif kind == "circle":
                    shapes[i] = ("circle", fn(s[1][None])[0], s[2], s[3])
                elif kind == "line":
                    shapes[i] = ("line", fn(s[1]), s[2], s[3])
        self.ground = [fn(np.asarray(g, float).reshape(-1, 2)).reshape(-1) for g in self.ground]

    def points(self) -> np.ndarray:
        """Every shape's extreme points (circles as their bounding boxes)."""
        pts = []
        for _, shapes in self.parts:
            for s in shapes:
                if s[0] == "circle":
                    c, r = s[1], s[2]
                    pts.append(np.array([[c[0] - r, c[1] - r], [c[0] + r, c[1] + r]]))
                elif s[0] == "line":
                    w = s[2] / 2
                    pts.append(np.concatenate([s[1] - w, s[1] + w]))
                else:
                    pts.append(s[1])
        return np.concatenate(pts)


def poly(g: list, pts, fill) -> None:
    g.append(("poly", np.asarray(pts, float).reshape(-1, 2), fill))


def circle(g: list, c, r: float, fill) -> None:
    g.append(("circle", np.asarray(c, float), float(r), fill))


def line(g: list, pts, width: float, fill) -> None:
    g.append(("line", np.asarray(pts, float).reshape(-1, 2), float(width), fill))


def limb(g: list, p, q, r1: float, r2: float, fill) -> None:
    """A tapered capsule from ``p`` (radius r1) to ``q`` (radius r2)."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    u = q - p
    n = np.array([-u[1], u[0]]) / (np.hypot(*u) + 1e-9)
    poly(g, [p + n * r1, q + n * r2, q - n * r2, p - n * r1], fill)
    circle(g, p, r1, fill)
    circle(g, q, r2, fill)


def block(g: list, p, q, w1: float, w2: float | None = None, fill=(0, 0, 0), ext: float = 2.0, cham: float = 2.0) -> None:
    """A chamfered rectangular block from ``p`` to ``q`` (widths w1 at p, w2 at q),
    extended ``ext`` beyond both ends."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    w2 = w1 if w2 is None else w2
    u = q - p
    u = u / (np.hypot(*u) + 1e-9)
    n = np.array([-u[1], u[0]])
    a, b = p - u * ext, q + u * ext
    h1, h2 = w1 / 2, w2 / 2
    c = cham
    poly(g, [a + n * (h1 - c), a + u * c + n * h1, b - u * c + n * h2, b + n * (h2 - c),
             b - n * (h2 - c), b - u * c - n * h2, a + u * c - n * h1, a - n * (h1 - c)], fill)


def bezier(p0, p1, p2, n: int = 12) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


def taper(g: list, path: np.ndarray, w1: float, w2: float, fill) -> None:
    """A tapered stroke along ``path`` (horn, spike)."""
    path = np.asarray(path, float)
    d = np.gradient(path, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], 1)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-9
    w = np.linspace(w1, w2, len(path))[:, None] / 2
    poly(g, np.concatenate([path + n * w, (path - n * w)[::-1]]), fill)


def star(c, r_out: float, r_in: float, k: int, phase: float = 0.0) -> np.ndarray:
    ang = np.radians(phase) + np.arange(2 * k) * np.pi / k
    r = np.where(np.arange(2 * k) % 2 == 0, r_out, r_in)
    return np.stack([c[0] + r * np.sin(ang), c[1] - r * np.cos(ang)], 1)


def shade(col, f: float):
    return tuple(int(max(0, min(255, round(v * f)))) for v in col)


# ---------------------------------------------------------------------------- effects


def _bang(sk: _Sketch, at) -> None:
    """A yellow exclamation mark (Taunt)."""
    x, y = at
    g = sk.part()
    poly(g, [(x - 3.6, y - 17), (x + 3.6, y - 17), (x + 1.8, y - 3), (x - 1.8, y - 3)], (255, 225, 40))
    circle(g, (x, y + 2.2), 2.4, (255, 225, 40))


def _impact(sk: _Sketch, at) -> None:
    """A red impact star with a yellow core (Hurt)."""
    g = sk.part()
    poly(g, star(at, 11.5, 5.0, 7, 10), (225, 25, 25))
    poly(g, star(at, 5.5, 2.6, 7, 10), (255, 230, 80))


def _swoosh(sk: _Sketch, centre, r: float, a0: float, a1: float) -> None:
    """A white motion arc (Attack), from angle a0 to a1 (degrees from down, forward +)."""
    angs = np.linspace(a0, a1, 14)
    outer = np.array([centre + r * _d(a) for a in angs])
    w = np.linspace(0.5, 4.5, 14)[:, None]
    inner = np.array([centre + (r - wi[0]) * _d(a) for a, wi in zip(angs, w)])
    g = sk.part(outline=False)
    poly(g, np.concatenate([outer, inner[::-1]]), (255, 255, 255))


# ---------------------------------------------------------------------------- satyr

_SATYR_SKIN = (236, 190, 150)
_SATYR_HORN = (240, 228, 196)
_HOOF = (46, 38, 40)

_SATYR_TYPES = (
    # type1: green tunic, wooden club, brown fur
    dict(fur=(140, 88, 46), cloth=(56, 168, 60), trim=(120, 78, 40), weapon="club", sleeves=False, helmet=False),
    # type2: red armour with gold trim and helmet, spear, dark chestnut fur
    dict(fur=(92, 56, 40), cloth=(210, 36, 40), trim=(250, 200, 50), weapon="spear", sleeves=False, helmet=True),
    # type3: purple robe with long sleeves, staff with a cyan orb, pale grey fur
    dict(fur=(196, 188, 178), cloth=(128, 54, 178), trim=(250, 200, 50), weapon="staff", sleeves=True, helmet=False),
)

# angles: degrees from straight down, positive toward the facing direction.
# leg = (thigh, shin, pastern); arm = (upper arm, forearm); weapon = absolute direction.
_SATYR_POSES: dict[str, dict[str, Any]] = {
    "Idle": dict(lean=0, tilt=0, legF=(24, -36, 10), legB=(6, -48, -4), armF=(14, 80), armB=(-10, 6), weapon=170),
    "Walk": dict(lean=6, tilt=0, legF=(58, 0, 30), legB=(-24, -80, -26), armF=(-28, 24), armB=(34, 70), weapon=120),
    "Attack": dict(lean=24, tilt=-6, legF=(76, 8, 30), legB=(-40, -100, -40), armF=(150, 105), armB=(-50, -20),
                   weapon=92, swoosh=True),
    "Taunt": dict(lean=-6, tilt=-8, legF=(34, -26, 10), legB=(-8, -56, -6), armF=(160, 186), armB=(-155, -185),
                  weapon=140, bang=True, mouth=True),
    "Hurt": dict(lean=-24, tilt=-20, legF=(70, 20, 40), legB=(8, -40, 4), armF=(66, 118), armB=(-70, -40),
                 weapon=40, impact=True, mouth=True),
    "Dying": dict(lean=0, tilt=10, legF=(62, -58, -84), legB=(40, -66, -90), armF=(-14, 10), armB=(120, 150),
                  weapon=196, rot=-90, xeyes=True),
}


def _satyr_leg(sk: _Sketch, hip, angles, fur, dark: bool) -> None:
    th, sh, pa = angles
    f = 0.78 if dark else 1.0
    knee = hip + 18 * _d(th)
    ankle = knee + 16 * _d(sh)
    foot = ankle + 12 * _d(pa)
    g = sk.part()
    limb(g, ankle, foot, 2.9, 2.5, shade(fur, f * 0.9))
    limb(g, knee, ankle, 4.2, 3.0, shade(fur, f * 0.95))
    limb(g, hip, knee, 7.0, 5.2, shade(fur, f))
    # fur tufts at the back of the thigh and the hock
    back = _d(th - 90)
    for t in (0.35, 0.75):
        c = hip + (knee - hip) * t
        poly(g, [c + back * 4, c + back * 9 + _d(th) * 4, c + _d(th) * 5 + back * 3], shade(fur, f))
    poly(g, [ankle - _d(sh - 90) * 2.5, ankle - _d(sh - 90) * 6 + _d(pa) * 4, ankle + _d(pa) * 4], shade(fur, f))
    # the hoof: a dark wedge under the pastern, toe forward
    h = sk.part()
    ax = foot
    poly(h, [ax + (-3.4, -1.2), ax + (4.4, -1.2), ax + (5.4, 3.6), ax + (-3.4, 3.6)], shade(_HOOF, f))
    sk.ground.append(ax + (0, 3.6))


def _satyr_arm(sk: _Sketch, shoulder, angles, skin, sleeve, dark: bool):
    ua, fa = angles
    f = 0.8 if dark else 1.0
    elbow = shoulder + 13.5 * _d(ua)
    hand = elbow + 12.5 * _d(fa)
    g = sk.part()
    limb(g, shoulder, elbow, 3.9, 3.3, shade(sleeve or skin, f))
    limb(g, elbow, hand, 3.4, 2.8, shade(sleeve or skin, f))
    return g, hand


def _satyr_weapon(sk: _Sketch, kind: str, hand, angle: float, ty: dict) -> None:
    u = _d(angle)
    g = sk.part()
    if kind == "club":
        a, b = hand - u * 5, hand + u * 24
        limb(g, a, b, 2.0, 5.6, (150, 98, 48))
        circle(g, hand + u * 17, 1.3, (96, 60, 30))
        circle(g, hand + u * 21 + _d(angle + 90) * 2, 1.2, (96, 60, 30))
    elif kind == "spear":
        a, b = hand - u * 16, hand + u * 30
        limb(g, a, b, 1.5, 1.5, (128, 84, 44))
        n = _d(angle + 90)
        poly(g, [b + n * 3.6, b + u * 12, b - n * 3.6, b - u * 1.5], (222, 226, 236))
        line(sk.part(outline=False), [b - u * 1.5 + n * 3, b - u * 1.5 - n * 3], 2.0, ty["trim"])
    elif kind == "staff":
        a, b = hand - u * 12, hand + u * 22
        limb(g, a, b, 1.7, 1.9, (112, 74, 40))
        o = b + u * 4.2
        circle(g, o, 5.2, (70, 226, 255))
        circle(sk.part(outline=False), o - u * 1.6 + _d(angle - 90) * 1.6, 1.8, (230, 255, 255))


def _build_satyr(t: int, pose: str) -> _Sketch:
    ty, P = _SATYR_TYPES[t], _SATYR_POSES[pose]
    sk = _Sketch()
    fur, cloth, trim = ty["fur"], ty["cloth"], ty["trim"]
    hip = np.array([0.0, -44.0])
    lean = P["lean"]
    torso = _Frame(hip, lean)
    shoulder = torso((1.5, -25.0))
    sleeve = cloth if ty["sleeves"] else None

    # back arm, back leg (darker, behind)
    _satyr_arm(sk, torso((-1.0, -22.5)), P["armB"], _SATYR_SKIN, sleeve, dark=True)
    _satyr_leg(sk, hip + _rot(np.array([-2.5, 0.0]), lean, np.zeros(2)), P["legB"], fur, dark=True)
    # tail: a tuft behind the hip
    g = sk.part()
    poly(g, torso((-6, -3), (-15, -11), (-12, -4), (-17, -4), (-7, 1)), fur)
    _satyr_leg(sk, hip + _rot(np.array([2.5, 0.0]), lean, np.zeros(2)), P["legF"], fur, dark=False)
    # furry hips: a shaggy band with a zigzag lower edge
    g = sk.part()
    zig = [(-9.0, 4.0), (-6.5, 9.0), (-4.0, 5.0), (-1.0, 10.0), (2.0, 5.0), (5.0, 10.0), (7.5, 5.0), (10.0, 8.5), (9.5, -2.0)]
    poly(g, torso((-9.5, -3.0), *zig), fur)
    # torso, clothing
    g = sk.part()
    body = [(-7.0, -1.0), (7.0, -1.0), (10.0, -20.0), (8.0, -27.0), (-8.0, -27.0), (-10.0, -20.0)]
    poly(g, torso(*body), cloth)
    if ty["weapon"] == "club":  # tunic: leaf-green with a skirt and a leather belt
        poly(g, torso((-8.5, -1.0), (8.5, -1.0), (9.5, 6.0), (-9.5, 6.0)), shade(cloth, 0.85))
        line(sk.part(outline=False), torso((-8.5, -3.0), (8.5, -3.0)), 2.6, trim)
    elif ty["weapon"] == "spear":  # armour: breastplate with a gold chevron, a skirt of plates
        poly(g, torso((-9.0, -1.0), (9.0, -1.0), (9.5, 5.5), (-9.5, 5.5)), shade(cloth, 0.8))
        q = sk.part(outline=False)
        line(q, torso((-8.5, -1.5), (8.5, -1.5)), 2.2, trim)
        line(q, torso((-6.0, -18.0), (0.0, -12.0), (6.0, -18.0)), 1.6, trim)
    else:  # robe: long skirt to mid-thigh with a gold hem and sash
        poly(g, torso((-9.0, -2.0), (9.0, -2.0), (13.0, 14.0), (-13.0, 14.0)), shade(cloth, 0.9))
        q = sk.part(outline=False)
        line(q, torso((-12.6, 12.8), (12.6, 12.8)), 2.0, trim)
        line(q, torso((-8.0, -3.0), (8.0, -3.0)), 2.0, trim)
    # head
    head_c = torso((2.5, -33.5))
    head = _Frame(head_c, lean + P["tilt"])
    hb = sk.part()  # back horn, behind the head
    taper(hb, head(*bezier((-1.5, -6.5), (-1.0, -19.0), (-15.0, -20.0))), 4.6, 1.0, shade(_SATYR_HORN, 0.78))
    hg = sk.part()
    poly(hg, head((-3.0, -4.5), (-14.0, -8.0), (-5.0, -0.5)), _SATYR_SKIN)  # pointed ear
    circle(hg, head_c, 8.2, _SATYR_SKIN)
    poly(hg, head((4.0, -3.0), (10.5, 0.5), (10.0, 3.5), (4.0, 4.5)), _SATYR_SKIN)  # snout
    poly(hg, head((0.0, 5.0), (7.5, 4.5), (4.5, 15.0)), fur)  # goatee
    if ty["helmet"]:
        poly(hg, head(*[(8.6 * math.cos(a), -8.6 * abs(math.sin(a)) - 0.5) for a in np.linspace(0.05, math.pi - 0.05, 12)]), cloth)
    ht = sk.part()
    taper(ht, head(*bezier((1.5, -6.5), (3.0, -20.0), (-11.5, -21.0))), 5.0, 1.0, _SATYR_HORN)
    face = sk.part(outline=False)
    if ty["helmet"]:
        line(face, head((-8.4, -1.5), (8.4, -1.5)), 1.8, trim)
    if P.get("xeyes"):
        e = head((4.2, -2.0))
        line(face, [e + (-1.8, -1.8), e + (1.8, 1.8)], 1.2, _INK)
        line(face, [e + (-1.8, 1.8), e + (1.8, -1.8)], 1.2, _INK)
    else:
        circle(face, head((4.5, -2.0)), 1.5, _INK)
        line(face, head((2.0, -5.0), (7.0, -4.0)), 1.0, _INK)  # brow
    if P.get("mouth"):
        circle(face, head((7.5, 3.5)), 1.6, (120, 20, 30))
    circle(face, head((10.0, 1.0)), 0.9, _INK)  # nose
    # front arm with the weapon
    _, hand = _satyr_arm(sk, shoulder, P["armF"], _SATYR_SKIN, sleeve, dark=False)
    _satyr_weapon(sk, ty["weapon"], hand, P["weapon"], ty)
    g = sk.part()
    circle(g, hand, 3.2, _SATYR_SKIN)
    if ty["weapon"] == "spear":  # pauldron
        circle(g, shoulder, 5.6, cloth)
        line(sk.part(outline=False), [shoulder + (-4.0, 0.5), shoulder + (4.0, 0.5)], 1.6, trim)
    if ty["sleeves"]:
        circle(g, shoulder, 4.4, cloth)
    # effects
    if P.get("bang"):
        _bang(sk, head((17.0, -8.0)))
    if P.get("impact"):
        _impact(sk, torso((11.0, -17.0)))
    if P.get("swoosh"):
        _swoosh(sk, shoulder, 34.0, 150, 70)
    if "rot" in P:
        _lie_down(sk, hip, P["rot"])
    return sk


def _lie_down(sk: _Sketch, pivot, phi: float) -> None:
    """Rotate the whole figure about ``pivot`` (onto its back) and rest it on the ground."""
    sk.transform(lambda p: _rot(p, phi, np.asarray(pivot, float)))
    sk.ground = [np.array([0.0, sk.points()[:, 1].max()])]


# ---------------------------------------------------------------------------- golem

_GOLEM_TYPES = (
    # type1: plain grey stone, yellow eyes, bare boulder fists
    dict(stone=(160, 160, 164), dark=(112, 112, 120), eye=(255, 236, 70), crack=(84, 84, 92),
         moss=None, weapon=None, spikes=None),
    # type2: mossy green stone with moss patches, war hammer
    dict(stone=(112, 132, 100), dark=(80, 96, 72), eye=(190, 255, 120), crack=(60, 72, 54),
         moss=(70, 178, 46), weapon="hammer", spikes=None),
    # type3: dark basalt with glowing lava cracks and orange crystal spikes
    dict(stone=(92, 50, 44), dark=(64, 34, 32), eye=(255, 240, 130), crack=(255, 136, 24),
         moss=None, weapon=None, spikes=(255, 150, 30)),
)

_GOLEM_POSES: dict[str, dict[str, Any]] = {
    "Idle": dict(lean=0, tilt=0, legF=(6, 0), legB=(-6, 0), armF=(10, 6), armB=(-10, -6), weapon=30),
    "Walk": dict(lean=6, tilt=0, legF=(34, 12), legB=(-26, -16), armF=(-30, -20), armB=(34, 50), weapon=70),
    "Attack": dict(lean=20, tilt=0, legF=(40, 10), legB=(-32, -22), armF=(158, 112), armB=(40, 80), weapon=100,
                   swoosh=True),
    "Taunt": dict(lean=-4, tilt=-8, legF=(20, 6), legB=(-20, -6), armF=(140, 186), armB=(-140, -186), weapon=130,
                  bang=True, mouth=True),
    "Hurt": dict(lean=-22, tilt=-18, legF=(44, 30), legB=(4, 0), armF=(76, 124), armB=(-30, 10), weapon=60,
                 impact=True, mouth=True),
    "Dying": dict(lean=0, tilt=8, legF=(60, -66), legB=(46, -76), armF=(-10, 6), armB=(70, 90), weapon=196,
                  rot=-90, xeyes=True),
}


def _golem_leg(sk: _Sketch, hip, angles, ty, dark: bool) -> None:
    th, sh = angles
    f = 0.8 if dark else 1.0
    knee = hip + 14 * _d(th)
    ankle = knee + 12 * _d(sh)
    g = sk.part()
    block(g, knee, ankle, 15, 16, shade(ty["stone"], f * 0.95), ext=2.5)
    block(g, hip, knee, 16, 15, shade(ty["stone"], f), ext=2.5)
    foot = _Frame(ankle, sh)  # foot block: forward of the ankle
    poly(g, foot((-8.5, 2.0), (12.5, 2.0), (12.5, 8.0), (-8.5, 8.0)), shade(ty["dark"], f))
    sk.ground.append(foot((2.0, 8.0)))


def _golem_arm(sk: _Sketch, shoulder, angles, ty, dark: bool):
    ua, fa = angles
    f = 0.8 if dark else 1.0
    elbow = shoulder + 16 * _d(ua)
    wrist = elbow + 14 * _d(fa)
    fist = wrist + 6.5 * _d(fa)
    g = sk.part()
    block(g, shoulder, elbow, 13, 12, shade(ty["stone"], f), ext=3)
    block(g, elbow, wrist, 13, 15, shade(ty["stone"], f * 0.93), ext=3)
    return fist, f


def _golem_fist(sk: _Sketch, fist, ty, f: float, angle: float) -> None:
    g = sk.part()
    poly(g, _rot(star(fist, 10.0, 9.0, 4, 22.5), angle, fist), shade(ty["dark"], f * 1.1))
    if ty["moss"] is not None:
        poly(g, _rot(fist + np.array([[-6, -7], [6, -7], [3, -2], [-3, -3]]), angle, fist), ty["moss"])


def _build_golem(t: int, pose: str) -> _Sketch:
    ty, P = _GOLEM_TYPES[t], _GOLEM_POSES[pose]
    sk = _Sketch()
    stone, dark = ty["stone"], ty["dark"]
    hip = np.array([0.0, -34.0])
    lean = P["lean"]
    torso = _Frame(hip, lean)
    sh_b, sh_f = torso((-12.0, -36.0)), torso((9.0, -35.0))

    # back arm and fist, back leg
    fist_b, fb = _golem_arm(sk, sh_b, P["armB"], ty, dark=True)
    _golem_fist(sk, fist_b, ty, fb, P["armB"][1])
    _golem_leg(sk, hip + _rot(np.array([-7.0, 0.0]), lean, np.zeros(2)), P["legB"], ty, dark=True)
    _golem_leg(sk, hip + _rot(np.array([6.0, 0.0]), lean, np.zeros(2)), P["legF"], ty, dark=False)
    # crystal spikes on the back and shoulders (behind the body)
    if ty["spikes"] is not None:
        s = sk.part()
        for (x, y), (dx, dy) in (((-20, -12), (-16, -4)), ((-20, -24), (-15, -12)), ((-16, -36), (-10, -20)),
                                 ((-6, -41), (-2, -17)), ((4, -40), (6, -13))):
            base = torso((x, y))
            tip = torso((x + dx, y + dy))
            u = tip - base
            n = np.array([-u[1], u[0]]) / np.hypot(*u)
            poly(s, [base + n * 4.5, tip, base - n * 4.5], ty["spikes"])
        q = sk.part(outline=False)
        for (x, y), (dx, dy) in (((-20, -24), (-15, -12)), ((-6, -41), (-2, -17))):
            line(q, torso((x, y), (x + dx * 0.7, y + dy * 0.7)), 1.4, (255, 236, 160))
    # body: pelvis, chest block (broad, square), plates and cracks
    g = sk.part()
    poly(g, torso((-17, 4), (15, 4), (17, -4), (-19, -4)), dark)
    poly(g, torso((-19, -2), (17, -2), (22, -36), (17, -42), (-21, -42), (-25, -36)), stone)
    q = sk.part(outline=False)
    poly(q, torso((-5, -8), (14, -8), (17, -30), (-3, -30)), shade(stone, 1.1))  # chest plate
    line(q, torso((-3, -30), (-5, -8), (14, -8)), 1.2, ty["crack"] if ty["spikes"] else dark)
    crack_w = 2.0 if ty["spikes"] else 1.2
    line(q, torso((-14, -38), (-9, -28), (-13, -20), (-8, -12)), crack_w, ty["crack"])
    line(q, torso((6, -27), (2, -20), (7, -14)), crack_w, ty["crack"])
    if ty["spikes"] is not None:
        line(q, torso((-19, -5), (-12, -6), (-10, -3)), crack_w, ty["crack"])
    if ty["moss"] is not None:
        m = sk.part(outline=False)
        poly(m, torso((-21, -42), (17, -42), (20, -38), (12, -36), (6, -39), (-2, -35), (-10, -38), (-18, -35), (-24, -37)), ty["moss"])
        poly(m, torso((-18, -6), (-10, -10), (-6, -4), (-12, -2)), ty["moss"])
    # head: a small block sunk between the shoulders
    head_c = torso((4.0, -46.0))
    head = _Frame(head_c, lean + P["tilt"])
    hg = sk.part()
    poly(hg, head((-9, 4), (9, 4), (11, -3), (8, -10), (-8, -10), (-10, -3)), stone)
    poly(hg, head((4, -2), (12, -2), (12, 5), (4, 5)), shade(stone, 0.9))  # jaw/brow block
    if ty["moss"] is not None:
        poly(hg, head((-8, -10), (8, -10), (9, -7), (2, -8), (-4, -6), (-9, -7)), ty["moss"])
    face = sk.part(outline=False)
    if P.get("xeyes"):
        e = head((6.5, -4.5))
        line(face, [e + (-2.2, -2.2), e + (2.2, 2.2)], 1.5, _INK)
        line(face, [e + (-2.2, 2.2), e + (2.2, -2.2)], 1.5, _INK)
    else:
        poly(face, head((3.5, -6.5), (10.5, -6.0), (10.5, -3.0), (3.5, -3.5)), ty["eye"])
    if P.get("mouth"):
        poly(face, head((6, 0), (11, 0), (11, 3), (6, 3)), _INK)
    if ty["spikes"] is not None:  # a crest of crystals on the head
        s = sk.part()
        for x, h in ((-6, 9), (0, 11)):
            poly(s, head((x - 3, -9), (x + 1, -9 - h), (x + 3, -9)), ty["spikes"])
    # shoulders: boulder pauldrons
    g = sk.part()
    circle(g, sh_f, 10.5, shade(stone, 1.05))
    if ty["moss"] is not None:
        poly(sk.part(outline=False), [sh_f + (-8, -5), sh_f + (8, -5), sh_f + (5, -9), sh_f + (-5, -9)], ty["moss"])
    if ty["spikes"] is not None:
        s = sk.part()
        u = torso((9, -35)) - torso((9, -15))
        u /= np.hypot(*u)
        for a in (-40, 10):
            d = _rot(u, a, np.zeros(2))
            n = np.array([-d[1], d[0]])
            b = sh_f + d * 8
            poly(s, [b + n * 4, b + d * 12, b - n * 4], ty["spikes"])
    # front arm, weapon, fist
    fist, ff = _golem_arm(sk, sh_f, P["armF"], ty, dark=False)
    if ty["weapon"] == "hammer":
        u = _d(P["weapon"])
        n = _d(P["weapon"] + 90)
        w = sk.part()
        a, b = fist - u * 8, fist + u * 30
        limb(w, a, b, 2.2, 2.2, (134, 90, 46))
        hf = _Frame(b, P["weapon"] + 90)
        poly(w, hf((-13, -7), (13, -7), (15, 0), (13, 7), (-13, 7), (-15, 0)), (96, 98, 108))
        line(sk.part(outline=False), [b - n * 12, b + n * 12], 2.0, (150, 152, 160))
    _golem_fist(sk, fist, ty, ff, P["armF"][1])
    if P.get("bang"):
        _bang(sk, head((22.0, -14.0)))
    if P.get("impact"):
        _impact(sk, torso((18.0, -24.0)))
        r = sk.part()
        c = torso((24.0, -30.0))
        for dx, dy, s in ((6, -8, 3.0), (10, 2, 2.4), (2, 9, 2.0)):
            poly(r, star(c + (dx, dy), s, s * 0.8, 3, dx * 7), shade(stone, 1.05))
    if P.get("swoosh"):
        _swoosh(sk, sh_f, 40.0, 165, 80)
    if "rot" in P:
        _lie_down(sk, hip, P["rot"])
    return sk


# ---------------------------------------------------------------------------- raster sprites


def _ground(sk: _Sketch) -> None:
    """Shift the figure so that its lowest ground point is at y = 0."""
    y = max(float(np.asarray(g).reshape(-1, 2)[:, 1].max()) for g in sk.ground)
    sk.transform(lambda p: p - np.array([0.0, y]))


def _build(character: int, t: int, pose: str) -> _Sketch:
    sk = _build_satyr(t, pose) if character == 0 else _build_golem(t, pose)
    _ground(sk)
    if pose == "Dying":  # lying on its back: the head end ends DYING_BACK units behind the anchor
        x = float(sk.points()[:, 0].min())
        sk.transform(lambda p: p + np.array([-DYING_BACK - x, 0.0]))
    return sk


def _rasterise(sk: _Sketch, k: float, ow: float) -> tuple[np.ndarray, int, int]:
    """Draw ``sk`` at ``k`` output pixels per unit; returns the premultiplied RGBA float32
    sprite (values 0..255) cropped to its content, and the anchor (unit origin) in it."""
    ss = SUPERSAMPLE
    pts = sk.points() * k
    pad = ow + 1.0
    x0 = math.floor(pts[:, 0].min() - pad)
    y0 = math.floor(pts[:, 1].min() - pad)
    x1 = math.ceil(pts[:, 0].max() + pad)
    y1 = math.ceil(pts[:, 1].max() + pad)
    ax, ay = -x0, -y0
    w, h = x1 - x0, y1 - y0
    img = Image.new("RGBA", (w * ss, h * ss), (0, 0, 0, 0))
    dr = ImageDraw.Draw(img)
    m = k * ss
    off = np.array([ax * ss, ay * ss], float)
    o = ow * ss  # outline half-width in supersampled pixels
    ink = (*_INK, 255)

    def xy(p):
        return [tuple(v) for v in (np.asarray(p) * m + off)]

    for outline, shapes in sk.parts:
        if outline:
            for s in shapes:
                if s[0] == "poly":
                    q = xy(s[1])
                    dr.polygon(q, fill=ink)
                    dr.line(q + [q[0]], fill=ink, width=max(1, round(2 * o)), joint="curve")
                elif s[0] == "circle":
                    c = s[1] * m + off
                    r = s[2] * m + o
                    dr.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=ink)
                elif s[0] == "line":
                    dr.line(xy(s[1]), fill=ink, width=max(1, round(s[2] * m + 2 * o)), joint="curve")
        for s in shapes:
            col = (*s[-1], 255)
            if s[0] == "poly":
                dr.polygon(xy(s[1]), fill=col)
            elif s[0] == "circle":
                c = s[1] * m + off
                r = s[2] * m
                dr.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=col)
            elif s[0] == "line":
                dr.line(xy(s[1]), fill=col, width=max(1, round(s[2] * m)), joint="curve")
    # premultiply, then average each ss x ss block (a box filter: exact area coverage)
    a = np.asarray(img.convert("RGBa").reduce(ss), dtype=np.float32)
    return a, ax, ay


@dataclass(frozen=True)
class _Sprite:
    """A rasterised sprite in planes, for fast blending into a ``(3, H, W)`` float image.

    ``z[:3]`` is the premultiplied colour (0..255), ``z[3]`` the transparency (1 - alpha),
    each ``(h + 2, w + 2)`` with a one-pixel transparent border, so that a bilinear
    sub-pixel shift is a few weighted slices of ``z``.
    """

    z: np.ndarray
    ax: int  # anchor (unit origin) in the unpadded sprite, pixels
    ay: int


@lru_cache(maxsize=None)
def _sketch(character: int, t: int, pose: str) -> _Sketch:
    return _build(character, t, pose)


@lru_cache(maxsize=8192)
def _sprite(resolution: int, character: int, t: int, pose: str, mirrored: bool, level: int) -> _Sprite:
    scale = level * SCALE_STEP
    k = UNIT * resolution * scale
    ow = 0.55 * max(1.0, resolution / 64) ** 0.5  # outline half-width, output pixels
    a, ax, ay = _rasterise(_sketch(character, t, pose), k, ow)
    if mirrored:
        a = a[:, ::-1]
        ax = a.shape[1] - ax
    h, w = a.shape[:2]
    z = np.zeros((4, h + 2, w + 2), np.float32)
    z[3] = 1.0
    z[:3, 1:-1, 1:-1] = a[..., :3].transpose(2, 0, 1)
    z[3, 1:-1, 1:-1] = 1.0 - a[..., 3] / 255.0
    z.setflags(write=False)
    return _Sprite(z, ax, ay)


# ---------------------------------------------------------------------------- background

# three stops of the background palette: dusk, morning, day
# (sky at the top, sky at the horizon, ground near the horizon, ground at the bottom)
_PALETTE = np.array([
    [(58, 44, 96), (236, 132, 92), (112, 86, 70), (80, 60, 52)],
    [(120, 160, 214), (250, 216, 170), (196, 170, 120), (150, 126, 88)],
    [(70, 150, 236), (196, 230, 252), (214, 196, 140), (176, 150, 100)],
], np.float32)
_HORIZON = 0.74  # the ground's far edge, as a fraction of the image height


@lru_cache(maxsize=None)
def _background_basis(resolution: int) -> np.ndarray:
    """(3, 3*H*W): the background picture of each palette stop, as flattened RGB planes."""
    r = resolution
    y = (np.arange(r) + 0.5) / r
    out = np.empty((3, r, r, 3), np.float32)
    hz = _HORIZON
    for i, (top, hor, g_far, g_near) in enumerate(_PALETTE):
        sky_t = np.clip(y / hz, 0, 1)[:, None] ** 1.4
        sky = top[None] * (1 - sky_t) + hor[None] * sky_t
        gt = np.clip((y - hz) / (1 - hz), 0, 1)[:, None]
        ground = g_far[None] * (1 - gt) + g_near[None] * gt
        col = np.where((y < hz)[:, None], sky, ground)
        out[i] = col[:, None, :]
        # a soft line of distant hills just above the horizon
        x = (np.arange(r) + 0.5) / r
        hill = hz - 0.035 - 0.03 * (np.sin(x * 7.0 + 1.0) * 0.5 + 0.5) * (np.sin(x * 3.1) * 0.5 + 0.8)
        mask = (y[:, None] >= hill[None, :]) & (y[:, None] < hz)
        hill_col = hor * 0.55 + g_far * 0.45
        out[i][mask] = hill_col
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2)).reshape(3, -1)


def _palette_weights(b: np.ndarray) -> np.ndarray:
    """(N, 3) hat-function weights of the three stops at shades ``b`` in [0, 1]."""
    w0 = np.clip(1 - 2 * b, 0, 1)
    w2 = np.clip(2 * b - 1, 0, 1)
    return np.stack([w0, 1 - w0 - w2, w2], 1).astype(np.float32)


# ---------------------------------------------------------------------------- renderer


def _as_index_array(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise RenderError(f"label '{name}' must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise RenderError(f"label '{name}' must hold integer indices, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


class SceneRenderer:
    """Draws duels: ``render(labels, style)`` -> ``(N, H, W, 3)`` ``uint8`` RGB images.

    ``resolution`` is one of 64, 96, 128; ``ranges`` the style's sampling ranges. Output
    is a pure function of (labels, style, resolution): the same inputs give the same bytes.
    Sprites are cached per process (shared by all renderers).
    """

    def __init__(self, resolution: int = 64, ranges: StyleRanges = StyleRanges()):
        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or int(resolution) not in RESOLUTIONS:
            raise RenderError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")
        if not isinstance(ranges, StyleRanges):
            raise RenderError(f"ranges must be a StyleRanges, got {type(ranges).__name__}")
        self.resolution = int(resolution)
        self.ranges = ranges
        self._bg = _background_basis(self.resolution)

    def __repr__(self) -> str:
        return f"SceneRenderer(resolution={self.resolution}, ranges={self.ranges})"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.resolution, self.resolution, 3)

    # ---------------------------------------------------------------- style

    def sample_style(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` styles drawn uniformly in the ranges (fields in :data:`STYLE_FIELDS` order)."""
        n = self._count(n)
        if not isinstance(rng, np.random.Generator):
            raise RenderError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        r = self.ranges
        src = {"dx": r.offset_x, "dy": r.offset_y, "scale": r.scale}
        out = {}
        for f in STYLE_FIELDS:
            lo, hi = r.background if f == "background" else src[f.split("_", 1)[1]]
            out[f] = rng.uniform(lo, hi, n).astype(np.float64)
        return out

    def neutral_style(self, n: int) -> dict[str, np.ndarray]:
        """The no-style values: no offset, scale 1, the middle of the background range."""
        n = self._count(n)
        out = {f: np.zeros(n) for f in STYLE_FIELDS}
        out["actor_scale"][:] = 1.0
        out["reactor_scale"][:] = 1.0
        out["background"][:] = 0.5 * (self.ranges.background[0] + self.ranges.background[1])
        return out

    @staticmethod
    def _count(n: Any) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise RenderError(f"n must be a non-negative integer, got {n!r}")
        return int(n)

    # ---------------------------------------------------------------- validation

    def _check_labels(self, labels: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(labels, Mapping):
            raise RenderError(f"labels must be a mapping of {LABELS}, got {type(labels).__name__}")
        missing = [k for k in LABELS if k not in labels]
        if missing:
            raise RenderError(f"labels missing: {', '.join(missing)} (need all of {', '.join(LABELS)})")
        out = {k: _as_index_array(k, labels[k]) for k in LABELS}
        n = len(out[LABELS[0]])
        for k in LABELS:
            if len(out[k]) != n:
                raise RenderError(f"label '{k}' has length {len(out[k])}, but '{LABELS[0]}' has {n}")
            card = len(VALUES[k])
            bad = (out[k] < 0) | (out[k] >= card)
            if bad.any():
                v = int(out[k][bad][0])
                raise RenderError(f"label '{k}' out of range: {v} (valid 0..{card - 1}: {', '.join(VALUES[k])})")
        return out

    def _check_style(self, style: Mapping[str, Any] | None, n: int) -> dict[str, np.ndarray]:
        if style is None:
            return self.neutral_style(n)
        if not isinstance(style, Mapping):
            raise RenderError(f"style must be a mapping of {STYLE_FIELDS}, got {type(style).__name__}")
        unknown = [k for k in style if k not in STYLE_FIELDS]
        if unknown:
            k = str(unknown[0])
            raise RenderError(f"unknown style field '{k}'{suggest(k, STYLE_FIELDS)}; valid: {', '.join(STYLE_FIELDS)}")
        missing = [k for k in STYLE_FIELDS if k not in style]
        if missing:
            raise RenderError(f"style missing: {', '.join(missing)}")
        out = {}
        for k in STYLE_FIELDS:
            a = np.asarray(style[k])
            if a.ndim == 0:
                a = a.reshape(1)
            if a.ndim != 1:
                raise RenderError(f"style field '{k}' must be one-dimensional, got shape {a.shape}")
            if a.size and not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
                raise RenderError(f"style field '{k}' must be numeric, got dtype {a.dtype}")
            a = a.astype(np.float64, copy=False)
            if len(a) != n:
                raise RenderError(f"style field '{k}' has length {len(a)}, but the labels have {n}")
            if not np.isfinite(a).all():
                raise RenderError(f"style field '{k}' holds a non-finite value")
            if k.endswith("scale"):
                lo, hi = SCALE_LIMITS
                if ((a < lo) | (a > hi)).any():
                    raise RenderError(f"style field '{k}' must lie within [{lo}, {hi}], got {a[(a < lo) | (a > hi)][0]}")
            elif k == "background":
                if ((a < 0) | (a > 1)).any():
                    raise RenderError(f"style field 'background' must lie within [0, 1], got {a[(a < 0) | (a > 1)][0]}")
            elif (np.abs(a) > OFFSET_LIMIT).any():
                raise RenderError(f"style field '{k}' must lie within +-{OFFSET_LIMIT}, got {a[np.abs(a) > OFFSET_LIMIT][0]}")
            out[k] = a
        return out

    # ---------------------------------------------------------------- drawing

    def render(self, labels: Mapping[str, Any], style: Mapping[str, Any] | None = None) -> np.ndarray:
        """Images of the scenes ``labels`` (each of :data:`LABELS` an array of indices; extra
        keys such as hidden variables are ignored) with ``style`` (each of
        :data:`STYLE_FIELDS` an array of floats; ``None`` = neutral). Returns
        ``(N, H, W, 3)`` ``uint8``."""
        lab = self._check_labels(labels)
        n = len(lab[LABELS[0]])
        sty = self._check_style(style, n)
        r = self.resolution
        out = np.empty((n, r, r, 3), np.uint8)
        chunk = 256
        a_char, a_type, act = lab["actor"], lab["actor_type"], lab["action"]
        r_char, r_type, rea = lab["reactor"], lab["reactor_type"], lab["reaction"]
        a_lvl = np.rint(sty["actor_scale"] / SCALE_STEP).astype(np.int64)
        r_lvl = np.rint(sty["reactor_scale"] / SCALE_STEP).astype(np.int64)
        a_x = round(ACTOR_X * r) + sty["actor_dx"] * r
        r_x = round(REACTOR_X * r) + sty["reactor_dx"] * r
        gy = round(GROUND_Y * r)
        a_y = gy + sty["actor_dy"] * r
        r_y = gy + sty["reactor_dy"] * r
        act_pose = ("Attack", "Taunt", "Walk")
        rea_pose = ("Dying", "Hurt", "Idle", "Attack")
        keys = list(zip(
            r_char.tolist(), r_type.tolist(), [rea_pose[v] for v in rea.tolist()], r_lvl.tolist(), r_x.tolist(), r_y.tolist(),
            a_char.tolist(), a_type.tolist(), [act_pose[v] for v in act.tolist()], a_lvl.tolist(), a_x.tolist(), a_y.tolist(),
        ))
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            w = _palette_weights(sty["background"][s:e])
            canvas = (w @ self._bg).reshape(e - s, 3, r, r)
            for img, (rc, rt, rp, rl, rx, ry, ac, at, ap, al, ax, ay) in zip(canvas, keys[s:e]):
                _blend(img, _sprite(r, rc, rt, rp, True, rl), rx, ry)
                _blend(img, _sprite(r, ac, at, ap, False, al), ax, ay)
            np.add(canvas, 0.5, out=canvas)
            np.clip(canvas, 0, 255, out=canvas)
            out[s:e] = canvas.transpose(0, 2, 3, 1)  # truncation after +0.5: round half up
        return out

    def render_one(
        self,
        actor: int | str = 0,
        actor_type: int | str = 0,
        action: int | str = 0,
        reactor: int | str = 0,
        reactor_type: int | str = 0,
        reaction: int | str = 0,
        style: Mapping[str, float] | None = None,
    ) -> np.ndarray:
        """One ``(H, W, 3)`` image; labels as value names (``"Golem"``) or indices."""
        given = dict(actor=actor, actor_type=actor_type, action=action, reactor=reactor,
                     reactor_type=reactor_type, reaction=reaction)
        labels = {}
        for k, v in given.items():
            if isinstance(v, str):
                if v not in VALUES[k]:
                    raise RenderError(
                        f"unknown value '{v}' for '{k}'{suggest(v, VALUES[k])}; valid: {', '.join(VALUES[k])}"
                    )
                v = VALUES[k].index(v)
            elif isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise RenderError(f"label '{k}' must be a value name or an index, got {v!r}")
            labels[k] = np.array([int(v)])
        st = None if style is None else {k: np.atleast_1d(np.asarray(v, float)) for k, v in style.items()}
        return self.render(labels, st)[0]


def _blend(img: np.ndarray, sp: _Sprite, x: float, y: float) -> None:
    """Alpha-blend sprite ``sp`` into ``img`` (``(3, H, W)`` float32 planes, in place) with
    its anchor at the continuous position (x, y) in pixels (pixel i spans [i, i+1)).

    A fractional position splits each sprite pixel bilinearly over four image pixels
    (premultiplied colour and transparency alike), so the picture moves continuously.
    """
    z = sp.z
    ox, oy = x - sp.ax, y - sp.ay
    ix, iy = math.floor(ox), math.floor(oy)
    fx, fy = ox - ix, oy - iy
    # Separable shift; the shifted sprite is one pixel larger: T[j] = (1 - f) S[j] + f S[j-1],
    # i.e. (1 - f) Z[j+1] + f Z[j] on the padded sprite Z. Both passes run on the flattened
    # (contiguous) planes, shifting by one element (x) or one padded row (y); the values
    # that mix a row's border with the next row's land in the padding columns/rows, which
    # are cut off below. A pass is skipped when its fraction is zero.
    p, hp, wp = z.shape
    n = z.size
    a = z.reshape(n)
    c0 = r0 = 1  # where the sprite starts inside the padded frame
    w, h = wp - 2, hp - 2
    if fx != 0.0:  # b[k] = a[k] + (1 - fx) (a[k+1] - a[k])
        b = np.empty(n, np.float32)
        np.subtract(a[1:], a[:-1], out=b[:-1])
        b[:-1] *= 1.0 - fx
        b[:-1] += a[:-1]
        b[-1] = 0.0
        a, c0, w = b, 0, w + 1
    if fy != 0.0:  # b[k] = a[k] + (1 - fy) (a[k+row] - a[k])
        b = np.empty(n, np.float32)
        np.subtract(a[wp:], a[:-wp], out=b[:-wp])
        b[:-wp] *= 1.0 - fy
        b[:-wp] += a[:-wp]
        b[-wp:] = 0.0
        a, r0, h = b, 0, h + 1
    t = a.reshape(p, hp, wp)[:, r0:r0 + h, c0:c0 + w]
    _, H, W = img.shape
    x0, y0 = max(ix, 0), max(iy, 0)
    x1, y1 = min(ix + w, W), min(iy + h, H)
    if x0 >= x1 or y0 >= y1:
        return
    t = t[:, y0 - iy:y1 - iy, x0 - ix:x1 - ix]
    region = img[:, y0:y1, x0:x1]
    region *= t[3]
    region += t[:3]
