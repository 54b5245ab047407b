"""Shared fixtures: the built-in graphs, pgmpy's bnlearn networks, small hand-made graphs."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest

from causalvae.graph import Graph, Variable
from causalvae.interop import to_pgmpy


def bnlearn_path(name: str) -> Path:
    """A BIF network shipped inside pgmpy (bnlearn repository copies)."""
    return Path(str(resources.files("pgmpy") / "utils" / "example_models" / f"{name}.bif.gz"))


def pgmpy_model(graph: Graph):
    """The same network as a pgmpy DiscreteBayesianNetwork (built from our tables)."""
    return to_pgmpy(graph)


def pytest_collection_modifyitems(config, items):
    """``CAUSALVAE_QUICK=1`` skips the tests marked ``slow`` (semi-supervised training, the
    oracle, SIGKILL and resume, DDP, learned tables, the docs render): a quick local run.
    CI never sets it."""
    if os.environ.get("CAUSALVAE_QUICK") != "1":
        return
    skip = pytest.mark.skip(reason="CAUSALVAE_QUICK=1 skips the slow tests")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def scenes() -> Graph:
    return Graph.load("scenes")


@pytest.fixture
def chain():
    """X -> Y -> Z, binary, values ordered (0, 1)."""

    def make(px=0.3, a=0.2, b=0.7, c=0.1, d=0.6):
        return Graph([
            Variable("X", ["0", "1"], cpt=[1 - px, px]),
            Variable("Y", ["0", "1"], ["X"], cpt=[[1 - a, a], [1 - b, b]]),
            Variable("Z", ["0", "1"], ["Y"], cpt=[[1 - c, c], [1 - d, d]]),
        ], name="chain")

    return make


@pytest.fixture(scope="session")
def viewer_run(tmp_path_factory):
    """A tiny trained scene model with its dataset and a (barely trained) oracle, for the
    viewer's tests: ``(dataset, run, oracle)`` directories. A few seconds on 2 cores."""
    from causalvae.generate import generate
    from causalvae.oracle import save_oracle, train_oracle
    from causalvae.train import TrainConfig, fit

    root = tmp_path_factory.mktemp("viewer")
    data = generate("scenes", root / "scenes", 300, seed=8)
    run = fit(TrainConfig(data=str(data), out=str(root / "run"), max_steps=4, batch_size=32, width=8, depth=3, hidden=32, z_dim=4, threads=1), progress=False)
    oracle, acc = train_oracle("scenes", steps=4, batch_size=8, held_out=16, seed=1)
    save_oracle(oracle, root / "oracle", acc, {"steps": 4})
    return data, run, root / "oracle"


@pytest.fixture(scope="session")
def sprites_viewer_run(tmp_path_factory):
    """The same for the sprites world (binary one-channel 64 x 64 pictures):
    ``(dataset, run, oracle)`` directories."""
    from causalvae.generate import generate
    from causalvae.oracle import save_oracle, train_oracle
    from causalvae.train import TrainConfig, fit

    root = tmp_path_factory.mktemp("sprites-viewer")
    data = generate("sprites", root / "sprites", 300, seed=8)
    run = fit(TrainConfig(data=str(data), out=str(root / "run"), max_steps=4, batch_size=32, width=8, depth=3, hidden=32, z_dim=4, threads=1), progress=False)
    oracle, acc = train_oracle("sprites", steps=4, batch_size=8, held_out=16, seed=1)
    save_oracle(oracle, root / "oracle", acc, {"steps": 4})
    return data, run, root / "oracle"


@pytest.fixture(scope="session")
def morpho_viewer_run(tmp_path_factory):
    """The same for the morpho world (continuous thickness and intensity beside the digit;
    grey one-channel 32 x 32 pictures), its oracle reading the continuous labels by
    regression: ``(dataset, run, oracle)`` directories. About 10 s of CPU, most of it
    rendering digits (35 ms each): the tests using it are marked slow."""
    from causalvae.generate import generate
    from causalvae.oracle import save_oracle, train_oracle
    from causalvae.train import TrainConfig, fit

    root = tmp_path_factory.mktemp("morpho-viewer")
    data = generate("morpho", root / "morpho", 100, seed=8)
    run = fit(TrainConfig(data=str(data), out=str(root / "run"), max_steps=3, batch_size=32, width=8, depth=3, hidden=32, z_dim=4,
                          cf_weight=0.0, threads=1), progress=False)
    oracle, scores = train_oracle("morpho", steps=3, batch_size=8, held_out=8, pool=16, seed=1)
    save_oracle(oracle, root / "oracle", scores, {"steps": 3})
    return data, run, root / "oracle"
