"""Look at a dataset: a labelled contact sheet, drawn the way its world chooses.

The scene world shows every character x type x pose at least once, beside the same labels
without style (:meth:`causalvae.worlds.scenes.world.ScenesWorld.sheet`); other worlds and
imported datasets show their first pictures with their labels.
"""

from __future__ import annotations

from PIL import Image

from causalvae import worlds
from causalvae.data import Dataset


def dataset_sheet(ds: Dataset, columns: int = 8, scale: int = 2, limit: int = 48) -> Image.Image:
    """A contact sheet of a dataset (see the module docstring)."""
    return worlds.for_dataset(ds).sheet(ds, columns, scale, limit)
