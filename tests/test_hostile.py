"""Hostile and careless input gets one clear error, early: bombs (gzip, YAML depth and
aliases, BIF tables expanded from a default row), YAML type tags, misleading names,
overflowing tables, damaged datasets, out-of-range arguments; and small things right
(probabilities of causation in [0, 1], value names in errors, parsing linear in its length)."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from causalvae.bif import read_bif
from causalvae.data import DatasetError, load
from causalvae.errors import CausalVAEError, GraphError, ZeroProbabilityError
from causalvae.exact import Budget, _unit, causation, query
from causalvae.graph import Graph, Variable
from causalvae.querylang import parse

ONE = "name: g\nvariables:\n  - name: {name}\n    values: [a, b]\n    cpt: {cpt}\n"


def yaml_graph(text: str) -> Graph:
    return Graph.from_yaml("g.yaml", text=text)


# ----------------------------------------------------------------------------- graph files


def test_yaml_type_tags_are_a_graph_error():
    with pytest.raises(GraphError, match="g.yaml: not valid YAML: could not convert string to float: 'y'"):
        yaml_graph("name: g\nvariables:\n  - name: x\n    values: [a, !!float y]\n    cpt: [0.5, 0.5]\n")


def test_yaml_nested_thousands_of_levels_deep_is_refused():
    start = time.monotonic()
    with pytest.raises(GraphError, match=r"g.yaml: nested too deeply \(more than 200 levels\)"):
        yaml_graph("a: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(GraphError, match="nested too deeply"):
        yaml_graph("a:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(1, 400)))
    assert time.monotonic() - start < 60  # refused, not crashed nor hung (seconds on a loaded machine)


def test_yaml_alias_bombs_are_refused():
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]" for p, c in zip("abcdefgh", "bcdefghi")]
    with pytest.raises(GraphError, match="more than 2,000,000 YAML nodes once its aliases are expanded"):
        yaml_graph("\n".join(levels) + "\n")
    with pytest.raises(GraphError, match="a YAML alias refers to a node that contains it"):
        yaml_graph("a: &a [*a]\n")


def test_a_gzip_bomb_stops_at_the_size_cap(tmp_path):
    bomb = tmp_path / "big.bif.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        for _ in range(80):
            fh.write(b"\0" * 2**20)  # 80 MB of zeros in 80 KB
    start = time.monotonic()
    with pytest.raises(GraphError, match="big.bif.gz: larger than 64 MB of text; not a graph file this program reads"):
        Graph.load(bomb)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("n, entries", [(34, "34,359,738,368"), (24, "33,554,432")])
def test_a_default_row_over_many_parents_is_refused_before_the_table_is_made(n, entries):
    text = "network n {}\n" + "".join(f"variable p{i} {{ type discrete [ 2 ] {{ a, b }}; }}\n" for i in range(n))
    text += "variable c { type discrete [ 2 ] { a, b }; }\n"
    text += "".join(f"probability ( p{i} ) {{ table 0.5, 0.5; }}\n" for i in range(n))
    text += "probability ( c | " + ", ".join(f"p{i}" for i in range(n)) + " ) { default 0.9, 0.1; }\n"
    with pytest.raises(GraphError, match=rf"the table of 'c' would have {entries} entries \({n} parents\); the limit is 4,194,304"):
        read_bif(text=text, name="bomb")


def test_a_default_row_fills_every_missing_row():
    text = (
        "network n {}\nvariable p { type discrete [ 3 ] { a, b, c }; }\nvariable c { type discrete [ 2 ] { y, n }; }\n"
        "probability ( p ) { table 0.2, 0.3, 0.5; }\n"
        "probability ( c | p ) { (b) 0.6, 0.4; default 0.9, 0.1; }\n"
    )
    assert read_bif(text=text, name="d")["c"].cpt.tolist() == [[0.9, 0.1], [0.6, 0.4], [0.9, 0.1]]


@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\u2066", "\x85"])
def test_names_with_bidi_or_invisible_characters_are_refused(char):
    with pytest.raises(GraphError, match=rf"contains a .* character \(U\+{ord(char):04X}\), which makes misleading output"):
        Graph([Variable(f"x{char}y", ["a", "b"], cpt=[0.5, 0.5])])
    with pytest.raises(GraphError, match=r"a value of 'x' 'b\\u202e' contains"):
        yaml_graph(ONE.format(name="x", cpt="[0.5, 0.5]").replace("[a, b]", '[a, "b\\u202e"]'))


def test_normalize_does_not_overflow_to_an_all_zero_table():
    g = yaml_graph(ONE.format(name="x", cpt="[1e308, 1e308]\n    normalize: true"))
    assert g["x"].cpt.tolist() == [0.5, 0.5]
    with pytest.raises(GraphError, match="all-zero row"):
        yaml_graph(ONE.format(name="x", cpt="[0, 0]\n    normalize: true"))


def test_graph_files_that_are_not_regular_files(tmp_path):
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(GraphError, match="zero.yaml: not a regular file"):
        Graph.load(link)


# ----------------------------------------------------------------------------- queries


def test_probabilities_of_causation_are_clamped_to_the_unit_interval(scenes):
    assert _unit(-2.2e-16) == 0.0 and _unit(1 + 2.2e-16) == 1.0 and _unit(0.25) == 0.25
    for c in causation(scenes, "action", "Attack", "reaction", "Dying").values():
        assert all(0.0 <= p <= 1.0 for p in (c.pn, c.ps, c.pns))


def test_zero_probability_errors_name_values_not_indices(scenes):
    with pytest.raises(ZeroProbabilityError, match=r"the evidence reaction=Attack has probability zero under do\(reaction=Idle\)"):
        query(scenes, ["action"], {"reaction": 3}, do={"reaction": "Idle"})


def test_parsing_is_linear_in_the_number_of_evidence_items():
    from conftest import bnlearn_path

    g = read_bif(bnlearn_path("munin"))

    def seconds(k: int) -> float:
        text = "P(" + g.names[0] + " | " + ", ".join(f"{n}={g[n].values[0]}" for n in g.names[1:k]) + ")"
        start = time.perf_counter()
        parse(text, g)
        return time.perf_counter() - start

    seconds(50)
    small, large = min(seconds(100) for _ in range(7)), min(seconds(1000) for _ in range(7))
    assert large < 40 * small  # ten times the items: about ten times the time (quadratic: 100; measured 8.8)


# ----------------------------------------------------------------------------- datasets


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from causalvae.generate import generate

    return generate("scenes", tmp_path_factory.mktemp("hostile") / "small", 30, seed=5)


def test_out_of_range_labels_in_a_dataset_are_refused_on_load(small, tmp_path):
    bad = shutil.copytree(small, tmp_path / "bad")
    labels = np.load(bad / "labels.npy")
    labels[7, 0] = 9
    np.save(bad / "labels.npy", labels)
    manifest = json.loads((bad / "manifest.json").read_text())
    from causalvae.data import sha256

    manifest["checksums"]["labels.npy"] = sha256(bad / "labels.npy")
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"labels.npy: row 7, column 'actor' holds 9, not a value index of 'actor' \(0..1\) \(a damaged dataset\)"):
        load(bad)


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "args, words",
    [
        (["generate", "scenes", "--out", "X", "--seed", "-1"], "Invalid value for '--seed'"),
        (["sample", "RUN", "--out", "x.png", "--columns", "0"], "Invalid value for '--columns'"),
        (["evaluate", "RUN", "--oracle", "O", "--out", "R", "--n-generate", "0"], "Invalid value for '--n-generate'"),
        (["evaluate", "RUN", "--oracle", "O", "--out", "R", "--iw-k", "0"], "Invalid value for '--iw-k'"),
        (["query", "P(action)", "--max-table-mb", "0"], "--max-table-mb must be a positive number of MB, got 0.0"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(args, words, tmp_path):
    import os
    from pathlib import Path

    import causalvae

    env = {**os.environ, "PYTHONPATH": str(Path(causalvae.__file__).parents[1])}  # these sources, from another folder
    r = subprocess.run([sys.executable, "-m", "causalvae", *args], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr


def test_evaluation_settings_are_checked_when_made():
    from causalvae.evaluate import EvalSettings

    for bad in ({"n_generate": 0}, {"iw_k": 0}, {"seed": -1}, {"cf_images": 0}, {"refine": -1}, {"refine": 1.5}):
        with pytest.raises(CausalVAEError, match="must be"):
            EvalSettings(**bad)


# ----------------------------------------------------------------------------- pictures


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height pixels (its data is a few bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_png_claiming_millions_of_pixels_is_refused_before_decoding(tmp_path, scenes):
    from causalvae.data import import_folder

    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(png_claiming(13400, 13400))  # 179 million pixels
    (tmp_path / "labels.csv").write_text("file,actor\na.png,Golem\n")
    start = time.monotonic()
    with pytest.raises(CausalVAEError, match=r"a.png \(.*labels.csv line 2\) claims 13400x13400 pixels \(179,560,000\); the limit is 16,777,216: not decoded"):
        import_folder(tmp_path / "img", tmp_path / "labels.csv", scenes, tmp_path / "out")
    assert time.monotonic() - start < 5 and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- what held (issue 18, item 4)


@pytest.mark.parametrize("cpt", ["[.nan, 1]", "[.inf, 0]", "[1e999, 0]"])
def test_non_finite_yaml_tables_are_refused(cpt):
    with pytest.raises(GraphError, match="CPT of 'x' has a non-finite entry"):
        yaml_graph(ONE.format(name="x", cpt=cpt))


def test_non_finite_bif_tables_are_refused():
    text = "network n {}\nvariable a { type discrete [ 2 ] { x, y }; }\nprobability ( a ) { table %s; }\n"
    with pytest.raises(GraphError, match="line 3: expected a number in the table of 'a', got 'nan'"):
        read_bif(text=text % "nan, 1", name="n")
    with pytest.raises(GraphError, match="line 3: CPT of 'a' has a non-finite entry"):
        read_bif(text=text % "1e999, 0", name="n")


def test_a_yaml_key_given_twice_is_refused_not_overwritten():
    rows = "name: g\nvariables:\n  - name: a\n    values: [x, y]\n    cpt: [0.3, 0.7]\n  - name: b\n    values: [u, v]\n    parents: [a]\n    cpt:\n"
    with pytest.raises(GraphError, match=r"^g.yaml: not valid YAML: the key 'x' is given twice \(lines 10 and 11\)$"):
        yaml_graph(rows + "      x: [0.1, 0.9]\n      x: [0.6, 0.4]\n      y: [0.5, 0.5]\n")
    with pytest.raises(GraphError, match=r"the key 'cpt' is given twice \(lines 5 and 6\)"):
        yaml_graph(ONE.format(name="x", cpt="[0.5, 0.5]\n    cpt: [0.9, 0.1]"))
    with pytest.raises(GraphError, match=r"the key 'x' is given twice"):
        yaml_graph(rows.replace("    cpt:\n", "    cpt: {x: [0.1, 0.9], x: [0.6, 0.4], y: [0.5, 0.5]}\n"))
    g = yaml_graph(rows + "      x: [0.1, 0.9]\n      y: [0.5, 0.5]\n")
    assert g["b"].cpt.tolist() == [[0.1, 0.9], [0.5, 0.5]]


def test_bit_flipped_bnlearn_files_are_a_graph_or_the_projects_error(tmp_path):
    from conftest import bnlearn_path

    raw = bnlearn_path("alarm").read_bytes()
    text = gzip.decompress(raw)
    rng = np.random.default_rng(18)
    for k in range(20):
        flipped = bytearray(raw)
        pos = int(rng.integers(20, len(raw) - 8))  # past the gzip header: the deflate stream and its CRC
        flipped[pos] ^= 1 << int(rng.integers(8))
        path = tmp_path / f"alarm{k}.bif.gz"
        path.write_bytes(bytes(flipped))
        with pytest.raises(GraphError, match=rf"alarm{k}.bif.gz: corrupt gzip file \((CRC check failed|Error -3 while decompressing)"):
            Graph.load(path)
    read = 0
    for k in range(20):
        flipped = bytearray(text)
        flipped[int(rng.integers(len(text)))] ^= 1 << int(rng.integers(8))
        try:
            g = read_bif(text=bytes(flipped).decode("utf-8", errors="replace"), name="alarm")
        except GraphError as exc:
            assert "line" in str(exc) or "cycle" in str(exc) or "character" in str(exc), str(exc)
        else:
            read += 1
            assert len(g.names) == 37
    assert read < 20  # most flips land in a number or a name and are noticed


@pytest.mark.slow  # reading diabetes takes seconds
def test_diabetes_many_target_joint_is_refused_with_its_size():
    from conftest import bnlearn_path

    g = read_bif(bnlearn_path("diabetes"))
    start = time.monotonic()
    with pytest.raises(CausalVAEError, match=r"this query would build a table of [\d,]+ MB over .*\(limit 1,024 MB\); ask for fewer targets"):
        query(g, g.topological_order[-12:], budget=Budget.of(max_table_mb=1024))
    assert time.monotonic() - start < 30  # refused from the plan, not by running out of memory



# ----------------------------------------------------------------------------- the viewer's limits


@pytest.fixture(scope="module")
def viewer(viewer_run):
    from fastapi.testclient import TestClient

    from causalvae.viewer import create_app

    return TestClient(create_app(viewer_run[1], warm=False), raise_server_exceptions=False)


@pytest.mark.parametrize("path", ["/api/query", "/api/sample", "/api/counterfactual"])
def test_a_body_over_the_limit_is_a_413_on_every_endpoint(viewer, path):
    from causalvae.viewer.app import MAX_BODY_BYTES

    body = json.dumps({"query": "x" * (MAX_BODY_BYTES + 1)})
    r = viewer.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["detail"] == f"the request is {len(body):,} bytes; the limit is {MAX_BODY_BYTES:,} bytes (pictures: 2,097,152 bytes)"


def test_n_above_the_documented_maximum_is_a_422(viewer):
    from causalvae.viewer.app import MAX_PICTURES

    assert MAX_PICTURES == 64  # docs/viewer.md: "n" (1-64)
    r = viewer.post("/api/sample", json={"n": MAX_PICTURES + 1})
    assert r.status_code == 422 and r.json()["detail"] == "n: Input should be less than or equal to 64"
    r = viewer.get("/api/gallery", params={"n": MAX_PICTURES + 1})
    assert r.status_code == 422 and r.json()["detail"] == "query.n: Input should be less than or equal to 64"


@pytest.mark.parametrize("path", [
    "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e/%2e%2e/version.py", "/static/..%2f..%2fversion.py",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml", "/static//etc/passwd", "/static/%2fetc%2fpasswd",
])
def test_no_path_traversal_under_static(viewer, path):
    r = viewer.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert "import" not in r.text and "root:" not in r.text
