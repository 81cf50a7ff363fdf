"""A small or read-only disk for a test: a fresh tmpfs in a private mount namespace.

Only the command run inside the namespace sees the mount; nothing outside changes. Where
``unshare`` is missing or may not mount (an unprivileged container), the test skips.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def in_tmpfs(
    mountpoint: Path, *command: str, options: str = "size=1m", enter: bool = False
) -> list[str]:
    """``command`` run with a fresh tmpfs at ``mountpoint``, in a private mount namespace.

    Args:
        mountpoint: An existing directory to mount the tmpfs on.
        *command: The command to run there.
        options: The mount options (``"ro,size=1m"`` for a read-only disk).
        enter: Run ``command`` with the mount as its working directory.
    """
    cd = ' && cd "$1"' if enter else ""
    script = f'mount -t tmpfs -o {options} tmpfs "$1"{cd} && shift && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, "sh", str(mountpoint), *command]


def skip_unless_mountable(mountpoint: Path, *, options: str = "size=1m") -> None:
    """Skip the test unless a tmpfs with ``options`` can be mounted at ``mountpoint`` here."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount a tmpfs in a mount namespace")
    probe = subprocess.run(
        in_tmpfs(mountpoint, "true", options=options),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"mounting a tmpfs in a mount namespace is not allowed here: {probe.stderr}")
