"""The sprites world: the dSprites factor grid, the official archive, symmetry, the causal variant."""

from __future__ import annotations

import json
import math
import zipfile

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
from causalvae.worlds.sprites.dsprites import GridError

runner = CliRunner()

#: A reduced grid: a few classes of every factor (positions include both extremes).
SMALL = {"shape": [0, 1, 2], "scale": [0, 5], "orientation": [0, 9, 39], "posX": [0, 13, 31], "posY": [0, 31]}


def _official_classes(sel):
    """The official class vectors of every row of a reduced grid, in its order."""
    sel = d._selection(sel)
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
    sq = d.sprite(0, 5, 0)
    rows, cols = np.nonzero(sq)
    # An axis-aligned filled square of side 19, centred on the canvas.
    assert sq.sum() == 19 * 19 == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
    assert rows.min() + rows.max() == cols.min() + cols.max() == 32
    for shape in range(3):
        for scale in range(6):
            s = d.sprite(shape, scale, 0)
            assert set(np.unique(s)) == {0, 1} and s.dtype == np.uint8
            np.testing.assert_array_equal(s, s[:, ::-1])  # every upright sprite is mirror-symmetric
    el = d.sprite(1, 5, 0)
    rows, cols = np.nonzero(el)
    assert el.sum() == pytest.approx(math.pi * 13 * 7, rel=0.04)
    assert np.ptp(cols) + 1 == 25 and np.ptp(rows) + 1 == 13  # 26 x 14 px, long axis horizontal (thin tips stay off)
    np.testing.assert_array_equal(el, el[::-1, :])
    # The heart: two lobes with a notch between them on top, a single tip at the bottom,
    # more of it above its middle than below, and not upside-down symmetric.
    for scale in range(6):
        h = d.sprite(2, scale, 0)
        rows, cols = np.nonzero(h)
        top, bottom, mid = rows.min(), rows.max(), 16
        assert h[top, mid] == 0 and h[top, :mid].any() and h[top, mid + 1 :].any(), f"no notch at scale {scale}"
        assert h[bottom].sum() <= 3, f"no tip at scale {scale}"
        centre = (top + bottom) / 2
        assert h[rows.min() : int(centre)].sum() > h[int(centre) + 1 :].sum()
        assert not np.array_equal(h, h[::-1, :])
    big = d.sprite(2, 5, 0)
    assert 23 <= np.ptp(np.nonzero(big)[1]) + 1 <= 24  # 24 px wide at scale 1
    # Sizes grow with scale; the three shapes are of comparable size.
    for shape in range(3):
        areas = [d.sprite(shape, s, 0).sum() for s in range(6)]
        assert areas == sorted(areas) and areas[0] < areas[-1] / 3
    assert 0.75 < d.sprite(2, 5, 0).sum() / d.sprite(0, 5, 0).sum() < 1.0


def test_no_pixel_leaves_the_frame():
    pv = d.possible_values()
    for shape in range(3):
        for scale in range(6):
            for o in range(40):
                spr = d.sprite(shape, scale, o)
                # Not clipped by its canvas: a wider canvas shows the same number of pixels.
                if scale == 5 or o % 8 == 0:
                    wide = d.render_sprite(shape, pv["scale"][scale], pv["orientation"][o % 39], canvas=41)
                    assert wide.sum() == spr.sum(), (shape, scale, o)
                corners = d.position_block(shape, scale, o, [0, 31], [0, 31])
                assert (corners.reshape(4, -1).sum(axis=1) == spr.sum()).all(), (shape, scale, o)
    # The extreme positions reach the frame's margins but never the outside.
    square = d.position_block(0, 5, 0, [0, 31], [0, 31])
    cols = np.nonzero(square[0, 0].any(axis=0))[0]
    assert cols.min() == 7 and np.nonzero(square[1, 1].any(axis=0))[0].max() == 56


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
    assert one[9 + 16, 5 + 16] == 1  # the sprite's centre is at (16.5 + posX, 16.5 + posY)
    # posX moves the sprite right, posY moves it down.
    assert np.nonzero(block[6, 9].any(axis=0))[0].min() == np.nonzero(one.any(axis=0))[0].min() + 1
    assert np.nonzero(block[5, 10].any(axis=1))[0].min() == np.nonzero(one.any(axis=1))[0].min() + 1


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


def test_nothing_but_orientation_comes_within_k():
    """No change of shape, scale or position (with any orientation) comes within k pixels:
    the overlap of two sprites at every relative shift, by FFT, for every sprite pair that
    the area bound |A| - |B| <= diff does not already rule out."""
    keys = [(sh, sc, o) for sh in range(3) for sc in range(6) for o in range(39)]
    spr = np.stack([d.sprite(*k) for k in keys]).astype(np.float64)
    area = spr.reshape(len(keys), -1).sum(axis=1)
    spectra = np.fft.rfft2(spr, s=(65, 65))
    shape_scale = np.array([k[:2] for k in keys])
    closest = np.inf
    for i, (sh, sc, _) in enumerate(keys):
        k = d.symmetry_k(sh, sc)
        cand = np.flatnonzero(np.abs(area - area[i]) <= k)
        overlap = np.rint(np.fft.irfft2(spectra[i][None] * np.conj(spectra[cand]), s=(65, 65)))
        diff = area[i] + area[cand][:, None, None] - 2 * overlap
        same = (shape_scale[cand] == (sh, sc)).all(axis=1)
        diff[same, 0, 0] = np.inf  # same shape and scale, no shift: an orientation change
        assert diff.min() > k, keys[i]
        closest = min(closest, diff.min() - k)
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
