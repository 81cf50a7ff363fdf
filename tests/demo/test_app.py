"""A shortened demo run end to end: its outputs exist and are well-formed."""

from __future__ import annotations

import csv
import dataclasses
import os
import signal
from pathlib import Path

import jax
import numpy as np
import pytest
from matplotlib.image import imread

from artifex.generative_models.demo import app, main, run
from artifex.generative_models.demo.plots import save_loss_curves
from artifex.generative_models.demo.vae import VAE
from artifex.generative_models.training.callbacks import LambdaCallback, restore_checkpoint


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


def test_help_explains_every_option_in_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text
    assert "[`" not in text  # no RST or mkdocstrings markup
    options = [action for action in app._parser()._actions if action.option_strings]
    assert len(options) == 8  # --help and the seven options
    for action in options:
        assert action.help, f"{action.option_strings} has no help"
        assert action.option_strings[-1] in text
    assert f"{app.EXIT_PREEMPTED} when a preemption notice" in " ".join(text.split())


def test_summary_says_why_the_run_stopped_and_counts_epochs(tmp_path: Path) -> None:
    result = app.DemoResult(
        epochs_run=1,
        final_epoch_logs={"loss": 1.0, "val_loss": 2.0},
        best_checkpoint_step=24,
        checkpoint_dir=tmp_path,
        csv_path=tmp_path / "log.csv",
        samples_png=tmp_path / "s.png",
        curves_png=tmp_path / "c.png",
        status="stopped",
        stop_reason="val_loss did not improve for 1 epochs (best 2.0 at epoch 0)",
        best_epoch=0,
    )
    summary = app._summary(result, 1.0)
    assert "1 epoch in" in summary
    assert "stopped early: val_loss did not improve for 1 epochs" in summary
    assert "best epoch:      0" in summary
    completed = dataclasses.replace(result, epochs_run=3, status="completed", stop_reason=None)
    assert "3 epochs in 1.0 s (completed)" in app._summary(completed, 1.0)


def test_best_epoch_is_the_lowest_val_loss_and_is_marked(tmp_path: Path) -> None:
    curves = [{"loss": 3.0, "val_loss": 3.0}, {"loss": 2.0, "val_loss": 1.0}, {"loss": 1.0}]
    assert app._best_epoch(curves) == 1
    assert app._best_epoch([{"loss": 1.0}]) is None
    plain = imread(save_loss_curves(tmp_path / "plain.png", curves))
    marked = imread(save_loss_curves(tmp_path / "marked.png", curves, best_epoch=1))
    assert plain.shape == marked.shape
    assert not np.array_equal(plain, marked)


def test_a_preempted_run_prints_one_line_and_exits_75_then_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def preempt(trainer: object, epoch: int, logs: dict[str, float]) -> None:
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # the trainer's handler takes it during fit

    # The notice arrives from the last callback, where the progress display would be.
    monkeypatch.setattr(app, "ProgressBar", lambda: LambdaCallback(on_epoch_end=preempt))
    run_dir = tmp_path / "run"
    assert main(["--run-dir", str(run_dir), "--epochs", "3"]) == app.EXIT_PREEMPTED == 75
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("artifex-demo: preempted at step 24; checkpoint saved in ")
    assert str(run_dir / "checkpoints") in lines[0]
    assert lines[0].endswith(f"resume with: artifex-demo --run-dir {run_dir} --resume")
    assert "Traceback" not in captured.err + captured.out
    assert main(["--run-dir", str(run_dir), "--resume", "--epochs", "1", "--no-progress"]) == 0
    assert "resuming from step 24" in capsys.readouterr().out
