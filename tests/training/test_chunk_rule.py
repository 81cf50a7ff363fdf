"""Where a chunk of ``steps_per_execution`` steps runs as one scan (``_chunk_rule``).

On a CPU a step with a convolution, or one over ``CPU_SCAN_MAX_FLOPS``, runs step by
step (a scan would be slower); a small dense step, and any step on an accelerator,
runs in the scan. The speed itself is measured by ``benchmarks/bench_trainer.py``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from artifex.generative_models.training import Trainer
from artifex.generative_models.training.callbacks import CheckpointConfig, ModelCheckpoint
from artifex.generative_models.training.trainer._chunk_rule import CPU_SCAN_MAX_FLOPS, chunk_scans

Batch = tuple[jax.Array, jax.Array]


def _conv(x: jax.Array, w: jax.Array) -> jax.Array:
    return jax.lax.conv(x, w, (1, 1), "SAME").sum()


def test_an_accelerator_always_scans() -> None:
    assert chunk_scans("gpu", None)
    assert chunk_scans("tpu", None)


def test_on_a_cpu_a_convolution_runs_step_by_step() -> None:
    lowered = jax.jit(_conv).lower(jnp.ones((2, 3, 8, 8)), jnp.ones((4, 3, 3, 3)))
    assert not chunk_scans("cpu", lowered)


def test_on_a_cpu_a_small_dense_step_scans_and_a_large_one_does_not() -> None:
    def matmul(x: jax.Array) -> jax.Array:
        return (x @ x).sum()

    small = jax.jit(matmul).lower(jnp.ones((64, 64)))
    side = 1024  # 2 * 1024**3 flops: over the threshold
    assert 2 * side**3 > CPU_SCAN_MAX_FLOPS
    large = jax.jit(matmul).lower(jnp.ones((side, side)))
    assert chunk_scans("cpu", small)
    assert not chunk_scans("cpu", large)


class ConvNet(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(1, 4, kernel_size=(3, 3), rngs=rngs)
        self.norm = nnx.BatchNorm(4, rngs=rngs)
        self.out = nnx.Linear(4 * 4 * 4, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.relu(self.norm(self.conv(x)))
        return self.out(y.reshape(y.shape[0], -1))


class CountingLoss:
    """An MSE that records every trace (Python call) of itself."""

    def __init__(self) -> None:
        self.traces = 0

    def __call__(self, model: ConvNet, batch: Batch) -> jax.Array:
        self.traces += 1
        x, y = batch
        return jnp.mean((model(x) - y) ** 2)


def _batches(count: int) -> list[Batch]:
    x = jax.random.normal(jax.random.key(0), (count * 2, 4, 4, 1))
    y = x.sum(axis=(1, 2))
    return [(x[i : i + 2], y[i : i + 2]) for i in range(0, count * 2, 2)]


def test_a_conv_model_chunked_on_a_cpu_trains_exactly_as_unchunked() -> None:
    assert jax.default_backend() == "cpu"  # the suite runs on the CPU (tests/conftest.py)
    data = _batches(6)
    runs = []
    for chunk in (1, 3):
        loss = CountingLoss()
        trainer = Trainer(
            ConvNet(rngs=nnx.Rngs(0)), optax.adam(1e-2), loss, steps_per_execution=chunk
        )
        history = trainer.fit(data, epochs=2)
        traces = loss.traces
        trainer.fit(data, epochs=1)
        assert loss.traces == traces  # nothing traced again
        runs.append((history, jax.device_get(nnx.to_pure_dict(nnx.state(trainer.model))), traces))
    (history_1, state_1, traces_1), (history_3, state_3, traces_3) = runs
    assert history_3 == history_1
    # Bitwise: the same compiled step. A scan's fused program differs in the last bits,
    # which Adam turns into visible steps on the conv bias (under batch norm its
    # gradient is rounding noise), so this fails where the chunk scans.
    jax.tree.map(np.testing.assert_array_equal, state_3, state_1)
    assert traces_3 == traces_1  # the rule lowers the very trace the step then compiles


def test_a_conv_chunk_on_a_cpu_saves_mid_chunk_as_unchunked(tmp_path: Path) -> None:
    # A scanned chunk of 4 would move the saves due at 3 and 9 to chunk ends 4 and 10.
    saved = {}
    for chunk in (1, 4):
        directory = tmp_path / f"chunk-{chunk}"
        checkpoint = ModelCheckpoint(
            CheckpointConfig(dirpath=directory, save_top_k=-1, every_n_epochs=None, every_n_steps=3)
        )
        trainer = Trainer(
            ConvNet(rngs=nnx.Rngs(0)),
            optax.adam(1e-2),
            CountingLoss(),
            callbacks=[checkpoint],
            steps_per_execution=chunk,
        )
        trainer.fit(_batches(6), epochs=2)
        saved[chunk] = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    assert saved[4] == saved[1] == [3, 6, 9, 12]
