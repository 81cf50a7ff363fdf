"""The demo training run: a VAE on scikit-learn's bundled 8x8 digits.

Run it with ``python -m artifex.generative_models.demo`` (or ``nox -s demo``).
"""

from artifex.generative_models.demo.app import DemoResult, main, run

__all__ = ["DemoResult", "main", "run"]
