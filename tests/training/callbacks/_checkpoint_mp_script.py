"""ModelCheckpoint and restore_checkpoint in one process of a (multi-process) JAX job.

Run by ``tests/training/callbacks/test_model_checkpoint_multiprocess.py`` through
:func:`tests._distributed.run_job`, as 2 processes with 4 host CPU devices each, or
as 1 process with 8::

    python -m tests.training.callbacks._checkpoint_mp_script WORKDIR

Every process builds the same tiny checkpointable trainer (not the reference
``Trainer``) whose model has one parameter replicated over a global 8-device mesh
and one sharded along its first axis, drives ``ModelCheckpoint``'s hooks through
a few epochs (``WORKDIR/ckpt``), restores the checkpoints three ways (into a fresh
trainer, into a bare model, and with ``target=None``), checks them, and writes what
it saw to ``WORKDIR/process-<index>.json`` for the test to assert on. It also checks
that a directory ModelCheckpoint must refuse is refused on every process alike
(``WORKDIR/foreign``), instead of some processes hanging in a collective.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests._distributed import initialize

if __name__ == "__main__":
    initialize()  # before anything else touches JAX

import json
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    ModelCheckpoint,
    restore_checkpoint,
)
from artifex.generative_models.training.callbacks.protocols import (
    CheckpointableTrainer,
    RunStatus,
)

_spec: Callable[..., PartitionSpec] = PartitionSpec  # untyped __init__ in jax 0.10
_sync: Callable[[str], None] = multihost_utils.sync_global_devices  # unannotated

VAL_LOSS = (0.5, 0.3, 0.4, 0.2, 0.6)
"""The monitored metric per epoch: the best two are epochs 3 and 1, the last is 4."""
STEPS_PER_EPOCH = 10
TOP_K = 2
W_SHAPE = (3, 2)
B_SHAPE = (16, 2)


def expected_w(epoch: int) -> np.ndarray:
    """The replicated parameter's value after ``epoch`` (-1: a fresh model)."""
    return np.full(W_SHAPE, epoch + 1.0, np.float32)


def expected_b(epoch: int) -> np.ndarray:
    """The sharded parameter's value after ``epoch`` (-1: a fresh model)."""
    return (np.arange(np.prod(B_SHAPE), dtype=np.float32).reshape(B_SHAPE) + 1.0) * (epoch + 1)


