"""The sprites world: the dSprites factor grid, the official archive, symmetry, the causal variant."""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from causalvae.cli import app
from causalvae.data import load
from causalvae.errors import CausalVAEError
from causalvae.exact import marginals
from causalvae.generate import generate
from causalvae.graph import Graph
from causalvae.noise import propagate, sample
from causalvae.worlds.sprites import dsprites as d
from causalvae.worlds.sprites import factors, render
from causalvae.worlds.sprites.dsprites import GridError

runner = CliRunner()

#: The 160 real dSprites frames (every second frame of the official dsprites.gif), kept
#: beside the repository, never in it; CAUSALVAE_DSPRITES_FRAMES names another copy.
REAL_FRAMES = Path(os.environ.get("CAUSALVAE_DSPRITES_FRAMES") or Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "dsprites_frames_even.gif")

#: A reduced grid: a few classes of every factor (positions include both extremes).
SMALL = {"shape": [0, 1, 2], "scale": [0, 5], "orientation": [0, 9, 39], "posX": [0, 13, 31], "posY": [0, 31]}


def _official_classes(sel):
    """The official class vectors of every row of a reduced grid, in its order."""
    sel = factors.select_classes(sel)
    reduced = d.all_classes(tuple(len(s) for s in sel))
    return np.stack([sel[k][reduced[:, k]] for k in range(6)], axis=1)


# ---------------------------------------------------------------------------- index and counts


def test_index_formula_and_order():
    assert d.N_IMAGES == math.prod(d.LATENTS_SIZES) == 737_280
    sizes = np.array(d.LATENTS_SIZES)
    notebook = np.concatenate((sizes[::-1].cumprod()[::-1][1:], np.array([1])))  # the official idiom
    assert d.latents_bases().tolist() == notebook.tolist() == list(d.LATENTS_BASES)
    classes = d.all_classes()
    assert classes.shape == (737_280, 6) and classes.dtype == np.int64
    np.testing.assert_array_equal(d.latents_to_index(classes), np.arange(737_280))
    # posY varies fastest, then posX, orientation, scale, shape; color is constant.
    assert classes[:3].tolist() == [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 2]]
    assert classes[32].tolist() == [0, 0, 0, 0, 1, 0]
    assert classes[1024].tolist() == [0, 0, 0, 1, 0, 0]
    assert classes[40960].tolist() == [0, 0, 1, 0, 0, 0]
    assert classes[245760].tolist() == [0, 1, 0, 0, 0, 0]
    assert classes[-1].tolist() == [0, 2, 5, 39, 31, 31]
    assert (classes[:, 0] == 0).all()
    np.testing.assert_array_equal(d.index_to_latents([5, 737_279]), classes[[5, 737_279]])
    assert int(d.latents_to_index([2, 5, 39, 31, 31])) == 737_279  # without the color column
    with pytest.raises(GridError, match="out of range"):
        d.latents_to_index([0, 3, 0, 0, 0, 0])
    with pytest.raises(GridError, match="6 columns"):
        d.latents_to_index([0, 1, 2])


