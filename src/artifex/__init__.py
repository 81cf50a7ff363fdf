"""Artifex: a typed training-callback system for JAX / Flax NNX."""
