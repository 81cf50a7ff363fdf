"""The reference Trainer passes the conformance suite with no violation.

Tests may import the trainer; the suite's package never does (test_isolation.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import numpy as np
import optax
import pytest
from examples.minimal_trainer import make_batches, mse
from flax import nnx
from jax.sharding import Mesh

from artifex.generative_models.training.callbacks import TrainingCallback
from artifex.generative_models.training.conformance import (
    EventRecorder,
    FailingData,
    FitPlan,
    ProbeError,
    RaiseAt,
    Trigger,
    check_events,
    check_trainer,
)
from artifex.generative_models.training.trainer import Trainer

_SGD = optax.sgd(0.1)  # one transformation for every trainer: the steps compile once


class ReferenceHarness:
    """Builds the reference Trainer on a linear model; three batches per epoch."""

    multi_process = True  # the Trainer supports multi-process jobs (test_multi_process.py)

    def __init__(self, steps_per_execution: int = 1, *, mesh: bool = False) -> None:
        self.steps_per_execution = steps_per_execution
        self.mesh = Mesh(np.array(jax.devices()[:1]), ("data",)) if mesh else None
        if jax.process_count() > 1:  # the multi-process mode: one mesh over every process
            self.mesh = Mesh(np.array(jax.devices()), ("data",))
        self.train = make_batches(3)
        self.val = make_batches(2, seed=1)

    def build(self, callbacks: Sequence[TrainingCallback]) -> Trainer[nnx.Linear]:
        model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
        return Trainer(
            model,
            _SGD,
            mse,
            callbacks=callbacks,
            steps_per_execution=self.steps_per_execution,
            mesh=self.mesh,
        )

    def fit(self, trainer: Trainer[nnx.Linear], epochs: int) -> None:
        trainer.fit(self.train, epochs=epochs)

    def fit_validated(self, trainer: Trainer[nnx.Linear], epochs: int) -> None:
        trainer.fit(self.train, epochs=epochs, val_data=self.val)

    def fit_failing(
        self, trainer: Trainer[nnx.Linear], epochs: int, error: BaseException, at_batch: int
    ) -> None:
        trainer.fit(FailingData(self.train, error, at_batch), epochs=epochs)

    def fit_stream(self, trainer: Trainer[nnx.Linear], epochs: int, steps_per_epoch: int) -> None:
        trainer.fit(itertools.cycle(self.train), epochs=epochs, steps_per_epoch=steps_per_epoch)


class IgnoresSteps(ReferenceHarness):
    """A harness whose trainer ignores ``steps_per_epoch``: a pass of 2 batches per epoch."""

    def fit_stream(self, trainer: Trainer[nnx.Linear], epochs: int, steps_per_epoch: int) -> None:
        trainer.fit(self.train[:2], epochs=epochs)


def test_the_steps_per_epoch_scenario_can_fail() -> None:
    report = check_trainer(IgnoresSteps(), scenarios=["steps_per_epoch"])
    found = report.result("steps_per_epoch").violations
    assert any("the epochs had [2, 2]" in v.expected for v in found), report.format()
    assert any("steps_per_epoch is 3" in v.expected for v in found), report.format()


@pytest.mark.parametrize("mesh", [False, True], ids=["no_mesh", "mesh_of_1"])
@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_reference_trainer_conforms(steps_per_execution: int, mesh: bool) -> None:
    report = check_trainer(ReferenceHarness(steps_per_execution, mesh=mesh), max_examples=10)
    assert report.ok, report.format()
    assert report.violations == (), report.format()
    assert all(r.outcome == "passed" for r in report.results), report.format()


def test_chunked_steps_stay_contiguous_after_a_failure() -> None:
    """Found by the property scenario (max_examples=60) with steps_per_execution=2.

    A callback raises in on_batch_begin(0); the next fit must resume at step 0 or 1
    (callbacks never saw step 1), not at 2.
    """
    first = FitPlan(epochs=1, raises=(Trigger(hook="on_batch_begin", occurrence=0),))
    plans = [first, FitPlan(epochs=1)]
    harness = ReferenceHarness(steps_per_execution=2)
    recorder = EventRecorder()
    raiser = RaiseAt([("on_batch_begin", 0), None], [])
    trainer = harness.build([recorder, raiser])
    with pytest.raises(ProbeError):
        harness.fit(trainer, 1)
    harness.fit(trainer, 1)
    found = check_events(recorder.events, plans)
    assert found == [], "\n".join(map(str, found))


def test_the_recorder_sees_the_reference_trainers_preflight_once_before_each_begin() -> None:
    harness, recorder = ReferenceHarness(), EventRecorder()
    trainer = harness.build([recorder])
    harness.fit(trainer, 1)
    harness.fit(trainer, 0)
    hooks = [event.hook for event in recorder.events]
    assert [hook for hook in hooks if hook in ("preflight", "on_train_begin")] == [
        "preflight",
        "on_train_begin",
    ] * 2
    assert hooks[0] == "preflight"
    assert check_events(recorder.events, [FitPlan(epochs=1), FitPlan(epochs=0)]) == []


def test_the_recorder_reads_the_reference_trainers_plan_at_every_hook() -> None:
    """The plan checks see values (3 batches an epoch), so they are not vacuous here."""
    harness, recorder = ReferenceHarness(), EventRecorder()
    trainer = harness.build([recorder])
    assert (trainer.planned_epochs, trainer.steps_per_epoch) == (None, None)
    harness.fit(trainer, 2)
    harness.fit(trainer, 1)
    plans = [
        (dict(e.state)["planned_epochs"], dict(e.state)["steps_per_epoch"]) for e in recorder.events
    ]
    second = [e.hook for e in recorder.events].index("preflight", 1)
    assert set(plans[:second]) == {(2, 3)}
    assert set(plans[second:]) == {(3, 3)}
    assert (trainer.planned_epochs, trainer.steps_per_epoch) == (3, 3)
