"""The specification's Usage example annotates ``logs: dict``: basedpyright's default mode.

basedpyright runs its ``recommended`` mode when a project has no configuration (this folder's
``pyrightconfig.json`` only turns ignores into pins). It wants type arguments, as
``mypy --strict`` (and zuban) do; pyright's standard mode, pyrefly and ty accept a bare
``dict``. The main pyright runs leave this folder out (``../pyrightconfig.json``).
"""

from typing_extensions import override

from artifex.generative_models.training.callbacks import BaseCallback, TrainerLike


class Usage(BaseCallback):
    @override
    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict, /) -> None:  # type: ignore[type-arg]  # pyright: ignore[reportMissingTypeArgument, reportUnknownParameterType]
        print(trainer, epoch, logs)  # pyright: ignore[reportUnknownArgumentType]
