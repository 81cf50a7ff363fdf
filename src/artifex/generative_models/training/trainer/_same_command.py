"""Same-command resume: ``fit(..., resume=True)`` continues the run of its ``ModelCheckpoint``.

Rerunning the script that trained (after a SIGTERM, a SIGKILL or a crash) continues
from the latest checkpoint of the first registered ``ModelCheckpoint``, with
``epochs`` as the run's total; a run that completed or was stopped early is not
trained again (``_checkpointing._ended``). The rules are in docs/checkpoints.md,
"Same-command resume".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from artifex.generative_models.training._checkpointing._directory import is_checkpoint_directory
from artifex.generative_models.training._checkpointing._ended import RunEnd, read_end
from artifex.generative_models.training._checkpointing._runs import claimed_run
from artifex.generative_models.training._checkpointing._step_dirs import complete_steps
from artifex.generative_models.training.callbacks._path_claims import run_directory
from artifex.generative_models.training.callbacks.base import TrainingCallback
from artifex.generative_models.training.callbacks.protocols import TrainerState

__all__ = ["SameCommand"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SameCommand:
    """The run a ``fit(..., resume=True)`` continues: its ``ModelCheckpoint``'s directory."""

    directory: Path

    @classmethod
    def of(
        cls, callbacks: Iterable[TrainingCallback], resume_from: str | os.PathLike[str] | None
    ) -> SameCommand:
        """The first ``ModelCheckpoint`` among ``callbacks`` (dispatch order) names the run.

        Raises:
            ValueError: If ``resume_from`` is given too, or there is no ``ModelCheckpoint``.
        """
        if resume_from is not None:
            raise ValueError(
                "fit got both resume=True and resume_from; pass one: resume=True continues "
                "from the latest checkpoint of the run's ModelCheckpoint, resume_from from "
                "the checkpoint it names"
            )
        directory = run_directory(callbacks)
        if directory is not None:
            return cls(directory)
        raise ValueError(
            "fit(resume=True) continues from the checkpoints of a ModelCheckpoint, and "
            "this trainer has none among its callbacks; register one (the first one's "
            "dirpath is where the run resumes from), or drop resume=True"
        )

    def _claim(self, trainer: TrainerState) -> str | None:
        claim = claimed_run((trainer, trainer.model), self.directory)
        return None if claim is None else claim.run or ""

    def source(self, trainer: TrainerState) -> Path | None:
        """The directory to restore from now, or ``None`` (start fresh, or train on).

        A trainer that has not trained (step 0) and continues no run of the directory
        restores its latest checkpoint. One that trained in this process keeps its
        state: it continues the directory's run if it is that run's (else
        ``ModelCheckpoint`` refuses the directory, as another run's).
        """
        if not is_checkpoint_directory(self.directory) or not complete_steps(self.directory):
            return None  # empty, missing or without a checkpoint yet: a fresh start
        if trainer.step != 0 or self._claim(trainer) is not None:
            return None
        return self.directory

    def ended(self, trainer: TrainerState, epochs: int) -> RunEnd | None:
        """The recorded end of the trainer's run, if it ended there: nothing to train.

        A completed run asked for more epochs in all than it ran trains on.
        """
        end = read_end(self.directory)
        if (
            end is None
            or self._claim(trainer) != end.run
            or trainer.step > end.step
            or not end.holds(self.directory)
        ):
            return None
        if end.status == "completed" and trainer.epoch < epochs:
            return None
        _log.warning(
            "fit(resume=True): the run in %s %s; nothing is trained (the trainer holds its "
            "checkpoint of step %d)",
            self.directory,
            end.describe(),
            trainer.step,
        )
        return end
