"""The docs never rot: every shown output is current and every example runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from causalvae.graph import Graph

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_rendered_outputs_are_current():
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "render.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, f"run `python docs/render.py`: {proc.stdout}{proc.stderr}"


def test_graph_format_examples_run(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "graph-format.md").read_text()
    g = Graph.from_yaml("graph-format.md", text=re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    assert g.variables["rain"].values == ("no", "yes")  # YAML 1.2 booleans: no/yes stay names
    np.testing.assert_array_equal(g.cpt("grass")[1, 1], [0.01, 0.99])
    monkeypatch.chdir(tmp_path)
    python = re.search(r"## Python\n\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(python, "graph-format.md", "exec"), {})
    assert Graph.load(tmp_path / "garden.bif").cpt("grass").shape == (2, 2)


def test_query_doc_examples_run():
    text = (ROOT / "docs" / "queries.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        exec(compile(block, "queries.md", "exec"), {})


def test_documented_style_defaults_match_the_code():
    from causalvae.worlds.scenes import StyleRanges

    text = (ROOT / "docs" / "dataset-format.md").read_text()
    for name, (low, high) in vars(StyleRanges()).items():
        assert re.search(rf"`{name}`[^`]*?{low:g}:{high:g}", text), name


def test_sprites_doc_tables_are_the_graphs_tables():
    """docs/sprites.md shows the sprites graph's CPTs; they must be the YAML's numbers."""
    g = Graph.load("sprites")
    text = (ROOT / "docs" / "sprites.md").read_text()
    root = re.search(r"^\| P\(shape\) \|(.*)\|$", text, re.M)
    np.testing.assert_allclose([float(x) for x in root.group(1).split("|")], g.cpt("shape"))
    tables = re.findall(r"^\| P\((\w+) \\\| (\w+)\) \|.*\n\|[-:|]+\n((?:\|.*\n)+)", text, re.M)
    assert {t[0] for t in tables} == {"scale", "orientation", "posX", "posY"}
    for var, parent, body in tables:
        assert g.parents(var) == (parent,)
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in body.strip().splitlines()]
        assert len(rows) == g.card(parent)
        for i, row in enumerate(rows):
            np.testing.assert_allclose([float(x) for x in row[1:]], g.cpt(var)[i], atol=5e-4, err_msg=f"{var} row {row[0]}")


def test_the_error_catalogue_is_current():
    """docs/errors.md shows the message each bad input gets, produced by running it."""
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "errors.py"), "--check"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"run `python docs/errors.py`: {proc.stdout}{proc.stderr}"


def test_compare_puts_two_reports_figures_side_by_side(tmp_path):
    """docs/compare.py: each goal's measured value from each report, '-' where one lacks it,
    and two worlds' reports refused."""
    import json

    from causalvae.report import goals

    a = json.loads((ROOT / "docs" / "reports" / "sprites" / "report.json").read_text())
    b = json.loads(json.dumps(a))
    b["counterfactual_factors"].pop("posY")
    b["reconstruction"]["oracle_accuracy"]["shape"] = 0.5
    b["classifiers"] = {"shape": {"hidden": True, "accuracy": 0.25, "pictures": 10}}
    a["reconstruction"]["oracle_mae"] = {"thickness": 0.25}  # a continuous reading only one report has
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    out = tmp_path / "c.md"
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "compare.py"), str(pa), str(pb), "--names", "one,two", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    for g in goals(a):
        assert f"| {g['goal']} ({g['op']} {g['target']:g}) | {g['value']:.4g} |" in text
    assert f"| shape, read off the reconstruction | {100 * a['reconstruction']['oracle_accuracy']['shape']:.1f}% | 50.0% |" in text
    assert "| shape: its classifier q(shape \\| x) | - | 25.0% |" in text
    assert "| thickness, read off the reconstruction: mean absolute error | 0.25 | - |" in text
    posY = a["counterfactual_factors"]["posY"]
    assert f"| do(posY) | {100 * posY['effectiveness']:.1f}% / {100 * posY['effectiveness_own']:.1f}% / {posY['iou_to_true_render']:.4g} | - |" in text
    assert "reconstructions of the test pictures" in text
    assert f"| ELBO, nats per picture | {a['likelihood']['elbo']:.4g} | {b['likelihood']['elbo']:.4g} |" in text
    assert f"| reconstruction IoU to the input (plain, not symmetry-aware) | {a['reconstruction']['iou']:.4g} |" in text
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "compare.py"), str(pa), str(pb), "--names", "one,two", "--split", "validation", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0 and "reconstructions of the validation pictures" in out.read_text() and "of the test pictures" not in out.read_text()
    b["world"] = "scenes"
    pb.write_text(json.dumps(b))
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "compare.py"), str(pa), str(pb), "--names", "one,two", "--out", str(tmp_path / "d.md")], capture_output=True, text=True)
    assert proc.returncode != 0 and "two worlds: sprites and scenes" in proc.stderr and not (tmp_path / "d.md").exists()
    pb.write_text(json.dumps(b)[:300])  # truncated
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "compare.py"), str(pa), str(pb), "--names", "one,two", "--out", str(tmp_path / "d.md")], capture_output=True, text=True)
    assert proc.returncode != 0 and "not a JSON report (truncated or corrupt?)" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "d.md").exists()


