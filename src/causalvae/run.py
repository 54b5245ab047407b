"""A training run's directory, opened once: the model, its settings, metrics, dataset and world.

``causalvae train`` writes a run directory (see :mod:`causalvae.train`)::

    runs/scenes/
      config.json, model.safetensors   the trained model (:mod:`causalvae.store`), once finished
      train.json                       the run's settings
      metrics.csv                      ELBO per validation point

Every interface (the CLI, the viewer, ``evaluate``, the benchmarks) opens it through
:meth:`Run.open`, and no other module reads a run's JSON by hand::

    >>> run = Run.open("runs/scenes")          # doctest: +SKIP
    >>> run.model, run.world, run.dataset("test")   # doctest: +SKIP

The run's dataset is the one its ``config.json`` records (or ``train.json`` while it is still
training), unless another is given (``data=``); the dataset's manifest records its world.
"""

from __future__ import annotations

import math
import os
import reprlib
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from causalvae import worlds
from causalvae.errors import CausalVAEError
from causalvae.store import CONFIG_FILE, read_json

if TYPE_CHECKING:
    from causalvae.data import Dataset
    from causalvae.model import CausalVAE

SETTINGS_FILE = "train.json"
METRICS_FILE = "metrics.csv"


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


#: The train.json settings that are read back by name (``causalvae summary`` shows them):
#: the test each value must pass, and the type it names when it does not.
SETTING_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **dict.fromkeys(("epochs", "batch_size", "seed", "devices", "kl_warmup", "guide_steps"), (_integer, "an integer")),
    "max_steps": (lambda v: v is None or _integer(v), "an integer or null"),
    **dict.fromkeys(("lr", "match_weight", "ema", "cf_prior_share", "cf_cycle"), (_number, "a finite number")),
    **dict.fromkeys(("precision", "data"), (lambda v: isinstance(v, str), "a string")),
    "cf_detach": (lambda v: isinstance(v, bool), "true or false"),
}


class Run:
    """An opened run directory (see the module docstring). The model, metrics and datasets
    are read when first asked for."""

    def __init__(self, path: Path, config: dict | None, settings: dict, data: str | os.PathLike | None = None, device: str = "cpu"):
        self.path = path
        self.config = config
        self.settings = settings
        self._data = data
        self.device = device

    @classmethod
    def open(cls, path: str | os.PathLike, *, data: str | os.PathLike | None = None, device: str = "cpu") -> Run:
        """Open the run in ``path`` (a run directory, or its ``config.json``); ``data``
        replaces the dataset the run records."""
        path = Path(path)
        if path.is_file() and path.name == CONFIG_FILE:
            path = path.parent
        if not path.is_dir():
            raise CausalVAEError(f"{path}: no such model directory (a run directory written by `causalvae train`)")
        config = read_json(path / CONFIG_FILE) if (path / CONFIG_FILE).exists() else None
        settings = read_json(path / SETTINGS_FILE) if (path / SETTINGS_FILE).exists() else {}
        if config is None and not settings and not (path / METRICS_FILE).exists():
            raise CausalVAEError(f"{path}: not a run directory (no {CONFIG_FILE}, {SETTINGS_FILE} or {METRICS_FILE}; train one with `causalvae train`)")
        return cls(path, config, settings, data, device)

    def checked_settings(self) -> dict:
        """The run's settings, each one of :data:`SETTING_TYPES` it holds of the type it must
        have: another is one error naming the file, the key and the type, never shown raw."""
        for key in SETTING_TYPES:
            self._setting(key)
        return self.settings

    def _setting(self, key: str) -> Any:
        """The setting ``key`` of train.json (None when absent), of the type
        :data:`SETTING_TYPES` says, else one error naming the file, the key and the type."""
        ok, kind = SETTING_TYPES[key]
        if key in self.settings and not ok(self.settings[key]):
            raise CausalVAEError(f"{self.path / SETTINGS_FILE}: '{key}' must be {kind}, got {reprlib.repr(self.settings[key])}")
        return self.settings.get(key)

    @property
    def finished(self) -> bool:
        """Whether the trained model has been written (``config.json``)."""
        return self.config is not None

    @cached_property
    def model(self) -> CausalVAE:
        """The trained causal VAE, in eval mode on the run's device."""
        from causalvae.store import load

        return load(self.path, device=self.device)

    @cached_property
    def metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.csv`` (empty before the first validation point)."""
        from causalvae.train import read_metrics

        return read_metrics(self.path / METRICS_FILE) if (self.path / METRICS_FILE).exists() else []

    @property
    def dataset_path(self) -> Path | None:
        """The run's dataset directory: the one given, else the one it records (None: none)."""
        if self._data is not None:
            return Path(self._data)
        recorded = (self.config or {}).get("dataset")
        if recorded is not None and not isinstance(recorded, dict):
            raise CausalVAEError(f"{self.path / CONFIG_FILE}: 'dataset' must be an object, got {reprlib.repr(recorded)}")
        if recorded and "path" in recorded and recorded["path"] is not None:
            if not isinstance(recorded["path"], str):
                raise CausalVAEError(f"{self.path / CONFIG_FILE}: 'dataset.path' must be a string, got {reprlib.repr(recorded['path'])}")
            if recorded["path"]:
                return Path(recorded["path"])
        data = self._setting("data")  # only this setting: another's type is not the dataset's concern
        return Path(data) if data else None

    def dataset(self, split: str | None = None, *, truth: bool = False, verify: bool = False) -> Dataset:
        """One split of the run's dataset (see :func:`causalvae.data.load`)."""
        from causalvae.data import load

        path = self.dataset_path
        if path is None:
            raise CausalVAEError(f"{self.path}/{CONFIG_FILE} names no dataset; give --data")
        return load(path, split=split, truth=truth, verify=verify)

    @cached_property
    def world(self) -> worlds.World:
        """The world of the run's dataset (:func:`causalvae.worlds.for_dataset`)."""
        return worlds.for_dataset(self.dataset())

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"
