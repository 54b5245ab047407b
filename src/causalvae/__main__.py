"""``python -m causalvae``: the command line."""

from causalvae.cli import main

main()
