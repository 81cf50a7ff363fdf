"""Issue 30, point 7: a directory that cannot be written is refused in preflight.

Resuming into a checkpoint directory that cannot be written, or onto a stale lock on a
read-only file system, used to be refused in ``on_train_begin``, after ``CSVLogger`` had
moved rows aside. Now the preflight pass refuses it, from what ``access(2)`` answers, and
the log is untouched.

How "cannot be written" is made: as a user other than root, with ``chmod`` (a real
refusal by the kernel). As root, permission bits do not stop writes and a read-only
mount needs privileges a test cannot count on, so ``os.access`` (and, for a read-only
file system, ``os.statvfs``) answer as the kernel would there: those tests prove that the
refusal comes in preflight, before any file is touched, on that answer; not that the
kernel gives it. The kernel's own answer, on a tmpfs remounted read-only, is tried by
``tests/laws/test_setup_faults.py`` (where a mount namespace can be made).
"""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeAlias

import optax
import pytest

from artifex.generative_models.training._checkpointing import _lock
from artifex.generative_models.training._checkpointing._lock import LOCK_FILE
from artifex.generative_models.training.callbacks import CSVLogger, ModelCheckpoint
from artifex.generative_models.training.trainer import Trainer
from tests.training._models import DropoutBatchNorm, batches, mse, new_model
from tests.training.callbacks._stubs import FullTrainer
from tests.training.checkpointing._dirs import config, listing, run_a

_Path: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]


@contextmanager
def _not_writable(
    monkeypatch: pytest.MonkeyPatch, root: Path, *, read_only: bool = False
) -> Generator[None, None, None]:
    """``root`` (and all below it) cannot be written: by chmod, or as access(2) would say."""
    if os.geteuid() != 0 and not read_only:
        modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")] if p.is_dir()}
        for path in modes:
            path.chmod(0o555)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    real_access, real_statvfs = os.access, os.statvfs

    def below(path: _Path | int) -> bool:
        found = Path(os.fsdecode(path)) if not isinstance(path, int) else None
        return found is not None and (found == root or root in found.parents)

    def access(
        path: _Path | int,
        mode: int,
        *,
        dir_fd: int | None = None,
        effective_ids: bool = False,
        follow_symlinks: bool = True,
    ) -> bool:
        if mode & os.W_OK and below(path):
            return False
        return real_access(
            path,
            mode,
            dir_fd=dir_fd,
            effective_ids=effective_ids,
            follow_symlinks=follow_symlinks,
        )

    def statvfs(path: _Path | int) -> os.statvfs_result:
        found = real_statvfs(path)
        if not (read_only and below(path)):
            return found
        values = list(found)
        values[8] = found.f_flag | os.ST_RDONLY  # f_flag
        return os.statvfs_result(values)

    with monkeypatch.context() as patch:
        patch.setattr(os, "access", access)
        patch.setattr(os, "statvfs", statvfs)
        yield


def _trainer(ck: Path, log: Path) -> Trainer[DropoutBatchNorm]:
    callbacks = [CSVLogger(filename=log), ModelCheckpoint(config(ck))]
    return Trainer(new_model(), optax.sgd(0.1), mse, callbacks=callbacks)


def test_resuming_into_a_directory_not_writable_is_refused_before_the_log_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ck, log = tmp_path / "ck", tmp_path / "log.csv"
    _trainer(ck, log).fit(batches(2), epochs=2)
    with log.open("a") as file:  # a row the checkpoint does not count: moved aside on resume
        file.write("2,0.25\n")
    before_log, before_ck = log.read_bytes(), listing(ck)
    with _not_writable(monkeypatch, ck), pytest.raises(PermissionError) as refused:
        _trainer(ck, log).fit(batches(2), epochs=1, resume_from=ck)
    assert refused.value.errno == errno.EACCES
    assert f"checkpoint dirpath '{ck}' cannot be written" in str(refused.value)
    assert "in preflight" in " ".join(refused.value.__notes__)
    assert log.read_bytes() == before_log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "log.csv"]  # no .superseded-1
    assert listing(ck) == before_ck


def test_a_stale_lock_on_a_read_only_file_system_is_refused_in_preflight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ck = tmp_path / "ck"
    run_a(ck)
    owner = {"pid": 2**22 + 1, "token": "gone", "host": socket.gethostname()}
    owner["namespace"] = _lock._namespace()  # pyright: ignore[reportPrivateUsage]
    (ck / LOCK_FILE).write_text(json.dumps(owner))  # a dead process's: it would be replaced
    trainer = FullTrainer()
    trainer.step = 6
    before = listing(ck)
    with _not_writable(monkeypatch, ck, read_only=True), pytest.raises(PermissionError) as refused:
        ModelCheckpoint(config(ck)).preflight(trainer)
    assert refused.value.errno == errno.EROFS
    assert f"'{ck}' is on a read-only file system" in str(refused.value)
    assert listing(ck) == before


def test_a_csv_log_in_a_folder_not_writable_is_refused_in_preflight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    with _not_writable(monkeypatch, logs), pytest.raises(PermissionError) as refused:
        CSVLogger(filename=logs / "run" / "log.csv").preflight(FullTrainer())
    assert f"CSVLogger filename '{logs / 'run' / 'log.csv'}' cannot be written" in str(
        refused.value
    )
    assert list(logs.iterdir()) == []
