"""The cost of one training step of the sprites recipe's model whose decoder moves what it
draws by posX and posY (``--place posX,posY``), against the recipe's plain FiLM decoder.

Run from the repository root::

    .venv/bin/python bench/bench_place.py --out bench/results/place.json

Two models as ``causalvae train`` builds them with the Makefile's ``SPRITES_FLAGS`` (width 16,
z 8, counterfactual weight 10, FiLM decoder), one of them with ``--place posX,posY``; one
optimiser step each (the ELBO plus the counterfactual term, its frozen reader reading the
decoded counterfactuals back) on the same batch of 64 causal sprites, timed interleaved in one
run, so that the ratio does not depend on how fast the machine runs that day.
``place.cost_per_step`` is the moved decoder's step time over the plain one's: the extra work
is a small MLP and one bilinear resampling of the 64 x 64 logits per decoded picture. It is a
script, not a test: it reports what it measures.
"""

from __future__ import annotations

import sys

from _models import sprites_option_cost


def main(argv=None) -> int:
    return sprites_option_cost(argv, __doc__, "place", "moved", "--place posX,posY", place=["posX", "posY"])


if __name__ == "__main__":
    sys.exit(main())