def test_the_staleness_check_forgives_floating_point_noise_only():
    """A full-precision number that differs in its last digits from one CPU to another is not
    stale; any other difference is."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import render
    finally:
        sys.path.pop(0)
    assert render.same('"value": 0.3050170847352225, "error": 4.6537581914199626e-11', '"value": 0.3050170847352224, "error": 4.653774796826144e-11')
    assert not render.same("thickness 2.506", "thickness 2.507")
    assert not render.same("P(a) 0.25", "P(b) 0.25")
    assert not render.same("0.25 0.5", "0.25")


def test_compare_per_value_lists_each_intervention_beside_its_true_renders(tmp_path):
    """docs/compare.py --per-value digit: one row per do(digit=v) with each report's share of
    counterfactuals read as v and the true renders' share, and their means; a variable no
    report intervenes on is one clear error."""
    import json

    a = json.loads((ROOT / "docs" / "reports" / "morpho" / "validation" / "recipe-cf40.json").read_text())
    b = json.loads(json.dumps(a))
    for c in b["counterfactuals"]:
        if list(c["do"]) == ["digit"]:
            c["variables"]["digit"]["effectiveness"] = 0.5
    pa, pb, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.md"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    args = [sys.executable, str(ROOT / "docs" / "compare.py"), str(pa), str(pb), "--names", "one,two", "--split", "validation"]
    proc = subprocess.run(args + ["--per-value", "digit", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    rows = {c["do"]["digit"]: c["variables"]["digit"] for c in a["counterfactuals"] if list(c["do"]) == ["digit"]}
    assert len(rows) == 10
    for v, d in rows.items():
        assert f"| do(digit={v}) | {100 * d['effectiveness']:.1f}% | 50.0% | {100 * d['effectiveness_true_renders']:.1f}% |" in text
    mean = sum(d["effectiveness"] for d in rows.values()) / 10
    assert f"| mean | {100 * mean:.1f}% | 50.0% |" in text
    # three reports: three columns, in the order given; names must match the reports
    args3 = [sys.executable, str(ROOT / "docs" / "compare.py"), str(pa), str(pb), str(pa), "--split", "validation", "--per-value", "digit"]
    proc = subprocess.run(args3 + ["--names", "one,two,three", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "| figure | one | two | three |" in text and "| intervention | one | two | three | true renders |" in text
    for v, d in rows.items():
        e = f"{100 * d['effectiveness']:.1f}%"
        assert f"| do(digit={v}) | {e} | 50.0% | {e} | {100 * d['effectiveness_true_renders']:.1f}% |" in text
    proc = subprocess.run(args3 + ["--names", "one,two", "--out", str(tmp_path / "e.md")], capture_output=True, text=True)
    assert proc.returncode != 0 and "give 3 names, one per report" in proc.stderr and not (tmp_path / "e.md").exists()
    proc = subprocess.run(args + ["--per-value", "colour", "--out", str(tmp_path / "d.md")], capture_output=True, text=True)
    assert proc.returncode != 0 and "--per-value colour: no report has a counterfactual do(colour=...)" in proc.stderr
    assert not (tmp_path / "d.md").exists()


def test_trialstrip_refuses_a_refinement_past_the_cap(tmp_path):
    """docs/trialstrip.py --refine takes 0 to 500 steps, as `causalvae serve --refine` does:
    more is one clear line naming the option, before any run is opened."""
    for bad in ("501", "-1"):
        proc = subprocess.run([sys.executable, str(ROOT / "docs" / "trialstrip.py"), "--runs", str(tmp_path / "none"), "--names", "one", "--do", "thickness=3",
                               "--refine", bad, "--out", str(tmp_path / "s.png")], capture_output=True, text=True)
        assert proc.returncode != 0 and proc.stderr.strip() == f"trialstrip: --refine must be from 0 to 500, got {bad}", proc.stderr
        assert not (tmp_path / "s.png").exists()


def test_valeval_argument_errors_are_one_line_naming_the_option(tmp_path, capsys):
    """docs/valeval.py: a bad number, a bad path or an --out that is a folder is one line naming
    the option as typed (--cf-images, never the setting it feeds), exit status 2, before any
    evaluation; never a traceback."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("valeval", ROOT / "docs" / "valeval.py")
    valeval = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(valeval)
    run = str(ROOT / "docs" / "runs" / "sprites")  # a run's record (no weights): enough to reach the oracle
    out = str(tmp_path / "v.json")
    for args, message in (([run, "--oracle", "o", "--cf-images", "0", "--out", out], "--cf-images must be a whole number >= 1, got 0"),
                          ([run, "--oracle", "o", "--n-generate", "0", "--out", out], "--n-generate must be a whole number >= 1, got 0"),
                          ([run, "--oracle", "o", "--threads", "0", "--out", out], "--threads must be a whole number >= 1, got 0"),
                          ([run, "--oracle", "o", "--refine", "501", "--out", out], "--refine must be from 0 to 500, got 501"),
                          ([run, "--oracle", "o", "--n-generate", "many", "--out", out], "argument --n-generate: invalid int value: 'many'"),
                          ([run, "--oracle", "o", "--out", str(tmp_path)], f"--out {tmp_path}: is a directory"),
                          ([run, "--oracle", "o", "--out", str(tmp_path / "no" / "v.json")], f"--out {tmp_path / 'no' / 'v.json'}: the folder {tmp_path / 'no'} does not exist"),
                          ([str(tmp_path / "none"), "--oracle", "o", "--out", out], f"{tmp_path / 'none'}: no such model directory"),
                          ([run, "--oracle", str(tmp_path / "none"), "--out", out], f"--oracle: {tmp_path / 'none' / 'oracle.safetensors'}: missing")):
        with pytest.raises(SystemExit) as stop:
            valeval.main(args)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.startswith(f"valeval: {message}") and len(err.strip().splitlines()) == 1, (args, err)
        assert "axiom_images" not in err and "Traceback" not in err
    assert not (tmp_path / "v.json").exists()


