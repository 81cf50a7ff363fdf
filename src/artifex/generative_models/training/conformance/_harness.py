"""The harness protocols: how the conformance suite builds and runs your trainer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from typing_extensions import Protocol, runtime_checkable

from artifex.generative_models.training.callbacks.base import TrainerLike, TrainingCallback

__all__ = ["FailingHarness", "T", "TrainerHarness", "ValidatingHarness"]

T = TypeVar("T", bound=TrainerLike)


@runtime_checkable
class TrainerHarness(Protocol[T]):
    """How the conformance suite builds and runs your trainer.

    Implement these two methods (any parameter names will do: the suite passes the
    arguments positionally).
    """

    def build(self, callbacks: Sequence[TrainingCallback], /) -> T:
        """Construct a fresh trainer (and model) that dispatches to ``callbacks``.

        Args:
            callbacks: The suite's injected callbacks, in dispatch order. Register
                them all, in this order, and no others that stop or fail the run.

        Returns:
            The trainer: a [`TrainerLike`][] whose ``model`` is an ``nnx.Module``.
        """
        ...

    def fit(self, trainer: T, epochs: int, /) -> None:
        """Run ``trainer`` for ``epochs`` epochs on a small data set of your choosing.

        The data must give the same number (at least one) of batches every epoch.
        Exceptions must propagate.

        Args:
            trainer: A trainer that [`build`][] returned.
            epochs: How many epochs to run (may be 0).
        """
        ...


@runtime_checkable
class ValidatingHarness(TrainerHarness[T], Protocol[T]):
    """A harness that can also run with validation data (enables the validation checks)."""

    def fit_validated(self, trainer: T, epochs: int, /) -> None:
        """Like [`TrainerHarness.fit`][], with validation data: one pass per epoch.

        Args:
            trainer: A trainer that ``build`` returned.
            epochs: How many epochs to run (may be 0).
        """
        ...


@runtime_checkable
class FailingHarness(TrainerHarness[T], Protocol[T]):
    """A harness that can make the data (or the step) fail (enables ``data_raises``)."""

    def fit_failing(self, trainer: T, epochs: int, error: BaseException, at_batch: int, /) -> None:
        """Like [`TrainerHarness.fit`][], but batch ``at_batch`` raises ``error``.

        Wrap the training data in [`FailingData`][] (or make the step raise) so
        that requesting batch ``at_batch`` (0-based, counted across the epochs of this
        call) raises the very object ``error``. Let it propagate.

        Args:
            trainer: A trainer that ``build`` returned.
            epochs: How many epochs to run.
            error: The exception to raise.
            at_batch: Which batch raises.
        """
        ...
