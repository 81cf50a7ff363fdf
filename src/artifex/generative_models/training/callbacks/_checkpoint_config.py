"""The config of ``ModelCheckpoint`` and its keyword form (re-exported by ``model_checkpoint``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypedDict

from artifex.generative_models.training._checks import (
    check_bool,
    check_name,
    check_path,
    set_int,
)
from artifex.generative_models.training.callbacks._monitor import Mode, set_mode

__all__ = ["CheckpointConfig", "CheckpointKwargs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointConfig:
    """Configuration of [`ModelCheckpoint`][].

    Attributes:
        dirpath: The checkpoint directory, resolved against the working directory at
            ``on_train_begin`` (when it is created). It must be new, empty, or one this
            callback created (it holds ``artifex_checkpoints.json``), writable, not inside
            another checkpoint directory, and free of what TensorStore cannot read back
            (a backslash, a bracket, a byte that is not UTF-8).
        monitor: The ``on_epoch_end`` log key that ranks checkpoints, or ``None`` to
            keep the most recent ones.
        mode: ``"min"`` if lower ``monitor`` values are better, ``"max"`` if higher ones
            are, or ``"auto"`` (the default): inferred from ``monitor``'s name, ``"max"``
            for an accuracy, ``"min"`` for a loss or an error (the Built-in callbacks
            page lists the names); any other name is refused with a ``ValueError``. A
            built config holds the resolved ``"min"`` or ``"max"`` (``"min"``, unused,
            without a ``monitor``): ``dataclasses.replace`` with another ``monitor``
            keeps it, unless you pass ``mode="auto"`` again.
        save_top_k: How many checkpoints to keep: the best by ``monitor`` (or the most
            recent if ``monitor`` is ``None``); ``-1`` keeps all, ``0`` none (but see
            ``save_last``).
        every_n_epochs: Save at the end of every n-th epoch (``>= 1``), or ``None``
            to save at epoch ends only where a step save falls (``every_n_steps``).
        every_n_steps: Also save after every n-th global step (``>= 1``), inside
            epochs: a mid-epoch checkpoint, from which ``fit(resume_from=...)``
            continues inside the epoch. Under ``steps_per_execution=k`` the save falls
            on the first chunk end at or after each multiple of n; a due save that
            falls on an epoch's last batch is that epoch's end checkpoint (one
            checkpoint, with the epoch's logs). ``None`` (the default): epoch ends only.
        save_last: Also keep the most recent checkpoint, whatever its score, and save
            one when the monitored key is missing. Resuming needs it.
        async_save: Write checkpoints in the background (Orbax async checkpointing);
            ``on_train_end`` waits for them.
        strict: Raise ``KeyError`` when ``monitor`` is missing from the epoch logs,
            instead of warning once.
    """

    dirpath: str | os.PathLike[str] = "checkpoints"
    monitor: str | None = None
    mode: Mode = "auto"
    save_top_k: int = 3
    every_n_epochs: int | None = 1
    every_n_steps: int | None = None
    save_last: bool = True
    async_save: bool = True
    strict: bool = False

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If a field has the wrong type.
            ValueError: If a field has a bad value.
        """
        check_path("dirpath", self.dirpath)
        check_name("monitor", self.monitor, optional=True)
        # Without a monitor there is nothing to rank: "auto" is "min", as before.
        set_mode(self, "CheckpointConfig", "loss" if self.monitor is None else self.monitor)
        set_int(self, "save_top_k", minimum=-1)
        for name in ("every_n_epochs", "every_n_steps"):
            if getattr(self, name) is not None:
                set_int(self, name, minimum=1)
        if self.every_n_epochs is None and self.every_n_steps is None:
            raise ValueError(
                "every_n_epochs and every_n_steps are both None, so nothing would ever be "
                "saved; set at least one of them (e.g. every_n_epochs=1)"
            )
        for name in ("save_last", "async_save", "strict"):
            check_bool(name, getattr(self, name))


class CheckpointKwargs(TypedDict, total=False):
    """The fields of [`CheckpointConfig`][], as keyword arguments (each optional)."""

    dirpath: str | os.PathLike[str]
    monitor: str | None
    mode: Mode
    save_top_k: int
    every_n_epochs: int | None
    every_n_steps: int | None
    save_last: bool
    async_save: bool
    strict: bool
