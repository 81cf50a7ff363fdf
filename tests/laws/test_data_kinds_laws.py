"""Issue 26's laws for data beyond ``ArrayBatcher``: grain and a generator function.

A training process (``tests/laws/_data_kinds_script.py``) is interrupted twice, each
time a seeded random delay after a marker that a new checkpoint is on disk, with
SIGTERM (a preemption notice: it saves where it is, mid-epoch as a rule, and exits) or
SIGKILL, and resumed each time with ``fit(resume_from=...)``; the last resume runs
in-process. With a grain pipeline (its iterator's state saved in the ``data`` item)
the final weights and the CSV are bit-identical to an uninterrupted run's. With a
deterministic generator function (no saved position) every resume inside an epoch
replays the epoch and skips its trained batches, warning how many, and the final
weights and CSV are the same too.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.laws import _data_kinds_script
from tests.laws._processes import Interruption, assert_same_final, final, interrupt, start, wait_for

EPOCHS = 5  # 30 steps; a checkpoint every 2
BATCH_SLEEP = 0.03
KILLS = 2

pytestmark = pytest.mark.one_python


def _saved(workdir: Path) -> int:
    """The latest step a ``saved-<step>`` marker names (-1 before any)."""
    return max((int(p.name.split("-")[1]) for p in workdir.glob("saved-*")), default=-1)


def _new_save(workdir: Path, beyond: int) -> Callable[[], bool]:
    """Whether a ``saved-<step>`` marker names a step beyond ``beyond``."""
    return lambda: _saved(workdir) > beyond


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The uninterrupted runs, by data kind."""
    out: dict[str, Path] = {}
    for data in ("grain", "generator"):
        workdir = tmp_path_factory.mktemp(f"reference-{data}")
        assert _data_kinds_script.main([str(workdir), "--data", data, "--epochs", str(EPOCHS)]) == 0
        out[data] = workdir
    return out


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
@pytest.mark.parametrize("data", ["grain", "generator"])
def test_interrupted_at_random_moments_then_resumed(
    data: str, how: Interruption, references: dict[str, Path], tmp_path: Path
) -> None:
    delays = random.Random(f"{data}-{how}-26")
    for cycle in range(KILLS):
        beyond = _saved(tmp_path)
        args = ["--data", data, "--epochs", str(EPOCHS), "--batch-sleep", str(BATCH_SLEEP)]
        args += ["--resume"] if cycle > 0 else []
        proc = start(_data_kinds_script.__name__, tmp_path, *args)
        # A loaded machine: the marker, not a sleep.
        wait_for(proc, tmp_path, _new_save(tmp_path, beyond), what="a new save", seconds=300)
        time.sleep(delays.uniform(0.0, 0.15))
        interrupt(proc, tmp_path, how)
        assert not (tmp_path / "final.npz").exists()

    args = [str(tmp_path), "--data", data, "--epochs", str(EPOCHS), "--resume"]
    assert _data_kinds_script.main(args) == 0
    assert_same_final(tmp_path, final(references[data]))
    resumed_mid = {p.name.split("-")[1]: p.read_text() for p in tmp_path.glob("resumed-*")}
    skipped = {p.name.split("-")[1]: p.read_text() for p in tmp_path.glob("skipped-*")}
    if data == "grain":
        assert not skipped  # its position is saved: nothing replayed
    else:
        assert skipped.keys() == resumed_mid.keys()  # every mid-epoch resume replayed
        for pid, position in resumed_mid.items():
            assert re.search(
                rf"its first {position} batches \(already trained\) were skipped; the resume "
                "is exact only if the data yields the same batches again",
                skipped[pid],
            ), skipped[pid]
        if how == "sigterm":
            assert resumed_mid, "a preemption save inside an epoch was expected"
