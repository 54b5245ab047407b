"""The scene renderer: deterministic, every label combination clearly distinct, style moves
pixels but the picture stays a function of (labels, style), bad input named clearly.

Distinctness threshold: with the neutral style at 64x64, any two of the 432 label
combinations differ in at least MIN_DIFF_PIXELS = 100 pixels by more than 30 (in some RGB
channel). The art measures 186 (a lying Satyr type1 vs type2, partly behind a walking
Golem); a typical pair differs in ~1,700 pixels.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from causalvae.graph import Graph
from causalvae.worlds.scenes import render as S
from causalvae.worlds.scenes import LABELS, STYLE_FIELDS, VALUES, SceneRenderer, StyleRanges
from causalvae.pictures import contact_sheet

MIN_DIFF_PIXELS = 100
PIXEL_TOL = 30


def all_combinations() -> dict[str, np.ndarray]:
    combos = list(itertools.product(*(range(len(VALUES[k])) for k in LABELS)))
    return {k: np.array([c[i] for c in combos]) for i, k in enumerate(LABELS)}


def random_labels(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.integers(0, len(VALUES[k]), n) for k in LABELS}


@pytest.fixture(scope="module")
def r64() -> SceneRenderer:
    return SceneRenderer(64)


@pytest.fixture(scope="module")
def every_scene(r64) -> tuple[dict[str, np.ndarray], np.ndarray]:
    lab = all_combinations()
    return lab, r64.render(lab)


# ---------------------------------------------------------------------------- labels


def test_labels_and_values_follow_the_graph(scenes: Graph):
    assert LABELS == ("actor", "actor_type", "action", "reactor", "reactor_type", "reaction")
    assert tuple(scenes.image.parents) == LABELS
    for k in LABELS:
        assert tuple(scenes[k].values) == VALUES[k]
    assert STYLE_FIELDS == ("actor_dx", "actor_dy", "actor_scale", "reactor_dx", "reactor_dy", "reactor_scale", "background")


# ---------------------------------------------------------------------------- output


def test_shape_dtype(r64):
    lab = random_labels(5)
    out = r64.render(lab, r64.sample_style(5, np.random.default_rng(0)))
    assert out.shape == (5, 64, 64, 3) and out.dtype == np.uint8
    assert r64.render({k: v[:0] for k, v in lab.items()}).shape == (0, 64, 64, 3)


@pytest.mark.parametrize("res", [64, 96, 128])
def test_resolutions(res):
    r = SceneRenderer(res)
    img = r.render_one("Golem", "type3", "Taunt", "Satyr", "type2", "Hurt")
    assert img.shape == (res, res, 3) and img.dtype == np.uint8
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # a picture, not a flat fill


def test_deterministic(r64):
    lab = random_labels(64, seed=3)
    style = r64.sample_style(64, np.random.default_rng(3))
    a = r64.render(lab, style)
    S._sprite.cache_clear()  # a cold cache draws the same sprites again
    S._sketch.cache_clear()
    b = SceneRenderer(64).render(lab, style)
    assert a.tobytes() == b.tobytes()


def test_each_scene_is_independent_of_its_batch(r64):
    """A scene's picture depends on its own labels and style only: the same scenes in
    another order, or one at a time, give the same images (the batch is cut in chunks of
    256 inside; 300 scenes cross a chunk boundary)."""
    n = 300
    lab = random_labels(n, seed=5)
    style = r64.sample_style(n, np.random.default_rng(5))
    full = r64.render(lab, style)
    perm = np.random.default_rng(6).permutation(n)
    shuffled = r64.render({k: v[perm] for k, v in lab.items()}, {k: v[perm] for k, v in style.items()})
    assert np.array_equal(shuffled, full[perm])
    for i in (0, 255, 256, 299):
        one = r64.render({k: v[i:i + 1] for k, v in lab.items()}, {k: v[i:i + 1] for k, v in style.items()})
        assert np.array_equal(one[0], full[i])


def test_every_label_combination_is_clearly_distinct(every_scene):
    lab, imgs = every_scene
    n = len(imgs)
    assert n == 2 * 3 * 3 * 2 * 3 * 4 == 432
    x = imgs.transpose(0, 3, 1, 2).reshape(n, 3, -1).astype(np.int16)  # channel planes
    worst = (np.inf, None)
    for i in range(n - 1):
        d = np.abs(x[i + 1:] - x[i]) > PIXEL_TOL
        d = np.count_nonzero(d[:, 0] | d[:, 1] | d[:, 2], axis=-1)  # pixels off in any channel
        j = int(d.argmin())
        if d[j] < worst[0]:
            worst = (int(d[j]), (i, i + 1 + j))
    assert worst[0] >= MIN_DIFF_PIXELS, f"scenes {worst[1]} differ in only {worst[0]} pixels"


def test_actor_left_reactor_right(every_scene):
    """Changing only the actor's labels changes mostly the left half of the picture, and
    only the reactor's the right half."""
    lab, imgs = every_scene
    x = imgs.astype(np.int16)
    idx = {tuple(int(lab[k][i]) for k in LABELS): i for i in range(len(imgs))}
    for role, cols in (("actor", ("actor", "actor_type", "action")), ("reactor", ("reactor", "reactor_type", "reaction"))):
        left = right = 0
        for key, i in idx.items():
            for col in cols:
                j = LABELS.index(col)
                if key[j] + 1 < len(VALUES[col]):
                    other = idx[key[:j] + (key[j] + 1,) + key[j + 1:]]
                    changed = np.abs(x[i] - x[other]).max(-1) > PIXEL_TOL
                    left += changed[:, :32].sum()
                    right += changed[:, 32:].sum()
        if role == "actor":
            assert left > 2 * right
        else:
            assert right > 2 * left


