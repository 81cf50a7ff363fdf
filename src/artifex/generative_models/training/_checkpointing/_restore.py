"""Reading a checkpoint back with a target's layout, and what a failed read says.

Takes plain arguments (a state template, a model); ``restore_checkpoint`` (in
``callbacks/_checkpoint_restore.py``) is the public, target-aware wrapper. Orbax reports
a damaged item or a misfit array as its, or TensorStore's, text, and a failed read
leaves reads behind that report again when collected: so the checks that need no array
(which checkpoint it is, the JSON metadata, the shapes) come first, and a read that
fails anyway (damaged array data) is a ``ValueError`` naming the step, the item and,
where TensorStore names it, the entry; or a ``FileNotFoundError`` when the checkpoint
was deleted meanwhile. The items are then checked against the ``checksums`` item.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx

from artifex.generative_models.training._checkpointing._data_item import (
    DATA_ITEM,
    DataRestore,
    decode_data,
)
from artifex.generative_models.training._checkpointing._directory import is_checkpoint_directory
from artifex.generative_models.training._checkpointing._format import (
    ARRAYS_ITEM,
    CHECKPOINT_FORMAT,
    MARKER_FILE,
    META_ITEM,
    STATE_ITEM,
    item_handlers,
)
from artifex.generative_models.training._checkpointing._identity import (
    check_run,
    checked_meta,
    directory_run,
)
from artifex.generative_models.training._checkpointing._integrity import (
    CHECKSUMS_ITEM,
    ChecksumRestore,
    check_bound,
    checksum_record,
    verify,
    verify_json,
)
from artifex.generative_models.training._checkpointing._pytree import (
    abstract_from_metadata,
    abstract_tree,
    cast_leaves,
    from_savable,
    named_leaves,
    saved_dtypes,
    to_savable,
    with_shardings,
)
from artifex.generative_models.training._checkpointing._step_dirs import (
    CompleteStepsOnly,
    complete_steps,
    incomplete_steps,
    lacking,
    missing_parts,
)

__all__ = ["RestoredCheckpoint", "locate", "read_checkpoint"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoredCheckpoint:
    """What `restore_checkpoint` read (``callbacks.model_checkpoint.restore_checkpoint``).

    Attributes:
        directory: The checkpoint directory.
        step: The checkpoint's global step.
        epoch: The epoch at whose end it was saved; for a mid-epoch checkpoint
            (``position`` not ``None``), the epoch in progress.
        position: For a mid-epoch checkpoint (``every_n_steps``, or a save on
            preemption), how many batches of ``epoch`` had run; ``None`` for an
            epoch-end checkpoint.
        metrics: The numeric epoch logs at that point (Python floats); empty for a
            mid-epoch checkpoint.
        state: The restored training-state pytree (``model``, ``opt_state``, ``step``,
            ``epoch``, ...). With a ``target``, ``nnx.State`` entries of the target's
            state are rebuilt as ``nnx.State``; otherwise they are pure dicts.
        extra: Further JSON items of the checkpoint, by name.
        callback_arrays: The array states of the ``ArrayStatefulCallback`` s, by
            ``state_key`` (pure pytrees, keyed as saved); empty for a checkpoint
            without any. Arrays laid out like
            the target model's arrays (same path, shape and dtype, as
            ``EarlyStopping``'s best weights are) get their shardings; the others
            are whole on this process's first local device.
    """

    directory: Path
    step: int
    epoch: int
    metrics: dict[str, float]
    state: dict[str, Any]
    position: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    callback_arrays: dict[str, Any] = field(default_factory=dict)


_LATEST_ATTEMPTS: Final = 3  # the latest checkpoint, deleted while read: the next latest


class _Gone(FileNotFoundError):
    """The checkpoint was deleted while it was read."""


def read_checkpoint(
    directory: Path,
    step: int | None,
    *,
    template: dict[str, Any] | None = None,
    layout: nnx.Module | None = None,
    into: str = "",
) -> tuple[RestoredCheckpoint, str | None]:
    """Read a checkpoint, laid out for a target (see ``restore_checkpoint``)."""
    path, step = locate(directory, step)
    gone: set[int] = set()  # being deleted, though their directories may linger a while
    while True:
        chosen = _pick_step(path, step, gone)
        try:
            return _read_step(path, chosen, template, layout, into)
        except _Gone as error:
            gone.add(chosen)
            if step is not None or len(gone) == _LATEST_ATTEMPTS:
                raise FileNotFoundError(str(error)) from None
            logger.info("%s; restoring the latest checkpoint left", error)


def _read_step(
    path: Path, step: int, template: dict[str, Any] | None, layout: nnx.Module | None, into: str
) -> tuple[RestoredCheckpoint, str | None]:
    """Read checkpoint ``step``; a ``_Gone`` if it is deleted meanwhile (a failure says why)."""
    where, step_dir = f"checkpoint step {step} in {str(path)!r}", path / str(step)
    before = _files(step_dir)
    try:
        return _read(path, step, where, template, layout, into)
    except (ValueError, OSError):
        if not _vanished(step_dir, before):
            raise
    raise _Gone(
        f"{where} is no longer there: it was deleted while it was read (as the retention of "
        "a run writing the directory deletes older checkpoints); restore another step "
        "(see list_checkpoints)"
    )


def _files(step_dir: Path) -> set[Path]:
    try:
        return set(step_dir.rglob("*"))
    except OSError:
        return set()


def _vanished(step_dir: Path, before: set[Path]) -> bool:
    """Whether the step directory, or a file it held before the read, has gone."""
    return (
        not step_dir.is_dir()
        or bool(missing_parts(step_dir))
        or any(not os.path.lexists(file) for file in before)
    )


def _read(
    path: Path,
    step: int,
    where: str,
    template: dict[str, Any] | None,
    layout: nnx.Module | None,
    into: str,
) -> tuple[RestoredCheckpoint, str | None]:
    """Read checkpoint ``step`` of ``path``, checking which checkpoint it is and every item."""
    meta = checked_meta(path, step)
    check_run(where, meta, directory_run(path))
    extra_names = tuple(str(name) for name in meta.get("items", ()))
    arrays = bool(meta.get("callback_arrays"))
    summed = meta.get("checksums") is True  # format 4 on
    data = meta.get("data") is True  # format 5, with a data position
    check_json(where, path / str(step))  # before Orbax reads anything
    restored, casts = _restore_items(
        path, step, where, extra_names, (arrays, summed, data), template, layout, into
    )
    if summed:
        trees: dict[str, Any] = {k: restored[k] for k in (STATE_ITEM, ARRAYS_ITEM) if k in restored}
        extras = {name: restored[name] for name in extra_names}
        _verify(where, step, meta, restored[CHECKSUMS_ITEM], trees, extras)
    state: dict[str, Any] = cast_leaves(restored[STATE_ITEM], casts)
    if template is not None:
        state = {
            key: from_savable(template[key], value) if key in template else value
            for key, value in state.items()
        }
    if data:
        state[DATA_ITEM] = decode_data(restored[DATA_ITEM], where, step=step, run=meta.get("run"))
    run: object = meta.get("run")
    return RestoredCheckpoint(
        directory=path,
        step=int(step),
        epoch=int(meta["epoch"]),
        position=None if meta.get("position") is None else int(meta["position"]),
        metrics={str(k): float(v) for k, v in meta.get("metrics", {}).items()},
        state=state,
        extra={name: restored[name] for name in extra_names},
        callback_arrays=dict(restored[ARRAYS_ITEM]) if arrays else {},
    ), (run if isinstance(run, str) and run else None)


def _restore_items(
    path: Path,
    step: int,
    where: str,
    extra_names: tuple[str, ...],
    kinds: tuple[bool, bool, bool],
    template: dict[str, Any] | None,
    layout: nnx.Module | None,
    into: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Orbax's restore of every item, arrays in their saved dtypes; the casts to the target's."""
    arrays, summed, data = kinds
    step_dir = path / str(step)
    manager = _open(path, extra_names, arrays=arrays, checksums=summed, data=data)
    try:
        metadata = read_or_explain(where, step_dir, manager.item_metadata, step)
        saved = abstract_from_metadata(metadata[STATE_ITEM])
        abstract = _placeholders(saved, template, layout)
        check_shapes(saved, abstract, where, STATE_ITEM)  # before Orbax reads anything
        # Read as saved, so that the checksums check the saved bytes; cast afterwards.
        abstract, casts = saved_dtypes(abstract, saved)
        items: dict[str, ocp.args.CheckpointArgs] = {STATE_ITEM: ocp.args.StandardRestore(abstract)}
        if arrays:
            items[ARRAYS_ITEM] = ocp.args.StandardRestore(
                _array_placeholders(abstract_from_metadata(metadata[ARRAYS_ITEM]), layout)
            )
        for name in extra_names:
            items[name] = ocp.args.JsonRestore()
        if summed:
            items[CHECKSUMS_ITEM] = ChecksumRestore()
        if data:
            items[DATA_ITEM] = DataRestore()
        restored = read_or_explain(
            where, step_dir, manager.restore, step, args=ocp.args.Composite(**items), into=into
        )
    finally:
        manager.close()
    return {name: restored[name] for name in items}, casts


