"""Datasets on disk: one format for every world and for users' own images.

A dataset is a directory (documented in ``docs/dataset-format.md``)::

    manifest.json       format, world, graph, resolution, seed, counts, columns, checksums, ...
    graph.yaml          the causal graph the labels refer to
    images.npy          uint8 (N, H, W, C), memory-mapped on load
    labels.npy          int16 (N, K): observed labels as value indices, -1 = missing
    labels_continuous.npy  float32 (N, Kc): observed continuous labels, NaN = missing (when any)
    split.npy           int8 (N,): 0 train, 1 val, 2 test
    truth_values.npy    int16 (N, V): every variable, hidden ones too     (when the world knows)
    truth_continuous.npy  float64 (N, Vc): every continuous variable's value (when there are any)
    truth_noise.npy     float64 (N, V): every U of the noise convention    (when the world knows)
    truth_style.npy     float64 (N, S): the exogenous style of each image  (when the world knows)

The truth of a graph with continuous variables: ``truth_columns`` (every variable, declared
order) index ``truth_values.npy`` and ``truth_noise.npy`` as for a discrete graph; a
continuous variable has no value index, so its column of ``truth_values.npy`` holds -1 and
its value is in ``truth_continuous.npy`` (float64, columns ``truth_continuous_columns``, the
continuous variables in declared order). Its U is the continuous convention's
(:mod:`causalvae.continuous`: N(0, 1) for a linear mechanism, Uniform(0, 1) for a root), so
``propagate(graph, noise)`` replays every recorded value exactly.
:meth:`Dataset.truth_table` returns every variable's truth as one mapping.

Writing is atomic: files are built in a hidden staging directory beside the target and
renamed into place at the end, so an interrupted run leaves nothing under the target name.
Loading checks the manifest, every file's shape and dtype and (by default) its SHA-256, and
never reads the whole image array into memory. Nothing is loaded with pickle.

    >>> from causalvae.data import load          # doctest: +SKIP
    >>> ds = load("data/scenes", split="train")  # doctest: +SKIP
    >>> image, labels = ds[0]                    # uint8 (C, H, W) and int64 (K,) tensors
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from causalvae.errors import CausalVAEError
from causalvae.graph import Graph
from causalvae.io import check_png_header, need_space, no_space_message, open_npy, regular_file, replace_dir, reserve, staging_dir

FORMAT = "causalvae-dataset/1"
SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MISSING = -1

#: Every array file of the format: name -> (dtype, rank).
ARRAYS = {
    "images.npy": (np.uint8, 4),
    "labels.npy": (np.int16, 2),
    "labels_continuous.npy": (np.float32, 2),
    "split.npy": (np.int8, 1),
    "truth_values.npy": (np.int16, 2),
    "truth_continuous.npy": (np.float64, 2),
    "truth_noise.npy": (np.float64, 2),
    "truth_style.npy": (np.float64, 2),
}


class DatasetError(CausalVAEError):
    """A dataset directory that is missing, foreign, truncated or corrupted."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def assign_splits(n: int, rng: np.random.Generator, fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> np.ndarray:
    """A fixed random train/val/test assignment with the given fractions (rounded down for val/test)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise CausalVAEError(f"split fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    n_val, n_test = int(n * fractions[1]), int(n * fractions[2])
    split = np.zeros(n, dtype=np.int8)
    order = rng.permutation(n)
    split[order[:n_val]] = 1
    split[order[n_val : n_val + n_test]] = 2
    return split


class DatasetBuilder:
    """Builds a dataset in a staging directory and renames it into place on :meth:`finish`.

    Use as a context manager: an exception (or KeyboardInterrupt) inside the block removes
    the staging directory and leaves the target untouched::

        with DatasetBuilder("data/x", n, 64, 64, 3) as b:
            b.images[0:100] = chunk          # a writable memory map
            b.finish(graph=g, world="scenes", labels=labels, seed=0)
    """

    def __init__(self, out: str | os.PathLike, n: int, height: int, width: int, channels: int, *, force: bool = False):
        self.out = Path(out).resolve()
        if n < 1:
            raise CausalVAEError(f"a dataset needs at least one image, got n={n}")
        if channels not in (1, 3):
            raise CausalVAEError(f"images must have 1 or 3 channels, got {channels}")
        # The images, and per image its labels, split, truth values, noise and style (an upper
        # bound of 64 variables and 32 style fields), plus the small files.
        self.nbytes = n * (height * width * channels + 2 * 64 + 1 + 2 * 64 + 8 * 64 + 8 * 32) + 2**20
        self.out.parent.mkdir(parents=True, exist_ok=True)
        need_space(self.out.parent, self.nbytes, DatasetError)
        self.stage = staging_dir(self.out, force=force, marker="manifest.json", what="causalvae dataset")
        self.n = n
        try:
            self.images = np.lib.format.open_memmap(self.stage / "images.npy", mode="w+", dtype=np.uint8, shape=(n, height, width, channels))
            reserve(self.stage / "images.npy")
        except BaseException as exc:
            self.images = None
            shutil.rmtree(self.stage, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DatasetError(no_space_message(self.out.parent, self.nbytes)) from None
            raise
        self.done = False

    def __enter__(self) -> DatasetBuilder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.done:
            self.abort()

    def abort(self) -> None:
        self.images = None  # release the memory map before deleting
        shutil.rmtree(self.stage, ignore_errors=True)

    def finish(
        self,
        *,
        graph: Graph,
        world: str,
        labels: np.ndarray,
        label_columns: Sequence[str] | None = None,
        seed: int | None = None,
        split: np.ndarray | None = None,
        truth_values: np.ndarray | None = None,
        truth_noise: np.ndarray | None = None,
        truth_style: np.ndarray | None = None,
        style_fields: Sequence[str] = (),
        meta: Mapping[str, Any] | None = None,
        continuous_labels: np.ndarray | None = None,
        truth_continuous: np.ndarray | None = None,
    ) -> Path:
        """Write labels, truth, splits, checksums and the manifest; then rename into place.

        ``labels`` holds the discrete observed variables (value indices); ``continuous_labels``
        the continuous observed ones (float, NaN = missing), in declared order. The truth of a
        graph with continuous variables: ``truth_values`` (N, V) holds -1 in each continuous
        variable's column and ``truth_continuous`` (N, Vc) their values. A full disk
        raises :class:`DatasetError` naming the folder and the bytes needed (the staging
        directory is removed on leaving the ``with`` block)."""
        try:
            return self._finish(graph=graph, world=world, labels=labels, label_columns=label_columns, seed=seed, split=split,
                                truth_values=truth_values, truth_noise=truth_noise, truth_style=truth_style,
                                style_fields=style_fields, meta=meta, continuous_labels=continuous_labels,
                                truth_continuous=truth_continuous)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self.abort()
                raise DatasetError(no_space_message(self.out.parent, self.nbytes)) from None
            raise

    def _finish(self, *, graph, world, labels, label_columns, seed, split, truth_values, truth_noise, truth_style, style_fields, meta, continuous_labels,
                truth_continuous) -> Path:
        from causalvae.version import __version__

        n = self.n
        continuous_columns = [c for c in graph.observed if c in graph.continuous]
        label_columns = list(label_columns if label_columns is not None else [c for c in graph.observed if c not in graph.continuous])
        for c in label_columns:
            graph[c]
        labels = np.asarray(labels)
        if labels.shape != (n, len(label_columns)):
            raise CausalVAEError(f"labels have shape {labels.shape}, expected {(n, len(label_columns))}")
        _check_indices(graph, label_columns, labels, "labels")
        if split is None:
            split = assign_splits(n, np.random.default_rng(seed))
        arrays: dict[str, np.ndarray] = {"labels.npy": labels.astype(np.int16), "split.npy": np.asarray(split, dtype=np.int8)}
        if continuous_labels is not None and not continuous_columns:
            raise CausalVAEError("continuous labels were given, but the graph has no observed continuous variable")
        if continuous_columns:
            arrays["labels_continuous.npy"] = _continuous_labels(graph, continuous_columns, continuous_labels, n)
        if split.shape != (n,) or not np.isin(split, (0, 1, 2)).all():
            raise CausalVAEError("split must hold 0 (train), 1 (val) or 2 (test) for every image")
        truth_columns: list[str] = []
        truth_continuous_columns = list(graph.continuous)
        if truth_continuous is not None and (truth_values is None or not truth_continuous_columns):
            raise CausalVAEError("continuous truth was given without truth values, or for a graph with no continuous variable")
        if truth_values is not None:
            truth_columns = list(graph.names)
            tv = np.asarray(truth_values)
            if tv.shape != (n, len(truth_columns)):
                raise CausalVAEError(f"truth values have shape {tv.shape}, expected {(n, len(truth_columns))}")
            _check_truth(graph, truth_columns, tv)
            arrays["truth_values.npy"] = tv.astype(np.int16)
            if truth_continuous_columns:
                arrays["truth_continuous.npy"] = _truth_continuous(graph, truth_continuous_columns, truth_continuous, n)
        if truth_noise is not None:
            arrays["truth_noise.npy"] = np.asarray(truth_noise, dtype=np.float64).reshape(n, len(graph.names))
        if truth_style is not None:
            arrays["truth_style.npy"] = np.asarray(truth_style, dtype=np.float64).reshape(n, len(style_fields))
        self.images.flush()
        _, height, width, channels = self.images.shape
        self.images = None
        for name, arr in arrays.items():
            np.save(self.stage / name, arr, allow_pickle=False)
        graph.to_yaml(self.stage / "graph.yaml")
        files = sorted(p.name for p in self.stage.iterdir())
        manifest = {
            "format": FORMAT,
            "world": world,
            "graph": graph.name,
            "package_version": __version__,
            "seed": seed,
            "count": n,
            "resolution": [int(height), int(width)],
            "channels": int(channels),
            "label_columns": label_columns,
            "label_values": {c: list(graph[c].values) for c in label_columns},
            "truth_columns": truth_columns,
            **({"truth_continuous_columns": truth_continuous_columns} if "truth_continuous.npy" in arrays else {}),
            "style_fields": list(style_fields) if truth_style is not None else [],
            "splits": {k: int((arrays["split.npy"] == v).sum()) for k, v in SPLITS.items()},
            "missing_labels": int((arrays["labels.npy"] == MISSING).sum()),
            **({"continuous_columns": continuous_columns,
                "missing_continuous": int(np.isnan(arrays["labels_continuous.npy"]).sum())} if continuous_columns else {}),
            **dict(meta or {}),
            "checksums": {name: sha256(self.stage / name) for name in files},
        }
        (self.stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        replace_dir(self.stage, self.out)
        self.done = True
        return self.out


def _continuous_labels(graph: Graph, columns: Sequence[str], values: np.ndarray | None, n: int) -> np.ndarray:
    """Continuous label columns as float32 (NaN = missing), each value inside its support."""
    if values is None:
        return np.full((n, len(columns)), np.nan, dtype=np.float32)
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n, len(columns)):
        raise CausalVAEError(f"continuous labels have shape {arr.shape}, expected {(n, len(columns))} ({', '.join(columns)})")
    for j, c in enumerate(columns):
        col = arr[:, j]
        lo, hi = graph[c].support
        bad = np.isinf(col) | (col < lo) | (col > hi)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise CausalVAEError(f"continuous labels: row {r}, column '{c}' holds {col[r]:g}, outside its support {graph[c].describe()[11:]}")
    return arr.astype(np.float32)


def _truth_continuous(graph: Graph, columns: Sequence[str], values: np.ndarray | None, n: int) -> np.ndarray:
    """The continuous variables' true values as float64, each finite and inside its support."""
    if values is None:
        raise CausalVAEError(f"the truth of a graph with continuous variables needs their values ({', '.join(columns)}): pass truth_continuous")
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n, len(columns)):
        raise CausalVAEError(f"continuous truth has shape {arr.shape}, expected {(n, len(columns))} ({', '.join(columns)})")
    for j, c in enumerate(columns):
        col = arr[:, j]
        lo, hi = graph[c].support
        bad = ~np.isfinite(col) | (col < lo) | (col > hi)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise CausalVAEError(f"continuous truth: row {r}, column '{c}' holds {col[r]:g}, not a finite number in its support {graph[c].describe()[11:]}")
    return arr


