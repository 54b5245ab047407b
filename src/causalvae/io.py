"""Atomic writing: a reader never sees a half-written file or directory under the target name;
and output directories: a command never writes over another kind of artefact.

Each kind of output directory is known by the file that marks it (:data:`KINDS`);
:func:`check_output_dir` is the one check every writer calls before its work starts.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


#: The kinds of output directory, each with the files that mark it (all must be present).
KINDS: dict[str, tuple[str, ...]] = {
    "training run": ("train.json",),
    "model": ("model.safetensors",),
    "oracle": ("oracle.safetensors",),
    "dataset": ("manifest.json",),
    "report": ("report.json",),
    "dSprites grid": ("metadata.json",),
    "checkpoint": ("state.json",),
}


def output_kind(path: str | os.PathLike) -> str | None:
    """The kind of artefact directory ``path`` holds (a key of :data:`KINDS`), or None."""
    path = Path(path)
    if not path.is_dir():
        return None
    for kind, markers in KINDS.items():
        if all((path / m).is_file() for m in markers):
            return kind
    return None


def check_output_dir(out: str | os.PathLike, kind: str, *, force: bool = False, same: tuple[str, ...] = ()) -> Path:
    """Check, before any work, that a ``kind`` may be written into the directory ``out``.

    A missing or empty directory is fine. A file, or a directory holding anything but a
    ``kind`` (or one of the kinds in ``same``) is refused, ``--force`` or not; an earlier
    ``kind`` is refused unless ``force``. Returns the resolved path.

        >>> import tempfile; check_output_dir(tempfile.mkdtemp(), "report").is_dir()
        True
    """
    from causalvae.errors import CausalVAEError

    target = Path(out).resolve()
    if target.parent == target:
        raise CausalVAEError(f"{target} cannot be {_a(kind)} directory")
    if not target.exists():
        if target.is_symlink():
            raise CausalVAEError(f"{target} is a dangling link; choose another output")
        return target
    if not target.is_dir():
        raise CausalVAEError(f"{target} exists and is not a directory; choose another output")
    if not any(target.iterdir()):
        return target
    found = output_kind(target)
    if found is not None and found != kind and found not in same:
        raise CausalVAEError(f"{target} holds {_a(found)}, not {_a(kind)}; choose another output (--force replaces only {_a(kind)})")
    if found is None:
        raise CausalVAEError(f"{target} is a directory that holds something else than {_a(kind)}; choose another output (--force replaces only {_a(kind)})")
    if not force:
        raise CausalVAEError(f"{target} already holds {_a(kind)}; pass --force to replace it")
    return target


def staging_dir(out: str | os.PathLike, *, force: bool, marker: str, what: str) -> Path:
    """A fresh hidden directory beside ``out`` to build a directory output in.

    Refuses an existing ``out`` without ``force``, and with ``force`` refuses a non-empty
    directory that lacks ``marker`` (the file that identifies ``what`` it holds), so that
    ``--force`` can never delete anything but an earlier output of the same kind.
    """
    from causalvae.errors import CausalVAEError

    target = Path(out).resolve()
    if target.parent == target:
        raise CausalVAEError(f"{target} cannot be a {what} directory")
    if target.exists():
        if not force:
            raise CausalVAEError(f"{target} already exists; pass --force (force=True) to replace it")
        if not target.is_dir():
            raise CausalVAEError(f"{target} exists and is not a directory")
        if any(target.iterdir()) and not (target / marker).is_file():
            found = output_kind(target)
            held = f"holds {_a(found)}" if found else "is a directory"
            raise CausalVAEError(f"{target} {held}, not a {what}; --force replaces only a {what}")
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_stages(target.parent)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_owner()}.", suffix=".partial", dir=target.parent))
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes it private; the output is not
    return stage


# A staging directory's name carries its owner: .NAME.PID-START.XXXXXX.partial (START: the
# process's start time in clock ticks since boot, so that a reused PID is not mistaken for
# the owner); a replaced output waits as .NAME.PID-START.old until the new one is in place.
_STAGE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<start>\d+)\.(?:[A-Za-z0-9_]+\.partial|old)$")


def _start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of stat(5), counted after the command name
    except (OSError, IndexError, ValueError):
        if not os.path.isdir("/proc"):  # no procfs: the PID alone tells
            try:
                os.kill(pid, 0)
                return 0
            except ProcessLookupError:
                return None
            except PermissionError:
                return 0
        return None


def _owner() -> str:
    return f"{os.getpid()}-{_start_time(os.getpid()) or 0}"


def clean_stale_stages(parent: str | os.PathLike) -> list[Path]:
    """Remove the staging directories in ``parent`` whose owner process is gone (a killed
    ``generate``, ``data import`` or ``train``); returns what was removed. An output that was
    being replaced when its owner died is put back under its name if nothing took its place."""
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _STAGE.match(entry.name)
        if m is None or entry.is_symlink() or not entry.is_dir():
            continue
        pid, start = int(m["pid"]), int(m["start"])
        alive = _start_time(pid)
        if alive is not None and (alive == start or start == 0 or alive == 0):
            continue
        target = entry.with_name(m["name"])
        if entry.name.endswith(".old") and not target.exists():
            os.replace(entry, target)
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def replace_dir(stage: Path, out: str | os.PathLike) -> Path:
    """Rename ``stage`` to ``out``; an existing ``out`` is moved aside first, then deleted."""
    target = Path(out).resolve()
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{_owner()}.old")
        os.replace(target, old)
    os.replace(stage, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def regular_file(path: str | os.PathLike, error: type[Exception]) -> Path:
    """``path`` if it is a regular file (a link to one is fine); a missing file, a device, a
    pipe or a directory raises ``error`` naming it, so nothing ever reads /dev/zero for ever."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error(f"{path.parent}: {path.name} is missing") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise error(f"{path}: not a regular file (a device, a pipe or a directory has no place in a dataset)")
    return path


