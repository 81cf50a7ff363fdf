"""The format line: the current format and the one before restore; older ones are refused.

A checkpoint's format is ``meta["format"]``; the committed format-4 fixture
(``tests/laws/format4_checkpoint``) is rewritten here to claim other formats.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from artifex.generative_models.training._checkpointing._format import (
    CHECKPOINT_FORMAT,
    FORMAT_4,
    READABLE_FORMATS,
    RETIRED_FORMATS,
)
from artifex.generative_models.training.callbacks import restore_checkpoint

FIXTURE = Path(__file__).resolve().parents[2] / "laws" / "format4_checkpoint"


def _claiming(tmp_path: Path, found: str) -> Path:
    """A copy of the format-4 fixture whose checkpoint (step 9) claims the format ``found``."""
    directory = Path(shutil.copytree(FIXTURE, tmp_path / "checkpoints"))
    path = directory / "9" / "meta" / "metadata"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format": found}))
    return directory


def test_the_line_is_the_current_format_and_the_one_before() -> None:
    assert CHECKPOINT_FORMAT.endswith("/5")
    assert {FORMAT_4, CHECKPOINT_FORMAT} == READABLE_FORMATS
    assert FORMAT_4.endswith("/4")
    assert sorted(RETIRED_FORMATS) == [
        "artifex-nnx-callbacks/checkpoint/1",
        "artifex-nnx-callbacks/checkpoint/2",
        "artifex-nnx-callbacks/checkpoint/3",
    ]


@pytest.mark.parametrize(("number", "commit"), [(1, "31164a9"), (2, "31164a9"), (3, "00a1ee1")])
def test_a_retired_format_is_refused_naming_the_version_that_reads_it(
    tmp_path: Path, number: int, commit: str
) -> None:
    found = f"artifex-nnx-callbacks/checkpoint/{number}"
    directory = _claiming(tmp_path, found)
    with pytest.raises(
        ValueError,
        match=rf"step 9 in .* has the format '{found}', which this version no longer reads "
        r"\(it reads .*checkpoint/4.*checkpoint/5.*\); restore it with artifex-nnx-callbacks "
        rf"0\.1\.0 up to commit {commit}",
    ):
        restore_checkpoint(directory)


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    directory = _claiming(tmp_path, "artifex-nnx-callbacks/checkpoint/99")
    with pytest.raises(ValueError, match=r"checkpoint/99'; this version reads .* newer"):
        restore_checkpoint(directory)
