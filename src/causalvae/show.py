"""Look at a dataset: a labelled contact sheet.

For the scene world the sheet holds every character x type x pose at least once, for the
actor and for the reactor: images are picked from the dataset greedily until every
(character, type, action) and (character, type, reaction) combination is covered. The
same labels are drawn again without style beside them, so what the style changes is plain.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from causalvae.data import Dataset

SHORT = {"Satyr": "Sat", "Golem": "Gol", "type1": "1", "type2": "2", "type3": "3"}


def _caption(ds: Dataset, k: int) -> str:
    cols = ds.label_columns
    vals = []
    for c, v in zip(cols, ds.labels[k]):
        vals.append("?" if v < 0 else ds.graph[c].values[int(v)])
    for c, x in zip(ds.continuous_columns, ds.continuous_labels[k]):
        vals.append(f"{c}=?" if np.isnan(x) else f"{c}={x:.3g}")  # continuous labels, rounded
    if cols[:6] == ["actor", "actor_type", "action", "reactor", "reactor_type", "reaction"]:
        a, at, act, r, rt, rea = vals[:6]
        return f"{SHORT.get(a, a)}{SHORT.get(at, at)} {act}\n{SHORT.get(r, r)}{SHORT.get(rt, rt)} {rea}"
    return "\n".join(vals[:3])


def covering_indices(truth_values: np.ndarray, groups: list[list[int]]) -> list[int]:
    """Greedy set cover: rows until every value combination of each column group is seen.

    ``groups`` lists column-index groups (e.g. the actor's and the reactor's columns); the
    result covers every combination of each group that occurs in the data.
    """
    keys = [np.ravel_multi_index(truth_values[:, g].T, [int(truth_values[:, c].max()) + 1 for c in g]) for g in groups]
    needed = [set(np.unique(k).tolist()) for k in keys]
    chosen: list[int] = []
    while any(needed):
        gains = np.zeros(len(truth_values), dtype=np.int64)
        for k, need in zip(keys, needed):
            gains += np.isin(k, list(need))
        best = int(np.argmax(gains))
        if gains[best] == 0:
            break
        chosen.append(best)
        for k, need in zip(keys, needed):
            need.discard(int(k[best]))
    return chosen


def _title(img: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + 22), (255, 255, 255))
    out.paste(img, (0, 22))
    ImageDraw.Draw(out).text((6, 5), text, fill=(0, 0, 0))
    return out


def dataset_sheet(ds: Dataset, columns: int = 8, scale: int = 2, limit: int = 48) -> Image.Image:
    """A contact sheet of a dataset (see the module docstring for the scene world)."""
    from causalvae.worlds.sheet import contact_sheet

    n = len(ds.images)
    if ds.manifest.get("world") == "scenes" and ds.manifest.get("truth_columns"):
        from causalvae.worlds.scenes import LABELS, STYLE_FIELDS, SceneRenderer

        names = ds.manifest["truth_columns"]
        tv = np.asarray(np.load(ds.root / "truth_values.npy", mmap_mode="r", allow_pickle=False))
        groups = [[names.index(c) for c in LABELS[:3]], [names.index(c) for c in LABELS[3:]]]
        picks = covering_indices(tv, groups)
        order = sorted(picks, key=lambda k: tuple(tv[k, groups[0] + groups[1]]))
        images = np.stack([ds.images[k] for k in order])
        captions = [_caption(ds, k) for k in order]
        styled = contact_sheet(images, captions, columns, scale)
        res = int(ds.manifest["resolution"][0])
        renderer = SceneRenderer(res)
        labels = {c: tv[order, names.index(c)] for c in LABELS}
        plain = renderer.render(labels, renderer.neutral_style(len(order)))
        unstyled = contact_sheet(plain, captions, columns, scale)
        a = _title(styled, f"{ds.root.name}: {len(order)} scenes covering every character x type x pose (with style)")
        b = _title(unstyled, "the same labels without style")
        sheet = Image.new("RGB", (max(a.width, b.width), a.height + b.height + 8), (255, 255, 255))
        sheet.paste(a, (0, 0))
        sheet.paste(b, (0, a.height + 8))
        return sheet
    count = min(limit, n)
    images = np.stack([ds.images[k] for k in range(count)])
    if images.shape[-1] == 1:
        if images.max() <= 1:  # binary worlds store 0/1
            images = images * 255
        images = np.repeat(images, 3, axis=-1)
    return _title(contact_sheet(images, [_caption(ds, k) for k in range(count)], columns, scale), f"{ds.root.name}: first {count} of {n}")