def test_reactor_is_the_mirrored_actor_art():
    """The reactor faces left: its Attack sprite is the actor's, flipped left-right."""
    a = S._sprite(64, 1, 2, "Attack", False, 50)
    b = S._sprite(64, 1, 2, "Attack", True, 50)
    assert np.array_equal(a.z[:, :, ::-1], b.z)  # planes (colour, transparency), y, x
    assert a.ay == b.ay and b.ax == a.z.shape[2] - 2 - a.ax


# ---------------------------------------------------------------------------- style


def test_neutral_style_is_the_default(r64):
    lab = random_labels(10, seed=1)
    neutral = r64.neutral_style(10)
    assert np.array_equal(r64.render(lab), r64.render(lab, neutral))
    assert set(neutral) == set(STYLE_FIELDS)
    assert np.all(neutral["actor_scale"] == 1) and np.all(neutral["reactor_dx"] == 0)
    assert np.all(neutral["background"] == 0.5)


def test_sample_style_in_ranges_and_reproducible(r64):
    ranges = r64.ranges
    st = r64.sample_style(2000, np.random.default_rng(0))
    again = r64.sample_style(2000, np.random.default_rng(0))
    assert list(st) == list(STYLE_FIELDS)
    bounds = {"dx": ranges.offset_x, "dy": ranges.offset_y, "scale": ranges.scale}
    for k, v in st.items():
        assert v.dtype == np.float64 and v.shape == (2000,)
        lo, hi = ranges.background if k == "background" else bounds[k.split("_", 1)[1]]
        assert lo <= v.min() and v.max() <= hi
        assert v.max() - v.min() > 0.9 * (hi - lo)  # uniform over the whole range
        assert np.array_equal(v, again[k])


@pytest.mark.parametrize("field", STYLE_FIELDS)
def test_each_style_field_moves_pixels(r64, field):
    lab = random_labels(8, seed=2)
    base = r64.neutral_style(8)
    moved = {k: v.copy() for k, v in base.items()}
    moved[field] += 0.45 if field == "background" else 0.05
    a, b = r64.render(lab, base), r64.render(lab, moved)
    changed = (np.abs(a.astype(int) - b.astype(int)).max(-1) > PIXEL_TOL).sum(axis=(1, 2))
    assert (changed > 20).all(), changed


def test_offsets_move_continuously(r64):
    """Sub-pixel positions: a tiny offset changes the picture a little, not by a jump."""
    lab = random_labels(6, seed=4)
    st = r64.sample_style(6, np.random.default_rng(4))
    nudged = {k: v.copy() for k, v in st.items()}
    nudged["actor_dx"] += 0.02 / 64  # a fiftieth of a pixel
    a, b = r64.render(lab, st).astype(int), r64.render(lab, nudged).astype(int)
    assert np.abs(a - b).max() <= 8
    assert not np.array_equal(a, b)


