"""Data-parallel placement on a ``jax.sharding.Mesh``: what the trainer needs of JAX's SPMD.

Nothing here is home-made parallelism: parameters and optimizer state get
``NamedSharding``s (from the variables' own NNX sharding annotations, replicated by
default; optax's ``tree_map_params`` maps them onto the optimizer state), batches are
split along the mesh's data axis (``jax.make_array_from_process_local_data`` in a
multi-process job), and XLA's GSPMD partitioner inserts the gradient all-reduce.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import jax
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec, Sharding

from artifex.generative_models.training.optimizer import GradientTransformationLike

# Untyped in jax 0.10; typed aliases keep mypy strict on both JAX versions.
_spec: Callable[..., PartitionSpec] = PartitionSpec
_from_process_local: Callable[[Sharding, np.ndarray], jax.Array] = (
    jax.make_array_from_process_local_data
)

DataAxis: TypeAlias = str | tuple[str, ...]
"""The mesh axis (or axes) that a batch's leading dimension is split over."""


def _is_spec(x: object) -> bool:
    return isinstance(x, PartitionSpec)


def _is_sharding(x: object) -> bool:
    return isinstance(x, Sharding)


class DataParallel:
    """Where the trainer's state and batches live on ``mesh``.

    Args:
        mesh: The device mesh.
        data_axis: The mesh axis (or axes) splitting each batch's leading dimension.

    Raises:
        TypeError: If ``mesh`` is not a ``jax.sharding.Mesh`` or ``data_axis`` is not
            a string or a tuple of strings.
        ValueError: If ``data_axis`` names an axis the mesh lacks.
    """

    __slots__ = ("batch", "data_axis", "mesh", "multiprocess", "replicated", "shards")

    def __init__(self, mesh: Mesh, data_axis: DataAxis) -> None:
        untrusted: object = mesh
        if not isinstance(untrusted, Mesh):
            raise TypeError(
                f"mesh must be a jax.sharding.Mesh, got {type(mesh).__qualname__} {mesh!r}"
            )
        axes: object = (data_axis,) if isinstance(data_axis, str) else data_axis
        if not isinstance(axes, tuple) or not axes or not all(isinstance(a, str) for a in axes):
            raise TypeError(
                "data_axis must be a mesh axis name or a non-empty tuple of them, got "
                f"{type(data_axis).__qualname__} {data_axis!r}"
            )
        missing = [axis for axis in axes if axis not in mesh.axis_names]
        if missing:
            raise ValueError(
                f"data_axis {data_axis!r} names {missing} but the mesh's axes are "
                f"{tuple(mesh.axis_names)}"
            )
        self.mesh = mesh
        self.data_axis = data_axis
        self.shards = int(np.prod([mesh.shape[axis] for axis in axes]))
        self.replicated = NamedSharding(mesh, _spec())
        self.batch = NamedSharding(mesh, _spec(data_axis))
        self.multiprocess = jax.process_count() > 1

    def state_shardings(self, state: Any) -> list[Sharding]:
        """One sharding per leaf of an ``nnx.State``, from its variables' annotations.

        A variable annotated with ``nnx.with_partitioning`` (or given
        ``sharding_names``) is sharded as its ``PartitionSpec`` says; others are
        replicated.
        """
        specs = jax.tree.leaves(nnx.get_partition_spec(state), is_leaf=_is_spec)
        return [NamedSharding(self.mesh, spec) for spec in specs]

    def opt_shardings(
        self,
        optimizer: GradientTransformationLike,
        opt_state: Any,
        params_def: Any,
        param_shardings: list[Sharding],
    ) -> list[Sharding]:
        """The optimizer state's shardings: like their parameters, else replicated."""
        tree = optax.tree_map_params(
            optimizer.init,
            lambda _, sharding: sharding,
            opt_state,
            jax.tree.unflatten(params_def, param_shardings),
            transform_non_params=lambda _: self.replicated,
            is_leaf=_is_sharding,
        )
        leaves: list[Sharding] = jax.tree.leaves(tree, is_leaf=_is_sharding)
        return leaves

    @staticmethod
    def place(leaves: Sequence[jax.Array], shardings: Sequence[Sharding]) -> list[jax.Array]:
        """Put ``leaves`` on their shardings (arrays already there are kept)."""
        placed: list[jax.Array] = jax.device_put(list(leaves), list(shardings))
        return placed

    def shard_batch(self, batch: Any, name: str) -> Any:
        """Split a batch's leading dimension over the data axis.

        In a multi-process job each process passes its own rows (its part of the
        global batch, in process order); arrays already spread over the mesh pass.

        Raises:
            ValueError: If a leaf is a scalar or its rows do not split evenly.
        """
        leaves, treedef = jax.tree.flatten(batch)
        for leaf in leaves:
            shape = np.shape(leaf)
            rows = shape[0] * (jax.process_count() if self.multiprocess else 1) if shape else 0
            if not shape or rows % self.shards:
                raise ValueError(
                    f"{name} has a batch leaf of shape {shape}: a data-parallel batch needs "
                    f"a leading dimension (global size {rows}) that splits evenly over the "
                    f"{self.shards} devices of mesh axis {self.data_axis!r}; use a batch size "
                    "that is a multiple of it (ArrayBatcher(..., drop_last=True) drops a "
                    "smaller last batch)"
                )
        if not self.multiprocess:
            return jax.tree.unflatten(treedef, jax.device_put(leaves, self.batch))
        return jax.tree.unflatten(
            treedef,
            [
                leaf
                if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable
                else _from_process_local(self.batch, np.asarray(leaf))
                for leaf in leaves
            ],
        )

    def anyone(self, flag: bool) -> tuple[int, ...]:
        """The processes whose ``flag`` is set (a collective: every process calls it)."""
        if not self.multiprocess:
            return (0,) if flag else ()
        flags = np.asarray(multihost_utils.process_allgather(np.int32(flag)))
        return tuple(int(index) for index in np.flatnonzero(flags))


def allgather_bytes(payload: bytes) -> list[bytes]:
    """Every process's ``payload``, by process index.

    A collective: in a multi-process job every process must call it, each with a
    payload of the same length. In a single process it returns ``[payload]`` without
    touching a device.

    Args:
        payload: This process's bytes.

    Returns:
        The payloads of all processes, the one of process ``i`` at index ``i``.
    """
    if jax.process_count() == 1:
        return [payload]
    rows = multihost_utils.process_allgather(np.frombuffer(payload, dtype=np.uint8))
    return [np.asarray(row, dtype=np.uint8).tobytes() for row in np.asarray(rows)]
