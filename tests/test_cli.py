"""Every command of the CLI runs, with tiny sizes (as Pyro's test of its examples does), and
each writes what it says it writes. A new command without a case here fails the last test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from causalvae.cli import app
from causalvae.errors import CausalVAEError

TINY = ["--max-steps", "2", "--batch-size", "16", "--width", "8", "--depth", "3", "--hidden", "16", "--z-dim", "2", "--threads", "1", "--no-progress"]


def _commands(command, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every command path the command line offers, e.g. ("graph", "draw"), ("generate", "scenes")."""
    if not hasattr(command, "list_commands"):
        return {prefix}
    found: set[tuple[str, ...]] = set()
    for name in command.list_commands(None):
        found |= _commands(command.get_command(None, name), prefix + (name,))
    return found


@pytest.fixture(scope="module")
def cases(viewer_run, tmp_path_factory):
    """(command path, arguments, the file it must write or None) for every command."""
    data, run, oracle = viewer_run
    t = tmp_path_factory.mktemp("cli")
    Image.new("RGB", (64, 64), (90, 120, 200)).save(t / "mine.png")
    (t / "png").mkdir()
    for i in range(12):
        Image.new("RGB", (16, 16), (20 * i, 0, 0)).save(t / "png" / f"{i}.png")
    (t / "labels.csv").write_text("file,actor\n" + "".join(f"{i}.png,{'Satyr' if i % 2 else 'Golem'}\n" for i in range(12)))
    return [
        (("query",), ["P(action | reaction=Dying)", "--json"], None),
        (("graph", "show"), ["scenes"], None),
        (("graph", "draw"), ["scenes", "--out", str(t / "dag.svg")], t / "dag.svg"),
        (("graph", "convert"), ["scenes", "--out", str(t / "g.bif")], t / "g.bif"),
        (("generate", "scenes"), ["--n", "24", "--out", str(t / "scenes")], t / "scenes" / "manifest.json"),
        (("generate", "sprites"), ["--n", "24", "--out", str(t / "sprites")], t / "sprites" / "manifest.json"),
        (("generate", "morpho"), ["--n", "6", "--out", str(t / "morpho")], t / "morpho" / "manifest.json"),
        # all of MNIST where `make install` fetched it (npm), else its one clear error
        (("generate", "morpho-full"), ["--n", "6", "--out", str(t / "morpho-full")], "needs MNIST"),
        # The whole grid is 3.1 GB: its refusal to overwrite runs here, the writer in test_sprites.
        (("generate", "dsprites"), ["--out", str(t / "scenes")], "refused"),
        (("data", "import"), ["--images", str(t / "png"), "--labels", str(t / "labels.csv"), "--graph", "scenes", "--out", str(t / "mine")], t / "mine" / "manifest.json"),
        (("show",), [str(t / "sprites"), "--out", str(t / "sheet.png")], t / "sheet.png"),
        (("train",), ["--data", str(data), "--out", str(t / "run"), *TINY], t / "run" / "config.json"),
        (("summary",), [str(run)], None),
        (("curve",), [str(run), "--out", str(t / "curve.png")], t / "curve.png"),
        (("reconstruct",), [str(run), "--n", "2", "--out", str(t / "recon.png")], t / "recon.png"),
        (("sample",), [str(run), "--given", "reaction=Dying", "--n", "2", "--oracle", str(oracle), "--beside-truth", "--out", str(t / "s.png")], t / "s.png"),
        (("counterfactual",), [str(run), "--image", str(t / "mine.png"), "--labels", "actor=Golem", "--do", "action=Walk", "--out", str(t / "cf.png")], t / "cf.png"),
        (("oracle", "train"), ["--world", "sprites", "--steps", "2", "--batch-size", "4", "--out", str(t / "oracle")], t / "oracle" / "config.json"),
        (("evaluate",), [str(run), "--oracle", str(oracle), "--out", str(t / "report"), "--n-generate", "8", "--iw-k", "2", "--iw-images", "2", "--cf-images", "2"], t / "report" / "report.md"),
        (("serve",), [str(run), "--oracle", str(oracle), "--port", "8123", "--refine", "3"], "served"),
    ]


