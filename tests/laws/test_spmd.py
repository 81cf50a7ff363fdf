"""Data-parallel training on a device mesh, and as a two-process JAX job on loopback.

Each multi-device run is a fresh subprocess (``tests/_distributed.py``): 8 host CPU
devices in one process, or 2 processes of 4 devices joined by
``jax.distributed.initialize`` with CPU collectives. The reference is the same run
on this process's single device. Data parallelism must not change the maths: the
losses, epoch logs and parameters agree within float tolerance (the gradient's
reduction order differs).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artifex.generative_models.training._checkpointing._integrity import seal, unseal
from artifex.generative_models.training.callbacks import restore_checkpoint
from tests._distributed import run_job
from tests.laws._spmd_script import train

SCRIPT = "tests.laws._spmd_script"
Result = dict[str, Any]


def job(out: Path, *args: str, processes: int, devices: int) -> list[Result]:
    out.mkdir(parents=True, exist_ok=True)
    run_job(SCRIPT, str(out), *args, processes=processes, devices=devices)
    return [json.loads((out / f"process-{i}.json").read_text()) for i in range(processes)]


def close(actual: Any, expected: Any) -> None:
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-6)


def assert_same_run(result: Result, reference: Result) -> None:
    """Same steps, losses, epoch logs, evaluation and parameters, within tolerance."""
    steps, losses = zip(*result["losses"], strict=True)
    ref_steps, ref_losses = zip(*reference["losses"], strict=True)
    assert steps == ref_steps
    close(losses, ref_losses)
    assert [sorted(logs) for logs in result["history"]] == [
        sorted(logs) for logs in reference["history"]
    ]
    for logs, ref in zip(result["history"], reference["history"], strict=True):
        close([logs[k] for k in ref], list(ref.values()))
    assert result["evaluate"].keys() == reference["evaluate"].keys()
    for key, value in reference["evaluate"].items():
        close(result["evaluate"][key], value)
    assert len(result["params"]) == len(reference["params"])
    for leaf, ref_leaf in zip(result["params"], reference["params"], strict=True):
        close(leaf, ref_leaf)
    assert (result["step"], result["epoch"], result["status"]) == (
        reference["step"],
        reference["epoch"],
        reference["status"],
    )


def assert_global_throughput(result: Result) -> None:
    """Examples per second count the global batch (16 rows, over all devices and processes)."""
    for rates in result["throughput"]:
        ratio = rates["examples_per_second"] / rates["steps_per_second"]
        assert ratio == pytest.approx(16.0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Result:
    """The single-device run, in this process."""
    return train(tmp_path_factory.mktemp("reference"))


def test_eight_devices_give_the_single_device_run(reference: Result, tmp_path: Path) -> None:
    [result] = job(tmp_path, "--mesh", processes=1, devices=8)
    assert_same_run(result, reference)
    assert [logs["lr"] for logs in result["history"]] == pytest.approx([1e-2, 5e-3, 5e-3])
    assert_global_throughput(result)
    # The annotated hidden kernel is split over the data axis; the rest is replicated.
    assert result["param_specs"] == ["P()", "P(None, 'data')", "P()", "P()"]
    assert reference["param_specs"] == ["None"] * 4  # single-device arrays
    assert (
        "shape (3, 8): a data-parallel batch needs a leading dimension (global size 3)"
        in (result["ragged_error"])
    )
    assert "8 devices of mesh axis 'data'" in result["ragged_error"]


def assert_no_allgather_per_step(result: Result) -> None:
    """No ``process_allgather`` between two ``on_batch_end`` of an epoch (4 steps each).

    The stop agreement after each ``on_batch_end`` goes through the coordination
    service; the only allgathers are per epoch (``ThroughputMonitor``).
    """
    counts = result["allgathers"]
    assert len(counts) == len(result["losses"])
    for start in range(0, len(counts), 4):
        assert len(set(counts[start : start + 4])) == 1, counts


def test_two_processes_give_the_single_process_run(reference: Result, tmp_path: Path) -> None:
    results = job(tmp_path, "--mesh", processes=2, devices=4)
    for result in results:
        assert_same_run(result, reference)
        assert_global_throughput(result)
        assert_no_allgather_per_step(result)
    assert results[0]["throughput"] == results[1]["throughput"]  # agreed between processes
    # process_scope="main" callbacks (the lambda, the CSV logger) ran on process 0 only.
    assert [r["callback_process_index"] for r in results] == [0, 1]
    assert [r["main_only_epochs"] for r in results] == [[0, 1, 2], []]
    assert (tmp_path / "log-0.csv").is_file()
    assert not (tmp_path / "log-1.csv").exists()
    assert len((tmp_path / "log-0.csv").read_text().splitlines()) == 1 + 3
    for result in results:  # 3 rows on each of 2 processes: 6, for 8 devices
        assert "global size 6) that splits evenly over the 8 devices" in result["ragged_error"]


@pytest.mark.parametrize("agreement", ["key-value", "allgather"])
def test_a_stop_asked_on_one_process_stops_every_process(tmp_path: Path, agreement: str) -> None:
    # Process 1 alone sets stop_training at step 4, the first step of a two-step
    # chunk: both processes keep step 4 only and close the epoch together, whether
    # they agree through the coordination service or (its fallback) an allgather.
    reference = train(tmp_path / "reference", steps_per_execution=2, stop_process=0, stop_step=4)
    args = ("--mesh", "--steps-per-execution", "2", "--stop-process", "1", "--stop-step", "4")
    fallback = ("--allgather-stops",) if agreement == "allgather" else ()
    first, second = job(tmp_path / "job", *args, *fallback, processes=2, devices=4)
    assert reference["step"] == 5
    assert reference["status"] == "stopped"
    for result in (first, second):
        assert_same_run(result, reference)
        if fallback:  # one allgather per check: the counting sees them
            counts = result["allgathers"]
            assert all(b > a for a, b in itertools.pairwise(counts)), counts
        else:
            assert_no_allgather_per_step(result)
    assert (first["stopped_by"], first["stopped_by_processes"]) == ("RemoteStop", [1])
    assert second["stopped_by"] == "Trainer"


def test_two_processes_checkpoint_and_resume_exactly(reference: Result, tmp_path: Path) -> None:
    checkpoints = str(tmp_path / "checkpoints")
    job(
        tmp_path / "a",
        "--mesh",
        "--epochs",
        "2",
        "--checkpoints",
        checkpoints,
        processes=2,
        devices=4,
    )
    resumed = job(
        tmp_path / "b",
        *("--mesh", "--epochs", "1", "--checkpoints", checkpoints, "--resume"),
        processes=2,
        devices=4,
    )
    assert sorted(int(p.name) for p in Path(checkpoints).iterdir() if p.name.isdigit()) == [
        4,
        8,
        12,
    ]
    last_epoch = {
        **reference,
        "losses": reference["losses"][8:],
        "history": reference["history"][2:],
    }
    for result in resumed:
        assert_same_run(result, last_epoch)
    # Checksums (format 5): process 0 sums the leaves it holds whole, the replicated
    # ones; the hidden kernel, split over both processes' devices, has none. The
    # resume above verified the others on each process.
    record = json.loads((Path(checkpoints) / "4" / "checksums" / "metadata").read_text())
    assert (record["step"], sorted(record["json"])) == (4, ["callbacks", "meta"])
    sums = record["arrays"]
    assert {"step", "model.hidden.bias", "model.out.kernel"} <= sums["state"].keys()
    assert "model.hidden.kernel" not in sums["state"]
    # Split across the processes, it is summed by shard, each shard by the process that
    # writes it: 8 column blocks of the (8, 16) kernel, 4 per process.
    item = Path(checkpoints) / "4" / "checksums"
    blocks = [json.loads((item / f"shards-{i}.json").read_text()) for i in (0, 1)]
    kernel = [found["arrays"]["state"]["model.hidden.kernel"] for found in blocks]
    assert [len(records) for records in kernel] == [4, 4]
    places = sorted(record["index"] for records in kernel for record in records)
    assert places == [[[0, 8], [2 * k, 2 * k + 2]] for k in range(8)]
    # One process restores the kernel whole and checks it shard by shard.
    restore_checkpoint(checkpoints, step=4)
    kernel[1][0]["crc32"] ^= 1  # a damaged block of process 1's
    (item / "shards-1.json").write_text(json.dumps(blocks[1]))
    with pytest.raises(ValueError, match=r"checksums/shards-1\.json fails its own checksum"):
        restore_checkpoint(checkpoints, step=4)  # the file's own sum: the record was changed
    blocks[1].pop("crc32")  # sealed again: its data no longer matches the record
    (item / "shards-1.json").write_text(json.dumps(seal(blocks[1])))
    place = kernel[1][0]["index"]
    with pytest.raises(ValueError, match="fails its checksum") as damaged:
        restore_checkpoint(checkpoints, step=4)
    assert f"item 'state' entry 'model.hidden.kernel' shard {place}" in str(damaged.value)
    # Resumed as a job, each process checks the shards it holds: one damaged block on
    # each process's devices fails the resume on both, naming the shard.
    latest = Path(checkpoints) / "12" / "checksums"
    for i in (0, 1):
        found = unseal(json.loads((latest / f"shards-{i}.json").read_text()), "shards")
        found["arrays"]["state"]["model.hidden.kernel"][0]["crc32"] ^= 1
        (latest / f"shards-{i}.json").write_text(json.dumps(seal(found)))
    with pytest.raises(AssertionError, match=r"entry 'model\.hidden\.kernel' shard .* fails its"):
        job(
            tmp_path / "c",
            "--mesh",
            "--epochs",
            "1",
            "--checkpoints",
            checkpoints,
            "--resume",
            processes=2,
            devices=4,
        )
