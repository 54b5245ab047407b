"""Datasets with continuous label columns: float32, NaN = missing, in the builder, CSV import,
the loader and the contact sheet's captions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from causalvae import continuous as C
from causalvae.data import DatasetBuilder, import_folder, load
from causalvae.errors import CausalVAEError
from causalvae.graph import Graph
from causalvae import worlds


def morpho_dataset(path, n=6, seed=0):
    g = Graph.load("morpho")
    s = C.sample(g, n, seed=seed)
    cont = np.stack([s.values["thickness"], s.values["intensity"]], axis=1)
    cont[1, 0] = np.nan  # one missing thickness
    with DatasetBuilder(path, n, 8, 8, 1) as b:
        b.images[:] = (np.arange(n * 64).reshape(n, 8, 8, 1) % 255).astype(np.uint8)
        b.finish(graph=g, world="morpho-test", labels=s.values["digit"][:, None], continuous_labels=cont, seed=seed)
    return s, cont


def test_continuous_labels_round_trip_as_float32_with_nan(tmp_path):
    s, cont = morpho_dataset(tmp_path / "d")
    ds = load(tmp_path / "d")
    assert ds.label_columns == ["digit"] and ds.continuous_columns == ["thickness", "intensity"]
    assert ds.continuous_labels.dtype == np.float32
    np.testing.assert_array_equal(ds.continuous_labels, cont.astype(np.float32))
    assert np.isnan(ds.continuous_labels[1, 0]) and not np.isnan(ds.continuous_labels[1, 1])
    np.testing.assert_array_equal(ds.labels[:, 0], s.values["digit"])
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["continuous_columns"] == ["thickness", "intensity"] and manifest["missing_continuous"] == 1
    assert "labels_continuous.npy" in manifest["checksums"]
    assert manifest["label_values"] == {"digit": [str(i) for i in range(10)]}
    # captions print continuous labels rounded, and '?' for a missing one
    world = worlds.for_dataset(ds)
    assert world.dataset_caption(ds, 1).splitlines()[1:] == ["thickness=?", f"intensity={cont[1, 1]:.3g}"]
    assert f"thickness={cont[0, 0]:.3g}" in world.dataset_caption(ds, 0)


def test_continuous_labels_are_checked(tmp_path):
    g = Graph.load("morpho")
    with DatasetBuilder(tmp_path / "x", 2, 4, 4, 1) as b:
        with pytest.raises(CausalVAEError, match="row 1, column 'intensity' holds 300, outside its support"):
            b.finish(graph=g, world="t", labels=np.zeros((2, 1)), continuous_labels=np.array([[2.0, 100.0], [2.0, 300.0]]))
    with DatasetBuilder(tmp_path / "y", 2, 4, 4, 1) as b:
        with pytest.raises(CausalVAEError, match="continuous labels have shape \\(2, 1\\), expected \\(2, 2\\)"):
            b.finish(graph=g, world="t", labels=np.zeros((2, 1)), continuous_labels=np.ones((2, 1)))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_csv_import_reads_numbers_and_empty_cells(tmp_path):
    g = Graph.load("morpho")
    folder = tmp_path / "png"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (8, 8), color=i * 40).save(folder / f"d{i}.png")
    (tmp_path / "labels.csv").write_text("file,digit,thickness,intensity\nd0.png,3,2.25,180.5\nd1.png,,,99\nd2.png,7,1.5,\n")
    ds = load(import_folder(folder, tmp_path / "labels.csv", g, tmp_path / "out"))
    np.testing.assert_array_equal(ds.labels[:, 0], [3, -1, 7])
    np.testing.assert_array_equal(ds.continuous_labels, np.array([[2.25, 180.5], [np.nan, 99], [1.5, np.nan]], np.float32))
    (tmp_path / "bad.csv").write_text("file,thickness\nd0.png,thick\n")
    with pytest.raises(CausalVAEError, match=r"bad.csv line 2 \(d0.png\): 'thick' is not a number in the support of the continuous 'thickness'"):
        import_folder(folder, tmp_path / "bad.csv", g, tmp_path / "o1")
    (tmp_path / "low.csv").write_text("file,thickness\nd0.png,0.2\n")
    with pytest.raises(CausalVAEError, match=r"'0.2' is not a number in the support .* \(0.5, inf\)"):
        import_folder(folder, tmp_path / "low.csv", g, tmp_path / "o2")


def morpho_truth_dataset(path, n=6, seed=0, **override):
    g = Graph.load("morpho")
    s = C.sample(g, n, seed=seed)
    cont = np.stack([s.values["thickness"], s.values["intensity"]], axis=1)
    truth = {
        "truth_values": np.stack([s.values["digit"], np.full(n, -1), np.full(n, -1)], axis=1),
        "truth_continuous": cont,
        "truth_noise": np.stack([s.noise[v] for v in g.names], axis=1),
        **override,
    }
    with DatasetBuilder(path, n, 8, 8, 1) as b:
        b.finish(graph=g, world="morpho-test", labels=s.values["digit"][:, None], continuous_labels=cont, seed=seed, **truth)
    return g, s


def test_continuous_truth_round_trips_and_replays(tmp_path):
    g, s = morpho_truth_dataset(tmp_path / "d", n=7)
    ds = load(tmp_path / "d", truth=True)
    assert ds.manifest["truth_columns"] == ["digit", "thickness", "intensity"]
    assert ds.manifest["truth_continuous_columns"] == ["thickness", "intensity"]
    assert "truth_continuous.npy" in ds.manifest["checksums"]
    values, noise = ds.truth_table()
    for v in g.names:  # float64: the values are kept exactly, not rounded to float32
        np.testing.assert_array_equal(values[v], s.values[v])
        np.testing.assert_array_equal(noise[v], s.noise[v])
    assert values["digit"].dtype == np.int64 and values["thickness"].dtype == np.float64
    # the recorded noise replays every recorded value under the continuous convention
    replay = C.propagate(g, noise)
    np.testing.assert_allclose(replay["intensity"], values["intensity"], rtol=0, atol=1e-9)
    # and a counterfactual of the same units changes the intensity through its mechanism
    cf = C.propagate(g, noise, {"thickness": 4.0})
    assert (cf["intensity"] > 64).all() and not np.allclose(cf["intensity"], values["intensity"])
    # the items carry the continuous truth; a split's truth_table follows its positions
    _, _, truth = ds[2]
    np.testing.assert_array_equal(truth["continuous"].numpy(), [s.values["thickness"][2], s.values["intensity"][2]])
    test = load(tmp_path / "d", split="test", truth=True)
    if len(test):
        tv, _ = test.truth_table([0])
        assert tv["thickness"][0] == s.values["thickness"][test.indices[0]]


def test_continuous_truth_is_checked(tmp_path):
    with pytest.raises(CausalVAEError, match="needs their values \\(thickness, intensity\\): pass truth_continuous"):
        morpho_truth_dataset(tmp_path / "a", truth_continuous=None)
    with pytest.raises(CausalVAEError, match="row 0, column 'thickness' holds 2; a continuous variable's column holds -1"):
        morpho_truth_dataset(tmp_path / "b", truth_values=np.array([[1, 2, -1]] * 6))
    with pytest.raises(CausalVAEError, match="continuous truth: row 3, column 'intensity' holds nan, not a finite number"):
        bad = C.sample(Graph.load("morpho"), 6, seed=0)
        cont = np.stack([bad.values["thickness"], bad.values["intensity"]], axis=1)
        cont[3, 1] = np.nan
        morpho_truth_dataset(tmp_path / "c", truth_continuous=cont)
    assert not any(p.name in "abc" for p in tmp_path.iterdir())
    # a dataset opened without truth has no truth table
    with pytest.raises(CausalVAEError, match="opened without truth"):
        morpho_truth_dataset(tmp_path / "d")
        load(tmp_path / "d").truth_table()