def test_every_command_runs(cases, monkeypatch):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda viewer, **kw: served.append((viewer, kw)))
    runner = CliRunner()
    for path, args, writes in cases:
        res = runner.invoke(app, [*path, *args])
        if writes == "refused":
            assert res.exit_code == 2 and "already exists" in res.output, (path, res.output)
            continue
        if writes == "needs MNIST":
            from causalvae.worlds.morpho import digits

            try:
                digits.mnist_dir()
            except CausalVAEError:
                assert res.exit_code == 2 and "digits (all of MNIST) are not installed" in res.output, (path, res.output)
                continue
            writes = Path(args[-1]) / "manifest.json"
        assert res.exit_code == 0, (path, res.output)
        if writes == "served":
            assert served and served[0][1]["port"] == 8123
            assert served[0][0].state.viewer.oracle is not None and served[0][0].state.viewer.refine == 3
        elif writes is not None:
            assert writes.exists() and writes.stat().st_size > 0, path
    query = next(args for path, args, _ in cases if path == ("query",))
    answer = json.loads(runner.invoke(app, ["query", *query]).output)
    assert answer["graph"] == "scenes"


def test_every_command_has_a_case(cases):
    assert _commands(typer.main.get_command(app)) == {path for path, _, _ in cases}


def test_the_evaluate_help_states_the_settings_defaults():
    """The CLI takes its evaluation defaults from EvalSettings; the help text says them."""
    from causalvae.evaluate import EvalSettings

    command = typer.main.get_command(app).commands["evaluate"]
    text = " ".join(p.help or "" for p in command.params)
    d = EvalSettings()
    for value in (d.n_generate, d.iw_k, d.iw_images, d.cf_images, d.seed):
        assert f"default {value}" in text


def test_off_a_terminal_long_commands_print_a_line_now_and_then(viewer_run, tmp_path):
    """A log (no terminal) shows that work goes on: generate and train print progress lines,
    where a terminal would show a bar."""
    data = viewer_run[0]
    runner = CliRunner()
    gen = runner.invoke(app, ["generate", "scenes", "--n", "24", "--out", str(tmp_path / "d")])
    assert gen.exit_code == 0, gen.output
    assert "rendering scenes: 24/24 (100%)" in gen.output
    args = [a for a in TINY if a != "--no-progress"]
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "run"), *args, "--cf-weight", "1", "--reader-steps", "5"])
    assert res.exit_code == 0, res.output
    # The reader takes at most the run's own steps (2 here), and the log says so.
    assert "training the counterfactual term's reader (2 steps; 5 asked, and a reader takes at most the run's own 2 steps)" in res.output
    assert "reader: step 2/2 (100%)" in res.output  # the reader's steps report too
    assert re.search(r"(?<!reader: )step 2/2 \(100%\)", res.output)  # and the training steps


def test_train_reader_shift_reaches_the_run_and_a_misuse_writes_nothing(viewer_run, tmp_path):
    """`train --reader-shift N` is recorded in train.json and reader.json; without the
    counterfactual term it is one error naming the option, and no run folder appears."""
    data = viewer_run[0]
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--cf-weight", "1", "--reader-steps", "1", "--reader-shift", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "train.json").read_text())["reader_shift"] == 2
    assert json.loads((tmp_path / "run" / "reader.json").read_text())["shift"] == 2
    bad = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "bad"), *TINY, "--cf-weight", "0", "--reader-shift", "2"])
    assert bad.exit_code != 0
    assert "reader-shift" in bad.output and "cf-weight > 0" in bad.output
    assert "Traceback" not in bad.output
    assert not (tmp_path / "bad").exists()


