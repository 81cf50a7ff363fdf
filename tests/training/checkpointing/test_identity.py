"""Issue 30: never the wrong checkpoint, and every item verified.

A checkpoint records its step and run (``meta``, sealed with its own checksum), the
``checksums`` item binds every item of it (the JSON items' checksums, the arrays',
its step and run), and the marker names the directory's run. Before, swapped or
renamed step directories restored silently as the asked-for step, another run's step
copied or linked in restored, one step's item put into another went unnoticed, the
JSON items were not verified, and a damaged marker handed the directory to the next
run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from artifex.generative_models.training._checkpointing import _listing, _restore
from artifex.generative_models.training._checkpointing._format import MARKER_FILE
from artifex.generative_models.training._checkpointing._identity import checked_meta
from artifex.generative_models.training._checkpointing._integrity import seal, unseal
from artifex.generative_models.training._checkpointing._retention import Ranking
from artifex.generative_models.training.callbacks import (
    CheckpointConfig,
    EarlyStopping,
    EarlyStoppingConfig,
    History,
    ModelCheckpoint,
    list_checkpoints,
    restore_checkpoint,
)
from artifex.generative_models.training.trainer import Trainer
from tests.laws._resume_script import DropoutMLP, loss_fn, make_data, make_model
from tests.training.checkpointing._dirs import listing, marker

FORMAT_4 = Path(__file__).resolve().parents[2] / "laws" / "format4_checkpoint"


def _trainer(path: Path, model: DropoutMLP | None = None) -> Trainer[DropoutMLP]:
    early = EarlyStopping(EarlyStoppingConfig(monitor="val_loss", patience=5))
    checkpoint = ModelCheckpoint(
        CheckpointConfig(dirpath=path, monitor="val_loss", save_top_k=-1, async_save=False)
    )
    model = make_model() if model is None else model
    return Trainer(model, optax.adam(1e-2), loss_fn, callbacks=[early, History(), checkpoint])


def _fit(path: Path, epochs: int = 3, **kwargs: Any) -> Trainer[DropoutMLP]:
    trainer = _trainer(path)
    train, val = make_data()
    trainer.fit(train, epochs=epochs, val_data=val, **kwargs)
    return trainer


@pytest.fixture(name="saved", scope="module")
def _saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two runs' directories, A and B, each with steps 6, 12 and 18."""
    root = tmp_path_factory.mktemp("runs")
    for name in ("a", "b"):
        _fit(root / name)
    return root / "a", root / "b"


@pytest.fixture(name="runs")
def _runs(tmp_path: Path, saved: tuple[Path, Path]) -> tuple[Path, Path]:
    return (
        Path(shutil.copytree(saved[0], tmp_path / "a")),
        Path(shutil.copytree(saved[1], tmp_path / "b")),
    )


def _swap(first: Path, second: Path) -> None:
    aside = first.with_name("aside")
    first.rename(aside)
    second.rename(first)
    aside.rename(second)


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


# 1. Identity: the step and the run a checkpoint records are its directory's.


def test_swapped_step_directories_are_refused_naming_both_steps(runs: tuple[Path, Path]) -> None:
    a, _ = runs
    _swap(a / "6", a / "18")
    with pytest.raises(ValueError, match=r"step 18 in .* holds the checkpoint of step 6 "):
        restore_checkpoint(a, step=18)
    with pytest.raises(ValueError, match=r"step 18 in .* holds the checkpoint of step 6 "):
        _trainer(a).resume(a)  # the latest, as resume_from=a
    with pytest.raises(ValueError, match=r"step 6 in .* holds the checkpoint of step 18 "):
        restore_checkpoint(a / "6", target=make_model())
    assert restore_checkpoint(a, step=12).step == 12  # the others restore
    kinds = {info.step: info.kind for info in list_checkpoints(a)}
    assert kinds[6] == kinds[18] == "unreadable"


