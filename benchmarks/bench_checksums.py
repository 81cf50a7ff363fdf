"""The cost of checkpoint checksums (format 4), as ratios to saving without them.

Run: ``nox -s bench`` (or ``python benchmarks/bench_checksums.py [--quick] [--rounds N]``).
A ~100 MB training state (25 float32 arrays of 1M elements on the default device)
is saved as one ``ModelCheckpoint`` checkpoint with an asynchronous Orbax manager,
through the save path's own ``save_args``, with checksums (the default) and without
(``checksums=False``, an internal switch kept for this measurement), then restored
with ``restore_checkpoint`` (which verifies the checksums of the first and has none
to verify in the second). A control variant saves no checksums but one empty
further JSON item: Orbax's own cost of one more item in the save. Variants run
interleaved, in fresh directories; the medians of the per-round ratios to the
no-checksum variant are printed for: the blocking part of the save (what the
training step waits for), the whole save (until it is on disk) and the restore.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from artifex.generative_models.training._checkpointing._directory import prepare_directory
from artifex.generative_models.training._checkpointing._format import (
    CHECKPOINT_FORMAT,
    save_args,
)
from artifex.generative_models.training._checkpointing._manager import open_manager
from artifex.generative_models.training.callbacks import CheckpointConfig, restore_checkpoint

ARRAYS = 25
ELEMENTS = 1 << 20  # 4 MiB of float32 each: 100 MiB in all
STEP = 1
Times = tuple[float, float, float]


def make_state() -> dict[str, Any]:
    """A ~100 MB state shaped like a trainer's: model arrays, a step and an epoch."""
    keys = jax.random.split(jax.random.key(0), ARRAYS)
    model = {f"w{i}": jax.random.normal(key, (ELEMENTS,)) for i, key in enumerate(keys)}
    state = {"model": model, "step": STEP, "epoch": 0}
    for leaf in model.values():
        leaf.block_until_ready()
    return state


def measure(
    state: dict[str, Any], directory: Path, *, checksums: bool, extra: bool = False
) -> Times:
    """``(blocking save, whole save, restore)`` seconds of one checkpoint of ``state``."""
    shutil.rmtree(directory, ignore_errors=True)
    prepare_directory(directory)
    opened = open_manager(directory, CheckpointConfig(dirpath=directory, save_top_k=-1))
    assert opened is not None
    manager = opened[0]
    meta = {
        "format": CHECKPOINT_FORMAT,
        "step": STEP,
        "epoch": 0,
        "position": None,
        "metrics": {},
        "items": ["control"] if extra else [],
        "callback_arrays": [],
    }
    items = save_args(state, meta, {"control": {}} if extra else {}, checksums=checksums)
    try:
        start = time.perf_counter()
        manager.save(STEP, args=items)
        blocking = time.perf_counter() - start
        manager.wait_until_finished()
        whole = time.perf_counter() - start
    finally:
        manager.close()
    start = time.perf_counter()
    restored = restore_checkpoint(directory)
    for leaf in restored.state["model"].values():
        leaf.block_until_ready()
    read = time.perf_counter() - start
    shutil.rmtree(directory)
    return blocking, whole, read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    state = make_state()
    megabytes = sum(leaf.nbytes for leaf in state["model"].values()) / 1e6
    ratios: list[Times] = []
    controls: list[Times] = []
    baselines: list[Times] = []
    with tempfile.TemporaryDirectory() as tmp:
        measure(state, Path(tmp) / "warm-up", checksums=True)
        for _ in range(rounds):
            plain = measure(state, Path(tmp) / "plain", checksums=False)
            summed = measure(state, Path(tmp) / "summed", checksums=True)
            control = measure(state, Path(tmp) / "control", checksums=False, extra=True)
            baselines.append(plain)
            ratios.append((summed[0] / plain[0], summed[1] / plain[1], summed[2] / plain[2]))
            controls.append((control[0] / plain[0], control[1] / plain[1], control[2] / plain[2]))
    print(
        f"checkpoint checksums, a {megabytes:.0f} MB state on {jax.devices()[0].platform} "
        f"({rounds} rounds; ratios to no checksums, higher is slower)"
    )
    labels = ("save, blocking part", "save, until on disk", "restore (verifying)")
    for index, label in enumerate(labels):
        base = statistics.median(times[index] for times in baselines)
        ratio = statistics.median(r[index] for r in ratios)
        other = statistics.median(r[index] for r in controls)
        print(
            f"  {label:<22} {ratio:5.2f}x  (no checksums: {base * 1e3:7.1f} ms; "
            f"an empty JSON item instead: {other:5.2f}x)"
        )


if __name__ == "__main__":
    jnp.zeros(())  # initialise the backend before timing anything
    main()