def test_summary_adds_the_readers_training_to_the_time(viewer_run):
    """The counterfactual term's reader trains before the steps metrics.csv times: reader.json
    records its seconds and `summary` adds them, so that a recipe's training time is whole."""
    _, run, _ = viewer_run
    record = json.loads((run / "reader.json").read_text())
    assert record["steps"] == 4 and 0 < record["seconds"] < 60
    r = CliRunner().invoke(app, ["summary", str(run)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    wall = float((run / "metrics.csv").read_text().strip().splitlines()[-1].split(",")[2])
    assert "counterfactual term's reader: 4 steps" in text
    assert f"before the steps above; training in all {(record['seconds'] + wall) / 60:.1f} min" in text


def test_summary_names_each_of_several_readers(viewer_run, tmp_path):
    """A run of --readers 3 records each reader's accuracy: the summary says how many readers
    of how many steps, the first one's figures, each one's accuracy, and all their minutes."""
    import shutil

    _, run, _ = viewer_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    record = json.loads((run / "reader.json").read_text())
    record |= {"readers": 3, "each": [{"val_accuracy_all_parents": a} for a in (0.5, 0.625, 0.75)], "seconds": 120.0}
    (copy / "reader.json").write_text(json.dumps(record))
    r = CliRunner().invoke(app, ["summary", str(copy)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    wall = float((run / "metrics.csv").read_text().strip().splitlines()[-1].split(",")[2])
    assert "counterfactual term's readers: 3 of 4 steps each (seeds seed..seed+2); the first:" in text
    assert f"accuracy of each: 50.0%, 62.5%, 75.0%; 2.0 min before the steps above; training in all {(120 + wall) / 60:.1f} min" in text


def test_summary_refuses_a_damaged_reader_record_and_reads_a_run_without_one(viewer_run, tmp_path):
    """reader.json is optional (a run without the counterfactual term has none), but a present
    one that is damaged (not JSON, not an object, a field of the wrong type, a number that is
    not finite, a directory) is one error naming the file and the problem, before any of the
    summary: never a line of nan or inf, never silently dropped."""
    import shutil

    _, run, _ = viewer_run
    copy = tmp_path / "run"
    for text, problem in (("", "not valid JSON"), ('{"steps": 4, "val_acc', "not valid JSON"), ("[1, 2]", "expected a JSON object"),
                          ('{"steps": "four"}', "'steps' must be a whole number >= 0, got 'four'"),
                          ('{"steps": 4, "val_accuracy_all_parents": NaN}', "'val_accuracy_all_parents' must be a finite number or null, got nan"),
                          ('{"steps": 4, "seconds": Infinity}', "'seconds' must be a finite number, got inf"),
                          ('{"steps": 4, "readers": 2, "each": [{"val_mae": {"a": "x"}}]}', "'each[0].val_mae' must be an object of finite numbers"),
                          (None, "not a regular file")):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(run, copy)
        if text is None:
            (copy / "reader.json").unlink()
            (copy / "reader.json").mkdir()
        else:
            (copy / "reader.json").write_text(text)
        r = CliRunner().invoke(app, ["summary", str(copy)], env={"COLUMNS": "300"})
        assert r.exit_code == 2, (text, r.output)
        assert r.output.startswith("error: ") and "reader.json: " in r.output and problem in r.output, (text, r.output)
        assert len(r.output.strip().splitlines()) == 1 and "nats per image" not in r.output, (text, r.output)
    (copy / "reader.json").rmdir()
    r = CliRunner().invoke(app, ["summary", str(copy)])
    assert r.exit_code == 0, r.output
    assert "nats per image" in r.output and "counterfactual term's reader" not in r.output
    (copy / "reader.json").write_text('{"steps": 0, "off": "hidden image parents: shape"}')  # what a run with the term off writes
    assert CliRunner().invoke(app, ["summary", str(copy)]).exit_code == 0


def test_summary_refuses_settings_of_the_wrong_type_naming_the_key(viewer_run, tmp_path):
    """A setting the summary shows that train.json holds as another type (a string for a
    number, a number that is not finite, a number for a switch) is one error naming the file,
    the key and the type it must have, never shown raw or left out; a train.json that is a
    directory is not a regular file (it is there, not missing)."""
    import shutil

    _, run, _ = viewer_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    settings = json.loads((copy / "train.json").read_text())
    for key, value, kind in (("cf_cycle", "abc", "a finite number"), ("lr", "fast", "a finite number"), ("ema", float("nan"), "a finite number"),
                             ("kl_warmup", 1.5, "an integer"), ("guide_steps", "x", "an integer"), ("max_steps", "2", "an integer or null"),
                             ("cf_detach", 1, "true or false"), ("precision", 32, "a string"), ("data", 5, "a string")):
        (copy / "train.json").write_text(json.dumps({**settings, key: value}))
        r = CliRunner().invoke(app, ["summary", str(copy)], env={"COLUMNS": "300"})
        assert r.exit_code == 2, (key, r.output)
        assert f"train.json: '{key}' must be {kind}, got {value!r}" in r.output, (key, r.output)
        assert len(r.output.strip().splitlines()) == 1 and "settings:" not in r.output, (key, r.output)
    (copy / "train.json").unlink()
    (copy / "train.json").mkdir()
    r = CliRunner().invoke(app, ["summary", str(copy)], env={"COLUMNS": "300"})
    assert r.exit_code == 2 and "train.json: not a regular file" in r.output and "missing" not in r.output, r.output


def test_the_readers_line_shows_continuous_figures_and_old_records_alike():
    """reader.json of a run with continuous image parents adds each one's residual sd and mean
    absolute error, and the summary shows them; an old record (accuracy only) reads as before,
    and a reader of continuous parents alone (no accuracy) still gets its line."""
    from causalvae.cli import _reader_figures

    assert _reader_figures({"steps": 4, "val_accuracy_all_parents": 0.5}) == ["validation accuracy (all parents) 50.0%"]
    new = {"steps": 4, "val_accuracy_all_parents": 0.5, "val_residual_sd": {"thickness": 0.21, "intensity": None},
           "val_mae": {"thickness": 0.123456, "intensity": 4.0}}
    assert _reader_figures(new) == ["validation accuracy (all discrete parents) 50.0%", "residual sd (standardised) thickness 0.21",
                                    "mean absolute error thickness 0.123, intensity 4"]
    assert _reader_figures({"steps": 4, "val_accuracy_all_parents": None, "val_residual_sd": {"a": 0.3}, "val_mae": "odd"}) == ["residual sd (standardised) a 0.3"]
    assert _reader_figures({"steps": 4}) == []
    hidden = {"steps": 4, "val_accuracy_all_parents": 0.25, "hidden_kept": ["shape"]}
    assert _reader_figures(hidden) == ["validation accuracy (all labelled parents) 25.0%",
                                       "not read: shape (hidden; kept at each picture's inferred value)"]


def test_oracle_train_moves_its_batches_records_the_shift_and_refuses_one_for_a_dataset(tmp_path, monkeypatch):
    import causalvae.oracle as O

    seen = []
    real = O.shifted
    monkeypatch.setattr(O, "shifted", lambda images, shift, rng: seen.append(shift) or real(images, shift, rng))
    runner = CliRunner()
    res = runner.invoke(app, ["oracle", "train", "--world", "sprites", "--steps", "2", "--batch-size", "2", "--held-out", "2", "--shift", "1", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert seen == [1, 1]  # every training batch, the held-out renders never
    assert "rendering 2 held-out pictures" in res.output  # said before the minutes they may take
    assert json.loads((tmp_path / "o" / "config.json").read_text())["training"]["shift"] == 1
    res = runner.invoke(app, ["oracle", "train", "--data", str(tmp_path), "--shift", "1", "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "--shift needs --world" in res.output and not (tmp_path / "p").exists()


def test_summary_names_the_decoder_and_the_broadcast_grid_units():
    """`summary` says which decoder a run trained, and for a broadcast decoder the units of its
    grid: the committed records of the two broadcast runs (one saved before the field existed,
    which means [-1, 1]) and of the FiLM recipe."""
    root = Path(__file__).resolve().parent.parent / "docs" / "runs"
    for run, words in (("sprites-broadcast", "decoder broadcast (coordinates in grid cells)"), ("sprites-broadcast-unit", "decoder broadcast (coordinates in [-1, 1])"), ("sprites", "decoder film,")):
        r = CliRunner().invoke(app, ["summary", str(root / run)])
        assert r.exit_code == 0, r.output
        assert words in " ".join(r.output.split()), (run, r.output)


def test_train_coordinates_reach_the_broadcast_model(viewer_run, tmp_path):
    """`train --decoder broadcast --coordinates unit` saves a model whose grid runs over [-1, 1]
    (the default counts grid cells); an unknown unit is one error naming the choices."""
    data = viewer_run[0]
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--cf-weight", "0", "--decoder", "broadcast", "--coordinates", "unit"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["net"]["coordinates"] == "unit"
    bad = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "bad"), *TINY, "--decoder", "broadcast", "--coordinates", "pixels"])
    assert bad.exit_code != 0 and "unknown coordinates 'pixels'" in bad.output and "valid: unit, cells" in bad.output
    assert not (tmp_path / "bad").exists()
    # The other decoders have no grid: the option would do nothing, so it is refused.
    film = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "film"), *TINY, "--decoder", "film", "--coordinates", "unit"])
    assert film.exit_code != 0 and "--decoder film has no grid" in film.output
    assert not (tmp_path / "film").exists()



def test_train_place_reaches_the_model_and_the_summary_and_a_wrong_name_is_one_error(sprites_viewer_run, tmp_path):
    """`train --place posX,posY` saves a model whose decoder moves what it draws by those
    parents (their indices among the picture's parents) and the summary names them; an
    unknown parent is one error naming the valid ones, and no run folder appears."""
    runner = CliRunner()
    data = sprites_viewer_run[0]
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--cf-weight", "0", "--place", "posY, posX"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["net"]["place"] == [3, 4]
    assert json.loads((tmp_path / "run" / "train.json").read_text())["place"] == ["posY", "posX"]
    summary = runner.invoke(app, ["summary", str(tmp_path / "run")], env={"COLUMNS": "200"})
    assert "decoder film, moved by posX, posY," in " ".join(summary.output.split())
    for place, words in (("posZ", "unknown parent of the picture 'posZ' in --place"), (",", "name the parents"), ("shape,scale,orientation,posX,posY", "names every parent of the picture")):
        bad = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "bad"), *TINY, "--place", place])
        assert bad.exit_code != 0 and words in bad.output, bad.output
        assert "Traceback" not in bad.output
        assert not (tmp_path / "bad").exists()