def test_style_does_not_change_what_is_drawn(r64):
    """Under any style, the two characters, their types and poses stay those of the labels:
    a styled scene is closer to the neutral picture of its own labels than to the neutral
    picture of any label combination that differs in one label (checked at a small style)."""
    lab = all_combinations()
    neutral = r64.render(lab)
    rng = np.random.default_rng(9)
    small = SceneRenderer(64, StyleRanges(offset_x=(-0.01, 0.01), offset_y=(-0.01, 0.01), scale=(0.98, 1.02), background=(0.45, 0.55)))
    picks = rng.choice(len(neutral), 40, replace=False)
    styled = small.render({k: v[picks] for k, v in lab.items()}, small.sample_style(40, rng))
    a = styled.reshape(40, -1).astype(np.float64)
    b = neutral.reshape(len(neutral), -1).astype(np.float64)
    dist = (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T  # squared distances
    assert np.array_equal(dist.argmin(1), picks)


# ---------------------------------------------------------------------------- bad input


def test_bad_resolution():
    for bad in (32, 65, 64.0, True, "64", None):
        with pytest.raises(ValueError, match="resolution"):
            SceneRenderer(bad)


def test_missing_label(r64):
    lab = random_labels(3)
    del lab["reaction"]
    with pytest.raises(ValueError, match="labels missing: reaction"):
        r64.render(lab)


def test_unequal_label_lengths(r64):
    lab = random_labels(3)
    lab["actor_type"] = lab["actor_type"][:2]
    with pytest.raises(ValueError, match="'actor_type' has length 2"):
        r64.render(lab)


@pytest.mark.parametrize("field,value", [("action", 3), ("reaction", 4), ("actor", -1), ("reactor_type", 3)])
def test_label_out_of_range(r64, field, value):
    lab = random_labels(3)
    lab[field] = lab[field].copy()
    lab[field][1] = value
    with pytest.raises(ValueError, match=f"label '{field}' out of range: {value}"):
        r64.render(lab)


def test_label_not_integer_or_not_1d(r64):
    lab = random_labels(3)
    lab["actor"] = lab["actor"].astype(float)
    with pytest.raises(ValueError, match="'actor' must hold integer indices"):
        r64.render(lab)
    lab = random_labels(4)
    lab["reaction"] = lab["reaction"].reshape(2, 2)
    with pytest.raises(ValueError, match="'reaction' must be one-dimensional"):
        r64.render(lab)
    with pytest.raises(ValueError, match="mapping"):
        r64.render([1, 2, 3])


def test_extra_label_keys_are_ignored(r64):
    lab = random_labels(3)
    assert np.array_equal(r64.render({**lab, "actor_strength": np.zeros(3, int)}), r64.render(lab))


def test_bad_style(r64):
    lab = random_labels(3)
    st = r64.neutral_style(3)
    with pytest.raises(ValueError, match="style missing: background"):
        r64.render(lab, {k: v for k, v in st.items() if k != "background"})
    with pytest.raises(ValueError, match="'reactor_dx' has length 2, but the labels have 3"):
        r64.render(lab, {**st, "reactor_dx": np.zeros(2)})
    with pytest.raises(ValueError, match="unknown style field 'actor_scal'.*did you mean 'actor_scale'"):
        r64.render(lab, {**st, "actor_scal": np.ones(3)})
    with pytest.raises(ValueError, match="'actor_dy' holds a non-finite"):
        r64.render(lab, {**st, "actor_dy": np.array([0.0, np.nan, 0.0])})
    with pytest.raises(ValueError, match="'actor_scale' must lie within"):
        r64.render(lab, {**st, "actor_scale": np.array([1.0, 0.0, 1.0])})
    with pytest.raises(ValueError, match="'background' must lie within"):
        r64.render(lab, {**st, "background": np.array([1.5, 0.5, 0.5])})
    with pytest.raises(ValueError, match="'reactor_dx' must lie within"):
        r64.render(lab, {**st, "reactor_dx": np.array([0.0, 0.0, 0.9])})


def test_style_ranges_validation():
    StyleRanges()  # the defaults are valid
    with pytest.raises(ValueError, match=r"StyleRanges.scale: low 1.2 > high 0.9"):
        StyleRanges(scale=(1.2, 0.9))
    with pytest.raises(ValueError, match=r"StyleRanges.scale must be > 0"):
        StyleRanges(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"StyleRanges.offset_x .* out of the frame"):
        StyleRanges(offset_x=(-0.2, 0.2))
    with pytest.raises(ValueError, match=r"StyleRanges.offset_y .* out of the frame"):
        StyleRanges(offset_y=(-0.01, 0.15))
    with pytest.raises(ValueError, match=r"StyleRanges.background must lie within"):
        StyleRanges(background=(-0.5, 1.0))
    with pytest.raises(ValueError, match=r"StyleRanges.offset_y must be a \(low, high\) pair"):
        StyleRanges(offset_y=0.1)
    with pytest.raises(ValueError, match="ranges must be a StyleRanges"):
        SceneRenderer(64, ranges=(0, 1))


def test_render_one_names_and_indices(r64):
    by_name = r64.render_one("Golem", "type2", "Walk", "Satyr", "type3", "Dying")
    by_index = r64.render_one(1, 1, 2, 0, 2, 0)
    assert np.array_equal(by_name, by_index)
    lab = {"actor": [1], "actor_type": [1], "action": [2], "reactor": [0], "reactor_type": [2], "reaction": [0]}
    assert np.array_equal(by_name, r64.render(lab)[0])
    with pytest.raises(ValueError, match="unknown value 'Golum' for 'actor'.*did you mean 'Golem'"):
        r64.render_one(actor="Golum")
    with pytest.raises(ValueError, match="'reaction' out of range"):
        r64.render_one(reaction=7)
    style = {k: float(v[0]) for k, v in r64.sample_style(1, np.random.default_rng(0)).items()}
    assert not np.array_equal(r64.render_one(style=style), r64.render_one())


# ---------------------------------------------------------------------------- contact sheet


def test_contact_sheet(every_scene):
    _, imgs = every_scene
    sheet = contact_sheet(imgs[:10], [f"scene {i}" for i in range(10)], columns=4, scale=3)
    assert isinstance(sheet, Image.Image) and sheet.mode == "RGB"
    assert sheet.width == 4 + 4 * (192 + 4)
    assert sheet.height > 3 * 192  # three rows of tiles plus captions
    arr = np.asarray(sheet)
    tile = arr[4:4 + 192:3, 4:4 + 192:3]  # NEAREST: every third pixel is the original
    assert np.array_equal(tile, imgs[0])
    no_caps = contact_sheet(imgs[:3], None, columns=3, scale=1)
    assert no_caps.size == (4 + 3 * 68, 4 + 68)
    with pytest.raises(ValueError, match="captions has 2 entries for 3 images"):
        contact_sheet(imgs[:3], ["a", "b"], columns=3)


def test_captions_name_their_numbers():
    """A caption shows a word value alone and a number with its variable's name: a sprite's
    labels read "square scale=0.6 orientation=1 ...", not "square 0.6 1 2 0"."""
    from causalvae.cli import _caption_values
    from causalvae.graph import Graph
    from causalvae.pictures import named_value

    assert named_value("shape", "square") == "square" and named_value("scale", "0.6") == "scale=0.6"
    assert named_value("posX", "2") == "posX=2" and named_value("action", "Attacking") == "Attacking"
    g = Graph.load("sprites")
    values = {n: np.array([1]) for n in g.names}
    assert _caption_values(g, ["shape", "scale", "posX"], values, 0) == "ellipse scale=0.6 posX=1"


def test_a_caption_too_wide_for_its_tile_breaks_after_the_equals_sign_never_inside_a_value():
    """A tile narrower than "intensity=235" shows "intensity=" above "235" (the sample sheet of
    a 32-pixel world), never "intensity=2" above "35"; a word without "=" (or whose name alone
    does not fit) is still cut by characters, and every line fits."""
    from PIL import Image, ImageDraw

    from causalvae.pictures import _font, _wrap

    draw, font = ImageDraw.Draw(Image.new("RGB", (1, 1))), _font(11)
    width = int(draw.textlength("intensity=23", font=font))  # the name fits, the whole word does not
    assert _wrap("digit=6 thickness=4 intensity=235", width, draw, font)[-2:] == ["intensity=", "235"]
    assert _wrap("intensity=235", width, draw, font) == ["intensity=", "235"]
    narrow = int(draw.textlength("inten", font=font))
    for text in ("intensity=235", "counterfactual"):
        lines = _wrap(text, narrow, draw, font)
        assert "".join(lines) == text and all(draw.textlength(x, font=font) <= narrow for x in lines), lines
