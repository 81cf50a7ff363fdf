"""Run test scripts on several host CPU devices, or as a multi-process JAX job on loopback.

JAX fixes its device count when its backend starts, and the test process has already
started it with one CPU device, so every multi-device check runs in fresh
subprocesses. A script calls :func:`initialize` first thing; the launcher tells it,
through environment variables, how many host devices to create and which process of
which job it is.

Launcher side (in a test)::

    outputs = run_job("tests.laws._spmd_script", "--out", str(tmp_path), processes=2, devices=4)

Script side (``python -m tests.laws._spmd_script``)::

    from tests._distributed import initialize
    initialize()  # before anything else touches JAX
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Finished", "initialize", "run_job", "start_job"]

_ROOT = Path(__file__).resolve().parent.parent
_COORDINATOR = "ARTIFEX_TEST_COORDINATOR"
_PROCESSES = "ARTIFEX_TEST_NUM_PROCESSES"
_PROCESS_ID = "ARTIFEX_TEST_PROCESS_ID"


@dataclass(frozen=True, slots=True)
class Finished:
    """One finished process of a job: its id and what it printed."""

    process_id: int
    stdout: str
    stderr: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_job(
    module: str,
    *args: str,
    processes: int = 1,
    devices: int = 1,
    timeout: float = 300.0,
) -> list[Finished]:
    """Run ``python -m module *args`` as ``processes`` processes of one JAX job.

    Each process gets ``devices`` host CPU devices. With ``processes > 1`` they form
    one job through ``jax.distributed.initialize`` on a free loopback port.

    Args:
        module: The script's module name (it must call :func:`initialize`).
        *args: Its command-line arguments.
        processes: How many processes (>= 1).
        devices: Host CPU devices per process (>= 1).
        timeout: Seconds the whole job may take before every process is killed.

    Returns:
        Each process's output, by process id.

    Raises:
        AssertionError: If a process fails or the job times out; the message holds
            every process's output.
    """
    procs = start_job(module, *args, processes=processes, devices=devices)
    finished: list[Finished] = []
    failed = False
    try:
        for pid, proc in enumerate(procs):
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                for other in procs:
                    other.kill()
                stdout, stderr = proc.communicate()
                stderr += f"\n[killed after {timeout} s]"
                failed = True
            finished.append(Finished(pid, stdout, stderr))
            failed = failed or proc.returncode != 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    if failed or len(finished) != processes:
        report = "\n".join(
            f"--- process {f.process_id} (exit {procs[f.process_id].returncode}) ---\n"
            f"{f.stdout[-4000:]}\n{f.stderr[-8000:]}"
            for f in finished
        )
        raise AssertionError(f"{module} failed:\n{report}")
    return finished


def start_job(
    module: str, *args: str, processes: int, devices: int = 1
) -> list[subprocess.Popen[str]]:
    """Start ``python -m module *args`` as ``processes`` processes of one JAX job.

    Like :func:`run_job`, without waiting: for tests that signal a process mid-run.
    The processes' stdout and stderr are pipes.

    Args:
        module: The script's module name (it must call :func:`initialize`).
        *args: Its command-line arguments.
        processes: How many processes (>= 1).
        devices: Host CPU devices per process (>= 1).

    Returns:
        The processes, by process id.
    """
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        _PROCESSES: str(processes),
        _COORDINATOR: f"127.0.0.1:{_free_port()}",
    }
    return [
        subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=_ROOT,
            env={**env, _PROCESS_ID: str(pid)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in range(processes)
    ]


def initialize() -> tuple[int, int]:
    """In a script started by :func:`run_job`: join the job, before JAX starts.

    Returns:
        ``(process_id, processes)``; ``(0, 1)`` when run on its own.
    """
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    processes = int(os.environ.get(_PROCESSES, "1"))
    process_id = int(os.environ.get(_PROCESS_ID, "0"))
    if processes > 1:
        import jax

        jax.distributed.initialize(
            coordinator_address=os.environ[_COORDINATOR],
            num_processes=processes,
            process_id=process_id,
        )
    return process_id, processes