def _check_truth(graph: Graph, columns: Sequence[str], tv: np.ndarray, what: str = "truth values") -> None:
    """Discrete columns hold value indices; a continuous variable's column holds -1."""
    discrete = [j for j, c in enumerate(columns) if c not in graph.continuous]
    _check_indices(graph, [columns[j] for j in discrete], tv[:, discrete], what, allow_missing=False)
    for j, c in enumerate(columns):
        if c in graph.continuous and (tv[:, j] != MISSING).any():
            r = int(np.flatnonzero(tv[:, j] != MISSING)[0])
            raise CausalVAEError(f"{what}: row {r}, column '{c}' holds {int(tv[r, j])}; a continuous variable's column holds -1 (its value is in the continuous truth)")


def _check_indices(graph: Graph, columns: Sequence[str], arr: np.ndarray, what: str, allow_missing: bool = True) -> None:
    for j, c in enumerate(columns):
        col = arr[:, j]
        low = MISSING if allow_missing else 0
        bad = (col < low) | (col >= graph.card(c))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise CausalVAEError(f"{what}: row {r}, column '{c}' holds {int(col[r])}, not a value index of '{c}' (0..{graph.card(c) - 1})")


# ---------------------------------------------------------------------------- loading


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"{root}: no such dataset directory")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (a dataset is a directory with a manifest.json)")
    mf = root / "manifest.json"
    if not mf.exists():
        raise DatasetError(f"{root}: not a causalvae dataset (no manifest.json)")
    regular_file(mf, DatasetError)
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{mf}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise DatasetError(f"{mf}: not a {FORMAT} manifest (format: {found!r})")
    for key in ("count", "resolution", "channels", "label_columns", "checksums"):
        if key not in manifest:
            raise DatasetError(f"{mf}: the manifest has no '{key}'")
    ok = (
        isinstance(manifest["count"], int) and manifest["count"] > 0
        and isinstance(manifest["resolution"], list) and len(manifest["resolution"]) == 2
        and all(isinstance(v, int) and v > 0 for v in manifest["resolution"])
        and manifest["channels"] in (1, 3)
        and isinstance(manifest["label_columns"], list) and all(isinstance(c, str) for c in manifest["label_columns"])
        and isinstance(manifest["checksums"], dict)
    )
    if not ok:
        raise DatasetError(f"{mf}: malformed manifest (count, resolution [H, W], channels 1|3, label_columns, checksums)")
    return manifest


