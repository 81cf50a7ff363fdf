"""Performance guards: compile counts, and no host sync inside an epoch.

Speed itself is measured by ``benchmarks/bench_trainer.py``; these tests pin the
mechanisms that make it fast: the step is traced and compiled once per batch shape,
and a whole fit runs under ``jax.transfer_guard("disallow")`` with one explicit fetch
per epoch (and per validation pass).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import Mesh

from artifex.generative_models.training import ArrayBatcher, Trainer
from artifex.generative_models.training.callbacks import BaseCallback, TrainerLike
from tests.training._models import batches as model_batches
from tests.training._models import mse as dropout_mse
from tests.training._models import new_model as dropout_batch_norm

Batch = tuple[jax.Array, jax.Array]

_EVENTS: Counter[str] = Counter()


def _listen(event: str, duration_secs: float, **kwargs: str | int) -> None:
    _EVENTS[event] += 1


jax.monitoring.register_event_duration_secs_listener(_listen)
BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


def data(n: int, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    x = jax.random.normal(jax.random.key(seed), (n, 2))
    return x, jnp.sum(x, axis=-1, keepdims=True)


class CountingLoss:
    """A loss that records the batch shape of every trace (Python call) of itself."""

    def __init__(self) -> None:
        self.traces: list[tuple[int, ...]] = []

    def __call__(self, model: nnx.Linear, batch: Batch) -> jax.Array:
        x, y = batch
        self.traces.append(tuple(x.shape))
        return jnp.mean((model(x) - y) ** 2)


def new_trainer(loss: CountingLoss, **options: Any) -> Trainer[nnx.Linear]:
    return Trainer(nnx.Linear(2, 1, rngs=nnx.Rngs(0)), optax.sgd(0.1), loss, **options)


@pytest.mark.parametrize("chunk", [1, 3])
def test_traced_once_per_batch_shape_and_ragged_costs_one(chunk: int) -> None:
    # 10 examples in batches of 4: shapes 4, 4, 2 (ragged) each epoch.
    loss = CountingLoss()
    trainer = new_trainer(loss, steps_per_execution=chunk)
    batcher = ArrayBatcher(data(10), batch_size=4)
    trainer.fit(batcher, epochs=3)
    # One abstract probe (learns metric names) + one trace per batch shape. With
    # chunk=3 the two full batches are leftovers (fewer than 3) and run singly.
    assert loss.traces == [(4, 2), (4, 2), (2, 2)]
    compiles = _EVENTS[BACKEND_COMPILE]
    trainer.fit(batcher, epochs=2)
    assert loss.traces == [(4, 2), (4, 2), (2, 2)]
    assert _EVENTS[BACKEND_COMPILE] == compiles  # nothing at all compiled again


def test_chunk_traced_once() -> None:
    loss = CountingLoss()
    trainer = new_trainer(loss, steps_per_execution=2)
    batcher = ArrayBatcher(data(16), batch_size=4)  # 4 batches: two chunks of two
    trainer.fit(batcher, epochs=2)
    assert loss.traces == [(4, 2), (4, 2)]  # the probe, then the scanned step body
    assert trainer.step == 8


def test_ragged_last_batch_dropped_costs_nothing() -> None:
    loss = CountingLoss()
    trainer = new_trainer(loss)
    trainer.fit(ArrayBatcher(data(10), batch_size=4, drop_last=True), epochs=3)
    assert loss.traces == [(4, 2), (4, 2)]
    assert trainer.step == 6


class Quiet(BaseCallback):
    """Uses every hook but never reads a log value or the model."""

    def __init__(self) -> None:
        self.calls = 0

    def on_batch_begin(self, trainer: TrainerLike, batch: int, /) -> None:
        self.calls += 1

    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        self.calls += len(logs)

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        assert type(logs["loss"]) is float

    @property
    def should_stop(self) -> bool:
        return False


class Uploading(BaseCallback):
    def on_batch_end(self, trainer: TrainerLike, batch: int, logs: dict[str, Any], /) -> None:
        jnp.asarray(np.float32(1.0))  # a host-to-device transfer


def device_batches(count: int) -> list[Batch]:
    x, y = data(4 * count)
    return [(x[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4]) for i in range(count)]


def count_fetches(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every tree passed to ``jax.device_get`` from now on (the list is filled in)."""
    fetches: list[object] = []
    real_get = jax.device_get

    def counting_get(tree: Any) -> Any:
        fetches.append(tree)
        return real_get(tree)

    monkeypatch.setattr(jax, "device_get", counting_get)
    return fetches


