"""Prefetching: the next batch is drawn and placed right after a step is dispatched.

The trainer prefetches where a transfer overlaps a step (an accelerator); these tests
force it on the CPU. No position shows a prefetched batch: ``state_dict()`` at each
``on_batch_end``, after a stop or a failure, counts the batches trained; a generator is
never drawn ahead, nor a ``steps_per_epoch`` stream past its epoch's end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from artifex.generative_models.training import ArrayBatcher, Trainer
from artifex.generative_models.training.callbacks import BaseCallback, LambdaCallback, TrainerLike
from artifex.generative_models.training.trainer import _chunks

Batch = tuple[Any, Any]
Event = tuple[str, int]


@pytest.fixture
def prefetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefetch on the CPU, as on an accelerator."""
    monkeypatch.setattr(_chunks, "transfers_overlap", lambda: True)


def arrays(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * count, 4)).astype(np.float32)
    return x, x.sum(axis=-1, keepdims=True)


def host_batches(count: int) -> list[Batch]:
    x, y = arrays(count)
    return [(x[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4]) for i in range(count)]


def mse(model: nnx.Linear, batch: Batch) -> jax.Array:
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def new_trainer(*callbacks: BaseCallback, chunk: int = 1) -> Trainer[nnx.Linear]:
    model = nnx.Linear(4, 1, rngs=nnx.Rngs(0))
    return Trainer(model, optax.sgd(0.1), mse, callbacks=callbacks, steps_per_execution=chunk)


class Rows:
    """A user's StatefulData over a list of batches that logs each draw (endless: cycles)."""

    def __init__(self, items: list[Batch], log: list[Event], *, endless: bool = False) -> None:
        self.items, self.log, self.endless = items, log, endless
        self.cursor = 0

    def __iter__(self) -> Iterator[Batch]:
        if not self.endless and self.cursor >= len(self.items):
            self.cursor = 0
        while self.endless or self.cursor < len(self.items):
            self.log.append(("draw", self.cursor))
            self.cursor += 1
            yield self.items[(self.cursor - 1) % len(self.items)]

    def state_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        self.cursor = state["cursor"]


class Hooks(BaseCallback):
    """Logs each batch's hooks, and the trainer's data position at each ``on_batch_end``."""

    def __init__(self, log: list[Event]) -> None:
        self.log = log
        self.positions: list[dict[str, Any]] = []

    def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
        self.log.append(("begin", batch))

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        self.log.append(("end", batch))
        assert isinstance(trainer, Trainer)
        self.positions.append(trainer.state_dict()["data"])


def test_no_prefetch_on_a_cpu() -> None:
    assert jax.default_backend() == "cpu"
    assert not _chunks.transfers_overlap()


@pytest.mark.usefixtures("prefetch")
def test_the_next_batch_is_drawn_right_after_a_step_is_dispatched() -> None:
    log: list[Event] = []
    trainer = new_trainer(Hooks(log))
    trainer.fit(Rows(host_batches(3), log), epochs=1)
    assert log == [
        ("draw", 0), ("begin", 0), ("draw", 1), ("end", 0),
        ("begin", 1), ("draw", 2), ("end", 1),
        ("begin", 2), ("end", 2),
    ]  # fmt: skip


@pytest.mark.usefixtures("prefetch")
@pytest.mark.parametrize("chunk", [1, 2])
def test_host_batches_reach_the_step_on_the_device(chunk: int) -> None:
    # An implicit transfer (a NumPy argument of the jitted step) is refused by the
    # guard; the prefetch's jax.device_put is explicit.
    trainer = new_trainer(chunk=chunk)
    batcher = ArrayBatcher(arrays(4), batch_size=4)
    trainer.fit(batcher, epochs=1)  # compiles outside the guard
    with jax.transfer_guard_host_to_device("disallow"):
        trainer.fit(batcher, epochs=2)
    assert trainer.step == 12


@pytest.mark.usefixtures("prefetch")
def test_only_numpy_leaves_are_put_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    puts: list[object] = []
    real_put = jax.device_put

    def counting_put(tree: Any, *args: Any, **kwargs: Any) -> Any:
        puts.append(tree)
        return real_put(tree, *args, **kwargs)

    on_device = [(jnp.asarray(x), jnp.asarray(y)) for x, y in host_batches(3)]
    trainer = new_trainer()
    trainer.fit(on_device, epochs=1)  # compiles
    monkeypatch.setattr(jax, "device_put", counting_put)
    trainer.fit(on_device, epochs=1)
    assert puts == []  # JAX leaves stay as they are
    trainer.fit(host_batches(3), epochs=1)  # a list of NumPy batches is prefetched
    assert len(puts) == 3


