"""The package's version, read from its installed metadata (pyproject.toml's ``version``).

Datasets, model files and checkpoints record it (as a record only: other versions load).
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("causalvae")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
