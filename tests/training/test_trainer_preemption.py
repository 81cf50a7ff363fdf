"""Preemption in one process: SIGTERM during fit saves, tears down and raises Preempted."""

from __future__ import annotations

import os
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import optax
import pytest

from artifex.generative_models.training.callbacks import LambdaCallback, restore_checkpoint
from artifex.generative_models.training.callbacks.base import TrainingCallback
from artifex.generative_models.training.callbacks.model_checkpoint import (
    CheckpointConfig,
    ModelCheckpoint,
)
from artifex.generative_models.training.trainer import Preempted, Trainer, _preemption
from artifex.generative_models.training.trainer._preemption import PreemptionWatch
from tests.laws._resume_script import DropoutMLP, loss_fn, make_data, make_model


def _trainer(
    tmp_path: Path,
    at: int,
    *,
    spe: int = 1,
    preemption: bool = True,
    checkpoint: bool = True,
) -> tuple[Trainer[DropoutMLP], list[Any]]:
    seen: list[Any] = []

    def notice(_trainer: object, step: int, _logs: dict[str, Any]) -> None:
        seen.append(signal.getsignal(signal.SIGTERM))
        if step == at:
            os.kill(os.getpid(), signal.SIGTERM)

    def end(trainer: Any) -> None:
        seen.append(trainer.status)

    callbacks: list[TrainingCallback] = [
        LambdaCallback(on_batch_end=notice, on_train_end=end),
    ]
    if checkpoint:
        callbacks.append(ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck", save_top_k=-1)))
    trainer = Trainer(
        make_model(),
        optax.adam(1e-2),
        loss_fn,
        callbacks=callbacks,
        steps_per_execution=spe,
        preemption=preemption,
    )
    return trainer, seen


@pytest.mark.parametrize(("spe", "at", "saved"), [(1, 3, 4), (4, 1, 4), (4, 6, 10)])
def test_sigterm_finishes_the_step_or_chunk_saves_and_raises(
    spe: int, at: int, saved: int, tmp_path: Path
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    trainer, seen = _trainer(tmp_path, at, spe=spe)
    train, val = make_data()
    with pytest.raises(Preempted, match=f"preempted at step {saved}") as info:
        trainer.fit(train, epochs=3, val_data=val)
    assert info.value.step == saved == trainer.step
    assert info.value.checkpoints == ((tmp_path / "ck").resolve(),)
    assert seen[-1] == "preempted" == trainer.status
    assert seen[0] is not before  # the handler was installed during fit ...
    assert signal.getsignal(signal.SIGTERM) is before  # ... and restored after it
    restored = restore_checkpoint(tmp_path / "ck")
    assert restored.step == saved
    assert (restored.epoch, restored.position) == (saved // 6, saved % 6)


def test_preemption_can_be_turned_off_and_needs_a_checkpoint(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    train, _ = make_data()
    for preemption, checkpoint in ((False, True), (True, False)):
        trainer, seen = _trainer(tmp_path, -1, preemption=preemption, checkpoint=checkpoint)
        trainer.fit(train, epochs=1)
        assert all(handler is before for handler in seen[:-1])
        assert seen[-1] == "completed"
    with pytest.raises(TypeError, match="preemption"):
        Trainer(make_model(), optax.adam(1e-2), loss_fn, preemption=1)  # type: ignore[arg-type]  # the bad input  # ty: ignore[invalid-argument-type]


def test_off_the_main_thread_preemption_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_preemption, "_warned_off_main", False)
    caught: list[list[warnings.WarningMessage]] = []

    def enter_twice() -> None:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            for _ in range(2):
                with PreemptionWatch(enabled=True, multiprocess=False) as watch:
                    assert not watch.notified
            caught.append(record)

    thread = threading.Thread(target=enter_twice)
    thread.start()
    thread.join()
    messages = [str(w.message) for w in caught[0] if w.category is RuntimeWarning]
    assert len(messages) == 1
    assert "needs the main thread" in messages[0]


def test_a_multi_process_watch_installs_no_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with PreemptionWatch(enabled=True, multiprocess=True) as watch:
        assert signal.getsignal(signal.SIGTERM) is before
        assert not watch.requested(1)  # no distributed client: never a sync point


def test_a_sigterm_during_teardown_waits_for_it_then_reaches_the_old_handler(
    tmp_path: Path,
) -> None:
    order: list[str] = []

    def sigterm_now(_trainer: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        order.append("sent")

    def saved(_trainer: object) -> None:
        order.append(f"teardown done, saved {restore_checkpoint(tmp_path / 'ck').step}")

    checkpoint = ModelCheckpoint(CheckpointConfig(dirpath=tmp_path / "ck", async_save=True))
    trainer = Trainer(
        make_model(),
        optax.adam(1e-2),
        loss_fn,
        callbacks=[
            LambdaCallback(on_train_end=sigterm_now),
            checkpoint,
            LambdaCallback(on_train_end=saved),
        ],
    )
    train, _ = make_data()
    previous = signal.signal(signal.SIGTERM, lambda *_: order.append("SIGTERM"))
    try:
        trainer.fit(train, epochs=2)
    finally:
        signal.signal(signal.SIGTERM, previous)
    # Not killed mid-teardown: the signal reached the handler of before once fit was done.
    assert order == ["sent", "teardown done, saved 12", "SIGTERM"]
    assert trainer.status == "completed"


class _DiskFull(ModelCheckpoint):
    """A ``ModelCheckpoint`` whose preemption save fails."""

    def save_now(self, trainer: object, /) -> None:
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("failing", [(0,), (0, 2)])
def test_every_checkpoint_saves_on_preemption_and_failures_are_grouped(
    tmp_path: Path, failing: tuple[int, ...]
) -> None:
    def sigterm_at_3(_trainer: object, step: int, _logs: dict[str, Any]) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    kinds = [_DiskFull if i in failing else ModelCheckpoint for i in range(3)]
    dirs = [(tmp_path / f"ck{i}").resolve() for i in range(3)]
    savers = [kind(CheckpointConfig(dirpath=d)) for kind, d in zip(kinds, dirs, strict=True)]
    callbacks: list[TrainingCallback] = [LambdaCallback(on_batch_end=sigterm_at_3), *savers]
    trainer = Trainer(make_model(), optax.adam(1e-2), loss_fn, callbacks=callbacks)
    train, _ = make_data()
    with pytest.raises((OSError, ExceptionGroup)) as info:
        trainer.fit(train, epochs=2)
    group = isinstance(info.value, ExceptionGroup)
    assert group == (len(failing) > 1)
    errors = info.value.exceptions if isinstance(info.value, ExceptionGroup) else (info.value,)
    assert [e.__notes__[-1] for e in errors] == [
        f"raised by _DiskFull in {dirs[i]} saving for preemption" for i in failing
    ]
    assert restore_checkpoint(dirs[1]).step == 4  # asked to save all the same, and saved