def _open_array(root: Path, name: str, shape: tuple, manifest: Mapping) -> np.ndarray:
    return open_npy(root / name, ARRAYS[name][0], shape, DatasetError)


def _torch_dataset_base():
    from torch.utils.data import Dataset as TorchDataset

    return TorchDataset


class Dataset(_torch_dataset_base()):
    """A dataset on disk as a map-style torch Dataset of ``(image, labels)``.

    ``image`` is a uint8 tensor (C, H, W) read from the memory map on demand; ``labels`` an
    int64 tensor of the observed label columns (-1 = missing). With ``truth=True`` each item
    also carries a dict of the recorded truth (every variable, every U, the style).
    """

    def __init__(self, path: str | os.PathLike, split: str | None = None, truth: bool = False, verify: bool = True):
        self.root = Path(path)
        self.manifest = read_manifest(self.root)
        m = self.manifest
        for name in m["checksums"]:
            if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
                raise DatasetError(f"{self.root / 'manifest.json'}: the checksum entry {name!r} is not a file name inside the dataset")
        if verify:
            for name, digest in m["checksums"].items():
                p = regular_file(self.root / name, DatasetError)
                if sha256(p) != digest:
                    raise DatasetError(f"{p}: checksum mismatch (the file is corrupted or was changed)")
        n = int(m["count"])
        h, w = m["resolution"]
        self.graph = Graph.from_yaml(regular_file(self.root / "graph.yaml", DatasetError))
        self.label_columns = list(m["label_columns"])
        self.images = _open_array(self.root, "images.npy", (n, h, w, m["channels"]), m)
        self.labels = np.asarray(_open_array(self.root, "labels.npy", (n, len(self.label_columns)), m))
        #: The continuous label columns and their float32 values (NaN = missing).
        self.continuous_columns = list(m.get("continuous_columns", []))
        shape = (n, len(self.continuous_columns))
        self.continuous_labels = np.asarray(_open_array(self.root, "labels_continuous.npy", shape, m)) if self.continuous_columns else np.zeros(shape, np.float32)
        for c in self.label_columns:
            if c not in self.graph:
                raise DatasetError(f"{self.root}: the label column '{c}' is not a variable of its graph.yaml")
        try:
            _check_indices(self.graph, self.label_columns, self.labels, "labels.npy")
        except CausalVAEError as exc:
            raise DatasetError(f"{self.root}: {exc} (a damaged dataset)") from None
        self.split = np.asarray(_open_array(self.root, "split.npy", (n,), m))
        if split is not None and split not in SPLITS:
            raise DatasetError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")
        self.indices = np.arange(n) if split is None else np.flatnonzero(self.split == SPLITS[split])
        self.truth = truth
        if truth:
            if not m.get("truth_columns"):
                raise DatasetError(f"{self.root}: this dataset records no truth (its world did not know it)")
            v = len(m["truth_columns"])
            self.truth_values = np.asarray(_open_array(self.root, "truth_values.npy", (n, v), m))
            try:
                _check_truth(self.graph, list(m["truth_columns"]), self.truth_values, "truth_values.npy")
            except (CausalVAEError, KeyError, TypeError) as exc:
                raise DatasetError(f"{self.root}: {exc} (a damaged dataset)") from None
            #: The continuous variables' true values (float64) and their columns.
            self.truth_continuous_columns = list(m.get("truth_continuous_columns", []))
            if list(self.graph.continuous) != self.truth_continuous_columns:
                raise DatasetError(f"{self.root}: the manifest's truth_continuous_columns do not list the continuous variables of its graph.yaml (a damaged dataset)")
            shape = (n, len(self.truth_continuous_columns))
            self.truth_continuous = np.asarray(_open_array(self.root, "truth_continuous.npy", shape, m)) if shape[1] else np.zeros(shape)
            self.truth_noise = np.asarray(_open_array(self.root, "truth_noise.npy", (n, v), m))
            s = len(m.get("style_fields", []))
            self.truth_style = np.asarray(_open_array(self.root, "truth_style.npy", (n, s), m)) if s else np.zeros((n, 0))

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict:
        """Pickled for DataLoader workers without the image array: each worker maps it again."""
        state = dict(self.__dict__)
        state["images"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        m = self.manifest
        h, w = m["resolution"]
        self.images = _open_array(self.root, "images.npy", (int(m["count"]), h, w, m["channels"]), m)

    def __getitem__(self, i: int):
        import torch

        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)}")
        k = int(self.indices[i])
        image = torch.from_numpy(np.array(self.images[k].transpose(2, 0, 1), order="C"))  # a copy: the map is read-only
        labels = torch.from_numpy(self.labels[k].astype(np.int64))
        if not self.truth:
            return image, labels
        truth = {
            "values": torch.from_numpy(self.truth_values[k].astype(np.int64)),
            "noise": torch.from_numpy(self.truth_noise[k].copy()),
            "style": torch.from_numpy(self.truth_style[k].copy()),
            "continuous": torch.from_numpy(self.truth_continuous[k].copy()),
        }
        return image, labels, truth

    def truth_table(self, positions: Sequence[int] | np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The recorded truth of pictures (positions in this split; default: all of it) as
        ``(values, noise)``: every variable's value (int64 value indices, float64 for a
        continuous variable) and its U, keyed by name, ready for
        :func:`causalvae.noise.propagate` (a counterfactual of the same units: same noise, a ``do``)."""
        if not self.truth:
            raise DatasetError(f"{self.root}: opened without truth (load it with truth=True)")
        rows = self.indices if positions is None else self.indices[np.asarray(positions, dtype=np.int64)]
        cols = list(self.manifest["truth_columns"])
        values = {c: self.truth_values[rows, j].astype(np.int64) for j, c in enumerate(cols) if c not in self.truth_continuous_columns}
        values.update({c: self.truth_continuous[rows, j].astype(np.float64) for j, c in enumerate(self.truth_continuous_columns)})
        noise = {c: self.truth_noise[rows, j].astype(np.float64) for j, c in enumerate(cols)}
        return {c: values[c] for c in cols}, noise


    def batch(self, positions: Sequence[int] | np.ndarray):
        """Several items at once (positions in this split): uint8 (B, C, H, W) images and
        int64 (B, K) labels, read with one fancy index of the memory map (sorted for locality)."""
        import torch

        pos = np.asarray(positions, dtype=np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(f"positions out of range for a dataset of {len(self)}")
        rows = self.indices[pos]
        order = np.argsort(rows, kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        images = np.asarray(self.images[rows[order]])[inverse].transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(self.labels[rows].astype(np.int64))

    def continuous_batch(self, positions: Sequence[int] | np.ndarray):
        """The continuous labels of several items (positions in this split): float32
        ``(B, Kc)`` of :attr:`continuous_columns` (NaN = missing); ``(B, 0)`` when there are none."""
        import torch

        pos = np.asarray(positions, dtype=np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(f"positions out of range for a dataset of {len(self)}")
        return torch.from_numpy(np.array(self.continuous_labels[self.indices[pos]], dtype=np.float32))


def load(path: str | os.PathLike, split: str | None = None, truth: bool = False, verify: bool = True) -> Dataset:
    """Open a dataset directory (see :class:`Dataset`)."""
    return Dataset(path, split=split, truth=truth, verify=verify)


# ---------------------------------------------------------------------------- bring your own data


def import_folder(
    images_dir: str | os.PathLike,
    labels_csv: str | os.PathLike,
    graph: Graph,
    out: str | os.PathLike,
    *,
    force: bool = False,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Turn a folder of same-sized PNGs and a CSV of their labels into a dataset.

    The CSV has a ``file`` column (a path relative to ``images_dir``) and one column per
    observed variable of ``graph`` that is labelled (absent columns are missing for every
    row; an empty cell is a missing label). Every row and every image is checked, and the
    first offending file and row are named in the error.
    """
    from PIL import Image

    images_dir, labels_csv = Path(images_dir), Path(labels_csv)
    if not images_dir.is_dir():
        raise CausalVAEError(f"{images_dir}: no such image directory")
    if not labels_csv.is_file():
        raise CausalVAEError(f"{labels_csv}: no such labels file")
    try:
        with open(labels_csv, newline="", encoding="utf-8-sig") as fh:
            rows = [(i, row) for i, row in enumerate(csv.reader(fh), start=1) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CausalVAEError(f"{labels_csv}: not a readable CSV file ({exc})") from None
    if not rows:
        raise CausalVAEError(f"{labels_csv}: empty file")
    header, body = [h.strip() for h in rows[0][1]], rows[1:]
    if "file" not in header:
        raise CausalVAEError(f"{labels_csv}: no 'file' column (the header is {', '.join(header)})")
    columns = [h for h in header if h != "file"]
    for c in columns:
        if c not in graph:
            from causalvae.errors import suggest

            raise CausalVAEError(f"{labels_csv}: column '{c}' is not a variable of the graph{suggest(c, graph.names)}")
        if graph[c].hidden:
            raise CausalVAEError(f"{labels_csv}: column '{c}' is a hidden variable of the graph; hidden variables have no labels")
    if len(set(header)) != len(header):
        raise CausalVAEError(f"{labels_csv}: a column name appears twice")
    if not body:
        raise CausalVAEError(f"{labels_csv}: no data rows")
    label_columns = [c for c in graph.observed if c not in graph.continuous]
    continuous_columns = [c for c in graph.observed if c in graph.continuous]
    labels = np.full((len(body), len(label_columns)), MISSING, dtype=np.int16)
    numbers = np.full((len(body), len(continuous_columns)), np.nan)
    files: list[str] = []
    lines: list[int] = []
    seen: dict[str, int] = {}
    fcol = header.index("file")
    for k, (r, row) in enumerate(body):
        if len(row) != len(header):
            raise CausalVAEError(f"{labels_csv} line {r}: {len(row)} cells, expected {len(header)}")
        name = row[fcol].strip()
        if not name:
            raise CausalVAEError(f"{labels_csv} line {r}: empty 'file' cell")
        if name in seen:
            raise CausalVAEError(f"{labels_csv} line {r}: '{name}' is listed twice (first at line {seen[name]})")
        seen[name] = r
        files.append(name)
        lines.append(r)
        for c, cell in zip(header, row):
            if c == "file" or not cell.strip():
                continue
            var = graph[c]
            if c in continuous_columns:
                numbers[k, continuous_columns.index(c)] = _csv_number(cell.strip(), var, f"{labels_csv} line {r} ({name})")
                continue
            if cell.strip() not in var.values:
                from causalvae.errors import suggest

                raise CausalVAEError(
                    f"{labels_csv} line {r} ({name}): '{cell.strip()}' is not a value of '{c}'"
                    f"{suggest(cell.strip(), var.values)}; valid: {', '.join(var.values)}"
                )
            labels[k, label_columns.index(c)] = var.values.index(cell.strip())
    first = _open_png(images_dir / files[0], labels_csv, lines[0])
    mode, size = first.mode, first.size
    if mode not in ("RGB", "L"):
        raise CausalVAEError(f"{images_dir / files[0]} ({labels_csv} line {lines[0]}): image mode {mode}; use RGB or L (greyscale) PNGs")
    channels = 3 if mode == "RGB" else 1
    with DatasetBuilder(out, len(files), size[1], size[0], channels, force=force) as builder:
        for i, name in enumerate(files):
            img = first if i == 0 else _open_png(images_dir / name, labels_csv, lines[i])
            if img.mode != mode or img.size != size:
                raise CausalVAEError(
                    f"{images_dir / name} ({labels_csv} line {lines[i]}): {img.mode} {img.size[0]}x{img.size[1]}, "
                    f"but the first image is {mode} {size[0]}x{size[1]}; all images must match"
                )
            arr = np.asarray(img, dtype=np.uint8)
            builder.images[i] = arr if arr.ndim == 3 else arr[..., None]
            if progress is not None:
                progress(i + 1)
        return builder.finish(
            graph=graph,
            world="imported",
            labels=labels,
            label_columns=label_columns,
            continuous_labels=numbers if continuous_columns else None,
            seed=seed,
            meta={"source": {"images": str(images_dir), "labels": str(labels_csv)}},
        )


def _csv_number(cell: str, var: Any, where: str) -> float:
    try:
        x = float(cell)
    except ValueError:
        x = math.nan
    lo, hi = var.support
    if not math.isfinite(x) or not lo <= x <= hi:
        raise CausalVAEError(f"{where}: '{cell}' is not a number in the support of the continuous '{var.name}' {var.describe()[11:]}")
    return x


def _open_png(path: Path, labels_csv: Path, line: int):
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise CausalVAEError(f"{labels_csv} line {line}: image file {path} does not exist")
    check_png_header(path, f"{path} ({labels_csv} line {line})")
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise CausalVAEError(f"{path} ({labels_csv} line {line}): a {im.format} file, not a PNG")
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CausalVAEError(f"{path} ({labels_csv} line {line}): not a readable PNG ({exc})") from None