def test_compare_names_the_file_of_a_report_of_another_shape_and_refuses_a_folder_for_out(tmp_path):
    """docs/compare.py: a report.json whose fields are missing or of another shape is one error
    naming that file (never Python's own KeyError or TypeError text); an --out that is a folder
    is one error naming it, not a traceback; nothing is written."""
    import json

    good = ROOT / "docs" / "reports" / "sprites" / "report.json"
    a = json.loads(good.read_text())
    bad = tmp_path / "bad.json"
    script = [sys.executable, str(ROOT / "docs" / "compare.py")]
    for field, value, message in (("reconstruction", None, "no 'reconstruction' where the comparison reads one"), ("reconstruction", [1, 2], "a field of another type or shape"),
                                  ("counterfactual_factors", {"posY": {"effectiveness": "high"}}, "a field of another type or shape"),
                                  ("counterfactuals", [{"do": {"shape": "heart"}, "variables": {"shape": 3}}], "no 'effectiveness' where the comparison reads one"),
                                  ("world", ["sprites"], "'world' is not a name")):
        b = {k: v for k, v in a.items() if k != field} if value is None else {**a, field: value}
        bad.write_text(json.dumps(b))
        proc = subprocess.run(script + [str(good), str(bad), "--names", "one,two", "--per-value", "shape", "--out", str(tmp_path / "c.md")], capture_output=True, text=True)
        assert proc.returncode != 0 and proc.stderr.startswith(f"{bad}: not an evaluation report") and message in proc.stderr, (field, proc.stderr)
        assert "Traceback" not in proc.stderr and "Error" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (field, proc.stderr)
        assert not (tmp_path / "c.md").exists()
    proc = subprocess.run(script + [str(good), str(good), "--names", "one,two", "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode != 0 and proc.stderr.strip() == f"--out {tmp_path}: is a directory; name the Markdown file to write", proc.stderr


def test_oracletable_writes_the_held_out_figures_and_names_the_oracle(tmp_path):
    """docs/oracletable.py: the table of an oracle's config.json (what `oracle train` recorded):
    each figure as recorded, the training it had and the first 8 hex digits of its weights'
    hash; a config without them, or with one of another type, is one error naming the file and
    the field, and nothing is written; an --out that is a folder is one error."""
    import json

    oracle = tmp_path / "oracle"
    oracle.mkdir()
    config = {"config": {"columns": ["digit"], "continuous": ["thickness", "intensity"]},
              "held_out_accuracy": {"digit": 0.98075, "thickness": 0.0788, "intensity": 3.3374},
              "training": {"steps": 10000, "shift": 2}, "weights_sha256": "1c191ec6" + "0" * 56}
    (oracle / "config.json").write_text(json.dumps(config))
    out = tmp_path / "oracle.md"
    script = [sys.executable, str(ROOT / "docs" / "oracletable.py"), str(oracle), "--held-out", "test sources", "--out", str(out)]
    proc = subprocess.run(script, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().splitlines() == [
        "| oracle, held out (test sources) | value |", "|---|---:|", "| digit accuracy | 98.08% |", "| thickness MAE (px) | 0.079 |",
        "| intensity MAE (0-255) | 3.34 |", "| training: steps, pictures moved up to (px) | 10,000, 2 |", "| weights (SHA-256, first 8 hex) | `1c191ec6` |"]
    out.unlink()
    for change, message in (({"weights_sha256": None}, "'weights_sha256' must be a hex digest, got None"),
                            ({"held_out_accuracy": {**config["held_out_accuracy"], "digit": "x"}}, "'held_out_accuracy.digit' must be a finite number >= 0, got 'x'"),
                            ({"held_out_accuracy": {"digit": 0.9}}, "no 'held_out_accuracy.thickness'"),
                            ({"training": {"steps": "10000"}}, "'training.steps' must be a whole number, got '10000'"),
                            ({"config": {"columns": "digit"}}, "'config.columns' must be a list of names, got 'digit'")):
        (oracle / "config.json").write_text(json.dumps({**config, **change}))
        proc = subprocess.run(script, capture_output=True, text=True)
        assert proc.returncode != 0 and not out.exists(), message
        assert proc.stderr.strip() == f"error: {oracle / 'config.json'}: not an oracle's config ({message})", proc.stderr
    (oracle / "config.json").write_text(json.dumps(config))
    proc = subprocess.run(script[:-1] + [str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode != 0 and proc.stderr.strip() == f"error: --out {tmp_path}: is a directory; name the Markdown file to write", proc.stderr


def test_compare_same_judge_refuses_reports_of_two_oracle_instances(tmp_path):
    """docs/compare.py --same-judge: reports scored by one oracle instance (the weights' hash
    each records) compare; another hash, or none recorded, is one error naming each file's
    judge, and nothing is written."""
    import json

    good = ROOT / "docs" / "reports" / "morpho" / "report.json"
    a = json.loads(good.read_text())
    script = [sys.executable, str(ROOT / "docs" / "compare.py"), str(good)]
    same = subprocess.run(script + [str(good), "--names", "one,two", "--same-judge", "--out", str(tmp_path / "ok.md")], capture_output=True, text=True)
    assert same.returncode == 0 and (tmp_path / "ok.md").exists(), same.stderr
    other = tmp_path / "other.json"
    for oracle, shown in (({**a["oracle"], "weights_sha256": "ab" * 32}, "abababab"), ({"path": "oracles/morpho"}, "no hash recorded")):
        other.write_text(json.dumps({**a, "oracle": oracle}))
        proc = subprocess.run(script + [str(other), "--names", "one,two", "--same-judge", "--out", str(tmp_path / "c.md")], capture_output=True, text=True)
        assert proc.returncode != 0 and not (tmp_path / "c.md").exists()
        assert proc.stderr.strip().startswith("--same-judge: the reports were not all scored by one oracle instance") and f"{other}: {shown}" in proc.stderr, proc.stderr