def test_train_place_mode_similarity_reaches_the_model_and_the_summary_and_needs_place(sprites_viewer_run, tmp_path):
    """`train --place ... --place-mode similarity --draw-scale 2` saves the mode and the scale
    in the model's config and the run's settings, and the summary says the decoder turns,
    scales and moves what it draws, drawn at twice the size;
    the mode or the scale without --place, an unknown mode or scale, is one error each and no
    run folder appears."""
    runner = CliRunner()
    data = sprites_viewer_run[0]
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--cf-weight", "0", "--place", "scale,orientation,posX,posY", "--place-mode", "similarity", "--draw-scale", "2"])
    assert res.exit_code == 0, res.output
    net = json.loads((tmp_path / "run" / "config.json").read_text())["net"]
    assert net["place"] == [1, 2, 3, 4] and net["place_mode"] == "similarity" and net["draw_scale"] == 2
    assert json.loads((tmp_path / "run" / "train.json").read_text())["place_mode"] == "similarity"
    summary = runner.invoke(app, ["summary", str(tmp_path / "run")], env={"COLUMNS": "200"})
    assert "decoder film, turned, scaled and moved by scale, orientation, posX, posY (z reaches only the placer), drawn at 2x," in " ".join(summary.output.split())
    for extra, words in ((["--place-mode", "similarity"], "name them (--place)"), (["--place", "posX", "--place-mode", "affine"], "unknown place-mode 'affine'"),
                         (["--draw-scale", "2"], "name the placed parents (--place)"), (["--place", "posX", "--draw-scale", "3"], "draw-scale must be 1 or 2")):
        bad = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "bad"), *TINY, *extra])
        assert bad.exit_code != 0 and words in " ".join(bad.output.split()), bad.output
        assert "Traceback" not in bad.output
        assert not (tmp_path / "bad").exists()


