"""Log metrics to a Weights & Biases run (with the ``wandb`` package)."""

from __future__ import annotations

import importlib
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, TypeAlias, TypedDict, Unpack, overload

from artifex.generative_models.training._checks import (
    check_name,
    check_path,
    set_int,
)
from artifex.generative_models.training.callbacks._tracker_checks import check_wandb_dir
from artifex.generative_models.training.callbacks._tracking import (
    TrackerCallback,
    missing_extra,
    read_only_mapping,
    run_failed,
)
from artifex.generative_models.training.callbacks.base import TrainerLike

if TYPE_CHECKING:
    from wandb import Run

__all__ = ["WandbConfig", "WandbKwargs", "WandbLogger", "WandbMode"]

WandbMode: TypeAlias = Literal["online", "offline", "disabled"]
"""Where a run goes: the W&B server, local files only (``wandb sync`` uploads them later),
or nowhere."""

_MODES: tuple[WandbMode, ...] = ("online", "offline", "disabled")


def _check_tags(value: object) -> tuple[str, ...]:
    """The tags as a tuple of non-empty ``str``."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(
            f"tags must be a sequence of str (not one str), got {type(value).__qualname__} "
            f"{value!r}"
        )
    bad = [tag for tag in value if not isinstance(tag, str) or not tag]
    if bad:
        raise ValueError(f"tags must be non-empty str, got {bad!r}")
    return tuple(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class WandbConfig:
    """Configuration of [`WandbLogger`][]; the fields go to ``wandb.init``.

    Attributes:
        project: The W&B project (``None``: wandb's default, ``WANDB_PROJECT`` or
            ``"uncategorized"``).
        entity: The W&B user or team (``None``: your default entity).
        name: The run's display name (``None``: wandb makes one up).
        tags: Tags of the run.
        config: The hyperparameters to record with the run (``run.config``), copied
            into a read-only mapping.
        mode: ``"online"``, ``"offline"`` or ``"disabled"``; ``None`` leaves it to
            wandb (``WANDB_MODE``, else online).
        dir: The directory under which wandb writes its ``wandb/`` folder (``None``:
            ``WANDB_DIR`` or the working directory); created at ``on_train_begin``.
        log_every_n_steps: Also log the batch logs every n global steps, as
            ``batch/<key>``, in one device fetch each time. The default ``0`` logs epoch
            metrics only and never reads a batch log.
    """

    project: str | None = None
    entity: str | None = None
    name: str | None = None
    tags: Sequence[str] = ()
    config: Mapping[str, object] = field(default_factory=dict, hash=False)
    mode: WandbMode | None = None
    dir: str | os.PathLike[str] | None = None
    log_every_n_steps: int = 0

    def __post_init__(self) -> None:
        """Validate the fields; store ``tags`` as a tuple and ``config`` read-only.

        Raises:
            TypeError: If ``tags``, ``config`` or ``log_every_n_steps`` has the wrong type.
            ValueError: If a name is empty, ``mode`` is unknown, or a count is negative.
        """
        for name in ("project", "entity", "name"):
            check_name(name, getattr(self, name), optional=True)
        object.__setattr__(self, "tags", _check_tags(self.tags))
        object.__setattr__(self, "config", read_only_mapping("config", self.config))
        if self.mode is not None and self.mode not in _MODES:
            raise ValueError(f"mode must be None or one of {_MODES}, got {self.mode!r}")
        if self.dir is not None:
            check_path("dir", self.dir)
        set_int(self, "log_every_n_steps", minimum=0)


class WandbKwargs(TypedDict, total=False):
    """The fields of [`WandbConfig`][], as keyword arguments (each optional)."""

    project: str | None
    entity: str | None
    name: str | None
    tags: Sequence[str]
    config: Mapping[str, object]
    mode: WandbMode | None
    dir: str | os.PathLike[str] | None
    log_every_n_steps: int


class WandbLogger(TrackerCallback[WandbConfig]):
    """Log epoch metrics (and optionally batch metrics) to a Weights & Biases run.

    Needs ``wandb`` (``pip install 'artifex-nnx-callbacks[wandb]'``), imported at
    ``on_train_begin``, which starts the run (``wandb.init`` with the config's fields).
    Epoch logs go to the run at the global step (the training steps done, see
    ``TrackerCallback``), with ``epoch``; batch logs only if
    ``log_every_n_steps`` is set. ``on_train_end`` finishes the run, also when the
    fit failed: the run is then marked failed (exit code 1).

    It is a ``StatefulCallback`` (``state_key`` ``"WandbLogger"``): a checkpoint holds
    the run's id, and a fit resumed from it (or a second ``fit`` of this instance)
    calls ``wandb.init(id=..., resume="allow")``, so an online run continues. An
    offline run cannot be resumed (wandb ignores ``resume`` offline): it writes a new
    offline run with the same id, and ``wandb sync`` uploads each.

    Args:
        wandb_config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``wandb_config``, its fields ([`WandbKwargs`][]).
    """

    __slots__ = ("_epochs", "_file", "_run")

    # The config is not named `config`: that is a field of WandbConfig (the run's config),
    # so a keyword, and a TypedDict key may not share a parameter's name.
    @overload
    def __init__(self, wandb_config: WandbConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[WandbKwargs]) -> None: ...
    def __init__(
        self, wandb_config: WandbConfig | None = None, /, **kwargs: Unpack[WandbKwargs]
    ) -> None:
        super().__init__(self._configure(WandbConfig, wandb_config, kwargs).log_every_n_steps)
        self._run: Run | None = None
        self._file: Path | None = None  # an offline run's .wandb file
        self._epochs = 0  # the epoch rows logged to this run

    def preflight(self, trainer: TrainerLike, /) -> None:
        """Refuse the run now if ``on_train_begin`` could not start one; create nothing.

        Raises:
            ImportError: If ``wandb`` is not installed.
            NotADirectoryError: If ``dir`` or a folder above it is a file.
        """
        self._refusals()

    def _refusals(self) -> None:
        try:
            importlib.import_module("wandb")  # only whether it is installed
        except ImportError as exc:
            raise missing_extra("WandbLogger", "wandb", "wandb") from exc
        check_wandb_dir(self.config.dir)

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Start the run, or resume the one whose id the checkpoint holds.

        Runs the checks of [`preflight`][] first, for trainers that do not call it.

        Raises:
            ImportError: If ``wandb`` is not installed.
            NotADirectoryError: As [`preflight`][].
        """
        self._refusals()
        import wandb

        cfg = self.config
        directory = None
        if cfg.dir is not None:
            os.makedirs(cfg.dir, exist_ok=True)
            directory = os.fspath(cfg.dir)
        self._run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            name=cfg.name,
            tags=list(cfg.tags),
            config=dict(cfg.config),
            mode=cfg.mode,
            dir=directory,
            id=self._run_id,
            resume="allow" if self._run_id is not None else None,
        )
        self._run_id = self._run.id
        self._file = Path(self._run.settings.sync_file) if self._run.offline else None
        self._epochs = 0

    def _log(self, values: dict[str, float], step: int, /) -> None:
        if self._run is not None:
            self._run.log(values, step=step)
            self._epochs += "epoch" in values

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """Finish the run: exit code 1 (failed) if the fit failed, else 0.

        Warns (``RuntimeWarning``) if an offline run's file lacks epoch rows logged to
        it: wandb could not write them (a full or failing disk), and does not say so.
        """
        run, self._run = self._run, None
        if run is None:
            return
        run.finish(exit_code=1 if run_failed(trainer) else 0)
        if self._file is not None and self._epochs:
            found = _epoch_rows(self._file, self._epochs)
            if found < self._epochs:
                warnings.warn(
                    f"WandbLogger lost rows: the offline run file {str(self._file)!r} holds "
                    f"at most {found} of the {self._epochs} epoch rows logged to it; wandb "
                    "could not write the others (a full or failing disk?), so neither the "
                    "file nor `wandb sync` has them",
                    RuntimeWarning,
                    stacklevel=2,
                )


WRITE_WAIT_SECONDS: Final = 15.0
"""How long ``on_train_end`` waits for wandb's service to write an offline run's rows."""


def _epoch_rows(path: Path, rows: int) -> int:
    """At most how many epoch rows ``path`` holds (up to ``rows``), after a bounded wait.

    Each epoch row of a ``.wandb`` file holds its key ``epoch`` as raw bytes, and a
    boundary of the file's 32 KiB blocks may split one occurrence: the count of the
    key, plus the blocks, bounds the rows written from above, so fewer than ``rows``
    means rows were lost (a loss at the last row of a block may go unseen).
    ``run.finish`` may return before wandb's service process wrote the file, so a
    healthy disk is waited for (at most ``WRITE_WAIT_SECONDS``; briefly as a rule).
    """
    needle, deadline = b"epoch", time.monotonic() + WRITE_WAIT_SECONDS
    while True:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        found = data.count(needle) + -(-len(data) // _BLOCK)
        if found >= rows or time.monotonic() >= deadline:
            return min(found, rows)
        time.sleep(0.05)


_BLOCK: Final = 32 * 1024  # the block size of wandb's LevelDB-style record log
