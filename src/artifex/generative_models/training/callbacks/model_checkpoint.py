"""Model checkpointing on Orbax: atomic, optionally asynchronous, best-k retention.

Layout of ``dirpath`` (an Orbax ``CheckpointManager`` directory)::

    dirpath/
      artifex_checkpoints.json     # marker: this directory belongs to ModelCheckpoint
      <step>/                      # one Orbax checkpoint per save, named by global step
        state/                     # the training-state pytree (Orbax StandardSave)
        meta/                      # JSON: format, step, epoch, metrics, monitor, mode, items
        metrics/                   # Orbax's own: {monitor: score}, when monitor is set
        callbacks/                 # JSON: {state_key: state} of the stateful callbacks
        <extra>/                   # further JSON items (see ModelCheckpoint.json_items)

``state`` is ``trainer.state_dict()`` when the trainer is a
:class:`CheckpointableTrainer` (at least ``model``, ``opt_state``, ``step`` and
``epoch``), with every ``nnx.State`` stored as a pure dict. For a plain
:class:`TrainerLike` it is ``{"model", "opt_state" (if the trainer has an
``nnx.Optimizer`` as ``optimizer``), "step", "epoch"}``, with ``step`` counted from the
``on_batch_end`` calls seen. Restore with :func:`restore_checkpoint`.

``callbacks`` holds the ``state_dict()`` of every
:class:`~artifex.generative_models.training.callbacks.protocols.StatefulCallback` of a
trainer that exposes its callbacks (a
:class:`~artifex.generative_models.training.callbacks.protocols.CallbackHost`), keyed by
``state_key``: taken at the same ``on_epoch_end`` as the model state, so callbacks
that run before ``ModelCheckpoint`` in dispatch order (put it last) have already seen
that epoch. ``Trainer.fit(..., resume_from=...)`` loads it back.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers as ocm

from artifex.generative_models.training.callbacks._monitor import (
    Mode,
    MonitorLookup,
    check_int,
    check_mode,
    to_float,
)
from artifex.generative_models.training.callbacks._state import stateful_callbacks
from artifex.generative_models.training.callbacks.base import (
    BaseCallback,
    TrainerLike,
    flatten_callbacks,
)
from artifex.generative_models.training.callbacks.protocols import (
    CallbackHost,
    CheckpointableTrainer,
    StatefulCallback,
    TrainerState,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointConfig",
    "CheckpointOrderWarning",
    "ModelCheckpoint",
    "RestoredCheckpoint",
    "restore_checkpoint",
]

_log = logging.getLogger(__name__)


class CheckpointOrderWarning(UserWarning):
    """A stateful callback runs after ``ModelCheckpoint``: its saved state lags an epoch.

    ``ModelCheckpoint`` saves the other callbacks' state in its ``on_epoch_end``, so
    the callbacks registered after it have not yet seen that epoch.
    """


CHECKPOINT_FORMAT: Final = "artifex-nnx-callbacks/checkpoint/1"
"""The ``format`` recorded in every checkpoint's ``meta`` item and in the marker file."""