def test_train_ordinal_reaches_the_model_and_the_summary_and_a_wrong_name_is_one_error(sprites_viewer_run, morpho_viewer_run, tmp_path):
    """`train --ordinal scale,posX` saves the parents' indices in the model's config and their
    names in the run's settings; the saved model loads and feeds them to its networks as one
    number each; the summary names them. An unknown parent, an empty list, a parent named
    twice or a continuous parent (morpho's thickness) is one error and no run folder appears."""
    from causalvae.run import Run

    runner = CliRunner()
    data = sprites_viewer_run[0]
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--cf-weight", "0", "--ordinal", "posX, scale"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["net"]["ordinal"] == [1, 3]
    assert json.loads((tmp_path / "run" / "train.json").read_text())["ordinal"] == ["posX", "scale"]
    vae = Run.open(tmp_path / "run").model
    assert vae.ordinal == ["scale", "posX"] and vae.config.parent_size == 3 + 1 + 8 + 1 + 8
    summary = runner.invoke(app, ["summary", str(tmp_path / "run")], env={"COLUMNS": "200"})
    assert "decoder film; scale, posX entering as numbers," in " ".join(summary.output.split())
    for ordinal, words in (("posZ", "unknown parent of the picture 'posZ' in --ordinal"), (",", "name the parents"), ("posX,posX", "ordinal names a parent twice")):
        bad = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "bad"), *TINY, "--ordinal", ordinal])
        assert bad.exit_code != 0 and words in " ".join(bad.output.split()), bad.output
        assert "Traceback" not in bad.output
        assert not (tmp_path / "bad").exists()
    bad = runner.invoke(app, ["train", "--data", str(morpho_viewer_run[0]), "--out", str(tmp_path / "bad"), *TINY, "--ordinal", "thickness"])
    assert bad.exit_code != 0 and "'thickness' is continuous" in bad.output, bad.output
    assert not (tmp_path / "bad").exists()