def test_a_renamed_step_is_refused(runs: tuple[Path, Path]) -> None:
    a, _ = runs
    (a / "18").rename(a / "30")
    with pytest.raises(ValueError, match=r"step 30 in .* holds the checkpoint of step 18 "):
        restore_checkpoint(a, step=30)


@pytest.mark.parametrize("how", ["copied", "linked"])
def test_another_runs_step_is_refused_naming_both_runs(runs: tuple[Path, Path], how: str) -> None:
    a, b = runs
    run_a, run_b = marker(a)["run"], marker(b)["run"]
    shutil.rmtree(a / "18")
    if how == "copied":
        shutil.copytree(b / "18", a / "18")
    else:
        (a / "18").symlink_to(b / "18", target_is_directory=True)
    message = rf"step 18 in .* belongs to run '{run_b}' .* directory's run '{run_a}'"
    with pytest.raises(ValueError, match=message):
        restore_checkpoint(a, step=18)
    with pytest.raises(ValueError, match=message):
        restore_checkpoint(a / "18")  # the link's own name is the step, not its target's
    assert restore_checkpoint(a, step=12).step == 12
    before = listing(b)
    with pytest.raises(FileExistsError, match=rf"holds checkpoints of another run: run '{run_b}'"):
        _fit(a, epochs=1, resume_from=a / "12")  # its retention could delete them
    assert listing(b) == before


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("meta", r"step 18 in .* holds the checkpoint of step 6 "),
        ("checksums", r"its 'checksums' item was saved for step 6 of run .* for step 18"),
        ("callbacks", r"item 'callbacks' fails its checksum .* from another checkpoint"),
        ("state", r"item 'state' entry '[\w.]+' fails its checksum"),
    ],
)
def test_one_steps_item_put_into_another_is_refused(
    runs: tuple[Path, Path], item: str, message: str
) -> None:
    a, _ = runs
    shutil.rmtree(a / "18" / item)
    shutil.copytree(a / "6" / item, a / "18" / item)
    with pytest.raises(ValueError, match=message):
        restore_checkpoint(a, step=18)
    with pytest.raises(ValueError, match=message):
        _trainer(a).resume(a)


# 2. Every item verified; damage to one step never blocks another.


def test_a_changed_callback_state_is_refused(runs: tuple[Path, Path]) -> None:
    a, _ = runs
    file = a / "18" / "callbacks" / "metadata"
    states = _json(file)
    key = next(k for k in states if k.startswith("EarlyStopping"))
    states[key]["best_epoch"] = 6 if states[key]["best_epoch"] != 6 else 1
    file.write_text(json.dumps(states))
    with pytest.raises(ValueError, match=r"step 18 .* item 'callbacks' fails its checksum"):
        _trainer(a).resume(a)


def test_a_changed_score_is_never_ranked(runs: tuple[Path, Path]) -> None:
    a, _ = runs
    best = next(info for info in list_checkpoints(a) if info.kind == "best")
    earlier = [info for info in list_checkpoints(a) if info.step != 18]  # 18: resumed below
    worst = max(earlier, key=lambda info: info.metrics["val_loss"])
    file = a / str(worst.step) / "meta" / "metadata"
    meta = _json(file)
    meta["metrics"]["val_loss"] = -1.0  # the worst made "best"
    file.write_text(json.dumps(meta))
    listed = {info.step: info for info in list_checkpoints(a)}
    assert listed[worst.step].kind == "unreadable"
    assert "fails its own checksum" in str(listed[worst.step].problem)
    assert restore_checkpoint(a, step="best").step == best.step
    with pytest.raises(ValueError, match="'meta' item fails its own checksum"):
        restore_checkpoint(a, step=worst.step)
    trainer = _fit(a, epochs=1, resume_from=a / "18")  # retention reads the scores back
    checkpoint = next(cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint))
    listed_best = next(info for info in list_checkpoints(a) if info.kind == "best")
    assert checkpoint.best_checkpoint_step == listed_best.step != worst.step
    policy = Ranking("min", None, keep_last=False)
    policy.read(a, [6, 12, 18], "val_loss")  # retention's scores of earlier checkpoints
    assert worst.step not in policy.scores
    assert sorted(policy.scores) == sorted({6, 12, 18} - {worst.step})