@pytest.mark.parametrize("mesh", [False, True], ids=["no-mesh", "mesh"])
@pytest.mark.parametrize("chunk", [1, 2])
def test_no_implicit_transfer_and_one_fetch_per_epoch(
    chunk: int, mesh: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a mesh, too: the state keeps its shardings from step to step (no resharding),
    # and batches go to the mesh by one explicit device_put each.
    train, val = device_batches(5), device_batches(2)
    trainer = new_trainer(
        CountingLoss(),
        callbacks=[Quiet()],
        steps_per_execution=chunk,
        mesh=Mesh(np.array(jax.devices()[:1]), ("data",)) if mesh else None,
    )
    trainer.fit(train, epochs=1, val_data=val)  # warm up: compile outside the guard
    fetches = count_fetches(monkeypatch)
    with jax.transfer_guard("disallow"):  # host-to-device too: the data is on device
        history = trainer.fit(train, epochs=3, val_data=val)
    assert len(history) == 3
    assert len(fetches) == 6  # one per epoch and one per validation pass
    for tree in fetches:  # each is one batched fetch of a dict of device scalars
        assert isinstance(tree, dict)
        assert all(isinstance(v, jax.Array) and v.shape == () for v in tree.values())
    assert trainer.step == 20


def test_guard_is_live_around_callbacks() -> None:
    """The guard covers the hooks: a callback that transfers is caught.

    (On the CPU backend, JAX does not guard device-to-host reads such as ``float(x)``,
    which are zero-copy there; a host-to-device upload is guarded everywhere. On an
    accelerator the fit above also proves that no device-to-host read happens.)
    """
    train = device_batches(2)
    trainer = new_trainer(CountingLoss(), callbacks=[Uploading()])
    trainer.fit(train, epochs=1)  # compiles outside the guard
    with (
        jax.transfer_guard("disallow"),
        pytest.raises(Exception, match=r"[Dd]isallowed") as caught,
    ):
        trainer.fit(train, epochs=1)
    assert trainer.status == "failed"
    assert any("Uploading" in note for note in getattr(caught.value, "__notes__", []))


def test_numpy_batches_need_only_host_to_device() -> None:
    x, y = (np.asarray(a) for a in data(12))
    trainer = new_trainer(CountingLoss())
    batcher = ArrayBatcher((x, y), batch_size=4, seed=3)
    trainer.fit(batcher, epochs=1)
    with jax.transfer_guard_device_to_host("disallow"):
        trainer.fit(batcher, epochs=2)
    assert trainer.step == 9


@pytest.mark.parametrize("chunk", [1, 2])
def test_eval_mode_adds_no_compile_per_epoch_and_no_transfer(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dropout and batch norm: training and evaluation are two graph definitions, both
    # compiled in the first fit; later epochs and fits compile nothing and transfer
    # nothing but the one fetch per epoch and per validation pass.
    train, val = model_batches(4), model_batches(2, seed=1)
    trainer = Trainer(
        dropout_batch_norm(), optax.adam(1e-2), dropout_mse, steps_per_execution=chunk
    )
    trainer.fit(train, epochs=1, val_data=val)
    compiles = _EVENTS[BACKEND_COMPILE]
    fetches = count_fetches(monkeypatch)
    with jax.transfer_guard("disallow"):
        trainer.fit(train, epochs=3, val_data=val)
    assert _EVENTS[BACKEND_COMPILE] == compiles
    assert len(fetches) == 6