def _verify(
    where: str,
    step: int,
    meta: dict[str, Any],
    read: object,
    trees: dict[str, Any],
    extras: dict[str, Any],
) -> None:
    """Check the restored items against the checksums item, and that it is this checkpoint's."""
    sealed = meta.get("format") == CHECKPOINT_FORMAT
    try:
        binding, sums = checksum_record(read, sealed=sealed)
    except ValueError as error:
        raise ValueError(f"{where} is damaged: {error}") from None
    if sealed:
        saved = (binding.get("step"), binding.get("run"))
        check_bound(where, CHECKSUMS_ITEM, saved, step, meta.get("run"))
        verify_json(binding.get("json"), {META_ITEM: meta, **extras}, where)
    verify(sums, trees, where)


def _open(
    path: Path,
    extra: tuple[str, ...] = (),
    *,
    arrays: bool = False,
    checksums: bool = False,
    data: bool = False,
) -> ocp.CheckpointManager:
    """A read-only, synchronous Orbax manager of the checkpoint directory ``path``."""
    return ocp.CheckpointManager(
        path,
        options=ocp.CheckpointManagerOptions(
            create=False, enable_async_checkpointing=False, step_name_format=CompleteStepsOnly()
        ),
        item_handlers=item_handlers(extra, arrays=arrays, checksums=checksums, data=data),
    )