def test_values_and_metadata():
    pv = d.possible_values()
    assert [len(pv[k]) for k in d.LATENTS_NAMES] == list(d.LATENTS_SIZES)
    np.testing.assert_allclose(pv["scale"], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert pv["orientation"][0] == 0.0 and pv["orientation"][-1] == 2 * np.pi
    assert pv["posX"][0] == 0.0 and pv["posX"][-1] == 1.0
    vals = d.classes_to_values(d.all_classes()[[0, 737_279]])
    np.testing.assert_allclose(vals, [[1, 1, 0.5, 0, 0, 0], [1, 3, 1.0, 2 * np.pi, 1, 1]])
    meta = d.metadata()
    assert meta[()] is meta  # dataset_zip["metadata"][()] works unchanged
    assert meta["latents_sizes"].tolist() == list(d.LATENTS_SIZES)
    assert meta["latents_names"] == d.LATENTS_NAMES
    assert set(meta["latents_possible_values"]) == set(d.LATENTS_NAMES)


# ---------------------------------------------------------------------------- pixels


def test_square_ellipse_heart_pixels():
    # The official image sizes (pixels of each shape at scales 0.5 .. 1, upright, position 0).
    official = {0: [100, 144, 196, 256, 324, 400], 1: [76, 104, 144, 184, 228, 288], 2: [58, 84, 108, 140, 182, 222]}
    for shape, areas in official.items():
        ours = [int(d.sprite(shape, s, 0).sum()) for s in range(6)]
        assert sum(abs(a - b) for a, b in zip(ours, areas)) <= 2, (shape, ours)
    sq = d.sprite(0, 5, 0)
    rows, cols = np.nonzero(sq)
    # An axis-aligned filled square of 20 x 20 px (side 19.2: every pixel centre within 9.6 px),
    # centred on x = y = 16 of the canvas (between pixels 15 and 16) at position 0.
    assert sq.sum() == 20 * 20 == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
    assert rows.min() + rows.max() == cols.min() + cols.max() == 31
    for shape in range(3):
        for scale in range(6):
            s = d.sprite(shape, scale, 0)
            assert set(np.unique(s)) == {0, 1} and s.dtype == np.uint8
            assert not s[:, 32].any() and not s[32].any()
            np.testing.assert_array_equal(s[:, :32], s[:, 31::-1])  # every upright sprite is mirror-symmetric
    el = d.sprite(1, 5, 0)
    rows, cols = np.nonzero(el)
    assert el.sum() == pytest.approx(math.pi * 12.77 * 7.21, rel=0.01)
    assert np.ptp(cols) + 1 == 26 and np.ptp(rows) + 1 == 14  # long axis horizontal
    np.testing.assert_array_equal(el[:32], el[31::-1])
    # The heart: two lobes with a notch between them on top, a single tip at the bottom,
    # more of it above its middle than below, and not upside-down symmetric.
    for scale in range(6):
        h = d.sprite(2, scale, 0)
        rows, cols = np.nonzero(h)
        top, bottom = rows.min(), rows.max()
        assert h[top, 15:17].sum() == 0 and h[top, :15].any() and h[top, 17:].any(), f"no notch at scale {scale}"
        assert h[bottom].sum() <= 2, f"no tip at scale {scale}"
        centre = (top + bottom) / 2
        assert h[rows.min() : int(centre)].sum() > h[int(centre) + 1 :].sum()
        assert not np.array_equal(h, h[::-1, :])
    assert np.ptp(np.nonzero(d.sprite(2, 5, 0))[1]) + 1 == 20  # 19.2 px wide at scale 1, as the square
    for shape in range(3):
        areas = [d.sprite(shape, s, 0).sum() for s in range(6)]
        assert areas == sorted(areas) and areas[0] < areas[-1] / 3


def test_positions_are_32_31_px_apart():
    """Position class i puts the sprite's centre at 16 + 32 i / 31 px: the image at i = 31
    is the image at i = 0 moved by exactly 32 px, and between them each position samples
    the outline at its own sub-pixel offset."""
    for shape, scale, o in [(0, 5, 0), (1, 3, 11), (2, 0, 27)]:
        first, last = d.image([0, shape, scale, o, 0, 0]), d.image([0, shape, scale, o, 31, 31])
        np.testing.assert_array_equal(first[:32, :32], last[32:, 32:])
    # The upright square at position 15 has its centre at x = 16 + 15.48: only the 19 pixel
    # centres 22.5 .. 40.5 lie within 9.6 px of it (20 at position 0, centred on 16).
    cols = np.nonzero(d.image([0, 0, 5, 0, 15, 0]).any(axis=0))[0]
    assert (cols.min(), cols.max()) == (22, 40)
    # A sprite drawn at a sub-pixel offset is a different picture from its shifted neighbour.
    a, b = d.image([0, 2, 5, 0, 15, 0]), d.image([0, 2, 5, 0, 16, 0])
    assert not np.array_equal(a[:, :63], b[:, 1:]) and not np.array_equal(a[:, :62], b[:, 2:])


def test_no_pixel_leaves_the_frame():
    pv = d.possible_values()
    # The canvas of position class i covers pixel centres from -16.5 + (31 - i) / 31 to
    # 15.5 + (31 - i) / 31 px around the sprite's centre: an outline within 15.5 px is never cut.
    for shape in range(3):
        for scale in range(6):
            for o in range(0, 39, 3):
                vx, vy = render._outline(shape, pv["scale"][scale], pv["orientation"][o])
                assert max(np.abs(vx).max(), np.abs(vy).max()) < 15.5, (shape, scale, o)
            corners = d.position_block(shape, scale, 7, [0, 31], [0, 31])
            for a, i in enumerate([0, 31]):
                for b, j in enumerate([0, 31]):
                    np.testing.assert_array_equal(corners[a, b], d.image([0, shape, scale, 7, i, j]))
                    assert corners[a, b].sum() == d.sprite(shape, scale, 7, i, j).sum()
    # The extreme positions reach the frame's margins but never the outside.
    square = d.position_block(0, 5, 0, [0, 31], [0, 31])
    cols = np.nonzero(square[0, 0].any(axis=0))[0]
    assert cols.min() == 6 and np.nonzero(square[1, 1].any(axis=0))[0].max() == 57


def test_real_dsprites_frames_have_exact_matches():
    """Every real dSprites frame has a (nearly always exact) match in the rendered grid: best
    IoU mean >= 0.99 and min >= 0.95, and the matches read the animation's factors back."""
    if not REAL_FRAMES.is_file():
        pytest.skip(
            f"{REAL_FRAMES} is absent: the real dSprites frames are not beside this checkout "
            "(../shared/reference/dsprites_frames_even.gif); set CAUSALVAE_DSPRITES_FRAMES to a copy"
        )
    frames = d.read_frames(REAL_FRAMES)
    assert frames.shape == (160, 64, 64)
    iou, classes = d.best_matches(frames)
    assert iou.mean() >= 0.99 and iou.min() >= 0.95, (iou.mean(), iou.min())
    assert (iou == 1).mean() >= 0.8
    # The animation: hearts grow through the scales (0.5, 0.7, 0.9, 1, 0.8, 0.6) at position
    # 0, turn counter-clockwise two orientations a frame, then walk down the left edge.
    np.testing.assert_array_equal(classes[:6, 2], [0, 2, 4, 5, 3, 1])
    assert (classes[:96, 1] == 2).all() and (classes[96:128, 1] == 1).all() and (classes[128:, 1] == 0).all()
    np.testing.assert_array_equal(classes[10:18, 3], [2, 4, 6, 8, 10, 12, 14, 16])
    np.testing.assert_array_equal(classes[29:45, 5], np.arange(0, 32, 2))
    assert (classes[29:45, 4] == 0).all()


def test_orientation_ends_are_the_same_picture():
    for shape in range(3):
        for scale in range(6):
            np.testing.assert_array_equal(d.sprite(shape, scale, 0), d.sprite(shape, scale, 39))
            assert not np.array_equal(d.sprite(2, scale, 0), d.sprite(2, scale, 1))


def test_position_block_is_the_official_order():
    block = d.position_block(2, 3, 7)
    assert block.shape == (32, 32, 64, 64)
    classes = d.all_classes()[d.latents_to_index([0, 2, 3, 7, 0, 0]) :][:1024]
    np.testing.assert_array_equal(block.reshape(1024, 64, 64), d.images(classes))
    one = d.image([0, 2, 3, 7, 5, 9])
    np.testing.assert_array_equal(one, block[5, 9])
    assert one[25, 21] == 1  # the sprite's centre is at (16 + 32 posX / 31, 16 + 32 posY / 31) = (21.2, 25.3)
    # posX moves the sprite right, posY moves it down (by 32/31 px a class).
    assert 1 <= np.nonzero(block[6, 9].any(axis=0))[0].min() - np.nonzero(one.any(axis=0))[0].min() <= 2
    assert 1 <= np.nonzero(block[5, 10].any(axis=1))[0].min() - np.nonzero(one.any(axis=1))[0].min() <= 2


# ---------------------------------------------------------------------------- writing and reading


def test_write_and_load_a_reduced_grid(tmp_path):
    seen = []
    out = d.write_grid(tmp_path / "grid", seen.append, select=SMALL)
    n = 3 * 2 * 3 * 3 * 2
    assert seen[-1] == n and seen == sorted(seen)
    g = d.load_grid(out)
    assert set(g) == {"imgs", "latents_values", "latents_classes", "metadata"}
    assert isinstance(g["imgs"], np.memmap) and g["imgs"].shape == (n, 64, 64) and g["imgs"].dtype == np.uint8
    meta = g["metadata"][()]
    assert meta["latents_sizes"].tolist() == [1, 3, 2, 3, 3, 2]
    np.testing.assert_allclose(meta["latents_possible_values"]["orientation"], [0, 9 * 2 * np.pi / 39, 2 * np.pi])
    # The official notebook's indexing works on the reduced grid's own sizes.
    sizes = meta["latents_sizes"]
    bases = np.concatenate((sizes[::-1].cumprod()[::-1][1:], np.array([1])))
    np.testing.assert_array_equal(g["latents_classes"] @ bases, np.arange(n))
    official = _official_classes(SMALL)
    np.testing.assert_array_equal(np.asarray(g["imgs"]), d.images(official))
    np.testing.assert_allclose(g["latents_values"], d.classes_to_values(official))
    assert json.loads((out / "metadata.json").read_text())["latents_names"] == list(d.LATENTS_NAMES)


def test_write_grid_is_atomic(tmp_path):
    target = tmp_path / "grid"
    d.write_grid(target, select={"shape": [0], "scale": [0], "orientation": [0]})
    with pytest.raises(GridError, match="already exists; pass --force"):
        d.write_grid(target, select={"shape": [0], "scale": [0], "orientation": [0]})
    d.write_grid(target, force=True, select={"shape": [1], "scale": [0], "orientation": [0]})
    assert d.load_grid(target)["metadata"]["latents_possible_values"]["shape"].tolist() == [2.0]

    def interrupt(done):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        d.write_grid(tmp_path / "never", interrupt, select={"shape": [0], "scale": [0]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid"]
    with pytest.raises(GridError, match="selection of 'scale'"):
        d.write_grid(tmp_path / "x", select={"scale": [7]})
    with pytest.raises(GridError, match="unknown factor 'size'"):
        d.write_grid(tmp_path / "x", select={"size": [0]})


def _save_npz(path, compressed=True, **arrays):
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _reduced_archive(tmp_path, name="small.npz"):
    g = d.load_grid(d.write_grid(tmp_path / "g", select=SMALL))
    return {"imgs": np.asarray(g["imgs"]), "latents_values": g["latents_values"], "latents_classes": g["latents_classes"]}


def test_read_official_ignores_the_pickled_metadata(tmp_path):
    arrays = _reduced_archive(tmp_path)
    pickled = np.array({"latents_sizes": np.array([1, 3, 2, 3, 3, 2]), "title": "dSprites"}, dtype=object)
    path = _save_npz(tmp_path / d.ARCHIVE_NAME, metadata=pickled, **arrays)
    z = d.read_official(path, select=SMALL)
    np.testing.assert_array_equal(z["imgs"], arrays["imgs"])
    np.testing.assert_array_equal(z["latents_classes"], arrays["latents_classes"])
    assert z["metadata"][()]["latents_sizes"].tolist() == [1, 3, 2, 3, 3, 2]
    assert "official archive" in z["metadata"]["source"]
    # Rows are streamed from the archive (compressed or not) into any order asked for.
    rows = [17, 0, 53, 17]
    np.testing.assert_array_equal(d.read_images(path, rows, select=SMALL), arrays["imgs"][rows])
    plain = _save_npz(tmp_path / "plain.npz", compressed=False, **arrays)
    np.testing.assert_array_equal(d.read_images(plain, rows, select=SMALL), arrays["imgs"][rows])
    np.testing.assert_array_equal(d.read_images(tmp_path / "g", rows, select=SMALL), arrays["imgs"][rows])


def test_malformed_archives_and_wrong_paths(tmp_path):
    arrays = _reduced_archive(tmp_path)
    n = len(arrays["imgs"])

    def check(match, **changes):
        fields = {**arrays, **changes}
        fields = {k: v for k, v in fields.items() if v is not None}
        path = _save_npz(tmp_path / "bad.npz", **fields)
        with pytest.raises(GridError, match=match):
            d.read_official(path, select=SMALL)

    check(r"has no 'imgs' entry \(found: latents_classes, latents_values\)", imgs=None)
    check(r"has no 'latents_classes' entry", latents_classes=None)
    check(rf"'imgs' has shape \({n - 1}, 64, 64\); expected \({n}, 64, 64\)", imgs=arrays["imgs"][1:])
    check(r"'latents_values' has shape \(\d+, 5\); expected \(\d+, 6\)", latents_values=arrays["latents_values"][:, 1:])
    check(r"'imgs' has dtype float32; expected uint8", imgs=arrays["imgs"].astype(np.float32))
    check(r"'latents_classes' has dtype int32; expected int64", latents_classes=arrays["latents_classes"].astype(np.int32))
    objects = np.empty(n, dtype=object)
    objects[:] = [np.zeros((64, 64), np.uint8)] * n
    check(r"'imgs' holds pickled Python objects \(dtype object\); expected uint8 — refusing to unpickle", imgs=objects)
    shuffled = arrays["latents_classes"][::-1].copy()
    check(r"latents_classes row 0 is .* \(the images are not in the official order\)", latents_classes=shuffled)
    values = arrays["latents_values"].copy()
    values[3, 2] = 0.55
    check(r"latents_values row 3", latents_values=values)
    # The full archive is expected by default: a small one is refused by its shape.
    good = _save_npz(tmp_path / "good.npz", **arrays)
    with pytest.raises(GridError, match=r"'imgs' has shape \(108, 64, 64\); expected \(737280, 64, 64\)"):
        d.read_official(good)
    # Wrong paths and foreign files.
    with pytest.raises(GridError, match="no such file .*never downloads"):
        d.read_official(tmp_path / "nowhere" / d.ARCHIVE_NAME)
    with pytest.raises(GridError, match="is a directory, not the .npz archive"):
        d.read_official(tmp_path)
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(GridError, match="not a .npz archive"):
        d.read_official(tmp_path / "text.npz")
    with zipfile.ZipFile(tmp_path / "junk.npz", "w") as zf:
        zf.writestr("imgs.npy", b"garbage")
    with pytest.raises(GridError, match="entry 'imgs.npy' is not a valid .npy array"):
        d.read_official(tmp_path / "junk.npz")
    with pytest.raises(GridError, match="no such grid directory"):
        d.load_grid(tmp_path / "nowhere")
    with pytest.raises(GridError, match="not a dSprites grid directory"):
        d.load_grid(tmp_path)
    with pytest.raises(GridError, match="read with read_official"):
        d.load_grid(good)
    (tmp_path / "g" / "imgs.npy").unlink()
    with pytest.raises(GridError, match="imgs.npy is missing"):
        d.load_grid(tmp_path / "g")
    with pytest.raises(GridError, match="no such grid directory or archive"):
        d.read_images(tmp_path / "nowhere.npz", [0])


def test_a_reduced_grid_is_not_a_source(tmp_path):
    grid = d.write_grid(tmp_path / "g", select={"shape": [0], "scale": [0], "orientation": [0]})
    with pytest.raises(GridError, match=r"a grid of sizes \[1, 1, 1, 1, 32, 32\]; the full grid"):
        generate("sprites", tmp_path / "ds", 10, source=grid)
    assert not (tmp_path / "ds").exists()


# ---------------------------------------------------------------------------- symmetry


def test_symmetry_tolerances_are_measured():
    assert d.symmetry_tolerances() == d.SYMMETRY_K
    assert d.SYMMETRY_K["heart"] == (0,) * 6


def test_the_docs_symmetry_table_is_the_code():
    """docs/sprites.md's table of k and areas shows SYMMETRY_K and the sprites' pixel counts."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "sprites.md").read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in text.splitlines() if line.startswith("| ")}
    for name in d.SHAPES:
        assert [int(v) for v in rows[f"{name}: k"]] == list(d.SYMMETRY_K[name])
    areas = [[int(v) for v in cell.split(" / ")] for cell in rows["sprite area at orientation 0, position 0 (square / ellipse / heart)"]]
    assert areas == [[int(d.sprite(sh, sc, 0).sum()) for sh in range(3)] for sc in range(6)]


def _diff(a, b):
    return int((d.image(a) != d.image(b)).sum())


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_symmetry_sets(shape):
    rng = np.random.default_rng(shape)
    for scale in (0, 3, 5):
        k = d.symmetry_k(shape, scale)
        for o in (0, 7, 39, int(rng.integers(40))):
            c = np.array([0, shape, scale, o, int(rng.integers(32)), int(rng.integers(32))])
            members = d.equivalent(c)
            assert c.tolist() in members.tolist()
            assert (members[:, [0, 1, 2, 4, 5]] == c[[0, 1, 2, 4, 5]]).all()
            orients = set(members[:, 3].tolist())
            for o2 in range(40):
                other = c.copy()
                other[3] = o2
                assert (_diff(c, other) <= k) == (o2 in orients), (c.tolist(), o2)
            np.testing.assert_array_equal(d.equivalent_indices(c), d.latents_to_index(members))
            # 0 = 2 pi, always.
            if o in (0, 39):
                assert {0, 39} <= orients
    # The near-symmetries: a square every ~90 degrees, an ellipse every ~180.
    square = set(d.equivalent([0, 0, 5, 0, 10, 10])[:, 3].tolist())
    assert square == {0, 10, 19, 20, 29, 39}  # 92.3, 175.4, 184.6, 267.7, 360 degrees
    ellipse = set(d.equivalent([0, 1, 5, 7, 10, 10])[:, 3].tolist())
    assert ellipse == {7, 26}  # 64.6 and 240 degrees
    assert set(d.equivalent([0, 2, 5, 7, 10, 10])[:, 3].tolist()) == {7}
    # A looser explicit k only ever adds orientations.
    assert len(d.equivalent([0, 2, 0, 7, 10, 10], k=30)) > 1


def test_the_evaluations_symmetry_sets_are_the_grids():
    """The evaluation's fast symmetry sets (only the orientations around each symmetric turn
    are drawn) are :func:`dsprites.equivalent`'s, on the corners and a seeded sample."""
    from causalvae.worlds.sprites.world import symmetric_equivalents

    rng = np.random.default_rng(11)
    cases = [[0, sh, sc, o, x, y] for sh in range(3) for sc in (0, 5) for o in (0, 39) for x, y in ((0, 0), (31, 31))]
    cases += [[0, *rng.integers(0, [3, 6, 40, 32, 32]).tolist()] for _ in range(40)]
    for c in cases:
        np.testing.assert_array_equal(symmetric_equivalents(np.array(c)), d.equivalent(c), err_msg=str(c))


def test_nothing_but_orientation_comes_within_k():
    """No change of shape, scale or position (with any orientation) comes within k pixels,
    around a seeded sample of images (the corners, the centre and random ones): every image
    of every (shape, scale, orientation) within 2 position classes of the sample image is
    compared pixel by pixel, unless its area at position 0 differs from the sample's by more
    than k + 40 px (a sprite's area changes by at most 39 px from one position to another,
    measured over the whole grid, so those differ by more than k anyway)."""
    rng = np.random.default_rng(7)
    keys = [(sh, sc, o) for sh in range(3) for sc in range(6) for o in range(39)]
    area0 = np.array([d.sprite(*k).sum() for k in keys])
    bases = [(sh, sc, 0, x, y) for sh, sc, (x, y) in [(0, 5, (0, 0)), (1, 0, (31, 31)), (2, 5, (15, 16)), (2, 0, (3, 29))]]
    bases += [tuple(int(v) for v in rng.integers(0, [3, 6, 39, 32, 32])) for _ in range(2)]
    closest = np.inf
    for sh, sc, o, x, y in bases:
        k = d.symmetry_k(sh, sc)
        base = d.image([0, sh, sc, o, x, y])
        xs, ys = np.arange(max(0, x - 2), min(31, x + 2) + 1), np.arange(max(0, y - 2), min(31, y + 2) + 1)
        for t in np.flatnonzero(np.abs(area0 - base.sum()) <= k + 40):
            tsh, tsc, to = keys[t]
            diff = (d.position_block(tsh, tsc, to, xs, ys) != base).sum(axis=(2, 3))
            if (tsh, tsc) == (sh, sc):
                diff[xs == x, ys == y] = np.iinfo(diff.dtype).max  # an orientation change: what the symmetry sets are for
            assert diff.min() > k, ((sh, sc, o, x, y), (tsh, tsc, to), diff.min())
            closest = min(closest, int(diff.min()) - k)
    assert closest >= 1


# ---------------------------------------------------------------------------- the causal variant


def test_the_sprites_graph():
    g = Graph.load("sprites")
    assert g.names == ("shape", "scale", "orientation", "posX", "posY")
    assert g.parents("scale") == ("shape",) and g.parents("orientation") == ("shape",)
    assert g.parents("posY") == ("scale",) and g.parents("posX") == ("orientation",)
    assert g.image is not None and g.image.parents == g.names
    assert g["scale"].values == ("0.5", "0.6", "0.7", "0.8", "0.9", "1.0")
    from causalvae.exact import query

    # Conditioning and intervening differ visibly.
    seen = query(g, ["shape"], {"posY": "7"}).prob("heart")
    done = query(g, ["shape"], {}, do={"posY": "7"}).prob("heart")
    assert done == pytest.approx(0.3) and seen - done > 0.1
    assert query(g, ["scale"], {"orientation": "0"}).prob("1.0") - query(g, ["scale"], {}, do={"orientation": "0"}).prob("1.0") > 0.1


def test_sampled_frequencies_match_exact_marginals():
    """Chi-square goodness of fit of 50,000 units of generate_sprites' noise stream."""
    from scipy.stats import chi2

    g = Graph.load("sprites")
    rng = np.random.default_rng(np.random.SeedSequence(0).spawn(4)[0])
    units = sample(g, 50_000, rng)
    exact = marginals(g)
    for name in g.names:
        counts = np.bincount(units.values[name], minlength=g.card(name))
        expected = 50_000 * exact[name]
        stat = float(((counts - expected) ** 2 / expected).sum())
        assert stat < chi2.ppf(0.999, df=g.card(name) - 1), (name, stat)


@pytest.fixture(scope="module")
def sprites_ds(tmp_path_factory):
    return generate("sprites", tmp_path_factory.mktemp("sprites") / "ds", 600, seed=0)


def test_generate_sprites_writes_the_truth(sprites_ds, tmp_path):
    ds = load(sprites_ds, truth=True)
    g = ds.graph
    assert ds.manifest["world"] == "sprites" and ds.manifest["channels"] == 1
    assert ds.images.shape == (600, 64, 64, 1) and set(np.unique(ds.images)) == {0, 1}
    assert ds.label_columns == list(g.names)
    np.testing.assert_array_equal(ds.labels, ds.truth_values)
    # The truth replays under the noise convention, and is the same stream the chi-square
    # test checks (SeedSequence(seed) child 0).
    noise = {n: ds.truth_noise[:, i] for i, n in enumerate(g.names)}
    replay = propagate(g, noise)
    np.testing.assert_array_equal(np.stack([replay[n] for n in g.names], 1), ds.truth_values)
    units = sample(Graph.load("sprites"), 600, np.random.default_rng(np.random.SeedSequence(0).spawn(4)[0]))
    np.testing.assert_array_equal(units.values["shape"], ds.truth_values[:, 0])
    # Grid classes: bins times their size plus the recorded offsets; images are the grid's.
    grid = np.load(sprites_ds / "truth_grid.npy", allow_pickle=False)
    values = {n: ds.truth_values[:, i] for i, n in enumerate(g.names)}
    offsets = dict(zip(ds.manifest["style_fields"], ds.truth_style.T.astype(np.int64)))
    np.testing.assert_array_equal(grid, d.graph_classes(values, offsets))
    assert grid[:, 3].max() <= 39 and ds.truth_style[:, 0].max() == 4 and ds.truth_style[:, 1].max() == 3
    np.testing.assert_array_equal(ds.images[..., 0], d.images(grid))
    # Same seed, same bytes.
    again = generate("sprites", tmp_path / "again", 600, seed=0)
    for name in ("images.npy", "labels.npy", "truth_noise.npy", "truth_style.npy", "truth_grid.npy"):
        assert (again / name).read_bytes() == (sprites_ds / name).read_bytes(), name


def test_hide_and_label_fraction(tmp_path):
    path = generate("sprites", tmp_path / "hidden", 300, seed=2, hide=["orientation"], label_fraction=0.5)
    ds = load(path, truth=True)
    assert ds.graph.hidden == ("orientation",) and "orientation" not in ds.label_columns
    assert "observed: false" in (path / "graph.yaml").read_text()
    assert ds.manifest["truth_columns"] == ["shape", "scale", "orientation", "posX", "posY"]
    assert ds.graph.image.parents == ("shape", "scale", "orientation", "posX", "posY")
    assert 0.4 < (ds.labels == -1).mean() < 0.6
    cols = [ds.graph.names.index(c) for c in ds.label_columns]
    kept = ds.labels != -1
    np.testing.assert_array_equal(ds.labels[kept], ds.truth_values[:, cols][kept])
    with pytest.raises(CausalVAEError, match="unknown variable 'orientaton' \\(did you mean 'orientation'\\?\\)"):
        generate("sprites", tmp_path / "x", 10, hide="orientaton")


def test_cli(tmp_path):
    out = tmp_path / "cli"
    result = runner.invoke(app, ["generate", "sprites", "--n", "50", "--out", str(out), "--hide", "orientation", "--hide", "posX", "--seed", "3"])
    assert result.exit_code == 0, result.output
    ds = load(out)
    assert ds.label_columns == ["shape", "scale", "posY"] and ds.graph.hidden == ("orientation", "posX")
    result = runner.invoke(app, ["generate", "sprites", "--n", "50", "--out", str(out)])
    assert result.exit_code == 2 and "already exists; pass --force" in result.output
    result = runner.invoke(app, ["generate", "sprites", "--n", "5", "--out", str(tmp_path / "y"), "--source", str(tmp_path / "no.npz")])
    assert result.exit_code == 2 and "never downloads" in result.output
    result = runner.invoke(app, ["generate", "dsprites", "--out", str(out)])
    assert result.exit_code == 2 and "already exists; pass --force" in result.output


def test_sprites_dataset_items_and_sheet(sprites_ds, tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from causalvae.cli import app
    from causalvae.data import load

    ds = load(sprites_ds)
    image, labels = ds[0]
    assert image.shape == (1, 64, 64) and set(image.unique().tolist()) <= {0, 1}
    res = CliRunner().invoke(app, ["show", str(sprites_ds), "--out", str(tmp_path / "s.png")])
    assert res.exit_code == 0, res.output
    with Image.open(tmp_path / "s.png") as sheet:
        assert np.asarray(sheet.convert("L")).max() == 255  # white sprites, not black tiles