def test_train_reader_sets_reaches_the_run_and_a_world_without_ambiguity_refuses_it(viewer_run, sprites_viewer_run, tmp_path):
    """`train --reader-sets` on sprites records the option and the set column (reader.json,
    train.json, the summary's reader line); on the scene world, which reads every parent
    unambiguously, it is one error naming the option, and no run folder appears."""
    runner = CliRunner()
    data = sprites_viewer_run[0]
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--cf-weight", "1", "--reader-steps", "1", "--reader-sets"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "train.json").read_text())["reader_sets"] is True
    assert json.loads((tmp_path / "run" / "reader.json").read_text())["sets"] == ["orientation"]
    summary = runner.invoke(app, ["summary", str(tmp_path / "run")], env={"COLUMNS": "200"})
    assert "orientation right when in the set the world accepts" in summary.output
    bad = runner.invoke(app, ["train", "--data", str(viewer_run[0]), "--out", str(tmp_path / "bad"), *TINY, "--cf-weight", "1", "--reader-sets"])
    assert bad.exit_code != 0
    assert "reader-sets" in bad.output and "unambiguously" in bad.output
    assert "Traceback" not in bad.output
    assert not (tmp_path / "bad").exists()


def test_train_cf_prior_share_detach_and_cycle_reach_the_run_and_the_summary_and_bad_ones_are_one_error(viewer_run, tmp_path):
    """`train --cf-prior-share 0 --cf-detach --cf-cycle 0.5` records the settings and the
    summary names them (a run with the defaults names none); a share above 1, a negative
    cycle, or any of the three without the term, is one error naming the option, and no run
    folder appears."""
    runner = CliRunner()
    data = viewer_run[0]
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--cf-weight", "1", "--reader-steps", "1", "--cf-prior-share", "0", "--cf-detach", "--cf-cycle", "0.5"])
    assert res.exit_code == 0, res.output
    settings = json.loads((tmp_path / "run" / "train.json").read_text())
    assert settings["cf_prior_share"] == 0.0 and settings["cf_detach"] is True and settings["cf_cycle"] == 0.5
    summary = runner.invoke(app, ["summary", str(tmp_path / "run")], env={"COLUMNS": "200"})
    assert "cf_prior_share=0," in summary.output and "cf_detach" in summary.output and "cf_cycle=0.5" in summary.output
    assert "train_cf" in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]  # the term's mean, logged per row
    assert "before --cf-weight" in " ".join(summary.output.split())  # the summary's note on its column (wrapped lines joined)
    plain = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "plain"), *TINY, "--cf-weight", "1", "--reader-steps", "1"])
    assert plain.exit_code == 0, plain.output
    summary = runner.invoke(app, ["summary", str(tmp_path / "plain")], env={"COLUMNS": "200"})
    assert "cf_prior_share" not in summary.output and "cf_detach" not in summary.output and "cf_cycle" not in summary.output
    for name, args, message in [("share", ["--cf-weight", "1", "--cf-prior-share", "1.5"], "cf-prior-share"), ("detach", ["--cf-weight", "0", "--cf-detach"], "cf-detach"),
                                ("cycle", ["--cf-weight", "0", "--cf-cycle", "1"], "cf-cycle"), ("negative", ["--cf-weight", "1", "--cf-cycle", "-1"], "cf-cycle"),
                                ("detach-all", ["--cf-weight", "1", "--cf-prior-share", "1", "--cf-detach"], "cf-detach")]:
        bad = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / name), *TINY, *args])
        assert bad.exit_code != 0
        assert message in bad.output and "Traceback" not in bad.output
        assert not (tmp_path / name).exists()


