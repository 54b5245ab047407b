"""The cost of one training step of the sprites recipe's model whose decoder draws at twice the
picture's size for a similarity placer of z, scale, posX and posY
(``--place scale,posX,posY --place-mode similarity --draw-scale 2``), against the recipe's
plain FiLM decoder.

Run from the repository root::

    .venv/bin/python bench/bench_draw_scale.py --out bench/results/draw_scale.json

As ``bench_similarity.py`` (``bench/_models.py``, ``sprites_option_cost``: one optimiser step
each, the ELBO plus the counterfactual term, on the same batch of 64 causal sprites, timed
interleaved in one run). ``draw_scale.cost_per_step`` is the step time with the option over
the plain one's: the extra work is one more upsampling stage at the picture's size (to
128 x 128), a small MLP and one bilinear resampling per decoded picture. It is a script, not
a test: it reports what it measures.
"""

from __future__ import annotations

import sys

from _models import sprites_option_cost


def main(argv=None) -> int:
    return sprites_option_cost(argv, __doc__, "draw_scale", "fine", "--place scale,posX,posY --place-mode similarity --draw-scale 2",
                               place=["scale", "posX", "posY"], place_mode="similarity", draw_scale=2)


if __name__ == "__main__":
    sys.exit(main())