MARKER_FILE: Final = "artifex_checkpoints.json"
STATE_ITEM: Final = "state"
META_ITEM: Final = "meta"
CALLBACKS_ITEM: Final = "callbacks"
"""The checkpoint item holding the stateful callbacks' states, by ``state_key``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointConfig:
    """Configuration of :class:`ModelCheckpoint`.

    Attributes:
        dirpath: The checkpoint directory, resolved against the working directory at
            ``on_train_begin`` (when it is created). It must be new, empty, or one this
            callback created (it holds ``artifex_checkpoints.json``).
        monitor: The ``on_epoch_end`` log key that ranks checkpoints, or ``None`` to
            keep the most recent ones.
        mode: ``"min"`` if lower ``monitor`` values are better, ``"max"`` otherwise.
        save_top_k: How many checkpoints to keep: the best by ``monitor`` (or the most
            recent if ``monitor`` is ``None``); ``-1`` keeps all, ``0`` none (but see
            ``save_last``).
        every_n_epochs: Save at the end of every n-th epoch (``>= 1``).
        save_last: Also keep the most recent checkpoint, whatever its score, and save
            one when the monitored key is missing. Resuming needs it.
        async_save: Write checkpoints in the background (Orbax async checkpointing);
            ``on_train_end`` waits for them.
        strict: Raise ``KeyError`` when ``monitor`` is missing from the epoch logs,
            instead of warning once.
    """

    dirpath: str | os.PathLike[str] = "checkpoints"
    monitor: str | None = None
    mode: Mode = "min"
    save_top_k: int = 3
    every_n_epochs: int = 1
    save_last: bool = True
    async_save: bool = True
    strict: bool = False

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If a field has the wrong type.
            ValueError: If a field has a bad value.
        """
        dirpath: object = self.dirpath  # run-time checks of what the types promise
        monitor: object = self.monitor
        if not isinstance(dirpath, str | os.PathLike) or not os.fspath(dirpath):
            raise ValueError(f"dirpath must be a non-empty path, got {self.dirpath!r}")
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(f"monitor must be None or a non-empty str, got {self.monitor!r}")
        check_mode("mode", self.mode)
        check_int("save_top_k", self.save_top_k, minimum=-1)
        check_int("every_n_epochs", self.every_n_epochs, minimum=1)
        for name in ("save_last", "async_save", "strict"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoredCheckpoint:
    """What :func:`restore_checkpoint` read.

    Attributes:
        directory: The checkpoint directory.
        step: The checkpoint's global step.
        epoch: The epoch at whose end it was saved.
        metrics: The numeric epoch logs at that point (Python floats).
        state: The restored training-state pytree (``model``, ``opt_state``, ``step``,
            ``epoch``, ...). With a ``target``, ``nnx.State`` entries of the target's
            state are rebuilt as ``nnx.State``; otherwise they are pure dicts.
        extra: Further JSON items of the checkpoint, by name.
    """

    directory: Path
    step: int
    epoch: int
    metrics: dict[str, float]
    state: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------- pytree helpers


_shape_dtype_struct: Callable[..., Any] = jax.ShapeDtypeStruct  # untyped __init__ in jax 0.10


def _is_state(x: object) -> bool:
    return isinstance(x, nnx.State)


def _to_savable(tree: object) -> Any:
    """Replace every ``nnx.State`` in ``tree`` by its pure dict (plain, Orbax-friendly)."""
    return jax.tree.map(
        lambda x: nnx.to_pure_dict(x) if isinstance(x, nnx.State) else x, tree, is_leaf=_is_state
    )


def _from_savable(template: object, restored: object) -> Any:
    """Rebuild the ``nnx.State`` entries of ``template`` from the pure dicts in ``restored``."""

    def rebuild(t: object, r: object) -> object:
        if isinstance(t, nnx.State) and isinstance(r, dict):
            state = jax.tree.map(lambda x: x, t)
            nnx.replace_by_pure_dict(state, r)
            return state
        return r

    return jax.tree.map(rebuild, template, restored, is_leaf=_is_state)


def _abstract(tree: object) -> Any:
    """Shape/dtype/sharding placeholders for the arrays of ``tree`` (other leaves kept)."""
    return jax.tree.map(
        lambda x: (
            _shape_dtype_struct(x.shape, x.dtype, sharding=x.sharding)
            if isinstance(x, jax.Array)
            else x
        ),
        tree,
    )


def _is_array_meta(x: object) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _abstract_from_metadata(metadata: object) -> Any:
    """Restore placeholders for saved tree metadata.

    Arrays are restored whole on this process's first local device
    (``jax.local_devices()[0]``, JAX's default device): in a multi-process job every
    process gets its own fully addressable copy. Python scalars (saved from Python
    ints and floats) are restored as Python scalars.
    """
    tree = getattr(metadata, "tree", metadata)
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def placeholder(m: Any) -> Any:
        if not _is_array_meta(m):
            return m
        if type(m).__name__ == "ScalarMetadata":
            return 0 if np.issubdtype(m.dtype, np.integer) else 0.0
        return _shape_dtype_struct(m.shape, m.dtype, sharding=sharding)

    return jax.tree.map(placeholder, tree, is_leaf=_is_array_meta)


def _with_shardings(abstract: object, template: object) -> Any:
    """``abstract`` (placeholders keyed as saved) with the shardings of ``template``'s arrays.

    ``template`` is a pure dict of the target (keys matched by their string form, as
    Orbax stores them). Placeholders whose template array has the same shape and
    dtype take its sharding, so the restored arrays are laid out like the target's
    (global arrays in a multi-process job); the others are left as they are (a
    mismatch is reported after the restore, by :func:`_match_keys`).
    """
    if isinstance(abstract, Mapping):
        if not isinstance(template, Mapping):
            return abstract
        by_name = {str(key): value for key, value in template.items()}
        return {
            key: _with_shardings(value, by_name[str(key)]) if str(key) in by_name else value
            for key, value in abstract.items()
        }
    if (
        isinstance(abstract, jax.ShapeDtypeStruct)
        and isinstance(template, jax.Array)
        and abstract.shape == template.shape
        and abstract.dtype == template.dtype
    ):
        return _shape_dtype_struct(abstract.shape, abstract.dtype, sharding=template.sharding)
    return abstract


def _match_keys(template: object, restored: object, path: str) -> object:
    """Re-key ``restored`` (string keys, as Orbax stores them) like the pure-dict ``template``.

    Raises:
        ValueError: If a key is missing or an array's shape or dtype differs.
    """
    if isinstance(template, Mapping):
        if not isinstance(restored, Mapping):
            raise ValueError(f"checkpoint has a leaf at {path or '<root>'}, the model a subtree")
        out: dict[object, object] = {}
        for key, sub in template.items():
            if key in restored:
                value = restored[key]
            elif str(key) in restored:
                value = restored[str(key)]
            else:
                raise ValueError(f"checkpoint lacks model entry {path}/{key}")
            out[key] = _match_keys(sub, value, f"{path}/{key}")
        return out
    shape, dtype = getattr(template, "shape", None), getattr(template, "dtype", None)
    if shape is not None and (
        getattr(restored, "shape", None) != shape or getattr(restored, "dtype", None) != dtype
    ):
        raise ValueError(
            f"checkpoint entry {path} has shape {getattr(restored, 'shape', None)} and dtype "
            f"{getattr(restored, 'dtype', None)}; the model expects {shape} and {dtype}"
        )
    return restored


def _handlers(extra: tuple[str, ...] = ()) -> dict[str, ocp.CheckpointHandler]:
    handlers: dict[str, ocp.CheckpointHandler] = {
        STATE_ITEM: ocp.StandardCheckpointHandler(),
        META_ITEM: ocp.JsonCheckpointHandler(),
    }
    for name in extra:
        handlers[name] = ocp.JsonCheckpointHandler()
    return handlers


def _is_ours(path: Path) -> bool:
    return (path / MARKER_FILE).is_file()


_DIRECTORY_OK: Final = 0
_DIRECTORY_IS_FILE: Final = 1
_DIRECTORY_FOREIGN: Final = 2
_DIRECTORY_OS_ERROR: Final = 3


def _check_and_mark(path: Path) -> int:
    """Create ``path`` and its marker unless it is someone else's; return a ``_DIRECTORY_*`` code.

    The marker is written to a temporary file and renamed into place, so a reader
    never sees a partial marker.
    """
    if path.exists():
        if not path.is_dir():
            return _DIRECTORY_IS_FILE
        if not _is_ours(path) and any(path.iterdir()):
            return _DIRECTORY_FOREIGN
    path.mkdir(parents=True, exist_ok=True)
    marker = path / MARKER_FILE
    if not marker.exists():
        partial = path / f".{MARKER_FILE}.{os.getpid()}.tmp"
        partial.write_text(json.dumps({"format": CHECKPOINT_FORMAT}) + "\n")
        partial.replace(marker)
    return _DIRECTORY_OK


def _gather(payload: bytes) -> list[bytes]:
    """Every process's ``payload`` (all of one length), by process index.

    A collective: in a multi-process job every process must call it. In a single
    process it returns ``[payload]`` without touching a device.
    """
    if jax.process_count() == 1:
        return [payload]
    rows = multihost_utils.process_allgather(np.frombuffer(payload, dtype=np.uint8))
    return [np.asarray(row, dtype=np.uint8).tobytes() for row in np.asarray(rows)]


_PLAN: Final = struct.Struct("<??q?d")
"""A process's save plan, as gathered: failed, due, step, has score, score."""


def _prepare_directory(path: Path) -> None:
    """Create ``path`` (and its marker) unless it is someone else's non-empty directory.

    In a multi-process job only process 0 checks and writes; the other processes wait
    for its verdict (a collective, so every process must call this), so no process
    can see the directory half-made, and every process raises the same error.

    Raises:
        FileExistsError: If ``path`` is a file, or a non-empty directory without marker.
        OSError: If process 0 could not create the directory or its marker.
    """
    primary = jax.process_index() == 0
    code, failure = _DIRECTORY_OK, None
    if primary:
        try:
            code = _check_and_mark(path)
        except OSError as error:
            code, failure = _DIRECTORY_OS_ERROR, error
    code = _gather(struct.pack("<b", code))[0][0]
    if code == _DIRECTORY_IS_FILE:
        raise FileExistsError(f"checkpoint dirpath {str(path)!r} exists and is a file")
    if code == _DIRECTORY_FOREIGN:
        raise FileExistsError(
            f"checkpoint dirpath {str(path)!r} is not empty and was not created by "
            f"ModelCheckpoint (it has no {MARKER_FILE}); refusing to write into it. "
            "Choose a new or empty directory."
        )
    if code == _DIRECTORY_OS_ERROR:
        if failure is not None:
            raise failure
        raise OSError(f"process 0 could not create the checkpoint dirpath {str(path)!r}")


# ----------------------------------------------------------------------- retention


def _rank(score: float, mode: Mode) -> float:
    """Lower is better: the score (``"min"``) or its negation (``"max"``); NaN ranks worst."""
    if math.isnan(score):
        return math.inf
    return score if mode == "min" else -score


class _BestKAndLast(ocm.PreservationPolicy):
    """Orbax preservation policy: the best ``k`` by ``monitor`` (all if ``None``), plus the last.

    Checkpoints without the metric are kept only as the last one. Ties keep the earlier
    checkpoint.
    """

    def __init__(self, monitor: str, mode: Mode, k: int | None, *, keep_last: bool) -> None:
        self.monitor = monitor
        self.mode: Mode = mode
        self.k = k
        self.keep_last = keep_last

    def should_preserve(
        self, checkpoints: Sequence[ocm.PolicyCheckpointInfo], *, context: object
    ) -> Sequence[bool]:
        keep = [False] * len(checkpoints)
        ranked: list[tuple[float, int, int]] = []
        for index, info in enumerate(checkpoints):
            metrics = info.metrics
            if isinstance(metrics, Mapping) and self.monitor in metrics:
                score = float(metrics[self.monitor])
                ranked.append((_rank(score, self.mode), info.step, index))
        ranked.sort()
        for _, _, index in ranked if self.k is None else ranked[: self.k]:
            keep[index] = True
        if self.keep_last and checkpoints:
            last = max(range(len(checkpoints)), key=lambda i: checkpoints[i].step)
            keep[last] = True
        return keep


# ------------------------------------------------------------------------ callback


class ModelCheckpoint(BaseCallback):
    """Save the training state at epoch ends with Orbax, keeping the best ``save_top_k``.

    Every ``every_n_epochs`` epochs, at ``on_epoch_end``, the state is saved as the
    Orbax step named by the global step (see the module docstring for the layout).
    Retention is Orbax's: checkpoints are ranked by ``monitor`` (``best_fn``; NaN ranks
    worst) and the best ``save_top_k`` are kept, plus the latest if ``save_last``. With
    ``monitor=None`` the ``save_top_k`` most recent are kept. Saves are atomic (an
    interrupted save leaves no checkpoint behind) and, with ``async_save``, written in
    the background; ``on_train_end`` waits for them. Orbax only ever deletes
    checkpoints of this directory; a directory this callback did not create is never
    written into (``FileExistsError`` at ``on_train_begin``).

    Register it after the stateful callbacks (``EarlyStopping``, ``History``,
    ``CSVLogger``): their state is saved with the model, as of its own
    ``on_epoch_end``. A stateful callback registered after it gets a
    :class:`CheckpointOrderWarning` at ``on_train_begin``.

    A missing ``monitor`` key warns once (``strict=True`` raises); that epoch is then
    saved only if ``save_last``.

    If ``on_epoch_end`` is called without a preceding ``on_train_begin`` (as in the
    specification's ``CallbackList`` example), the directory is set up then, and saves
    are synchronous, since no ``on_train_end`` will wait for them.

    In a multi-process JAX job (after ``jax.distributed.initialize``) the callback
    must run on every process: its ``process_scope`` is ``"all"`` (inherited from
    :class:`BaseCallback`; do not set it to ``"main"``), because Orbax's
    ``CheckpointManager`` creation, ``save``, ``wait_until_finished`` and ``close``
    are collective. Each process writes the shards of the global arrays it holds;
    Orbax's primary process (0) writes the JSON items and the scores, and applies
    retention (deletes) once. Process 0 alone checks the directory and writes the
    marker; the others wait for its verdict, so they all raise the same
    ``FileExistsError``. At every ``on_epoch_end`` the processes compare, in one
    small collective, whether they save, the step and the monitored score: a
    trainer must give every process the same ``step`` and epoch logs (global
    means). If they differ, or the hook fails on some process, every process raises
    (``RuntimeError`` on the others) instead of waiting forever in the save.

    Args:
        config: The configuration; the defaults of :class:`CheckpointConfig` if omitted.
    """

    __slots__ = (
        "_directory",
        "_kept",
        "_lazy",
        "_lookup",
        "_manager",
        "_scores",
        "_steps_seen",
        "config",
    )

    def __init__(self, config: CheckpointConfig | None = None, /) -> None:
        if config is None:
            config = CheckpointConfig()
        if not isinstance(config, CheckpointConfig):
            raise TypeError(
                f"ModelCheckpoint expects a CheckpointConfig, got {type(config).__qualname__}"
            )
        self.config = config
        self._lookup = (
            None
            if config.monitor is None
            else MonitorLookup("ModelCheckpoint", config.monitor, strict=config.strict)
        )
        self._manager: ocp.CheckpointManager | None = None
        self._directory: Path | None = None
        self._scores: dict[int, float] = {}
        self._steps_seen = 0
        self._lazy = False
        self._kept: tuple[int, ...] = ()

    def __repr__(self) -> str:
        """A readable representation with the config."""
        return f"ModelCheckpoint({self.config!r})"

    # ---------------------------------------------------------------- properties

    @property
    def directory(self) -> Path | None:
        """The resolved checkpoint directory, once set up (at ``on_train_begin``)."""
        return self._directory

    @property
    def saved_checkpoint_steps(self) -> tuple[int, ...]:
        """The steps of the checkpoints on disk (or being written), ascending."""
        if self._manager is None:
            return self._kept
        return tuple(sorted(self._manager.all_steps()))

    @property
    def best_checkpoint_step(self) -> int | None:
        """The step of the best kept checkpoint by ``monitor``, or ``None``.

        ``None`` without ``monitor`` or before a checkpoint with a score was saved.
        Checkpoints kept from earlier ``fit`` calls of this instance count too.
        """
        kept = set(self.saved_checkpoint_steps)
        ranked = [
            (_rank(score, self.config.mode), step)
            for step, score in self._scores.items()
            if step in kept
        ]
        return min(ranked)[1] if ranked else None

    def wait_until_finished(self) -> None:
        """Block until every pending asynchronous save is on disk."""
        if self._manager is not None:
            self._manager.wait_until_finished()

    # ---------------------------------------------------------------- extension

    def json_items(self, trainer: TrainerLike, /) -> dict[str, Any]:
        """Further JSON items to save with each checkpoint, by item name.

        Returns an empty dict; subclasses override it. The stateful callbacks' states
        are saved as the ``"callbacks"`` item without it (an item returned here under
        that name replaces them). :func:`restore_checkpoint` returns all JSON items in
        :attr:`RestoredCheckpoint.extra`.

        Args:
            trainer: The trainer being checkpointed.

        Returns:
            A mapping from item name (not ``"state"`` or ``"meta"``) to a
            JSON-compatible value.
        """
        return {}

    @staticmethod
    def _callback_items(trainer: TrainerLike) -> dict[str, Any]:
        """``{"callbacks": {state_key: state}}`` for a trainer exposing its callbacks."""
        if not isinstance(trainer, CallbackHost):
            return {}
        found = stateful_callbacks(trainer.callbacks)
        if not found:
            return {}
        return {CALLBACKS_ITEM: {key: cb.state_dict() for key, cb in found.items()}}

    # ------------------------------------------------------------------- set-up

    def _policy(self) -> ocm.PreservationPolicy | None:
        """The Orbax preservation policy, or ``None`` if nothing is ever saved."""
        config = self.config
        k = None if config.save_top_k == -1 else config.save_top_k
        if config.monitor is None:
            if k == 0:
                return ocm.LatestN(n=1) if config.save_last else None
            return ocm.LatestN(n=k)
        if k == 0 and not config.save_last:
            return None
        return _BestKAndLast(config.monitor, config.mode, k, keep_last=config.save_last)

    def _setup(self, trainer: TrainerLike) -> None:
        directory = Path(self.config.dirpath).resolve()
        _prepare_directory(directory)
        if self._manager is not None and directory != self._directory:
            self._manager.close()
            self._manager = None
        self._directory = directory
        policy = self._policy()
        if policy is not None and self._manager is None:
            monitor, mode = self.config.monitor, self.config.mode
            best_fn: Callable[[Any], float] | None = None
            if monitor is not None:
                # Setting best_fn makes Orbax write each checkpoint's metrics to disk
                # (and read them back), so retention and best_checkpoint_step also
                # rank the checkpoints of earlier runs in this directory.
                def best_fn(metrics: Any) -> float:
                    return -_rank(float(metrics[monitor]), mode)

            options = ocp.CheckpointManagerOptions(
                preservation_policy=policy,
                best_fn=best_fn,
                best_mode="max",
                enable_async_checkpointing=self.config.async_save,
                create=True,
                # Remove the temporary directories of saves interrupted by a crash:
                # they are Orbax's own, inside this (marked) directory.
                cleanup_tmp_directories=True,
            )
            self._manager = ocp.CheckpointManager(directory, options=options)
            _await_tmp_cleanup(self._manager)
            if monitor is not None:
                for step in self._manager.all_steps():
                    saved = self._manager.metrics(step)
                    if isinstance(saved, Mapping) and monitor in saved:
                        self._scores[step] = float(saved[monitor])
        if self._manager is not None:
            latest = self._manager.latest_step()
            current = self._current_step(trainer)
            if latest is not None and latest > current:
                raise FileExistsError(
                    f"checkpoint dirpath {str(directory)!r} holds checkpoints up to step "
                    f"{latest}, beyond this run's step {current}: new checkpoints would be "
                    "silently skipped. Resume from it, or choose another dirpath."
                )

    def _current_step(self, trainer: TrainerLike) -> int:
        if isinstance(trainer, TrainerState):
            return int(trainer.step)
        return self._steps_seen

    # -------------------------------------------------------------------- hooks

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Create (or check and reuse) the checkpoint directory and its Orbax manager.

        Raises:
            FileExistsError: If ``dirpath`` is not ours and not empty, or holds later steps.
        """
        if self._lookup is not None:
            self._lookup.reset()
        self._lazy = False
        self._warn_about_order(trainer)
        self._setup(trainer)

    def _warn_about_order(self, trainer: TrainerLike) -> None:
        """Warn if a stateful callback is registered after this one (see the class docs)."""
        if not isinstance(trainer, CallbackHost):
            return
        order = [callback for _, callback in flatten_callbacks(trainer.callbacks)]
        if not any(callback is self for callback in order):
            return
        later = order[next(i for i, cb in enumerate(order) if cb is self) + 1 :]
        late = [cb.state_key for cb in later if isinstance(cb, StatefulCallback)]
        if late:
            warnings.warn(
                f"{late} run after ModelCheckpoint, so each checkpoint would hold their "
                "state from before that epoch's end and a resumed run would differ; "
                "register ModelCheckpoint after them",
                CheckpointOrderWarning,
                stacklevel=2,
            )

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        """Count steps (for trainers that do not expose ``step``); reads no array."""
        self._steps_seen = batch + 1

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Save a checkpoint if this epoch is due and something would keep it.

        Raises:
            KeyError: If ``strict`` and the monitored key is missing.
            TypeError: If the monitored value is not a number.
            RuntimeError: In a multi-process job, if the processes disagree on the
                save, or it failed on another process.
        """
        config = self.config
        plan: tuple[int, float | None] | None = None
        failure: Exception | None = None
        try:
            plan = self._plan(trainer, epoch, logs)
        except Exception as error:
            failure = error
        plan = self._agree(epoch, plan, failure)
        if plan is None:
            return
        manager = self._manager
        assert manager is not None  # _plan returns a plan only with a manager
        step, score = plan
        state = self._state(trainer, step, epoch)
        extra = self._callback_items(trainer) | self.json_items(trainer)
        clash = {STATE_ITEM, META_ITEM} & extra.keys()
        if clash:
            raise ValueError(f"json_items() may not use the reserved item names {sorted(clash)}")
        metrics = {key: v for key, value in logs.items() if (v := to_float(value)) is not None}
        meta = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "epoch": epoch,
            "metrics": metrics,
            "monitor": config.monitor,
            "mode": config.mode,
            "trainer_state": isinstance(trainer, CheckpointableTrainer),
            "items": sorted(extra),
        }
        args: dict[str, ocp.args.CheckpointArgs] = {
            STATE_ITEM: ocp.args.StandardSave(state),
            META_ITEM: ocp.args.JsonSave(meta),
        }
        for name, value in extra.items():
            args[name] = ocp.args.JsonSave(value)
        orbax_metrics = None if config.monitor is None or score is None else {config.monitor: score}
        saved = manager.save(step, args=ocp.args.Composite(**args), metrics=orbax_metrics)
        if not saved:
            raise RuntimeError(f"Orbax declined to save step {step} in {self._directory}")
        if score is not None:
            self._scores[step] = score
        if self._lazy:
            manager.wait_until_finished()

    def _plan(
        self, trainer: TrainerLike, epoch: int, logs: dict[str, Any]
    ) -> tuple[int, float | None] | None:
        """``(step, score)`` of the checkpoint due at this epoch end, or ``None``.

        Sets the directory up first if ``on_train_begin`` did not.

        Raises:
            KeyError: If ``strict`` and the monitored key is missing.
            TypeError: If the monitored value is not a number.
        """
        config = self.config
        if (epoch + 1) % config.every_n_epochs != 0:
            return None
        if self._directory is None:
            self._lazy = True
            self._setup(trainer)
        manager = self._manager
        if manager is None:
            return None
        score: float | None = None
        if self._lookup is not None:
            raw = self._lookup(logs, "on_epoch_end")
            if raw is not None:
                score = to_float(raw)
                if score is None:
                    raise TypeError(
                        f"ModelCheckpoint monitors {config.monitor!r}, whose value {raw!r} "
                        "is not a number"
                    )
            elif not config.save_last:
                return None
        step = self._current_step(trainer)
        if step in manager.all_steps():
            _log.debug("step %d already has a checkpoint in %s", step, self._directory)
            return None
        return step, score

    def _agree(
        self,
        epoch: int,
        plan: tuple[int, float | None] | None,
        failure: Exception | None,
    ) -> tuple[int, float | None] | None:
        """Check that every process of the job plans the same save (a collective).

        Orbax saves are collective, and retention is decided on every process from
        its own scores, so the processes must agree on whether to save, the step and
        the score; otherwise some would wait forever for the others. In a single
        process this only re-raises ``failure``.

        Returns:
            ``plan``, once every process has agreed on it.

        Raises:
            Exception: ``failure``, if this process failed to plan.
            RuntimeError: If another process failed to plan, or the plans differ.
        """
        step, score = plan if plan is not None else (-1, None)
        payload = _PLAN.pack(
            failure is not None, plan is not None, step, score is not None, score or 0.0
        )
        rows = _gather(payload)
        if failure is not None:
            raise failure
        failed = [index for index, row in enumerate(rows) if _PLAN.unpack(row)[0]]
        if failed:
            raise RuntimeError(
                f"ModelCheckpoint failed at on_epoch_end({epoch}) on process(es) {failed} "
                "(see their errors); this process stops with them"
            )
        if any(row != payload for row in rows):
            seen = []
            for index, row in enumerate(rows):
                _, row_due, row_step, has_score, row_score = _PLAN.unpack(row)
                what = f"step {row_step}, score {row_score if has_score else None}"
                seen.append(f"process {index}: {what if row_due else 'no save'}")
            raise RuntimeError(
                f"ModelCheckpoint: the processes of the job disagree at on_epoch_end({epoch}) "
                f"({'; '.join(seen)}). Every process must pass the same step and logs."
            )
        return plan

    def _state(self, trainer: TrainerLike, step: int, epoch: int) -> Any:
        if isinstance(trainer, CheckpointableTrainer):
            return _to_savable(trainer.state_dict())
        state: dict[str, Any] = {
            "model": nnx.to_pure_dict(nnx.state(trainer.model)),
            "step": step,
            "epoch": epoch,
        }
        optimizer = getattr(trainer, "optimizer", None)
        if isinstance(optimizer, nnx.Optimizer):
            state["opt_state"] = nnx.to_pure_dict(nnx.state(optimizer))
        return state

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Wait for pending saves, then release the Orbax manager."""
        manager = self._manager
        if manager is None:
            return
        self._manager = None
        try:
            manager.wait_until_finished()
            self._kept = tuple(sorted(manager.all_steps()))
        finally:
            manager.close()


def _await_tmp_cleanup(manager: ocp.CheckpointManager) -> None:
    """Wait for the removal of interrupted saves that Orbax starts in the background.

    ``CheckpointManager`` starts it in its constructor, and only ``save`` waits for it,
    not ``close``. A run that saves nothing would leave that thread running; at
    interpreter exit it dies with "cannot schedule new futures after shutdown" and a
    logged traceback. Waiting here also means the directory is clean when
    ``on_train_begin`` returns. The method is private in Orbax 0.12, hence the
    ``getattr``: an Orbax without it cleans up synchronously.
    """
    wait = getattr(manager, "_maybe_await_cleanup_tmp_directory", None)
    if callable(wait):
        wait()


# ------------------------------------------------------------------------- restore


def restore_checkpoint(
    directory: str | os.PathLike[str],
    *,
    step: int | None = None,
    target: nnx.Module | TrainerLike | None = None,
) -> RestoredCheckpoint:
    """Read a checkpoint written by :class:`ModelCheckpoint`, optionally into a target.

    Example::

        model = MyModel(rngs=nnx.Rngs(0))            # a fresh model
        restored = restore_checkpoint("checkpoints", target=model)
        print(restored.step, restored.epoch, restored.metrics)

    Args:
        directory: The ``dirpath`` the checkpoints were written to, or one step's
            directory in it (``dirpath/<step>``, meaning that step).
        step: The checkpoint's step; the latest if ``None`` (or the step directory's).
        target: Where to load it. A :class:`CheckpointableTrainer` gets the whole state
            through ``load_state_dict`` (its ``state_dict()`` gives the structure, dtypes
            and shardings). An ``nnx.Module`` (or a trainer exposing only ``model``) gets
            the ``"model"`` entry through ``nnx.update``, with the shardings of the
            module's own arrays. ``None`` loads nothing and only returns the state,
            each array whole on this process's first local device
            (``jax.local_devices()[0]``, JAX's default device).

    In a multi-process job every process must call this (Orbax restores are
    collective), with a target of the same structure. With a target whose arrays
    are global (on a mesh over all processes' devices), each process reads the
    shards its devices hold and the result is global arrays with the target's
    shardings, replicated or sharded. With ``target=None`` each process gets its own
    fully addressable copy of every array (for inspection or evaluation, not for
    resuming a sharded run).

    Returns:
        The step, epoch, metrics, state and extra items of the checkpoint.

    Raises:
        FileNotFoundError: If ``directory`` holds no checkpoint (or not ``step``).
        ValueError: If ``directory`` is not a ModelCheckpoint directory, or the
            checkpoint does not fit ``target``, or ``step`` contradicts the step
            directory given.
    """
    path = Path(directory).resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory {str(path)!r} does not exist")
    if not _is_ours(path) and path.name.isdigit() and _is_ours(path.parent):
        if step is not None and step != int(path.name):
            raise ValueError(
                f"step={step} contradicts the step directory {str(path)!r}; pass one of them"
            )
        path, step = path.parent, int(path.name)
    if not _is_ours(path):
        raise ValueError(f"{str(path)!r} is not a ModelCheckpoint directory (no {MARKER_FILE})")
    manager = ocp.CheckpointManager(
        path,
        options=ocp.CheckpointManagerOptions(create=False, enable_async_checkpointing=False),
        item_handlers=_handlers(),
    )
    try:
        steps = tuple(sorted(manager.all_steps()))
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {str(path)!r}")
        if step is None:
            step = steps[-1]
        elif step not in steps:
            raise FileNotFoundError(
                f"no checkpoint for step {step} in {str(path)!r}; steps there: {list(steps)}"
            )
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            META_ITEM
        ]
    finally:
        manager.close()
    extra_names = tuple(str(name) for name in meta.get("items", ()))
    manager = ocp.CheckpointManager(
        path,
        options=ocp.CheckpointManagerOptions(create=False, enable_async_checkpointing=False),
        item_handlers=_handlers(extra_names),
    )
    try:
        template: Any = None
        abstract = _abstract_from_metadata(manager.item_metadata(step)[STATE_ITEM])
        if isinstance(target, CheckpointableTrainer):
            # The target's own state gives structure, dtypes and shardings for the
            # entries it has; entries only the checkpoint has (e.g. a data position
            # saved by a trainer that has not run yet) come from the saved metadata.
            template = target.state_dict()
            savable = _to_savable(template)
            if isinstance(abstract, dict) and isinstance(savable, dict):
                abstract = {
                    key: _abstract(savable[key]) if key in savable else value
                    for key, value in abstract.items()
                }
        elif target is not None and isinstance(abstract, dict) and "model" in abstract:
            # The target model's own arrays give the shardings (global ones in a
            # multi-process job); shapes and dtypes are checked after the restore.
            model = target if isinstance(target, nnx.Module) else target.model
            pure_model = nnx.to_pure_dict(nnx.state(model))
            abstract = {**abstract, "model": _with_shardings(abstract["model"], pure_model)}

        items: dict[str, ocp.args.CheckpointArgs] = {STATE_ITEM: ocp.args.StandardRestore(abstract)}
        for name in extra_names:
            items[name] = ocp.args.JsonRestore()
        restored = manager.restore(step, args=ocp.args.Composite(**items))
    finally:
        manager.close()
    state: dict[str, Any] = restored[STATE_ITEM]
    if isinstance(target, CheckpointableTrainer):
        if isinstance(template, dict):
            state = {
                key: _from_savable(template[key], value) if key in template else value
                for key, value in state.items()
            }
        else:
            state = _from_savable(template, state)
        target.load_state_dict(state)
    elif target is not None:
        model = target if isinstance(target, nnx.Module) else target.model
        model_state = nnx.state(model)
        if "model" not in state:
            raise ValueError(f"checkpoint step {step} in {str(path)!r} has no 'model' entry")
        pure = _match_keys(nnx.to_pure_dict(model_state), state["model"], "model")
        assert isinstance(pure, dict)  # _match_keys returns a dict for a dict template
        nnx.replace_by_pure_dict(model_state, pure)
        nnx.update(model, model_state)
    return RestoredCheckpoint(
        directory=path,
        step=int(step),
        epoch=int(meta["epoch"]),
        metrics={str(k): float(v) for k, v in meta.get("metrics", {}).items()},
        state=state,
        extra={name: restored[name] for name in extra_names},
    )