def need_space(folder: str | os.PathLike, nbytes: int, error: type[Exception]) -> None:
    """Refuse to start writing ``nbytes`` into ``folder`` when its disk has less free space."""
    free = shutil.disk_usage(folder).free
    if nbytes > free:
        raise error(f"not enough free space in {folder}: this needs {_size(nbytes)}, {_size(free)} is free")


def reserve(path: str | os.PathLike) -> None:
    """Allocate the disk blocks of a file, so that a full disk is an ``OSError`` (ENOSPC) now
    rather than a SIGBUS when a memory map of it is written (where the file system cannot
    allocate ahead, nothing is done)."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def no_space_message(folder: str | os.PathLike, nbytes: int) -> str:
    return f"no space left on the disk of {folder}: this needs {_size(nbytes)}, {_size(shutil.disk_usage(folder).free)} is free"


def _size(n: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def open_npy(path: str | os.PathLike, dtype, shape: tuple, error: type[Exception]):
    """Memory-map a ``.npy`` file (never with pickle) and check its dtype and shape; any
    problem raises ``error`` naming the file."""
    import numpy as np

    path = regular_file(path, error)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise error(f"{path}: unreadable or truncated ({exc})") from None
    if arr.dtype != dtype or arr.shape != shape:
        raise error(f"{path}: expected {np.dtype(dtype).name} {shape}, found {arr.dtype} {arr.shape}")
    return arr


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


#: The most pixels a picture read from a user may have (4096 x 4096): checked from the PNG
#: header before any pixel is decoded.
MAX_PIXELS = 2**24
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png_header(source: str | os.PathLike | bytes, what: str, max_pixels: int = MAX_PIXELS) -> tuple[int, int] | None:
    """The one check of a picture's size before decoding: read the width and height from a
    PNG's IHDR (``source`` is a path or the file's bytes) and refuse more than ``max_pixels``
    with :class:`~causalvae.errors.CausalVAEError` naming ``what``. Returns (width, height),
    or None when ``source`` is not a PNG (the decoder then says what it is)."""
    import struct

    from causalvae.errors import CausalVAEError

    if isinstance(source, (bytes, bytearray)):
        head = bytes(source[:24])
    else:
        with open(regular_file(source, CausalVAEError), "rb") as fh:
            head = fh.read(24)
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[8:16] != b"\0\0\0\rIHDR":  # not a PNG, or a damaged one
        return None
    width, height = struct.unpack(">II", head[16:24])
    if width * height > max_pixels:
        raise CausalVAEError(f"{what} claims {width}x{height} pixels ({width * height:,}); the limit is {max_pixels:,}: not decoded")
    return width, height
