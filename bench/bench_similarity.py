"""The cost of one training step of the sprites recipe's model whose decoder's drawing is
turned, scaled and moved by a placer of z, scale, orientation, posX and posY
(``--place scale,orientation,posX,posY --place-mode similarity``), against the recipe's plain
FiLM decoder.

Run from the repository root::

    .venv/bin/python bench/bench_similarity.py --out bench/results/similarity.json

Two models as ``causalvae train`` builds them with the Makefile's ``SPRITES_FLAGS``, one of
them with the option; one optimiser step each (the ELBO plus the counterfactual term) on the
same batch of 64 causal sprites, timed interleaved in one run (``bench/_models.py``,
``sprites_option_cost``). ``similarity.cost_per_step`` is the transformed decoder's step time
over the plain one's: the extra work is a small MLP and one bilinear resampling of the
64 x 64 logits per decoded picture, and the drawing's layers are the same size (they are fed
a zero code). It is a script, not a test: it reports what it measures.
"""

from __future__ import annotations

import sys

from _models import sprites_option_cost


def main(argv=None) -> int:
    return sprites_option_cost(argv, __doc__, "similarity", "transformed", "--place scale,orientation,posX,posY --place-mode similarity",
                               place=["scale", "orientation", "posX", "posY"], place_mode="similarity")


if __name__ == "__main__":
    sys.exit(main())
