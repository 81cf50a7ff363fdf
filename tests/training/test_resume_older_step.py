"""Resuming from a checkpoint older than the latest, as an explicit choice (issue 26, point 6).

``resume_from=dirpath/<step>`` with ``supersede=True`` moves the later checkpoints
aside inside the directory, as ``<step>.superseded-<n>``, never deleting a byte; the
step listing, retention and the tidy-up ignore them. Without the choice the run is
refused, and the refusal names this way out.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from artifex.generative_models.training.callbacks import list_checkpoints
from tests.laws._resume_script import build, make_data


def _digest(path: Path) -> dict[str, str]:
    """Every file below ``path``, by relative name, as a SHA-256."""
    return {
        str(file.relative_to(path)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(path.rglob("*"))
        if file.is_file()
    }


def test_the_later_checkpoints_are_moved_aside_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainer, _, _ = build(tmp_path)
    train, val = make_data()
    trainer.fit(train, epochs=3, val_data=val)  # steps 6, 12 and 18
    checkpoints = tmp_path / "checkpoints"
    before = {step: _digest(checkpoints / str(step)) for step in (12, 18)}
    again, _, _ = build(tmp_path)
    with pytest.raises(FileExistsError) as refused:
        again.fit(train, epochs=1, val_data=val, resume_from=checkpoints / "6")
    assert "supersede=True" in str(refused.value)
    assert "'<step>.superseded-<n>'" in str(refused.value)
    with caplog.at_level(logging.WARNING):
        again.fit(train, epochs=1, val_data=val, resume_from=checkpoints / "6", supersede=True)
    for step in (12, 18):
        aside = checkpoints / f"{step}.superseded-1"
        assert _digest(aside) == before[step]  # every byte kept
        assert f"moved the later checkpoint {step} aside to {aside}" in caplog.text
    assert [c.step for c in list_checkpoints(checkpoints)] == [6, 12]  # 12: the new one
    third, _, _ = build(tmp_path)  # once more from step 6: the next number
    third.fit(train, epochs=2, val_data=val, resume_from=checkpoints / "6", supersede=True)
    assert (checkpoints / "12.superseded-2").is_dir()
    assert (checkpoints / "12.superseded-1").is_dir()
    assert [c.step for c in list_checkpoints(checkpoints)] == [6, 12, 18]


def test_supersede_needs_resume_from(tmp_path: Path) -> None:
    trainer, _, _ = build(tmp_path)
    train, _ = make_data()
    with pytest.raises(ValueError, match="needs resume_from"):
        trainer.fit(train, epochs=1, supersede=True)
