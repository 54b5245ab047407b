"""The web viewer: a local page that asks a trained causal VAE the three kinds of question.

    causalvae serve runs/scenes --oracle oracles/scenes      # then open http://127.0.0.1:8000/

:func:`create_app` builds the FastAPI application (the page and its JSON API under
``/api/``); ``docs/viewer.md`` describes both.
"""

from causalvae.viewer.app import create_app

__all__ = ["create_app"]
