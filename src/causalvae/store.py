"""On-disk formats of trained causal VAE models and of training checkpoints.

A trained model is a directory of two files::

    run/config.json          what to build: the graph, the network config, the learned tables' names,
                             the classified parents, alpha, the dataset and training records, and the
                             SHA-256 and tensor list of the weights
    run/model.safetensors    the weights: the model's ``state_dict``, one tensor per name

:func:`save_model` writes it and :func:`load` rebuilds the :class:`~causalvae.model.CausalVAE`
from ``config.json`` and loads the weights into it. ``config.json`` keeps the graph as it was
specified (``graph``) and, when tables were learned, the graph with the learned tables in place
(``learned_graph``), so the exact engine can use them without torch.

A training checkpoint is one directory per step under a root::

    checkpoints/step-00000120/state.safetensors   model.<name>          the model's state_dict
                                                  optim.<index>.<key>   the optimizer's tensor state
                                                  rng.torch, rng.cuda.<i>  torch's RNG states
    checkpoints/step-00000120/state.json          step, the caller's meta, the optimizer's
                                                  param_groups and non-tensor state, the Python and
                                                  NumPy RNG states, the SHA-256 of state.safetensors

Only safetensors and JSON are used, never pickle (``torch.load``): reading a file never runs
code from it, so a model from anywhere is safe to open. Each JSON file records the SHA-256 of
its tensors file, so a changed, truncated or swapped file is refused rather than loaded.

Writes are atomic. A model's two files are first written completely under hidden names and
then renamed into place, weights first, so a failed write leaves the previous model intact;
only a crash between the two renames can pair new weights with the old config.json, and the
checksum then refuses the pair. A checkpoint is built in a staging directory that is renamed
to ``step-NNNNNNNN`` when complete, so it appears whole or not at all.

Every problem with a file raises one :class:`ModelFileError` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn

from causalvae.errors import CausalVAEError, suggest
from causalvae.graph import Graph
from causalvae.io import atomic_write_bytes, replace_dir, staging_dir
from causalvae.model import CausalVAE
from causalvae.nets import NetConfig
from causalvae.version import __version__

FORMAT = "causalvae-model/1"
CHECKPOINT_FORMAT = "causalvae-checkpoint/1"

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.json"
STATE_TENSORS_FILE = "state.safetensors"

CONFIG_KEYS = (
    "format", "package_version", "graph", "learned_graph", "net", "likelihood", "learn_cpts",
    "classified", "alpha", "dataset", "training", "weights",
)
CHECKPOINT_KEYS = ("format", "package_version", "step", "meta", "optimizer", "rng", "tensors")

_STEP_DIR = re.compile(r"step-(\d+)")


class ModelFileError(CausalVAEError):
    """A model or checkpoint file that is missing, unreadable, corrupt, or does not match its partner."""


# ---------------------------------------------------------------------------------------------
# Trained models


def save_model(vae: CausalVAE, out_dir: str | os.PathLike, *, dataset: dict | None = None, training: dict | None = None) -> Path:
    """Write ``vae`` to ``out_dir/model.safetensors`` and ``out_dir/config.json``; return ``out_dir``.

    ``dataset`` (e.g. ``{"path": ..., "manifest_sha256": ...}``) and ``training`` are JSON-able
    records stored as given. Both files are serialised before anything is written, so a value
    that is not JSON-able changes nothing on disk.
    """
    for name, value in (("dataset", dataset), ("training", training)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict or None, got {type(value).__name__}")
    tensors = _cpu_tensors(vae.state_dict())
    weights = safetensors_save(tensors)
    config = {
        "format": FORMAT,
        "package_version": __version__,
        "graph": vae.graph.to_dict(),
        "learned_graph": vae.current_graph().to_dict() if vae.learned else None,
        "net": vae.config.to_dict(),
        "likelihood": vae.config.likelihood,
        "learn_cpts": list(vae.learned),
        "classified": list(vae.classified),
        "alpha": vae.alpha,
        "dataset": dataset,
        "training": training,
        "weights": {
            "file": WEIGHTS_FILE,
            "sha256": hashlib.sha256(weights).hexdigest(),
            "tensors": {k: [list(t.shape), str(t.dtype).removeprefix("torch.")] for k, t in tensors.items()},
        },
    }
    text = json.dumps(config, indent=2) + "\n"
    out = Path(out_dir)
    _write_files(out, [(WEIGHTS_FILE, weights), (CONFIG_FILE, text.encode("utf-8"))])
    return out


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> CausalVAE:
    """Rebuild a saved model from its directory (or its ``config.json``), in eval mode on ``device``.

    ``device="auto"`` picks CUDA when available. A ``package_version`` other than the running
    one is accepted (it is a record only).
    """
    path = Path(path)
    if path.is_dir():
        config_path = path / CONFIG_FILE
    elif path.is_file():
        config_path = path
    else:
        raise ModelFileError(f"{path}: no such model directory or config file")
    cfg = read_json(config_path)
    _check_keys(config_path, cfg, CONFIG_KEYS, FORMAT, "causalvae model config")
    vae = _build(config_path, cfg)
    weights_path, sha = _tensors_entry(config_path, cfg["weights"], "weights")
    tensors = _read_tensors(weights_path, sha, config_path)
    _check_state(weights_path, tensors, vae, f"the model built from {config_path.name}")
    vae.load_state_dict(tensors, strict=True)
    return vae.to(resolve_device(device)).eval()


def _build(config_path: Path, cfg: dict) -> CausalVAE:
    """The untrained model that ``config.json`` describes."""
    try:
        graph = Graph.from_dict(cfg["graph"], source="graph")
        if not isinstance(cfg["net"], Mapping):
            raise CausalVAEError("'net' must be an object")
        config = NetConfig.from_dict(cfg["net"])
        if cfg["likelihood"] != config.likelihood:
            raise CausalVAEError(f"'likelihood' {cfg['likelihood']!r} differs from the net's {config.likelihood!r}")
        for key in ("learn_cpts", "classified"):
            if not isinstance(cfg[key], list) or not all(isinstance(n, str) for n in cfg[key]):
                raise CausalVAEError(f"'{key}' must be a list of variable names")
        alpha = cfg["alpha"]
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise CausalVAEError(f"'alpha' must be a number, got {alpha!r}")
        return CausalVAE(graph, config, learn_cpts=cfg["learn_cpts"], classified=cfg["classified"], alpha=alpha)
    except (CausalVAEError, TypeError) as exc:
        raise ModelFileError(f"{config_path}: the model it describes cannot be built: {exc}") from None


def resolve_device(device: str | torch.device, what: str = "device") -> torch.device:
    """``device`` (cpu, cuda, cuda:N, a torch.device, or auto: CUDA when available, else the
    CPU) as a torch device. Another name, or CUDA where there is none, is one clear error
    naming ``what`` (how the caller calls the setting, e.g. ``--device``) and the value."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shown = device if device != "" else "''"
    try:
        resolved = torch.device(device) if isinstance(device, (str, torch.device)) else None
    except (RuntimeError, ValueError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise CausalVAEError(f"{what} {shown}: expected cpu, cuda or auto")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CausalVAEError(f"{what} {shown}: no CUDA device is available (cpu, or auto: CUDA where there is one)")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise CausalVAEError(f"{what} {shown}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0")
    return resolved


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(
    root: str | os.PathLike,
    step: int,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: dict,
    keep: int = 2,
) -> Path:
    """Write the training state at ``step`` to ``root/step-{step:08d}`` and return that directory.

    The directory is built under a hidden staging name and renamed when complete (an earlier
    checkpoint of the same step is replaced). Afterwards only the ``keep`` checkpoints with the
    highest steps are kept, and always the one just written.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CausalVAEError(f"step must be a non-negative integer, got {step!r}")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise CausalVAEError(f"keep must be a positive integer, got {keep!r}")
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")

    opt = optimizer.state_dict()
    tensors = _cpu_tensors(model.state_dict(), "model.")
    opt_state: dict[str, dict[str, Any]] = {}
    for index, entries in opt["state"].items():
        opt_state[str(index)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = _cpu(value)
            else:
                opt_state[str(index)][key] = value
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, rng in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = rng.cpu()
    data = safetensors_save(tensors)

    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state = {
        "format": CHECKPOINT_FORMAT,
        "package_version": __version__,
        "step": step,
        "meta": meta,
        "optimizer": {"param_groups": opt["param_groups"], "state": opt_state},
        "rng": {
            "python": [py_version, list(py_internal), py_gauss],
            "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_cached)],
        },
        "tensors": {"file": STATE_TENSORS_FILE, "sha256": hashlib.sha256(data).hexdigest()},
    }
    text = json.dumps(state, indent=1) + "\n"

    target = Path(root) / f"step-{step:08d}"
    stage = staging_dir(target, force=True, marker=STATE_FILE, what="checkpoint")
    try:
        atomic_write_bytes(stage / STATE_TENSORS_FILE, data)
        atomic_write_bytes(stage / STATE_FILE, text.encode("utf-8"))
        target = replace_dir(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    for _, old in sorted(_checkpoint_dirs(target.parent), reverse=True)[keep:]:
        if old != target:
            trash = old.with_name(f".{old.name}.old-{os.getpid()}")
            os.replace(old, trash)
            shutil.rmtree(trash, ignore_errors=True)
    return target


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The checkpoint under ``root`` with the highest step, or None.

    Staging directories (hidden names) and ``step-*`` directories whose ``state.json`` is
    missing, unreadable or not a checkpoint's are skipped. The tensors' checksum is not
    verified here: :func:`load_checkpoint` refuses a damaged checkpoint instead of falling
    back silently to an older one.
    """
    for _, path in sorted(_checkpoint_dirs(Path(root)), reverse=True):
        try:
            state = json.loads((path / STATE_FILE).read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
            return path
    return None


def load_checkpoint(
    directory: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    restore_rng: bool = True,
) -> dict:
    """Restore ``model``, ``optimizer`` and (with ``restore_rng``) the torch, CUDA, Python and
    NumPy random states from a checkpoint directory; return ``{"step": int, "meta": dict}``.

    Everything is read and checked before the model or the optimizer is changed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFileError(f"{directory}: no such checkpoint directory")
    state_path = directory / STATE_FILE
    state = read_json(state_path)
    _check_keys(state_path, state, CHECKPOINT_KEYS, CHECKPOINT_FORMAT, "causalvae checkpoint")
    step, meta = state["step"], state["meta"]
    if isinstance(step, bool) or not isinstance(step, int) or not isinstance(meta, dict):
        raise ModelFileError(f"{state_path}: 'step' must be an integer and 'meta' an object")
    tensors_path, sha = _tensors_entry(state_path, state["tensors"], "tensors")
    tensors = _read_tensors(tensors_path, sha, state_path)

    model_state = {k.removeprefix("model."): t for k, t in tensors.items() if k.startswith("model.")}
    others = [k for k in tensors if not k.startswith(("model.", "optim.", "rng."))]
    if others or "rng.torch" not in tensors:
        problem = f"unexpected tensor(s) {_listing(others)}" if others else "no tensor 'rng.torch'"
        raise ModelFileError(f"{tensors_path}: {problem}")
    _check_state(tensors_path, model_state, model, "the model given")
    opt_state = _optimizer_state(state_path, state["optimizer"], tensors)
    rng = _rng_states(state_path, state["rng"]) if restore_rng else None

    try:
        optimizer.load_state_dict(opt_state)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{state_path}: the optimizer state does not fit this optimizer: {exc}") from None
    model.load_state_dict(model_state, strict=True)
    if rng is not None:
        torch.set_rng_state(tensors["rng.torch"])
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                if f"rng.cuda.{i}" in tensors:
                    torch.cuda.set_rng_state(tensors[f"rng.cuda.{i}"], i)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
    return {"step": step, "meta": meta}


def _checkpoint_dirs(root: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the ``step-*`` directories under ``root`` that hold a ``state.json``."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.fullmatch(path.name)
        if match and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return found


def _optimizer_state(state_path: Path, saved: Any, tensors: dict[str, torch.Tensor]) -> dict:
    """The optimizer's ``state_dict`` rebuilt from the JSON part and the ``optim.*`` tensors."""
    try:
        groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in saved["param_groups"]]
        per_param = {int(i): dict(entries) for i, entries in saved["state"].items()}
        for name, t in tensors.items():
            if name.startswith("optim."):
                _, index, key = name.split(".", 2)
                per_param.setdefault(int(index), {})[key] = t
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{state_path}: malformed optimizer state ({type(exc).__name__}: {exc})") from None
    return {"state": per_param, "param_groups": groups}


def _rng_states(state_path: Path, saved: Any) -> tuple[tuple, tuple]:
    """The Python and NumPy RNG states, checked by restoring them into throwaway generators."""
    try:
        version, internal, gauss = saved["python"]
        py_state = (version, tuple(internal), gauss)
        random.Random().setstate(py_state)
        name, keys, pos, has_gauss, cached = saved["numpy"]
        np_state = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
        np.random.RandomState().set_state(np_state)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ModelFileError(f"{state_path}: malformed random number generator state ({exc})") from None
    return py_state, np_state


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _cpu(t: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy sharing no memory (safetensors refuses shared or strided tensors)."""
    return t.detach().cpu().clone(memory_format=torch.contiguous_format)


def _cpu_tensors(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: _cpu(t) for k, t in state.items()}


def _write_files(directory: Path, files: list[tuple[str, bytes]]) -> None:
    """Write each file completely under a hidden name, then rename them into place in order:
    a failure while writing leaves every existing file as it was, and no temporary file."""
    pending = [directory / f".{name}.pending" for name, _ in files]
    try:
        for (_, data), tmp in zip(files, pending):
            atomic_write_bytes(tmp, data)
        for (name, _), tmp in zip(files, pending):
            os.replace(tmp, directory / name)
    finally:
        for tmp in pending:
            tmp.unlink(missing_ok=True)


def read_json(path: Path) -> dict:
    if not path.exists():
        raise ModelFileError(f"{path}: file is missing")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a regular file (a directory, a device or a pipe is no JSON record)")
    try:
        obj = json.loads(path.read_bytes())
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise ModelFileError(f"{path}: not valid JSON, perhaps truncated ({exc})") from None
    if not isinstance(obj, dict):
        raise ModelFileError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    return obj


def _check_keys(path: Path, obj: dict, keys: tuple[str, ...], fmt: str, what: str) -> None:
    if "format" not in obj:
        raise ModelFileError(f"{path}: no 'format' key; not a {what} (expected format {fmt!r})")
    if obj["format"] != fmt:
        raise ModelFileError(f"{path}: format is {obj['format']!r}, expected {fmt!r}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ModelFileError(f"{path}: missing key(s) {', '.join(missing)}")
    for k in obj:
        if k not in keys:
            raise ModelFileError(f"{path}: unknown key '{k}'{suggest(str(k), keys)}")


def _tensors_entry(json_path: Path, entry: Any, key: str) -> tuple[Path, str]:
    """The tensors file named by ``entry`` (a bare file name beside ``json_path``) and its SHA-256."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("file"), str) or not isinstance(entry.get("sha256"), str):
        raise ModelFileError(f"{json_path}: '{key}' must be an object with 'file' and 'sha256' strings")
    name = entry["file"]
    if name in ("", ".", "..") or Path(name).name != name:
        raise ModelFileError(f"{json_path}: '{key}.file' must be a file name in the same directory, got {name!r}")
    return json_path.parent / name, entry["sha256"]


def _read_tensors(path: Path, sha256: str, json_path: Path) -> dict[str, torch.Tensor]:
    """Parse a safetensors file and check it against the checksum that ``json_path`` records."""
    if not path.is_file():
        raise ModelFileError(f"{path}: file is missing")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        tensors = safetensors_load(data)
    except Exception as exc:  # safetensors raises its own exception types
        raise ModelFileError(f"{path}: not a readable safetensors file, truncated or corrupt ({exc})") from None
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise ModelFileError(
            f"{path}: does not match {json_path.name}: it was changed or belongs to another model"
            f" (sha256 {found[:12]}..., {json_path.name} expects {sha256[:12]}...)"
        )
    return tensors


def _check_state(path: Path, found: Mapping[str, torch.Tensor], module: nn.Module, whose: str) -> None:
    """Refuse tensors whose names or shapes differ from ``module``'s state_dict."""
    want = module.state_dict()
    missing = [k for k in want if k not in found]
    unexpected = [k for k in found if k not in want]
    if missing or unexpected:
        parts = [f"missing tensor(s) {_listing(missing)}"] if missing else []
        parts += [f"unexpected tensor(s) {_listing(unexpected)}"] if unexpected else []
        raise ModelFileError(f"{path}: {'; '.join(parts)} for {whose}")
    for k, t in want.items():
        if found[k].shape != t.shape:
            raise ModelFileError(
                f"{path}: tensor '{k}' has shape {list(found[k].shape)}, but {whose} needs {list(t.shape)}"
            )


def _listing(names: list[str]) -> str:
    names = sorted(names)
    return ", ".join(f"'{n}'" for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
