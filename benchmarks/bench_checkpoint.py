"""What a ``ModelCheckpoint`` save costs, as ratios to a bare Orbax save of the same items.

Run: ``nox -s bench`` (or ``python benchmarks/bench_checkpoint.py [--quick] [--rounds N]``).

1. Per save, on the demo's VAE with its Adam state and two stateful callbacks:
   ``ModelCheckpoint.on_epoch_end`` (asynchronous, checksums on, ``save_top_k=3``)
   against a bare ``orbax.checkpoint.CheckpointManager`` (asynchronous,
   ``max_to_keep=3``) saving the same items (``state``, ``meta``, ``callbacks``)
   without our extras (marker, run, lock, checksums, agreement, save watch). Timed:
   the blocking part (what the training step waits for) and the time until the save
   is on disk. The two save alternately, one save each per round.
2. ``fit`` on the demo-sized VAE, one epoch of 200 steps per variant and round:
   ``ModelCheckpoint(every_n_steps=20)`` against no checkpoints.
3. Per ``fit(epochs=+1)`` with an epoch-end ``ModelCheckpoint`` (``save_top_k=1``): what it
   adds to the fit (setup, save, wait, teardown) against a bare Orbax manager opened on
   a directory of one checkpoint, saving the same state, waited for and closed.

Medians of the per-round ratios are printed (higher is slower).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

from artifex.generative_models.demo.vae import VAE, vae_loss
from artifex.generative_models.training import ArrayBatcher, Trainer
from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    EarlyStopping,
    EarlyStoppingConfig,
    History,
    ModelCheckpoint,
)

BATCH = 64
STEPS = 200


class Host:
    """A ``CheckpointableTrainer`` and ``CallbackHost`` of the VAE, stepped by hand."""

    def __init__(self, callbacks: list[Any]) -> None:
        self._model = VAE(seed=0)
        self.optimizer = nnx.Optimizer(self._model, optax.adam(2e-3), wrt=nnx.Param)
        self.callbacks = callbacks
        self.step = 0
        self.epoch = 0
        self.stop_training = False
        self.status = "running"
        self.stopped_by: object | None = None
        self.error: BaseException | None = None

    @property
    def model(self) -> nnx.Module:
        return self._model

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": nnx.state(self._model),
            "opt_state": nnx.state(self.optimizer),
            "step": self.step,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        raise NotImplementedError


def _stateful() -> list[Any]:
    early = EarlyStopping(EarlyStoppingConfig(monitor="loss", patience=100))
    return [early, History()]


def _bare_manager(directory: Path) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=3, enable_async_checkpointing=True, create=True
    )
    return ocp.CheckpointManager(directory, options=options)


def _bare_save(manager: ocp.CheckpointManager, host: Host) -> None:
    state = host.state_dict()
    savable = {
        **state,
        "model": nnx.to_pure_dict(state["model"]),
        "opt_state": nnx.to_pure_dict(state["opt_state"]),
    }
    meta = {"step": host.step, "epoch": host.epoch, "metrics": {"loss": 1.0}}
    states = {cb.state_key: cb.state_dict() for cb in host.callbacks}
    manager.save(
        host.step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(savable),
            meta=ocp.args.JsonSave(meta),
            callbacks=ocp.args.JsonSave(states),
        ),
    )


def per_save(rounds: int, root: Path) -> tuple[list[float], list[float], list[float]]:
    """Per round: (ours blocking / bare, ours on disk / bare), and the bare blocking seconds."""
    ours_host, bare_host = Host(_stateful()), Host(_stateful())
    config = CheckpointConfig(dirpath=root / "ours", save_top_k=3, async_save=True)
    checkpoint = ModelCheckpoint(config)
    checkpoint.on_train_begin(ours_host)
    manager = _bare_manager(root / "bare")
    blocking, on_disk, base = [], [], []
    try:
        for epoch in range(rounds + 1):  # the first round warms both up
            times: dict[str, tuple[float, float]] = {}
            order = (ours_host, bare_host) if epoch % 2 else (bare_host, ours_host)
            for host in order:  # alternating which goes first
                host.step, host.epoch = epoch + 1, epoch
                start = time.perf_counter()
                if host is ours_host:
                    checkpoint.on_epoch_end(host, epoch, {"loss": 1.0})
                else:
                    _bare_save(manager, host)
                blocked = time.perf_counter() - start
                if host is ours_host:
                    checkpoint.wait_until_finished()
                else:
                    manager.wait_until_finished()
                times["ours" if host is ours_host else "bare"] = (
                    blocked,
                    time.perf_counter() - start,
                )
            if epoch:
                (ours_block, ours_disk), (bare_block, bare_disk) = times["ours"], times["bare"]
                blocking.append(ours_block / bare_block)
                on_disk.append(ours_disk / bare_disk)
                base.append(bare_block)
    finally:
        checkpoint.on_train_end(ours_host)
        manager.close()
    return blocking, on_disk, base


def _epoch_time(trainer: Trainer[VAE], data: ArrayBatcher[Any]) -> float:
    start = time.perf_counter()
    trainer.fit(data, epochs=1)  # a count: epochs=trainer.epoch + 1 doubled them each call
    return time.perf_counter() - start


def step_saves(rounds: int, root: Path) -> list[float]:
    """Per round: the epoch time with ``every_n_steps=20`` over the time without checkpoints."""
    x = np.random.default_rng(0).uniform(size=(STEPS * BATCH, 64)).astype(np.float32)
    data = ArrayBatcher({"image": x}, batch_size=BATCH, seed=0)
    plain = Trainer(VAE(seed=0), optax.adam(2e-3), vae_loss)
    config = CheckpointConfig(dirpath=root / "steps", every_n_steps=20, save_top_k=2)
    saving = Trainer(VAE(seed=0), optax.adam(2e-3), vae_loss, callbacks=[ModelCheckpoint(config)])
    for trainer in (plain, saving):  # compile
        _epoch_time(trainer, data)
    return [_epoch_time(saving, data) / _epoch_time(plain, data) for _ in range(rounds)]


def _bare_fit_save(directory: Path, trainer: Trainer[VAE], step: int) -> float:
    """Seconds to open a bare manager, save ``trainer``'s state, wait for it and close."""
    start = time.perf_counter()
    options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=True)
    manager = ocp.CheckpointManager(directory, options=options)
    state = trainer.state_dict()
    savable = {**state, "model": nnx.to_pure_dict(state["model"])}
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(savable)))
    manager.wait_until_finished()
    manager.close()
    return time.perf_counter() - start