def _array_placeholders(abstract: Any, model: nnx.Module | None) -> Any:
    """Restore placeholders of the callback arrays: the model's shardings where they fit."""
    if model is None or not isinstance(abstract, dict):
        return abstract
    pure_model = nnx.to_pure_dict(nnx.state(model))
    return {key: with_shardings(tree, pure_model) for key, tree in abstract.items()}


def locate(path: Path, step: int | None) -> tuple[Path, int | None]:
    """The checkpoint directory (resolved) and step meant by ``path`` (a directory or a step)."""
    # A step is told by its own name, not by a link's target (the identity checks refuse that).
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory {str(path)!r} does not exist")
    if (
        not is_checkpoint_directory(path)
        and path.name.isdigit()
        and is_checkpoint_directory(path.parent)
    ):
        if step is not None and step != int(path.name):
            raise ValueError(
                f"step={step} contradicts the step directory {str(path)!r}; pass one of them"
            )
        path, step = path.parent, int(path.name)
    if not is_checkpoint_directory(path):
        raise ValueError(f"{str(path)!r} is not a ModelCheckpoint directory (no {MARKER_FILE})")
    return path.resolve(), step


def _pick_step(path: Path, step: int | None, gone: set[int]) -> int:
    """The step to restore: ``step``, or the latest not ``gone`` if ``None``; or a refusal."""
    # Listed without an Orbax manager, which would read every step's metadata.
    steps = tuple(sorted(set(complete_steps(path)) - gone))
    skipped = incomplete_steps(path)
    if not steps:
        why = "".join(f"; {lacking(path, *entry)}" for entry in skipped.items())
        raise FileNotFoundError(f"no checkpoint in {str(path)!r}{why}")
    if step is None:
        step = steps[-1]
        for entry in (entry for entry in skipped.items() if entry[0] > step):
            logger.warning("restoring step %d of %s: %s", step, path, lacking(path, *entry))
    elif step not in steps:
        why = f" ({lacking(path, step, skipped[step])})" if step in skipped else ""
        raise FileNotFoundError(
            f"no checkpoint for step {step} in {str(path)!r}{why}; steps there: {list(steps)}"
        )
    return step


def _placeholders(abstract: Any, template: dict[str, Any] | None, model: nnx.Module | None) -> Any:
    """The restore placeholders of the saved ``abstract`` state, fitted to the target."""
    if template is not None:
        # The target's own state gives structure, dtypes and shardings for the
        # entries it has; entries only the checkpoint has (e.g. a data position
        # saved by a trainer that has not run yet) come from the saved metadata.
        savable = to_savable(template)
        if isinstance(abstract, dict) and isinstance(savable, dict):
            return {
                key: abstract_tree(savable[key]) if key in savable else value
                for key, value in abstract.items()
            }
    elif model is not None and isinstance(abstract, dict) and "model" in abstract:
        # The target model's own arrays give the shardings (global ones in a
        # multi-process job); shapes and dtypes are checked after the restore.
        pure_model = nnx.to_pure_dict(nnx.state(model))
        return {**abstract, "model": with_shardings(abstract["model"], pure_model)}
    return abstract