def test_train_ema_reaches_the_run_and_the_summary_and_a_bad_decay_is_one_error(viewer_run, tmp_path):
    """`train --ema 0.9` records the decay and the summary says the model is the average;
    `--ema 1` is one error naming the option, and no run folder appears."""
    runner = CliRunner()
    data = viewer_run[0]
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--cf-weight", "0", "--ema", "0.9"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "train.json").read_text())["ema"] == 0.9
    summary = runner.invoke(app, ["summary", str(tmp_path / "run")], env={"COLUMNS": "200"})
    assert "ema=0.9" in summary.output and "moving average of the weights" in summary.output
    bad = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "bad"), *TINY, "--ema", "1"])
    assert bad.exit_code != 0
    assert "ema is the decay" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "bad").exists()


def test_serve_checks_its_dataset_before_serving(viewer_run, tmp_path, monkeypatch):
    """`serve --data PATH` opens the dataset first: a folder that is missing, is no dataset, or
    holds another world's pictures is one error naming it, and nothing is served (the viewer
    alone would serve without a gallery). The run's own dataset named again serves."""
    import uvicorn

    from causalvae.generate import generate

    data, run, _ = viewer_run
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda viewer, **kw: served.append(viewer))
    (tmp_path / "plain").mkdir()
    other = generate("sprites", tmp_path / "sprites", 24, seed=0)
    runner = CliRunner()
    for path, problem in ((tmp_path / "gone", "no such dataset directory"), (tmp_path / "plain", "not a causalvae dataset"), (other, "do not fit the model")):
        res = runner.invoke(app, ["serve", str(run), "--data", str(path)], env={"COLUMNS": "300"})
        assert res.exit_code == 2, (path, res.output)
        assert res.output.startswith(f"error: {path}") and problem in res.output and len(res.output.strip().splitlines()) == 1, (path, res.output)
        assert not served
    res = runner.invoke(app, ["serve", str(run), "--data", str(data)])
    assert res.exit_code == 0 and len(served) == 1, res.output


def test_serve_refuses_a_device_it_cannot_use_in_one_line(viewer_run, monkeypatch):
    """`serve --device` takes cpu, cuda or auto: another name, or cuda where there is no CUDA
    device, is one error naming the option and the value, before anything loads; auto falls
    back to the CPU, for the oracle too."""
    import torch
    import uvicorn

    _, run, oracle = viewer_run
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda viewer, **kw: served.append(viewer))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runner = CliRunner()
    for device, message in (("tpu", "--device tpu: expected cpu, cuda or auto"), ("cuda", "--device cuda: no CUDA device is available"),
                            ("cuda:1", "--device cuda:1: no CUDA device is available")):
        res = runner.invoke(app, ["serve", str(run), "--device", device], env={"COLUMNS": "300"})
        assert res.exit_code == 2 and res.output.startswith(f"error: {message}") and len(res.output.strip().splitlines()) == 1, (device, res.output)
    assert not served
    res = runner.invoke(app, ["serve", str(run), "--oracle", str(oracle), "--device", "auto"])
    assert res.exit_code == 0, res.output
    assert next(served[0].state.viewer.vae.parameters()).device.type == "cpu"
    assert next(served[0].state.viewer.oracle.parameters()).device.type == "cpu"
