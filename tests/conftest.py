"""Test configuration: strict JAX flags, as equinox's test suite uses."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
from hypothesis import settings


def _set_jax_flag(name: str, value: str) -> None:
    jax.config.update(name, value)  # type: ignore[no-untyped-call]  # Config.update is unannotated


_set_jax_flag("jax_numpy_rank_promotion", "raise")
# Strict dtype promotion ("jax_numpy_dtype_promotion") is left at its default: optax's
# own Adam mixes Python floats with int32 step counts and fails under it.

settings.register_profile("ci", max_examples=60, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
