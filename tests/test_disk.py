"""Datasets and the disk: a full disk is one line naming the folder and the bytes needed, with
no staging folder left; special files inside a dataset are refused, never read for ever; and
runs killed with SIGKILL leave nothing that the next run does not clean up."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from causalvae.data import DatasetError, load
from causalvae.generate import generate
from causalvae.io import clean_stale_stages


def debris(parent: Path, keep: str = "") -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name != keep)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate("scenes", tmp_path_factory.mktemp("disk") / "small", 40, seed=2)


# ----------------------------------------------------------------------------- a full disk


def test_too_little_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1_000_000))
    with pytest.raises(DatasetError, match=rf"not enough free space in {tmp_path}: this needs 13\.7 MB, 976\.6 KB is free"):
        generate("scenes", tmp_path / "d", 1000, seed=0)
    assert debris(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 2 MB tmpfs (root only): what a full disk does, not a mock of it."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_is_one_line_and_leaves_no_staging_folder(tiny_disk, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=2**40))  # pass the check: meet the disk
    with pytest.raises(DatasetError, match=rf"no space left on the disk of {tiny_disk}: this needs 13\.7 MB"):
        generate("scenes", tiny_disk / "d", 1000, seed=0)  # 12 MB of images: no SIGBUS, one error
    assert debris(tiny_disk) == []


def test_a_disk_filling_up_at_the_end_is_one_line_too(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(DatasetError, match=f"no space left on the disk of {tmp_path}"):
        generate("scenes", tmp_path / "d", 30, seed=0)
    assert debris(tmp_path) == []


# ----------------------------------------------------------------------------- special files


def test_special_files_in_a_dataset_are_refused(small, tmp_path):
    import json
    import shutil

    linked = shutil.copytree(small, tmp_path / "linked")
    (linked / "images.npy").unlink()
    (linked / "images.npy").symlink_to("/dev/zero")
    start = time.monotonic()
    with pytest.raises(DatasetError, match="images.npy: not a regular file"):
        load(linked)
    with pytest.raises(DatasetError, match="images.npy: not a regular file"):
        load(linked, verify=False)
    named = shutil.copytree(small, tmp_path / "named")
    manifest = json.loads((named / "manifest.json").read_text())
    manifest["checksums"]["/dev/zero"] = "0" * 64
    (named / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="the checksum entry '/dev/zero' is not a file name inside the dataset"):
        load(named)
    r = subprocess.run([sys.executable, "-m", "causalvae", "show", str(linked), "--out", str(tmp_path / "s.png")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "not a regular file" in r.stderr


# ----------------------------------------------------------------------------- kills


def test_stale_staging_folders_are_removed_only_when_their_owner_is_gone(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    gone = tmp_path / f".d.{pid}-12345.abc123.partial"
    mine = tmp_path / f".d.{os.getpid()}-{_start(os.getpid())}.xyz789.partial"
    reused = tmp_path / f".d.{os.getpid()}-1.xyz780.partial"  # this PID, another start: a reused PID
    foreign = tmp_path / ".notes.partial"
    for d in (gone, mine, reused, foreign):
        d.mkdir()
    assert sorted(clean_stale_stages(tmp_path)) == sorted([gone, reused])
    assert debris(tmp_path) == sorted([mine.name, foreign.name])
    old = tmp_path / f".data.{pid}-12345.old"  # a replaced dataset whose replacement never came
    old.mkdir()
    assert clean_stale_stages(tmp_path) == [] and debris(tmp_path) == sorted(["data", mine.name, foreign.name])


def _start(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[19])


def test_generate_killed_at_random_moments_leaves_nothing_after_one_clean_run(tmp_path):
    if not os.path.isdir("/proc"):
        pytest.skip("needs /proc")
    rng = np.random.default_rng(19)
    cmd = [sys.executable, "-m", "causalvae", "generate", "scenes", "--n", "1000", "--seed", "3", "--out", str(tmp_path / "d"), "--force"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    left = 0
    for _ in range(5):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(float(rng.uniform(1.0, 12.0)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # What the next run finds: each run removes the stale folders of earlier ones, and a
        # run killed after it finished leaves none.
        left = len([p for p in tmp_path.iterdir() if p.name.startswith(".")])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    if left:
        assert "staging folder(s) left in" in r.stderr and "by runs that were killed" in r.stderr
    assert debris(tmp_path) == ["d"]
    assert len(load(tmp_path / "d")) == 1000  # every checksum verified
