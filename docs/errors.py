"""Write docs/errors.md: the catalogue of bad inputs and the one message each gets.

Every entry below makes its bad input (in a temporary folder) and runs it through the
library; the message shown is the one it raised, so the catalogue cannot go stale: the
tests run this script with --check.

    python docs/errors.py            # rewrite docs/errors.md
    python docs/errors.py --check    # exit 1 if docs/errors.md is stale
"""

from __future__ import annotations

import argparse
import errno
import gzip
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from causalvae.bif import read_bif  # noqa: E402
from causalvae.data import import_folder, load  # noqa: E402
from causalvae.errors import CausalVAEError  # noqa: E402
from causalvae.exact import Budget, query  # noqa: E402
from causalvae.failures import one_line  # noqa: E402
from causalvae.generate import generate  # noqa: E402
from causalvae.graph import Graph  # noqa: E402
from causalvae.io import check_output_dir  # noqa: E402
from causalvae.querylang import evaluate  # noqa: E402

OUT = ROOT / "docs" / "errors.md"
ONE = "name: g\nvariables:\n  - name: {name}\n    values: [a, b]\n    cpt: {cpt}\n"
SIX_WORLDS = (
    "P(action | reaction[actor=Satyr]=Idle, reaction[actor=Golem]=Idle, reaction[actor_type=type1]=Idle, "
    "reaction[actor_type=type2]=Idle, reaction[actor_type=type3]=Idle, reaction[actor_strength=Low]=Idle)"
)


def yaml_text(text):
    return lambda d: Graph.from_yaml("graph.yaml", text=text)


def gzip_bomb(d):
    path = d / "network.bif.gz"
    with gzip.open(path, "wb", compresslevel=9) as fh:
        for _ in range(80):
            fh.write(b"\0" * 2**20)
    return Graph.load(path)


def default_bomb(d):
    n = 34
    text = "network n {}\n" + "".join(f"variable p{i} {{ type discrete [ 2 ] {{ a, b }}; }}\n" for i in range(n))
    text += "variable c { type discrete [ 2 ] { a, b }; }\n" + "".join(f"probability ( p{i} ) {{ table 0.5, 0.5; }}\n" for i in range(n))
    text += "probability ( c | " + ", ".join(f"p{i}" for i in range(n)) + " ) { default 0.9, 0.1; }\n"
    return read_bif(text=text, name="network.bif")


def barley_twin(d):
    from importlib import resources

    barley = Graph.load(str(resources.files("pgmpy") / "utils" / "example_models" / "barley.bif.gz"))
    return evaluate(barley, "P(protein[jordtype=JB_9] | protein=x_9)", Budget.of(max_table_mb=1024))


def dataset(d, name="data"):
    return generate("scenes", d / name, 20, seed=1)


def linked_images(d):
    ds = dataset(d)
    (ds / "images.npy").unlink()
    (ds / "images.npy").symlink_to("/dev/zero")
    return load(ds)


def checksum_of_a_device(d):
    ds = dataset(d)
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["checksums"]["/dev/zero"] = "0" * 64
    (ds / "manifest.json").write_text(json.dumps(manifest))
    return load(ds)


def label_out_of_range(d):
    import numpy as np

    from causalvae.data import sha256

    ds = dataset(d)
    labels = np.load(ds / "labels.npy")
    labels[3, 1] = 7
    np.save(ds / "labels.npy", labels)
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["checksums"]["labels.npy"] = sha256(ds / "labels.npy")
    (ds / "manifest.json").write_text(json.dumps(manifest))
    return load(ds)


