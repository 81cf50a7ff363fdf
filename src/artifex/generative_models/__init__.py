"""Generative-model tooling for JAX / Flax NNX."""
