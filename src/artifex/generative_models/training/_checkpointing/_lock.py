"""The lock of a checkpoint directory: one run writes it at a time (rules: docs/checkpoints.md)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["LOCK_FILE", "DirectoryLock", "LockHeld", "acquire_lock", "check_lock", "is_lock_litter"]

_log = logging.getLogger(__name__)

LOCK_FILE: Final = "artifex_checkpoints.lock"
_UNREADABLE_GRACE: Final = 30.0  # seconds: a writer fills the file at once
_ATTEMPTS: Final = 5  # while stale locks are being replaced concurrently
_MAX_PID: Final = 2**31 - 1  # a pid_t; a larger one is damage (os.kill would overflow)
_HELD: Final[dict[Path, str]] = {}  # the locks this process holds: path to token


class LockHeld(Exception):
    """The directory's lock is held by a live run (or one that cannot be judged)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path}: held by {holder}")
        self.path: Path = path
        self.holder: str = holder


@dataclass(frozen=True, slots=True)
class DirectoryLock:
    """A held lock of a checkpoint directory."""

    path: Path
    token: str

    def release(self) -> None:
        """Remove the lock file if it is still this holder's; never raises."""
        if _HELD.get(self.path) == self.token:
            del _HELD[self.path]
        try:
            if _parse(_read_bytes(self.path)).get("token") == self.token:
                self.path.unlink()
        except OSError as error:  # the directory went away, say: nothing left to release
            _log.warning("could not remove the checkpoint lock %s: %s", self.path, error)


def is_lock_litter(name: str) -> bool:
    """Whether ``name`` is the lock file or what replacing a stale one may leave."""
    return name == LOCK_FILE or (name.startswith(f".{LOCK_FILE}.") and name.endswith(".stale"))


def acquire_lock(directory: Path, run: str | None = None) -> DirectoryLock:
    """Take the lock of the existing ``directory`` for this process."""
    path = directory / LOCK_FILE
    token = uuid.uuid4().hex
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            seen = _read_bytes(path)
            if seen is not None:  # else released meanwhile: try again
                _replace_if_stale(path, seen, run)
            continue
        try:
            try:
                os.write(fd, (json.dumps(_owner(token, run)) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as error:  # a full disk: leave no empty lock to refuse the next run
            path.unlink(missing_ok=True)
            raise OSError(
                error.errno, f"could not write the checkpoint lock {str(path)!r}: {error.strerror}"
            ) from error
        _HELD[path] = token
        return DirectoryLock(path, token)
    raise LockHeld(path, f"{_describe(_read_bytes(path))} (it kept changing)")


def check_lock(directory: Path, run: str | None = None) -> None:
    """Raise what ``acquire_lock`` would raise for a held lock, reading only."""
    path = directory / LOCK_FILE
    seen = _read_bytes(path)
    if seen is not None and _stale(path, seen, run) is None:
        raise LockHeld(path, _describe(seen))


def _replace_if_stale(path: Path, seen: bytes, run: str | None) -> None:
    why = _stale(path, seen, run)
    if why is None:
        raise LockHeld(path, _describe(seen))
    _log.warning("replacing the checkpoint lock %s of %s: %s", path, _describe(seen), why)
    # Moved aside by an atomic rename: if another run replaced the stale lock
    # meanwhile, it is that run's lock that moved, and it is put back (a hard link
    # fails where a lock exists again, so no third run's lock is overwritten).
    aside = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.stale")
    try:
        path.rename(aside)
    except FileNotFoundError:
        return  # someone else moved it
    try:
        if aside.read_bytes() != seen:
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
    finally:
        aside.unlink()


def _stale(path: Path, raw: bytes, run: str | None) -> str | None:
    """Why the lock recorded as ``raw`` may be replaced by ``run``, or ``None`` if not."""
    owner = _parse(raw)
    if not owner:
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return None  # released meanwhile; the next attempt sees that
        return "it stayed unreadable" if age > _UNREADABLE_GRACE else None
    pid = int(owner["pid"])  # a valid pid: _parse saw to it
    if owner.get("host") == socket.gethostname() and owner.get("namespace") == _namespace():
        if pid == os.getpid():
            return None if _HELD.get(path) == owner.get("token") else "this pid, not holding it"
        started = owner.get("started")
        if not _alive(pid) or (started is not None and started != _start_time(pid)):
            return "its process is gone"
        return None
    if run is not None and owner.get("run") == run:
        return f"this run continues its run {run!r}, whose owner cannot be seen from here"
    return None


def _owner(token: str, run: str | None) -> dict[str, Any]:
    pid = os.getpid()
    return {
        "run": run,
        "pid": pid,
        "host": socket.gethostname(),
        "namespace": _namespace(),
        "started": _start_time(pid),
        "token": token,
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _parse(raw: bytes | None) -> dict[str, Any]:
    """The recorded owner; ``{}`` if there is none, or it is unreadable or damaged."""
    try:
        found: object = json.loads(raw or b"")
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    pid: object = found.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= _MAX_PID:
        return {}
    return found


def _describe(raw: bytes | None) -> str:
    owner = _parse(raw)
    if not owner:
        return "an unknown run (the lock file is unreadable or damaged)"
    return (
        f"run {owner.get('run')!r} (pid {owner.get('pid')!r} on host {owner.get('host')!r} "
        f"since {owner.get('since')!r})"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # another user's process
    except OSError:  # ProcessLookupError (or an invalid pid)
        return False
    fields = _proc_stat(pid)
    return not fields or fields[0] != "Z"  # a zombie is dead, only not reaped


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or ``None``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or ``None``."""
    fields = _proc_stat(pid)
    if fields is None or len(fields) < 20 or not fields[19].isdigit():
        return None
    return int(fields[19])


def _namespace() -> str | None:
    """This process's pid namespace (Linux), or ``None``."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
