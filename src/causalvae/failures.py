"""What to tell a person when something fails that is not a plain input error: one line for
the failures a user can meet without a bug (memory, recursion, the operating system, a
picture Pillow cannot read), and a log file holding the traceback of anything else.

The command line and the viewer use it so that no traceback ever reaches a user:

    >>> explain(MemoryError())
    'out of memory: this work is too large for the machine; ask for less (fewer targets, fewer or smaller pictures)'
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
import traceback
from pathlib import Path


def explain(exc: BaseException) -> str | None:
    """One line naming the cause of ``exc`` (and the file, where there is one), or None for
    an unexpected failure (a bug: see :func:`write_log`)."""
    if isinstance(exc, MemoryError):
        return "out of memory: this work is too large for the machine; ask for less (fewer targets, fewer or smaller pictures)"
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to be processed"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{where}no space left on the disk; free some space and run the command again"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{where}permission denied ({exc.strerror})"
        return f"{where}{exc.strerror or exc}"
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return None
    if isinstance(exc, (UnidentifiedImageError, Image.DecompressionBombError)):
        return f"a picture cannot be read: {exc}"
    return None


def write_log(exc: BaseException) -> Path:
    """Write the traceback of ``exc`` to a new file in ``$CAUSALVAE_LOG_DIR`` (default: the
    system's temporary folder) and return its path."""
    folder = Path(os.environ.get("CAUSALVAE_LOG_DIR") or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=time.strftime("causalvae-error-%Y%m%d-%H%M%S-"), suffix=".log", dir=folder)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return Path(name)


def one_line(exc: BaseException) -> str:
    """The line to show for ``exc``: its cause, or that it is unexpected and where its
    traceback was written (when even that fails, the exception's own words)."""
    from causalvae.errors import CausalVAEError

    if isinstance(exc, CausalVAEError):
        return str(exc)
    known = explain(exc)
    if known is not None:
        return known
    try:
        log = write_log(exc)
    except OSError:
        return f"unexpected error ({type(exc).__name__}: {exc}); please report it"
    return f"unexpected error ({type(exc).__name__}: {exc}); the details are in {log}, please report it with that file"