def test_a_damaged_entry_name_in_the_checksums_is_refused(runs: tuple[Path, Path]) -> None:
    a, _ = runs
    file = a / "18" / "checksums" / "metadata"
    file.write_text(file.read_text().replace("model.hidden.kernel", "model.hidden.kernal"))
    with pytest.raises(ValueError, match=r"its 'checksums' item fails its own checksum"):
        restore_checkpoint(a, step=18)


def test_format_4_restores_and_a_damaged_entry_name_there_is_refused(tmp_path: Path) -> None:
    directory = Path(shutil.copytree(FORMAT_4, tmp_path / "checkpoints"))
    restored = restore_checkpoint(directory)
    assert (restored.step, sorted(restored.extra)) == (9, ["callbacks"])
    file = directory / "9" / "checksums" / "metadata"
    file.write_text(file.read_text().replace('"model.hidden.kernel"', '"model.hidden.kernal"'))
    with pytest.raises(ValueError, match=r"entry 'model\.hidden\.kernel' has no checksum record"):
        restore_checkpoint(directory)


_DAMAGE = ["meta/metadata", "callbacks/metadata", "checksums/metadata", "_CHECKPOINT_METADATA"]


@pytest.mark.parametrize("name", [*_DAMAGE, "state/_METADATA", "state/manifest.ocdbt"])
def test_a_damaged_old_step_blocks_no_other(runs: tuple[Path, Path], name: str) -> None:
    a, _ = runs
    file = a / "6" / name
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    assert restore_checkpoint(a).step == 18
    assert restore_checkpoint(a, step=12).step == 12
    if name in _DAMAGE:  # resuming from the directory, and saving into it again
        trainer = _fit(a, epochs=1, resume_from=a)
        assert trainer.step == 24
        assert restore_checkpoint(a).step == 24


# Deleted while read (an evaluator restoring while the trainer's retention deletes).


def _deleting(
    monkeypatch: pytest.MonkeyPatch, steps: set[str], remove: Callable[[Path], None]
) -> list[Path]:
    """Make the first read of each of ``steps`` delete (with ``remove``) what it reads."""
    removed: list[Path] = []
    check_json = _restore.check_json

    def reading(where: str, step_dir: Path) -> None:
        if step_dir.name in steps and step_dir not in removed:
            removed.append(step_dir)
            remove(step_dir)
        check_json(where, step_dir)

    monkeypatch.setattr(_restore, "check_json", reading)
    return removed


def _remove_arrays(step_dir: Path) -> None:
    """Remove the ``state`` item's files, as a deletion in progress may have."""
    for file in (step_dir / "state").rglob("*"):
        if file.is_file():
            file.unlink()


@pytest.mark.parametrize(
    "remove",
    [
        shutil.rmtree,
        _remove_arrays,
        lambda step: shutil.rmtree(step / "checksums"),
    ],
    ids=["whole", "arrays-first", "one-item"],
)
def test_a_checkpoint_deleted_while_read_is_no_longer_there(
    runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, remove: Callable[[Path], None]
) -> None:
    a, b = runs
    removed = _deleting(monkeypatch, {"12", "18"}, remove)
    assert restore_checkpoint(b).step == 6  # the latest, 18, went, then 12: the latest left
    with pytest.raises(FileNotFoundError, match=r"step 12 in .* is no longer there: it was dele"):
        restore_checkpoint(a, step=12)
    assert removed == [b.resolve() / "18", b.resolve() / "12", a.resolve() / "12"]