def png_bomb(d):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    (d / "img").mkdir()
    ihdr = struct.pack(">IIBBBBB", 13400, 13400, 8, 0, 0, 0, 0)
    (d / "img" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    (d / "labels.csv").write_text("file,actor\na.png,Golem\n")
    return import_folder(d / "img", d / "labels.csv", Graph.load("scenes"), d / "out")


def run_dir(d):
    run = d / "run"
    run.mkdir()
    (run / "train.json").write_text("{}")
    (run / "config.json").write_text("{}")
    return run


def damaged_settings(d):
    from causalvae.train import TrainConfig, _check_resume

    run = d / "run"
    run.mkdir()
    (run / "train.json").write_text('{"data": "d", "out": ')
    return _check_resume(run, TrainConfig(data="d", out=str(run)), force=False)


def forced_over_oracle(d):
    from causalvae.train import TrainConfig, _check_resume

    oracle = d / "oracle"
    oracle.mkdir()
    (oracle / "config.json").write_text("{}")
    (oracle / "oracle.safetensors").write_bytes(b"")
    return _check_resume(oracle, TrainConfig(data="d", out=str(oracle)), force=True)


def raising(exc):
    def f(d):
        raise exc

    return f


CATALOGUE = [
    ("Graph files", [
        ("a YAML type tag on a name: `values: [a, !!float y]`", yaml_text("name: g\nvariables:\n  - name: x\n    values: [a, !!float y]\n    cpt: [0.5, 0.5]\n")),
        ("YAML nested 5,000 levels deep", yaml_text("a: " + "[" * 5000 + "]" * 5000)),
        ("a YAML alias bomb (each level ten aliases of the last, nine levels)", yaml_text(
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]\n" for p, c in zip("abcdefgh", "bcdefghi")))),
        ("a YAML alias inside itself: `a: &a [*a]`", yaml_text("a: &a [*a]\n")),
        ("a YAML key given twice (a table row written twice)", yaml_text(ONE.format(name="x", cpt="[0.5, 0.5]\n    cpt: [0.9, 0.1]"))),
        ("a variable name holding a right-to-left override (U+202E)", yaml_text(ONE.format(name='"x\\u202ey"', cpt="[0.5, 0.5]"))),
        ("an all-zero row marked `normalize: true`", yaml_text(ONE.format(name="x", cpt="[0, 0]\n    normalize: true"))),
        ("a `.bif.gz` that expands to 80 MB", gzip_bomb),
        ("a BIF `default` row over 34 binary parents", default_bomb),
    ]),
    ("Queries", [
        ("issue 19's six counterfactual worlds (about 200 characters)", lambda d: evaluate(Graph.load("scenes"), SIX_WORLDS)),
        ("a twin network on barley whose tables exceed the limit (here 1,024 MB)", barley_twin),
        ("a joint of two worlds under a 64-byte table limit", lambda d: evaluate(Graph.load("scenes"), "P(reaction[action=Walk], reaction[action=Taunt] | action=Attack)", Budget(max_table_bytes=64))),
        ("evidence of probability zero, given as a value index", lambda d: query(Graph.load("scenes"), ["action"], {"reaction": 3}, do={"reaction": "Idle"})),
        ("a table limit that is not a positive number", lambda d: Budget.of(max_table_mb=-1)),
    ]),
    ("Datasets and pictures", [
        ("`images.npy` linked to `/dev/zero`", linked_images),
        ("a checksum entry naming `/dev/zero`", checksum_of_a_device),
        ("a label outside its variable's values", label_out_of_range),
        ("a PNG whose header claims 13400x13400 pixels, in `data import`", png_bomb),
    ]),
    ("Output folders", [
        ("`oracle train --out` a trained run's folder (with or without `--force`)", lambda d: check_output_dir(run_dir(d), "oracle", force=True)),
        ("`generate --force` into a folder of one's own files", lambda d: (d / "mine").mkdir() or (d / "mine" / "notes.txt").write_text("x") and check_output_dir(d / "mine", "dataset", force=True)),
        ("`evaluate --out` an existing file", lambda d: (d / "report.txt").write_text("x") and check_output_dir(d / "report.txt", "report")),
        ("`train` resuming a run whose `train.json` is damaged", damaged_settings),
        ("`train --force` into an oracle's folder", forced_over_oracle),
    ]),
    ("Failures that are not input errors", [
        ("out of memory", raising(MemoryError())),
        ("a full disk", raising(OSError(errno.ENOSPC, "No space left on device", "DIR/data"))),
        ("permission denied", raising(PermissionError(errno.EACCES, "Permission denied", "DIR/out"))),
        ("anything unexpected (a bug)", raising(ZeroDivisionError("division by zero"))),
    ]),
]


def message(make) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        os.environ["CAUSALVAE_LOG_DIR"] = str(d / "logs")
        try:
            make(d)
        except CausalVAEError as exc:
            text = str(exc)
        except Exception as exc:
            text = one_line(exc)
        else:
            raise SystemExit(f"no error for {make}")
        text = text.replace(str(d.resolve()), "DIR").replace(str(d), "DIR")
        if "unexpected error" in text:
            text = text.split("; the details are in ")[0] + "; the details are in DIR/logs/causalvae-error-….log, please report it with that file"
    return text


def render() -> str:
    lines = [
        "# Bad input and the message it gets",
        "",
        "Each bad input below gets one clear message and nothing else: no traceback, no hang, no",
        "half-written output. The messages are the program's own, produced by `python docs/errors.py`",
        "(the tests check that this page is current); `DIR` stands for the folder involved. On the",
        "command line each is printed as `error: MESSAGE`; the viewer sends it as `detail` (see",
        "[viewer.md](viewer.md) for the statuses).",
    ]
    for section, entries in CATALOGUE:
        lines += ["", f"## {section}", "", "| input | message |", "|---|---|"]
        for what, make in entries:
            text = message(make).replace("|", "\\|").replace("\n", "<br>")
            lines.append(f"| {what} | {text} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/errors.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print("docs/errors.md is stale: run `python docs/errors.py`")
            sys.exit(1)
        return
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    shutil.rmtree(ROOT / "docs" / "__pycache__", ignore_errors=True)
    main()
