"""The dataset format, scene generation, import and the loader."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from causalvae.cli import app
from causalvae.data import DatasetBuilder, DatasetError, import_folder, load
from causalvae.errors import CausalVAEError
from causalvae.exact import marginals
from causalvae.generate import generate
from causalvae.graph import Graph
from causalvae.worlds.scenes import LABELS

runner = CliRunner()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "scenes"
    generate("scenes", out, 400, seed=3)
    return out


def test_same_seed_same_bytes(small, tmp_path):
    other = generate("scenes", tmp_path / "again", 400, seed=3)
    for name in ("images.npy", "labels.npy", "split.npy", "truth_values.npy", "truth_noise.npy", "truth_style.npy"):
        assert (small / name).read_bytes() == (other / name).read_bytes(), name
    different = generate("scenes", tmp_path / "seed4", 400, seed=4)
    assert (small / "images.npy").read_bytes() != (different / "images.npy").read_bytes()


def test_loader_items_and_truth(small):
    ds = load(small)
    assert len(ds) == 400
    image, labels = ds[0]
    assert image.shape == (3, 64, 64) and str(image.dtype) == "torch.uint8"
    assert labels.tolist() == ds.labels[0].tolist()
    tr = load(small, split="test", truth=True)
    assert 0 < len(tr) < 400
    _, labels, truth = tr[0]
    graph = tr.graph
    k = int(tr.indices[0])
    # Observed labels agree with the recorded truth; the truth replays the noise convention.
    cols = [graph.names.index(c) for c in tr.label_columns]
    assert labels.tolist() == truth["values"][cols].tolist()
    from causalvae.noise import propagate

    noise = {n: tr.truth_noise[:, i] for i, n in enumerate(graph.names)}
    replay = propagate(graph, noise)
    np.testing.assert_array_equal(np.stack([replay[n] for n in graph.names], 1), tr.truth_values)
    assert tr.truth_style.shape == (400, 7) and k >= 0


def test_splits_are_fixed_and_disjoint(small):
    parts = [set(load(small, split=s, verify=False).indices.tolist()) for s in ("train", "val", "test")]
    assert sum(map(len, parts)) == 400 and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(parts[1]) == 40 and len(parts[2]) == 40


def test_label_frequencies_match_exact_marginals(tmp_path):
    """Chi-square goodness of fit of 50,000 sampled labels against the graph's marginals."""
    from scipy.stats import chi2

    g = Graph.load("scenes")
    from causalvae.noise import sample

    # generate_scenes samples the graph with SeedSequence(seed) child 0; check the same stream
    # through a real (small) dataset, and the frequencies on 50,000 units of that stream.
    rng = np.random.default_rng(np.random.SeedSequence(0).spawn(4)[0])
    units = sample(g, 50_000, rng)
    exact = marginals(g)
    for name in LABELS:
        counts = np.bincount(units.values[name], minlength=g.card(name))
        expected = 50_000 * exact[name]
        stat = float(((counts - expected) ** 2 / expected).sum())
        assert stat < chi2.ppf(0.999, df=g.card(name) - 1), (name, stat)
    ds = generate("scenes", tmp_path / "d", 50, seed=0, style=False)
    labels = np.load(ds / "labels.npy")
    np.testing.assert_array_equal(labels[:, 0], units.values["actor"][:50])


def test_label_fraction_drops_labels(tmp_path):
    ds = load(generate("scenes", tmp_path / "semi", 300, seed=1, label_fraction=0.5), truth=True)
    missing = (ds.labels == -1).mean()
    assert 0.4 < missing < 0.6
    kept = ds.labels != -1
    cols = [ds.graph.names.index(c) for c in ds.label_columns]
    np.testing.assert_array_equal(ds.labels[kept], ds.truth_values[:, cols][kept])