# TensorStore's errors: a status code prefix (``OUT_OF_RANGE: ...``) or its phrases.
_TENSORSTORE: Final = re.compile(
    r"^[A-Z_]+: |\[tensorstore_spec=|Error (?:reading|opening|decoding|writing)"
)
_KEY: Final = re.compile(r'Error reading "([^"/]+)/[^"]*" in OCDBT')  # "model.kernel/.zarray"
_NOT_ENTRIES: Final = re.compile(r"^(?:d|array_metadatas|ocdbt\.process_\d+)$")  # not arrays
_FILE: Final = re.compile(r'local file "([^"]+)"')
# The JSON files of Orbax's array items (``array_metadatas/*`` too).
_JSON_FILES: Final = frozenset({"_METADATA", "_sharding", "_CHECKPOINT_METADATA", "metadata"})


def _entries(tree: object) -> Iterator[tuple[str, Any]]:
    """``(dotted name, leaf)`` for every leaf of ``tree`` with a shape."""
    return ((name, leaf) for name, leaf in named_leaves(tree).items() if hasattr(leaf, "shape"))


def _saved_shape(leaf: Any) -> tuple[int, ...]:
    """The shape ``leaf`` (a target placeholder) is saved with: a key array as its key data."""
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return tuple(jax.eval_shape(jax.random.key_data, leaf).shape)
    return tuple(leaf.shape)


def check_shapes(saved: object, expected: object, where: str, item: str) -> None:
    """Refuse a target whose arrays differ in shape from the saved ones (before reading)."""
    shapes = {name: tuple(leaf.shape) for name, leaf in _entries(saved)}
    for name, leaf in _entries(expected):
        want = _saved_shape(leaf)
        if name in shapes and shapes[name] != want:
            raise ValueError(
                f"{where} does not fit the target: item {item!r} entry {name!r} was saved with "
                f"shape {shapes[name]}, the target expects {want} (a model of another "
                "configuration?)"
            )


def _damage(error: BaseException, step_dir: Path, item: str = STATE_ITEM) -> str:
    """What is damaged, from ``error``: the item, the entry if named, and a one-line reason."""
    text = str(error).split(" [tensorstore_spec=", 1)[0].strip()
    key = _KEY.search(text)
    entry = key.group(1) if key else None
    reason = (text.rsplit(": ", 1)[-1].splitlines() or [type(error).__name__])[0]
    files = [Path(file) for file in _FILE.findall(text)]
    inside = [file.relative_to(step_dir) for file in files if file.is_relative_to(step_dir)]
    if inside:
        item = inside[0].parts[0] if inside[0].parts else item  # the database: the item's dir
        last = inside[-1].parts
        reason = f"{inside[-1]}: {reason}" if last[1:] else reason
        if entry is None and len(last) > 2 and not _NOT_ENTRIES.match(last[1]):
            entry = last[1]  # an array's own directory (no OCDBT): state/model.kernel/.zarray
    named = f"item {item!r}" + ("" if entry is None else f" entry {entry!r}")
    return f"{named} cannot be read ({reason})"


def check_json(where: str, step_dir: Path) -> None:
    """Refuse a step whose JSON metadata files do not parse, before Orbax reads them."""
    for file in sorted(step_dir.rglob("*")):
        if file.is_file() and (
            file.name in _JSON_FILES
            or file.parent.name == "array_metadatas"
            or (file.parent.name == CHECKSUMS_ITEM and file.suffix == ".json")  # shard sums
        ):
            try:
                json.loads(file.read_bytes())
            except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
                shown = file.relative_to(step_dir)
                raise ValueError(
                    f"{where} is damaged: item {shown.parts[0]!r} cannot be read "
                    f"({shown}: invalid JSON: {error})"
                ) from None


def read_or_explain(
    where: str,
    step_dir: Path,
    read: Callable[..., T],
    *args: Any,
    into: str = "",
    **kwargs: Any,
) -> T:
    """``read(*args, **kwargs)``, an Orbax read; a ``ValueError`` naming what failed."""
    failure: ValueError
    try:
        return read(*args, **kwargs)
    except Exception as error:  # Orbax's and TensorStore's, made specific
        if _TENSORSTORE.search(str(error)):
            failure = ValueError(f"{where} is damaged: {_damage(error, step_dir)}")
        else:
            failure = ValueError(
                f"{where} cannot be restored{into}: its saved state does not match (Orbax: {error})"
            )
    # Raised outside the handler: Orbax's error, and the reads its traceback holds,
    # are not kept alive by the chain.
    raise failure
