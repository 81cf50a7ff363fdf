"""The epoch-mean rule, in one place: zero sums, accumulate on the device, divide once.

Epoch and validation logs are the means of the per-batch metrics, each batch weighted
equally. The sums live on the device (accumulated inside the compiled steps, donated
from step to step) and are fetched in one ``jax.device_get`` when the pass ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeAlias

import jax
import jax.numpy as jnp
from jax.sharding import Sharding

__all__ = ["MetricSums", "accumulate", "means", "zeros_function"]

MetricSums: TypeAlias = dict[str, jax.Array]
"""Running per-metric sums on the device, keyed like the logs."""


def _zeros_for(keys: tuple[str, ...]) -> MetricSums:
    return {key: jnp.zeros((), jnp.float32) for key in keys}


# Compiled, so that fresh sums need no host-to-device transfer.
_zeros = jax.jit(_zeros_for, static_argnums=0)


def zeros_function(sharding: Sharding | None) -> Callable[[tuple[str, ...]], MetricSums]:
    """The compiled function giving fresh zero sums for some metric names.

    Args:
        sharding: Where the sums live (replicated on a mesh), or ``None`` for the
            default device.
    """
    if sharding is None:
        return _zeros
    return jax.jit(_zeros_for, static_argnums=0, out_shardings=sharding)


def accumulate(sums: MetricSums, logs: Mapping[str, jax.Array]) -> MetricSums:
    """Add one batch's scalar logs to the sums (traced inside the compiled steps)."""
    return {key: total + logs[key].astype(total.dtype) for key, total in sums.items()}


def means(sums: MetricSums, count: int) -> dict[str, float]:
    """Fetch the sums (the pass's one device-to-host transfer) and divide by ``count``."""
    host = jax.device_get(sums)
    return {key: float(value) / count for key, value in host.items()}