def test_no_overwrite_without_force_and_atomicity(small, tmp_path):
    with pytest.raises(CausalVAEError, match="already exists; pass --force"):
        generate("scenes", small, 10, seed=0)
    target = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        with DatasetBuilder(target, 10, 8, 8, 3) as b:
            b.images[:5] = 1
            raise KeyboardInterrupt
    assert not target.exists() and not list(tmp_path.iterdir())


def test_corrupted_truncated_foreign_and_missing(small, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(small, bad)
    with open(bad / "labels.npy", "r+b") as fh:
        fh.seek(-1, 2)
        fh.write(b"\x7f")
    with pytest.raises(DatasetError, match="labels.npy: checksum mismatch"):
        load(bad)
    trunc = tmp_path / "trunc"
    shutil.copytree(small, trunc)
    data = (trunc / "images.npy").read_bytes()
    (trunc / "images.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="images.npy: checksum mismatch"):
        load(trunc)
    with pytest.raises(DatasetError, match="images.npy: unreadable or truncated"):
        load(trunc, verify=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DatasetError, match="not a causalvae-dataset/1 manifest"):
        load(foreign)
    (foreign / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="corrupt manifest"):
        load(foreign)
    with pytest.raises(DatasetError, match="no such dataset directory"):
        load(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="unknown split 'training'"):
        load(small, split="training")


def _export(ds_path, tmp_path):
    """Write a dataset back out as PNGs and a labels CSV."""
    ds = load(ds_path)
    folder = tmp_path / "pngs"
    folder.mkdir()
    rows = []
    for k in range(len(ds.images)):
        name = f"img{k:04d}.png"
        Image.fromarray(np.asarray(ds.images[k])).save(folder / name)
        rows.append([name] + [ds.graph[c].values[v] if v >= 0 else "" for c, v in zip(ds.label_columns, ds.labels[k])])
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", *ds.label_columns])
        w.writerows(rows)
    return ds, folder, tmp_path / "labels.csv"


def test_import_round_trips_a_generated_dataset(tmp_path):
    src = generate("scenes", tmp_path / "src", 60, seed=2, label_fraction=0.7)
    ds, folder, labels_csv = _export(src, tmp_path)
    res = runner.invoke(app, ["data", "import", "--images", str(folder), "--labels", str(labels_csv), "--graph", "scenes", "--out", str(tmp_path / "imp")])
    assert res.exit_code == 0, res.output
    back = load(tmp_path / "imp")
    np.testing.assert_array_equal(np.asarray(back.images), np.asarray(ds.images))
    np.testing.assert_array_equal(back.labels, ds.labels)
    assert back.manifest["world"] == "imported" and not back.manifest["truth_columns"]


def test_import_errors_name_file_and_row(tmp_path):
    src = generate("scenes", tmp_path / "src", 5, seed=2)
    _, folder, labels_csv = _export(src, tmp_path)
    g = Graph.load("scenes")
    text = labels_csv.read_text().splitlines()
    bad = text[:3] + [text[3].replace("Satyr", "Satir", 1) if "Satyr" in text[3] else text[3].replace("Golem", "Golm", 1)] + text[4:]
    (tmp_path / "bad.csv").write_text("\n".join(bad) + "\n")
    with pytest.raises(CausalVAEError, match=r"bad.csv line 4 \(img0002.png\): '(Satir|Golm)' is not a value of 'actor'"):
        import_folder(folder, tmp_path / "bad.csv", g, tmp_path / "o1")
    (tmp_path / "cols.csv").write_text("file,acter\nimg0000.png,Satyr\n")
    with pytest.raises(CausalVAEError, match="column 'acter' is not a variable of the graph \\(did you mean 'actor'"):
        import_folder(folder, tmp_path / "cols.csv", g, tmp_path / "o2")
    (tmp_path / "hid.csv").write_text("file,actor_attack\nimg0000.png,High\n")
    with pytest.raises(CausalVAEError, match="'actor_attack' is a hidden variable"):
        import_folder(folder, tmp_path / "hid.csv", g, tmp_path / "o3")
    Image.new("RGB", (32, 32)).save(folder / "img0003.png")
    with pytest.raises(CausalVAEError, match=r"img0003.png \(.*line 5\): RGB 32x32, but the first image is RGB 64x64"):
        import_folder(folder, labels_csv, g, tmp_path / "o4")
    (folder / "img0001.png").write_bytes(b"not a png")
    with pytest.raises(CausalVAEError, match=r"img0001.png \(.*line 3\): not a readable PNG"):
        import_folder(folder, labels_csv, g, tmp_path / "o5")
    with pytest.raises(CausalVAEError, match="no such labels file"):
        import_folder(folder, tmp_path / "none.csv", g, tmp_path / "o6")
    assert not any(p.name.startswith("o") for p in tmp_path.iterdir())


def test_cli_generate_and_show(tmp_path):
    res = runner.invoke(app, ["generate", "scenes", "--n", "300", "--out", str(tmp_path / "d"), "--seed", "0"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["generate", "scenes", "--n", "300", "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "--force" in res.output
    res = runner.invoke(app, ["show", str(tmp_path / "d"), "--out", str(tmp_path / "sheet.png")])
    assert res.exit_code == 0, res.output
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width > 500 and sheet.height > 500
    res = runner.invoke(app, ["show", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s.png")])
    assert res.exit_code == 2 and "no such dataset directory" in res.output


def test_force_replaces_only_datasets(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.txt").write_text("years of work")
    with pytest.raises(CausalVAEError, match="not a causalvae dataset; --force replaces only a causalvae dataset"):
        generate("scenes", precious, 5, seed=0, force=True)
    assert (precious / "chapter1.txt").read_text() == "years of work"


def test_malformed_manifest_and_pickling(small, tmp_path):
    import pickle

    bad = tmp_path / "bad"
    shutil.copytree(small, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["resolution"] = [64]
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="malformed manifest"):
        load(bad)
    ds = load(small)
    blob = pickle.dumps(ds)
    assert len(blob) < 200_000  # the image array stays on disk
    again = pickle.loads(blob)
    assert (again[5][0] == ds[5][0]).all()
    import torch

    assert isinstance(ds, torch.utils.data.Dataset)


def test_import_tolerates_bom_and_blank_lines_and_refuses_repeats(tmp_path):
    src = generate("scenes", tmp_path / "src", 4, seed=2)
    _, folder, labels_csv = _export(src, tmp_path)
    text = labels_csv.read_text()
    (tmp_path / "bom.csv").write_text("\ufeff" + text + "\n\n", encoding="utf-8")
    g = Graph.load("scenes")
    out = import_folder(folder, tmp_path / "bom.csv", g, tmp_path / "ok")
    assert load(out).manifest["count"] == 4
    lines = text.splitlines()
    (tmp_path / "rep.csv").write_text("\n".join(lines + [lines[1]]) + "\n")
    with pytest.raises(CausalVAEError, match=r"rep.csv line 6: 'img0000.png' is listed twice \(first at line 2\)"):
        import_folder(folder, tmp_path / "rep.csv", g, tmp_path / "no")


def test_cli_style_ranges(tmp_path):
    res = runner.invoke(app, ["generate", "scenes", "--n", "40", "--out", str(tmp_path / "d"), "--style-range", "scale=0.9:0.95"])
    assert res.exit_code == 0, res.output
    ds = load(tmp_path / "d", truth=True)
    scales = ds.truth_style[:, [ds.manifest["style_fields"].index(f) for f in ("actor_scale", "reactor_scale")]]
    assert scales.min() >= 0.9 and scales.max() <= 0.95
    res = runner.invoke(app, ["generate", "scenes", "--n", "40", "--out", str(tmp_path / "e"), "--style-range", "scal=0.9:1"])
    assert res.exit_code == 2 and "did you mean 'scale'" in res.output
