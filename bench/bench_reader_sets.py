"""The cost of ``--reader-sets`` in a training step of the sprites recipe's model.

Run from the repository root::

    .venv/bin/python bench/bench_reader_sets.py --out bench/results/reader_sets.json

Two models as ``causalvae train`` builds them with the Makefile's ``SPRITES_FLAGS`` (FiLM
decoder, width 16, z 8, counterfactual weight 10), one plain and one with ``--reader-sets``:
one optimiser step each (the ELBO plus the counterfactual term, whose reader then reads the
orientation on the set of bins the sprites world accepts) on the same batch of 64 causal
sprites, timed interleaved in one run, so the ratio does not depend on how fast the machine
runs that day. The world's tables of accepted readings are built before the timing, as a run
builds them once (their seconds are in the run's reader time).

``reader_sets.cost_per_step`` is the step time with the sets over the step time without.
It is a script, not a test: it reports what it measures.
"""

from __future__ import annotations

import sys

from _models import sprites_option_cost


def main(argv=None) -> int:
    return sprites_option_cost(argv, __doc__, "reader_sets", "sets", "--reader-sets", reader_sets=True)


if __name__ == "__main__":
    sys.exit(main())