def stateful(kind: str, log: list[Event]) -> Rows | ArrayBatcher[Batch]:
    if kind == "user":
        return Rows(host_batches(4), log)
    return ArrayBatcher(arrays(4), batch_size=4, shuffle=False)


def position(kind: str, epoch: int, batches: int) -> dict[str, Any]:
    """The data position after ``batches`` batches of ``epoch`` (4 batches an epoch)."""
    if kind == "user":
        return {"cursor": batches}
    return {"seed": 0, "epoch": epoch, "position": batches}


@pytest.mark.usefixtures("prefetch")
@pytest.mark.parametrize("chunk", [1, 2])
@pytest.mark.parametrize("kind", ["user", "ArrayBatcher"])
def test_the_position_at_each_batch_end_counts_the_batches_trained(kind: str, chunk: int) -> None:
    log: list[Event] = []
    hooks = Hooks(log)
    trainer = new_trainer(hooks, chunk=chunk)
    trainer.fit(stateful(kind, log), epochs=2)
    if chunk == 1:
        want = [position(kind, epoch, i + 1) for epoch in (0, 1) for i in range(4)]
    else:  # inside a chunk the position is the chunk's end, with or without prefetch
        want = [position(kind, epoch, (i // 2) * 2 + 2) for epoch in (0, 1) for i in range(4)]
    assert hooks.positions == want


Stop = Callable[[Any, int, object], None]


def stop_at(step: int, how: str) -> Stop:
    def end(trainer: Any, batch: int, _logs: object) -> None:
        if batch == step:
            if how == "failure":
                raise RuntimeError(batch)
            trainer.stop_training = True

    return end


@pytest.mark.usefixtures("prefetch")
@pytest.mark.parametrize("how", ["stop", "failure"])
@pytest.mark.parametrize(("chunk", "at"), [(1, 0), (1, 2), (2, 2)])
@pytest.mark.parametrize("kind", ["user", "ArrayBatcher"])
def test_a_stop_or_failure_mid_epoch_leaves_the_batches_trained(
    kind: str, chunk: int, at: int, how: str
) -> None:
    log: list[Event] = []
    trainer = new_trainer(LambdaCallback(on_batch_end=stop_at(at, how)), chunk=chunk)
    data = stateful(kind, log)
    if how == "failure":
        with pytest.raises(RuntimeError):
            trainer.fit(data, epochs=2)
    else:
        trainer.fit(data, epochs=2)
    assert trainer.step == at + 1
    assert data.state_dict() == position(kind, 0, at + 1)
    assert trainer.state_dict()["data"] == position(kind, 0, at + 1)


def counted_generator(drawn: list[int]) -> Callable[[], Iterator[Batch]]:
    items = host_batches(4)

    def batches() -> Iterator[Batch]:
        for index, item in enumerate(items):
            drawn.append(index)
            yield item

    return batches


@pytest.mark.usefixtures("prefetch")
def test_a_generator_is_never_drawn_ahead() -> None:
    drawn: list[int] = []
    seen: list[int] = []

    def end(trainer: Any, batch: int, _logs: object) -> None:
        seen.append(len(drawn))
        if batch == 1:
            trainer.stop_training = True

    trainer = new_trainer(LambdaCallback(on_batch_end=end))
    trainer.fit(counted_generator(drawn), epochs=1)
    assert seen == [1, 2]  # at each batch's end, only the batches taken so far
    assert drawn == [0, 1]  # the stop lost nothing


@pytest.mark.usefixtures("prefetch")
def test_a_steps_per_epoch_stream_is_never_drawn_past_its_epoch() -> None:
    log: list[Event] = []
    draws_at_epoch_end: list[int] = []
    data = Rows(host_batches(5), log, endless=True)

    def epoch_end(trainer: Any, _epoch: int, _logs: object) -> None:
        draws_at_epoch_end.append(len(log))
        assert trainer.state_dict()["data"] == {"cursor": len(log)}

    trainer = new_trainer(LambdaCallback(on_epoch_end=epoch_end))
    trainer.fit(data, epochs=3, steps_per_epoch=3)
    assert draws_at_epoch_end == [3, 6, 9]
    assert log == [("draw", index) for index in range(9)]  # one stream, nothing re-drawn