class Tiny(nnx.Module):
    """Two parameters: ``w`` replicated, ``b`` sharded along ``"data"``."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.w = nnx.Param(jax.device_put(expected_w(-1), NamedSharding(mesh, _spec())))
        self.b = nnx.Param(
            jax.make_array_from_callback(
                B_SHAPE, NamedSharding(mesh, _spec("data")), lambda i: expected_b(-1)[i]
            )
        )

    def set_epoch(self, epoch: int) -> None:
        """Put the values of ``epoch`` in place, keeping the shardings."""
        self.w.set_value(jax.device_put(expected_w(epoch), self.w.get_value().sharding))
        self.b.set_value(
            jax.make_array_from_callback(
                B_SHAPE, self.b.get_value().sharding, lambda i: expected_b(epoch)[i]
            )
        )


class MiniTrainer:
    """A :class:`CheckpointableTrainer` of the smallest kind."""

    def __init__(self, model: Tiny) -> None:
        self._model = model
        self.step = 0
        self.epoch = 0
        self.stop_training = False
        self.status: RunStatus = "running"
        self.stopped_by: object | None = None
        self.error: BaseException | None = None

    @property
    def model(self) -> nnx.Module:
        return self._model

    def state_dict(self) -> dict[str, Any]:
        return {"model": nnx.state(self._model), "step": self.step, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        nnx.update(self._model, state["model"])
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])


def _local_values_match(array: jax.Array, expected: np.ndarray) -> bool:
    """Whether every shard this process holds has the expected values."""
    return all(
        np.array_equal(np.asarray(shard.data), expected[shard.index])
        for shard in array.addressable_shards
    )


def _describe(array: Any, expected: np.ndarray, like: jax.Array | None) -> dict[str, Any]:
    assert isinstance(array, jax.Array), type(array)
    return {
        "values_match": _local_values_match(array, expected),
        "shape": list(array.shape),
        "same_sharding": like is not None and array.sharding == like.sharding,
        "spec": str(getattr(array.sharding, "spec", None)),
        "fully_addressable": array.is_fully_addressable,
        "local_only": all(d.process_index == jax.process_index() for d in array.devices()),
        "device_count": len(array.devices()),
    }


def run(workdir: Path) -> dict[str, Any]:
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    ckpt = workdir / "ckpt"
    out: dict[str, Any] = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
    }

    trainer = MiniTrainer(Tiny(mesh))
    assert isinstance(trainer, CheckpointableTrainer)
    callback = ModelCheckpoint(
        CheckpointConfig(
            dirpath=ckpt, monitor="val_loss", mode="min", save_top_k=TOP_K, async_save=True
        )
    )
    callback.on_train_begin(trainer)
    for epoch, val_loss in enumerate(VAL_LOSS):
        trainer.epoch = epoch
        trainer.step += STEPS_PER_EPOCH
        trainer._model.set_epoch(epoch)
        callback.on_epoch_end(trainer, epoch, {"loss": 1.0, "val_loss": val_loss})
    trainer.status = "completed"
    callback.on_train_end(trainer)
    out["saved_steps"] = list(callback.saved_checkpoint_steps)
    out["best_step"] = callback.best_checkpoint_step

    # A second run on the same directory (the marker exists now): nothing new is due.
    again = ModelCheckpoint(CheckpointConfig(dirpath=ckpt, monitor="val_loss", save_top_k=TOP_K))
    again.on_train_begin(trainer)
    again.on_train_end(trainer)
    out["steps_second_run"] = list(again.saved_checkpoint_steps)
    out["best_step_second_run"] = again.best_checkpoint_step

    reference = Tiny(mesh)
    restored_into: dict[str, Any] = {}
    for step in out["saved_steps"]:
        fresh = MiniTrainer(Tiny(mesh))
        result = restore_checkpoint(ckpt, step=step, target=fresh)
        epoch = step // STEPS_PER_EPOCH - 1
        restored_into[str(step)] = {
            "epoch": result.epoch,
            "trainer_step": fresh.step,
            "trainer_epoch": fresh.epoch,
            "metrics": result.metrics,
            "w": _describe(fresh._model.w.get_value(), expected_w(epoch), reference.w.get_value()),
            "b": _describe(fresh._model.b.get_value(), expected_b(epoch), reference.b.get_value()),
        }
    out["restore_trainer"] = restored_into

    best = out["best_step"]
    assert best is not None, "the run saved a best checkpoint"
    best_epoch = best // STEPS_PER_EPOCH - 1
    model = Tiny(mesh)
    result = restore_checkpoint(ckpt, step=best, target=model)
    out["restore_model"] = {
        "step": result.step,
        "w": _describe(model.w.get_value(), expected_w(best_epoch), reference.w.get_value()),
        "b": _describe(model.b.get_value(), expected_b(best_epoch), reference.b.get_value()),
    }

    result = restore_checkpoint(ckpt)  # target=None: the latest step, process-local arrays
    last_epoch = result.step // STEPS_PER_EPOCH - 1
    state = result.state
    out["restore_none"] = {
        "step": result.step,
        "step_entry": state["step"],
        "epoch_entry": state["epoch"],
        "w": _describe(state["model"]["w"], expected_w(last_epoch), None),
        "b": _describe(state["model"]["b"], expected_b(last_epoch), None),
    }

    # A directory that is not ModelCheckpoint's: every process refuses it alike.
    foreign = workdir / "foreign"
    if jax.process_index() == 0:
        foreign.mkdir()
        (foreign / "precious.txt").write_text("the user's own file\n")
    _sync("foreign directory made")
    refusing = ModelCheckpoint(CheckpointConfig(dirpath=foreign))
    try:
        refusing.on_train_begin(trainer)
    except FileExistsError as error:
        out["foreign_error"] = f"{type(error).__name__}: {error}"
    else:
        out["foreign_error"] = None

    # Processes passing different logs: every process raises instead of hanging.
    me = jax.process_index()
    disagreeing = ModelCheckpoint(
        CheckpointConfig(dirpath=workdir / "disagree", monitor="val_loss")
    )
    disagreeing.on_train_begin(trainer)
    out["disagree_error"] = _epoch_end_error(disagreeing, trainer, {"val_loss": 0.1 * (me + 1)})
    disagreeing.on_train_end(trainer)
    out["disagree_steps"] = list(disagreeing.saved_checkpoint_steps)

    # A strict monitor missing on the last process only: it raises KeyError, the others
    # raise too (naming it) instead of waiting for it in the save.
    strict = ModelCheckpoint(
        CheckpointConfig(dirpath=workdir / "strict", monitor="val_loss", strict=True)
    )
    strict.on_train_begin(trainer)
    last = jax.process_count() - 1
    logs = {"loss": 1.0} if me == last else {"loss": 1.0, "val_loss": 0.5}
    out["strict_error"] = _epoch_end_error(strict, trainer, logs)
    strict.on_train_end(trainer)
    out["strict_steps"] = list(strict.saved_checkpoint_steps)
    return out


def _epoch_end_error(
    callback: ModelCheckpoint, trainer: MiniTrainer, logs: dict[str, Any]
) -> str | None:
    try:
        callback.on_epoch_end(trainer, trainer.epoch, logs)
    except (KeyError, RuntimeError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def main(argv: list[str], job: Callable[[Path], dict[str, Any]] = run) -> None:
    """Run ``job`` in ``argv[0]`` and write this process's result there as JSON."""
    workdir = Path(argv[0])
    out = job(workdir)
    path = workdir / f"process-{out['process_index']}.json"
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
