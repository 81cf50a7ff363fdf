"""The harness protocols: how the conformance suite builds and runs your trainer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from typing_extensions import Protocol, runtime_checkable

from artifex.generative_models.training.callbacks.base import TrainerLike, TrainingCallback

__all__ = [
    "FailingHarness",
    "StreamingHarness",
    "T",
    "TrainerHarness",
    "ValidatingHarness",
    "load_harness",
    "multi_process_capable",
]

T = TypeVar("T", bound=TrainerLike)


@runtime_checkable
class TrainerHarness(Protocol[T]):
    """How the conformance suite builds and runs your trainer.

    Implement these two methods (any parameter names will do: the suite passes the
    arguments positionally). A harness that can run in a multi-process JAX job says so
    with a ``multi_process = True`` attribute (see ``check_trainer(..., processes=2)``);
    the suite reads it with ``getattr``, so it is no part of the protocol.
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


def load_harness(target: str) -> object:
    """Resolve ``target`` and, unless it already is a harness, call it for one.

    Anything the target's own code raises while it is imported or called, a
    ``SystemExit`` or ``KeyboardInterrupt`` included, is a failure to get a harness.

    Args:
        target: ``'pkg.module:HarnessFactory'``: a class or zero-argument callable
            returning a harness, or a harness object.

    Returns:
        What the target gave (the caller checks that it is a harness).

    Raises:
        TypeError: If resolving or calling the target raised, naming the target and the
            exception, or the target is neither a harness nor callable.
        ImportError: If the module cannot be found.
        AttributeError: If the module has no such attribute.
        ValueError: If ``target`` is not ``'pkg.module:HarnessFactory'``.
    """
    from artifex.generative_models.training.conformance.static import resolve_target

    try:
        _, _, found = resolve_target(target)
    except (ImportError, AttributeError, ValueError):
        raise  # their messages name the module, the attribute or the expected form
    except BaseException as error:  # the target module's own code ran
        raise TypeError(f"importing {target} raised {error!r}") from error
    if not isinstance(found, type) and isinstance(found, TrainerHarness):
        return found
    if not callable(found):
        raise TypeError(f"{target} is neither a harness nor a factory of one")
    try:
        return found()
    except BaseException as error:  # a factory's SystemExit(0) is no harness either
        raise TypeError(f"calling {target}() to get the harness raised {error!r}") from error


def multi_process_capable(harness: object) -> bool:
    """Whether ``harness`` declares that it can run in a multi-process JAX job.

    The declaration is a ``multi_process`` attribute that is ``True`` (a class
    attribute will do); a harness without it cannot, and the multi-process mode reports
    it "not applicable" rather than starting it.

    Args:
        harness: The harness.

    Returns:
        ``True`` only if ``harness.multi_process is True``.
    """
    return getattr(harness, "multi_process", False) is True


@runtime_checkable
class StreamingHarness(TrainerHarness[T], Protocol[T]):
    """A harness whose trainer takes ``steps_per_epoch`` (enables ``steps_per_epoch``)."""

    def fit_stream(self, trainer: T, epochs: int, steps_per_epoch: int, /) -> None:
        """Like [`TrainerHarness.fit`][], on endless data cut into epochs of ``steps_per_epoch``.

        Args:
            trainer: A trainer that ``build`` returned.
            epochs: How many epochs to run.
            steps_per_epoch: The batches of each epoch (the trainer's option of that
                name, as ``Trainer.fit(steps_per_epoch=...)``).
        """
        ...