def per_fit(rounds: int, root: Path) -> tuple[list[float], list[float]]:
    """Per round: a fit's cost of ``ModelCheckpoint`` over a bare Orbax save, and the latter."""
    x = np.random.default_rng(0).uniform(size=(STEPS * BATCH, 64)).astype(np.float32)
    data = ArrayBatcher({"image": x}, batch_size=BATCH, seed=0)
    plain = Trainer(VAE(seed=0), optax.adam(2e-3), vae_loss)
    config = CheckpointConfig(dirpath=root / "fit", save_top_k=1)
    saving = Trainer(VAE(seed=0), optax.adam(2e-3), vae_loss, callbacks=[ModelCheckpoint(config)])
    for trainer in (plain, saving):  # compile
        _epoch_time(trainer, data)
    _bare_fit_save(root / "bare-fit", saving, 0)
    ratios, base = [], []
    for index in range(rounds):
        cost = _epoch_time(saving, data) - _epoch_time(plain, data)
        bare = _bare_fit_save(root / "bare-fit", saving, index + 1)
        ratios.append(cost / bare)
        base.append(bare)
    return ratios, base


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, default=11, help="interleaved rounds")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        blocking, on_disk, base = per_save(rounds, Path(tmp))
        fit = step_saves(max(1, rounds // 3), Path(tmp))
        per_fit_ratios, per_fit_base = per_fit(rounds, Path(tmp))
    print(f"ModelCheckpoint against a bare Orbax save ({rounds} rounds; higher is slower)")
    print(
        f"  save, blocking part    {statistics.median(blocking):5.2f}x  "
        f"(bare Orbax: {statistics.median(base) * 1e3:6.1f} ms)"
    )
    print(f"  save, until on disk    {statistics.median(on_disk):5.2f}x")
    print(f"  fit, every_n_steps=20  {statistics.median(fit):5.2f}x  (no checkpoints = 1.00)")
    print(
        f"  per fit, epoch end     {statistics.median(per_fit_ratios):5.2f}x  (bare Orbax open, "
        f"save, wait, close: {statistics.median(per_fit_base) * 1e3:6.1f} ms)"
    )


if __name__ == "__main__":
    main()