def test_a_checkpoint_deleted_while_listed_is_not_listed(
    runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = runs

    def reading(directory: Path, step: int) -> dict[str, Any]:
        if step == 12:  # retention deletes it between the listing of steps and its read
            shutil.rmtree(directory / str(step))
        return checked_meta(directory, step)

    monkeypatch.setattr(_listing, "checked_meta", reading)
    listed = list_checkpoints(a)
    assert [info.step for info in listed] == [6, 18]  # 12 is gone, not "unreadable"
    assert "unreadable" not in [info.kind for info in listed]


def test_a_file_missing_before_the_read_is_damage(runs: tuple[Path, Path]) -> None:
    a, _ = runs
    shutil.rmtree(a / "12" / "checksums")
    with pytest.raises(ValueError, match=r"step 12 in .*") as caught:
        restore_checkpoint(a, step=12)
    assert not isinstance(caught.value, FileNotFoundError)


# 3. The marker.


def _break_marker(path: Path, how: str) -> None:
    file = path / MARKER_FILE
    text = file.read_text()
    content = json.loads(text)
    broken = {
        "garbled": "{\x00\x13 garbled",
        "truncated": text[: len(text) // 2],
        "no run": json.dumps({k: v for k, v in content.items() if k != "run"}),
        "altered run": text.replace(content["run"], "0" * 32),
    }[how]
    file.write_text(broken)


@pytest.mark.parametrize("how", ["garbled", "truncated", "no run", "altered run"])
def test_a_damaged_marker_is_rebuilt_from_the_checkpoints_run(
    runs: tuple[Path, Path], how: str
) -> None:
    a, _ = runs
    run = marker(a)["run"]
    _break_marker(a, how)
    before = listing(a)
    with pytest.raises(FileExistsError, match=rf"holds the checkpoints of run '{run}'"):
        _fit(a, epochs=1)  # a new run: before, it took the directory and deleted them
    assert listing(a) == before
    assert restore_checkpoint(a).step == 18  # restores still tell the run
    assert _fit(a, epochs=1, resume_from=a).step == 24  # the run continued rebuilds it
    assert marker(a)["run"] == run


def test_a_damaged_marker_over_several_runs_is_refused(runs: tuple[Path, Path]) -> None:
    a, b = runs
    shutil.rmtree(a / "18")
    shutil.copytree(b / "18", a / "18")
    _break_marker(a, "truncated")
    before = listing(a)
    both = rf"run '{marker(b)['run']}' \(steps \[18\]\)"
    with pytest.raises(FileExistsError, match=rf"names no run .* several runs: .*{both}"):
        _fit(a, epochs=1)
    with pytest.raises(ValueError, match=rf"names no run .* record several: .*{both}"):
        _fit(a, epochs=1, resume_from=a / "12")
    with pytest.raises(ValueError, match=rf"names no run .* record several: .*{both}"):
        restore_checkpoint(a, step=12)
    assert listing(a) == before


# 4. A bf16 model resuming an f32 checkpoint: read as saved, verified, then cast.


def _bf16_model() -> DropoutMLP:
    model = make_model(seed=5)
    state = nnx.state(model, nnx.Param)
    nnx.update(model, nnx.map_state(lambda _, v: v.astype(jnp.bfloat16), state))
    return model


def test_a_bf16_trainer_resumes_an_f32_checkpoint_cast(runs: tuple[Path, Path]) -> None:
    a, _ = runs
    saved = restore_checkpoint(a).state["model"]["hidden"]["kernel"]
    assert saved.dtype == jnp.float32
    trainer = _trainer(a, _bf16_model())
    assert trainer.resume(a) == 18
    kernel = trainer.model.hidden.kernel[...]
    assert kernel.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(kernel), np.asarray(saved.astype(jnp.bfloat16)))
    # The saved array is what is checked: a sum that no longer fits it is still caught.
    file = a / "18" / "checksums" / "metadata"
    record = unseal(_json(file), "checksums")
    record["arrays"]["state"]["model.hidden.kernel"]["crc32"] ^= 1
    file.write_text(json.dumps(seal(record)))
    with pytest.raises(ValueError, match=r"step 18 .* 'model\.hidden\.kernel' fails its checksum"):
        _trainer(a, _bf16_model()).resume(a)
