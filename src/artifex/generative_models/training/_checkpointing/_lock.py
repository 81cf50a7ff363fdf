"""The lock of a checkpoint directory: one run writes it at a time.

The lock is the file ``LOCK_FILE`` in the directory, created atomically
(``O_CREAT | O_EXCL``) and holding its owner: the process id, the host (and, on
Linux, the process's start time and pid namespace, so a reused pid or another
container is not mistaken for the owner). It is removed when the run ends. A lock
whose owner is gone is stale: one written on this host (and pid namespace) by a
process that no longer runs (killed, say), by this very process id without this
process holding it (a restarted container), or left unreadable for
``_UNREADABLE_GRACE`` seconds (its writer died between creating and filling it).
A stale lock is moved aside by an atomic rename, checked to be the one judged stale,
and a new one created; a lock of another host is never judged stale, since its
process cannot be seen from here.
"""

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

__all__ = [
    "LOCK_FILE",
    "DirectoryLock",
    "LockHeld",
    "acquire_lock",
    "check_lock",
    "is_lock_litter",
]

_log = logging.getLogger(__name__)

LOCK_FILE: Final = "artifex_checkpoints.lock"
"""The lock file of a checkpoint directory while a run writes it."""

_UNREADABLE_GRACE: Final = 30.0
"""Seconds after which an unreadable lock file is stale (a writer fills it at once)."""

_ATTEMPTS: Final = 5
"""How often a lock is tried when stale locks are being replaced concurrently."""

_HELD: Final[dict[Path, str]] = {}
"""The locks this process holds: lock path to token."""


class LockHeld(Exception):
    """The directory's lock is held by a live run (or one that cannot be judged).

    Attributes:
        path: The lock file.
        holder: A description of the owner (its pid and host, as recorded).
    """

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path}: held by {holder}")
        self.path: Path = path
        self.holder: str = holder


@dataclass(frozen=True, slots=True)
class DirectoryLock:
    """A held lock of a checkpoint directory.

    Attributes:
        path: The lock file.
        token: This holder's token, recorded in the file.
    """

    path: Path
    token: str

    def release(self) -> None:
        """Remove the lock file if it is still this holder's; never raises."""
        if _HELD.get(self.path) == self.token:
            del _HELD[self.path]
        try:
            recorded = _read(self.path)
            if recorded is not None and recorded.get("token") == self.token:
                self.path.unlink()
        except OSError as error:  # the directory went away, say: nothing left to release
            _log.warning("could not remove the checkpoint lock %s: %s", self.path, error)


def is_lock_litter(name: str) -> bool:
    """Whether ``name`` is the lock file or what replacing a stale one may leave.

    Args:
        name: A file name in a checkpoint directory.

    Returns:
        ``True`` for ``LOCK_FILE`` and ``.<LOCK_FILE>.*.stale`` files.
    """
    return name == LOCK_FILE or (name.startswith(f".{LOCK_FILE}.") and name.endswith(".stale"))


def acquire_lock(directory: Path) -> DirectoryLock:
    """Take the lock of the existing ``directory`` for this process.

    Args:
        directory: The checkpoint directory.

    Returns:
        The held lock; ``release`` it when the run ends.

    Raises:
        LockHeld: If a live run (or one on another host) holds it.
        OSError: If the lock file cannot be created or read.
    """
    path = directory / LOCK_FILE
    token = uuid.uuid4().hex
    owner = _owner(token)
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            seen = _read_bytes(path)
            if seen is None:  # released meanwhile: try again
                continue
            if not _is_stale(path, seen):
                raise LockHeld(path, _describe(seen)) from None
            _log.warning("replacing the stale checkpoint lock %s (%s)", path, _describe(seen))
            _move_aside(path, seen)
            continue
        try:
            os.write(fd, (json.dumps(owner) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        _HELD[path] = token
        return DirectoryLock(path, token)
    raise LockHeld(path, f"{_describe(_read_bytes(path) or b'')} (it kept changing)")


def check_lock(directory: Path) -> None:
    """Raise if another live run holds the lock of ``directory``; reads only.

    What ``acquire_lock`` would refuse, without taking the lock (a stale lock passes;
    one held by this process, for another callback, does not).

    Args:
        directory: The checkpoint directory.

    Raises:
        LockHeld: If a live run (or one on another host) holds it.
        OSError: If the lock file cannot be read.
    """
    path = directory / LOCK_FILE
    seen = _read_bytes(path)
    if seen is not None and not _is_stale(path, seen):
        raise LockHeld(path, _describe(seen))


def _owner(token: str) -> dict[str, Any]:
    pid = os.getpid()
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "namespace": _pid_namespace(),
        "started": _start_time(pid),
        "token": token,
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        found: object = json.loads(raw)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _read(path: Path) -> dict[str, Any] | None:
    raw = _read_bytes(path)
    return None if raw is None else _parse(raw)


def _describe(raw: bytes) -> str:
    owner = _parse(raw)
    if owner is None:
        return "an unknown run (the lock file is unreadable)"
    return f"pid {owner.get('pid')!r} on host {owner.get('host')!r} since {owner.get('since')!r}"


def _is_stale(path: Path, raw: bytes) -> bool:
    """Whether the lock recorded as ``raw`` belongs to no running process."""
    owner = _parse(raw)
    if owner is None:
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return False  # released meanwhile; the next attempt sees that
        return age > _UNREADABLE_GRACE
    pid: object = owner.get("pid")
    if (
        owner.get("host") != socket.gethostname()
        or owner.get("namespace") != _pid_namespace()
        or not isinstance(pid, int)
        or isinstance(pid, bool)
    ):
        return False
    if pid == os.getpid():
        return _HELD.get(path) != owner.get("token")
    if not _alive(pid):
        return True
    started = owner.get("started")
    return started is not None and started != _start_time(pid)  # the pid was reused


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:  # pragma: no cover - an invalid pid
        return False
    return _proc_state(pid) != "Z"  # a zombie is dead, only not reaped


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or ``None``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _proc_state(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[0] if fields else None


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or ``None``."""
    fields = _proc_stat(pid)
    if fields is None or len(fields) < 20 or not fields[19].isdigit():
        return None
    return int(fields[19])


def _pid_namespace() -> str | None:
    """This process's pid namespace (Linux), or ``None``."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _move_aside(path: Path, seen: bytes) -> None:
    """Remove the stale lock ``path`` that read as ``seen``, unless it changed since.

    The rename is atomic: if another run replaced the stale lock meanwhile, it is that
    run's lock that was moved, and it is put back (a hard link fails where a lock
    exists again, so no third run's lock is overwritten).
    """
    aside = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.stale")
    try:
        path.rename(aside)
    except FileNotFoundError:
        return  # someone else moved it
    try:
        if aside.read_bytes() != seen:
            with contextlib.suppress(FileExistsError):  # a third run's lock: leave it
                os.link(aside, path)
    finally:
        aside.unlink()
