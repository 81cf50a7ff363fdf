"""How the learning-rate callbacks reach the optimizer's injected hyperparameters.

Private: shared by ``LearningRateMonitor`` and ``ReduceLROnPlateau``.
"""

from __future__ import annotations

from artifex.generative_models.training.callbacks.base import TrainerLike
from artifex.generative_models.training.callbacks.protocols import HyperparameterTrainer

__all__ = ["injected"]


def injected(
    trainer: TrainerLike, owner: str, name: str
) -> tuple[HyperparameterTrainer, dict[str, float]]:
    """The trainer as a [`HyperparameterTrainer`][] and its hyperparameters' values.

    Args:
        trainer: The trainer a hook received.
        owner: The callback's name, used in messages.
        name: The hyperparameter the callback needs (e.g. ``"learning_rate"``).

    Returns:
        ``(trainer, values)``, the values read in one fetch.

    Raises:
        TypeError: If the trainer does not expose its optimizer's hyperparameters.
        ValueError: If the optimizer has no ``optax.inject_hyperparams`` state (the
            message names the fix), or none named ``name``.
    """
    if not isinstance(trainer, HyperparameterTrainer):
        raise TypeError(
            f"{owner} needs a trainer that exposes its optimizer's hyperparameters (the "
            "HyperparameterTrainer protocol, which the reference Trainer implements); got "
            f"{type(trainer).__qualname__}"
        )
    try:
        values = trainer.hyperparameters()
    except ValueError as error:
        raise ValueError(f"{owner}: {error}") from error
    if name not in values:
        raise ValueError(
            f"{owner} reads the optimizer's {name!r}, which is not among its injected "
            f"hyperparameters {sorted(values)}; pass it to optax.inject_hyperparams"
        )
    return trainer, values
