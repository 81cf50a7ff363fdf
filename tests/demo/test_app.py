"""A shortened demo run end to end: its outputs exist and are well-formed."""

from __future__ import annotations

import csv
from pathlib import Path

import jax
import numpy as np
import pytest
from matplotlib.image import imread

from artifex.generative_models.demo import main, run
from artifex.generative_models.demo.vae import VAE
from artifex.generative_models.training.callbacks import restore_checkpoint


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_short_demo_writes_well_formed_outputs_and_resumes(tmp_path: Path) -> None:
    result = run(tmp_path, epochs=2, progress=False)
    assert result.epochs_run == 2
    assert result.status == "completed"
    assert set(result.final_epoch_logs) >= {"loss", "val_loss", "kl", "reconstruction"}
    assert result.best_checkpoint_step in (24, 48)  # ranked by val_loss over both epochs

    for png in (result.samples_png, result.curves_png):
        image = imread(png)
        assert image.ndim == 3
        assert image.shape[0] > 100
        assert image.shape[1] > 100
        assert np.ptp(image) > 0  # not a blank picture

    rows = _rows(result.csv_path)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(np.isfinite(float(r["val_loss"])) for r in rows)

    fresh, trained_model = VAE(), VAE()
    restored = restore_checkpoint(result.checkpoint_dir, target=trained_model)
    assert restored.step == 2 * -(-1500 // 64)  # the latest checkpoint: two epochs of steps
    trained = np.asarray(trained_model.decoder_out.kernel[...])
    assert not np.array_equal(trained, np.asarray(fresh.decoder_out.kernel[...]))
    assert np.all(np.isfinite(np.asarray(trained_model.sample(jax.random.key(0), 4))))

    # Without --resume an existing run is never overwritten; with it, the run continues.
    with pytest.raises(FileExistsError, match="--resume"):
        run(tmp_path, epochs=1, progress=False)
    again = run(tmp_path, epochs=1, progress=False, resume=True)
    assert again.epochs_run == 1
    assert len(_rows(result.csv_path)) == 3


def test_cli_refuses_to_resume_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--run-dir", str(tmp_path / "new"), "--resume", "--no-progress"])
    assert info.value.code == 2
    assert "no checkpoint to resume" in capsys.readouterr().err
