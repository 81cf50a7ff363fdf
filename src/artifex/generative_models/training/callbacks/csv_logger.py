"""Write one CSV row per epoch."""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack, overload

from artifex.generative_models.training._checkpointing._paths import (
    check_user_path,
    check_writable,
)
from artifex.generative_models.training._checks import check_bool, check_path
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback
from artifex.generative_models.training.callbacks._monitor import to_float
from artifex.generative_models.training.callbacks.base import (
    ProcessScope,
    TrainerLike,
)

__all__ = ["CSVLogger", "CSVLoggerConfig", "CSVLoggerKwargs"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
"""A text cell starting with one of these gets a leading ``'`` (the quote itself included,
so that reading undoes it exactly): a spreadsheet shows it as text, not a formula (OWASP's
advice on CSV injection). Numeric cells are never changed: ``-0.5`` stays ``-0.5``."""


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _escape(cell: str) -> str:
    """The cell as written: a text cell that a spreadsheet would run as a formula is quoted."""
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) and not _is_number(cell) else cell


def _unescape(cell: str) -> str:
    """The cell as read back: undoes ``_escape``."""
    return cell[1:] if cell.startswith("'") and not _is_number(cell) else cell


@dataclass(frozen=True, slots=True, kw_only=True)
class CSVLoggerConfig:
    """Configuration of [`CSVLogger`][].

    Attributes:
        filename: The CSV file, resolved at ``on_train_begin``; parent directories are
            created.
        separator: The one-character field separator.
        append: Append to an existing file (the default, so resumed runs continue it).
            ``False`` truncates the file at this instance's first ``on_train_begin``;
            later ``fit`` calls of the same instance append.
    """

    filename: str | os.PathLike[str] = "training_log.csv"
    separator: str = ","
    append: bool = True

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            TypeError: If ``append`` is not a bool.
            ValueError: If ``filename`` is empty or ``separator`` not one character.
        """
        check_path("filename", self.filename)
        separator: object = self.separator  # a run-time check of what the types promise
        if not isinstance(separator, str) or len(separator) != 1 or separator in '\r\n"':
            raise ValueError(
                f"separator must be one character other than a quote or newline, "
                f"got {self.separator!r}"
            )
        check_bool("append", self.append)


class CSVLoggerKwargs(TypedDict, total=False):
    """The fields of [`CSVLoggerConfig`][], as keyword arguments (each optional)."""

    filename: str | os.PathLike[str]
    separator: str
    append: bool


class CSVLogger(ConfiguredCallback[CSVLoggerConfig]):
    """Append one row per epoch: ``epoch`` then the numeric epoch logs, sorted by key.

    Values are written with ``repr`` (round-trippable floats); a key missing from an
    epoch is written as an empty field. The file is opened, appended to and closed at
    every epoch end, so it is complete at every point of a crash. When a new key
    appears (say ``val_loss`` from the second epoch on), the file is rewritten with the
    wider header, atomically (a temporary file then ``os.replace``); no row is lost.
    Appending to an existing file keeps its columns. Reads epoch logs only: no
    per-batch work, no device sync.

    It is a ``StatefulCallback`` (``state_key`` ``"CSVLogger[<file name>]"``): a
    checkpoint records how many rows the file held. When training resumes from it,
    rows written after the checkpoint (the epochs a crash cut short, which are about to
    be run again) are moved out of the file, at the next ``on_train_begin``, into a new
    ``<filename>.superseded-<n>`` CSV next to it, so the log holds each epoch once and
    no row is lost. Register it before ``ModelCheckpoint``, so the row of the
    checkpointed epoch is counted. A run that restored no checkpoint but appends to a
    file that already holds rows of the epochs it writes (say after a kill during the
    very first save) moves those rows aside the same way, at its first epoch end.

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`CSVLoggerKwargs`][]).
    """

    __slots__ = (
        "_fields",
        "_path",
        "_resume_rows",
        "_rows",
        "_started",
        "_unresumed",
    )
    process_scope: ProcessScope = "main"  # it writes one file, on process 0 only

    @overload
    def __init__(self, config: CSVLoggerConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[CSVLoggerKwargs]) -> None: ...
    def __init__(
        self, config: CSVLoggerConfig | None = None, /, **kwargs: Unpack[CSVLoggerKwargs]
    ) -> None:
        self._configure(CSVLoggerConfig, config, kwargs)
        self._path: Path | None = None
        self._fields: list[str] | None = None
        self._started = False
        self._rows = 0  # data rows in the file
        self._resume_rows: int | None = None  # rows kept by a restored checkpoint
        self._unresumed = False  # rows exist, no checkpoint said which to keep

    @property
    def path(self) -> Path | None:
        """The resolved CSV path, once training has begun."""
        return self._path

    def _refusals(self) -> Path:
        """Raise if the log cannot be a file; read only. Return the resolved path.

        Run by [`preflight`][] and again by every set-up (idempotent, creates nothing).

        Raises:
            IsADirectoryError: If ``filename`` is a directory.
            NotADirectoryError: If a folder above it is a file.
            ValueError: If it is named like a checkpoint directory's marker or lock, or
                lies in a checkpoint directory (whose run would delete it).
            PermissionError: If it, or its folder, cannot be written.
        """
        path = Path(self.config.filename).resolve()
        check_user_path("CSVLogger filename", path)
        if path.is_dir():
            raise IsADirectoryError(
                f"CSVLogger filename {str(path)!r} is a directory; expected a file path"
            )
        folder = next(parent for parent in path.parents if parent.exists())
        if not folder.is_dir():
            raise NotADirectoryError(
                f"CSVLogger filename {str(path)!r} cannot be created: {str(folder)!r} is a "
                "file, not a folder"
            )
        check_writable("CSVLogger filename", path)
        check_writable("CSVLogger filename", path.parent)  # rewritten through a file beside
        return path

    def _setup(self) -> Path:
        path = self._refusals()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.config.append and not self._started:
            path.write_text("")
        self._started = True
        self._path = path
        self._fields, rows = self._read(path)
        self._rows = len(rows)
        keep, self._resume_rows = self._resume_rows, None
        if keep is not None and self._fields is not None and len(rows) > keep:
            self._supersede(path, self._fields, rows, keep)
        self._unresumed = keep is None and self._rows > 0
        return path

    def _supersede_from(self, path: Path, epoch: int) -> None:
        """Move aside the rows from the first one of an epoch ``>= epoch`` on."""
        fields, rows = self._read(path)
        for index, row in enumerate(rows):
            cell = row.get("epoch", "")
            if fields is not None and cell.isdigit() and int(cell) >= epoch:
                self._supersede(path, fields, rows, index)
                return

    def _read(self, path: Path) -> tuple[list[str] | None, list[dict[str, str]]]:
        """The file's header and data rows (``None`` and none for a new file)."""
        if not path.exists() or path.stat().st_size == 0:
            return None, []
        with path.open(newline="") as file:
            reader = csv.reader(file, delimiter=self.config.separator)
            header = next(reader, None)
            if not header:
                return None, []
            fields = [_unescape(cell) for cell in header]
            rows = [dict(zip(fields, map(_unescape, line), strict=False)) for line in reader]
            return fields, rows

    def _supersede(
        self, path: Path, fields: list[str], rows: list[dict[str, str]], keep: int
    ) -> None:
        """Move the rows after the first ``keep`` into a new ``.superseded-<n>`` file."""
        number = 1
        while (aside := path.with_name(f"{path.name}.superseded-{number}")).exists():
            number += 1
        self._write(aside, fields, rows[keep:])
        self._write(path, fields, rows[:keep])
        self._rows = keep

    def _write(self, path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
        """Write a whole CSV file atomically (a temporary file, then ``os.replace``)."""
        sep = self.config.separator
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", newline="") as file:
                writer = csv.writer(file, delimiter=sep, lineterminator="\n")
                writer.writerow(map(_escape, fields))
                writer.writerows([_escape(row.get(f, "")) for f in fields] for row in rows)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def preflight(self, trainer: TrainerLike, /) -> None:
        """Refuse the run now if ``on_train_begin`` would, touching no file.

        See
        [`PreflightCallback`][artifex.generative_models.training.callbacks.protocols.PreflightCallback]:
        a trainer that calls it refuses the run before any
        callback has moved rows aside or truncated a file.

        Args:
            trainer: The trainer about to run.

        Raises:
            IsADirectoryError: If ``filename`` is a directory.
            NotADirectoryError: If a folder above it is a file.
            ValueError: If it is named like a checkpoint directory's marker or lock, or
                lies in a checkpoint directory.
            PermissionError: If it, or its folder, cannot be written (``EROFS`` on a
                read-only file system).
        """
        self._refusals()

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Resolve the path, truncate it if ``append=False`` (first time), read its header.

        Runs the checks of [`preflight`][] first, for trainers that do not call it.

        Raises:
            IsADirectoryError: If ``filename`` is a directory.
            NotADirectoryError: If a folder above it is a file.
            ValueError: As [`preflight`][].
            PermissionError: As [`preflight`][].
        """
        self._setup()

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, logs: dict[str, Any], /) -> None:
        """Append this epoch's row (widening the header if a new key appears)."""
        path = self._path if self._path is not None else self._setup()
        if self._unresumed:  # this run writes these epochs again: keep each once
            self._unresumed = False
            self._supersede_from(path, epoch)
        row: dict[str, str] = {"epoch": str(epoch)}
        for key, raw in logs.items():
            value = to_float(raw)
            if value is not None and key != "epoch":
                row[key] = repr(value)
        sep = self.config.separator
        if self._fields is None:
            self._fields = ["epoch", *sorted(key for key in row if key != "epoch")]
            with path.open("a", newline="") as file:
                csv.writer(file, delimiter=sep, lineterminator="\n").writerow(
                    map(_escape, self._fields)
                )
        new = sorted(key for key in row if key not in self._fields)
        if new:
            self._widen(path, [*self._fields, *new])
        with path.open("a", newline="") as file:
            writer = csv.DictWriter(
                file, self._fields, restval="", delimiter=sep, lineterminator="\n"
            )
            writer.writerow(row)
        self._rows += 1

    def _widen(self, path: Path, fields: list[str]) -> None:
        self._write(path, fields, self._read(path)[1])
        self._fields = fields

    # ------------------------------------------------------------- callback state

    @property
    def state_key(self) -> str:
        """A stable key for checkpoints: ``"CSVLogger[<file name>]"``.

        Only the file's name counts, not its folder, so a run resumed in another
        directory (a branch of the run) finds its logger's state.
        """
        return f"CSVLogger[{Path(self.config.filename).name}]"

    def state_dict(self) -> dict[str, Any]:
        """Return ``{"rows": n}``: how many data rows the file holds now."""
        return {"rows": self._rows}

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        """Restore a checkpoint's row count; the next ``on_train_begin`` acts on it.

        Args:
            state: What [`state_dict`][] returned.

        Raises:
            KeyError: If ``"rows"`` is missing.
            ValueError: If it is not a non-negative integer.
        """
        rows: object = state["rows"]
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise ValueError(f"CSVLogger state 'rows' must be an int >= 0, got {rows!r}")
        self._resume_rows = rows
