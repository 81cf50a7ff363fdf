"""The checks the experiment trackers run in ``preflight``, creating nothing.

``MLflowLogger``: the tracking URI's store (an unknown scheme, a store MLflow
refuses, a SQLite database in a missing or non-writable folder or one SQLite cannot
read, a server that does not answer within a few seconds) and the run a resumed
logger reopens. ``WandbLogger``: its ``dir``. Each refusal is a ``ValueError`` (or
``NotADirectoryError``) naming the setting, raised before any tracker (or other
callback) created a run or a file.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from artifex.generative_models.training.callbacks._tracking import missing_extra

__all__ = ["PROBE_SECONDS", "cannot_resume", "check_mlflow_store", "check_wandb_dir"]

PROBE_SECONDS: Final[float] = 3.0
"""How long ``preflight`` waits for a tracking server's answer (one try, no retries)."""

_DATABASES: Final[frozenset[str]] = frozenset({"sqlite", "postgresql", "mysql", "mssql"})


def cannot_resume(run_id: str, tracking_uri: str, error: Exception) -> ValueError:
    """The error for a checkpointed run id that the store does not hold."""
    return ValueError(
        f"MLflowLogger cannot resume the run {run_id!r} of its checkpointed state at "
        f"tracking_uri {tracking_uri!r}: {error}. Pass the tracking_uri of the first run."
    )


def _probe(tracking_uri: str) -> None:
    """Refuse a tracking server that does not answer within ``PROBE_SECONDS``."""
    url = f"{tracking_uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_SECONDS):  # http(s) only
            pass
    except urllib.error.HTTPError:
        return  # it answered: reachable (a proxy may not serve /health)
    except (OSError, ValueError) as error:  # URLError, a refused connection, a timeout
        raise ValueError(
            f"MLflowLogger cannot reach the tracking server at tracking_uri {tracking_uri!r} "
            f"(no answer within {PROBE_SECONDS:g} s: {error}); start it, or pass another "
            "tracking_uri"
        ) from error


def _check_sqlite(tracking_uri: str) -> None:
    """Refuse a SQLite database MLflow could not open or write, creating nothing.

    MLflow retries opening a database for about 100 s before it fails (no setting
    bounds it), so what would fail there is refused here at once: a missing folder, a
    folder or file that cannot be written (a read-only file system, no permission),
    and a file SQLite cannot read.
    """
    database = Path(tracking_uri[len("sqlite:///") :].partition("?")[0])
    folder = database.parent
    where = f"MLflowLogger tracking_uri {tracking_uri!r}"
    if not folder.is_dir():
        raise ValueError(
            f"{where}: the folder {str(folder)!r} of its SQLite database does not exist; "
            "create it, or pass another tracking_uri"
        )
    exists = database.is_file()
    for path in (folder, database) if exists else (folder,):
        if not os.access(path, os.W_OK):
            raise ValueError(
                f"{where}: {str(path.resolve())!r} cannot be written (a read-only file system, "
                "or no permission), and MLflow writes its SQLite database there; pass a "
                "tracking_uri on a writable disk"
            )
    if exists:  # read only: a damaged file fails here, not after MLflow's retries
        uri = f"{database.resolve().as_uri()}?mode=ro"
        try:
            with closing(sqlite3.connect(uri, uri=True, timeout=PROBE_SECONDS)) as db:
                db.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error as error:
            raise ValueError(
                f"{where}: SQLite cannot read {str(database)!r} ({error}); pass another "
                "tracking_uri, or move the file aside"
            ) from error


def check_mlflow_store(tracking_uri: str, run_id: str | None) -> None:
    """Refuse a tracking URI MLflow cannot use, or a resumed run it does not hold.

    A database store is not connected to for a new run (MLflow would create its
    tables); a SQLite database's folder must exist.

    Raises:
        ImportError: If ``mlflow`` is not installed (the message names the extra).
        ValueError: If the store is refused or unreachable, or ``run_id`` is not in it.
    """
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise missing_extra("MLflowLogger", "mlflow", "mlflow") from exc
    scheme = urlsplit(tracking_uri).scheme.partition("+")[0]  # postgresql+psycopg2
    if scheme == "sqlite" and tracking_uri.startswith("sqlite:///"):
        _check_sqlite(tracking_uri)
    if scheme in ("http", "https"):
        _probe(tracking_uri)
    if scheme in _DATABASES and run_id is None:
        return
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
    except MlflowException as exc:  # an unknown scheme, a backend MLflow no longer takes
        raise ValueError(f"MLflowLogger cannot use tracking_uri {tracking_uri!r}: {exc}") from exc
    if run_id is not None:
        try:
            client.get_run(run_id)
        except MlflowException as exc:
            raise cannot_resume(run_id, tracking_uri, exc) from exc


def check_wandb_dir(directory: str | os.PathLike[str] | None) -> None:
    """Refuse a ``WandbLogger`` ``dir`` that is a file or below one.

    Raises:
        NotADirectoryError: If ``directory`` or a folder above it is a file.
    """
    if directory is None:
        return
    path = Path(directory).resolve()
    folder = next(parent for parent in (path, *path.parents) if parent.exists())
    if not folder.is_dir():
        raise NotADirectoryError(
            f"WandbLogger dir {str(path)!r} cannot be created: {str(folder)!r} is a file, "
            "not a folder"
        )
