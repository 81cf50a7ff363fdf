"""What a restore says when a checkpoint's arrays do not fit the target or cannot be read.

Orbax reports a damaged item or an array of another shape as its own, or TensorStore's,
text (a page of TensorStore spec), and a failed read leaves reads behind that report
again when collected. So the checks that need no array come first: ``check_json``
parses Orbax's JSON metadata files, ``check_shapes`` compares the saved metadata with
the target. ``read_or_explain`` turns a read that fails anyway (damaged array data)
into a ``ValueError`` naming the step, the item and, where TensorStore names it, the
entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

import jax
import jax.numpy as jnp

from artifex.generative_models.training._checkpointing._format import STATE_ITEM

__all__ = ["check_json", "check_shapes", "read_or_explain"]

T = TypeVar("T")

_TENSORSTORE: Final = re.compile(
    r"^[A-Z_]+: |\[tensorstore_spec=|Error (?:reading|opening|decoding|writing)"
)
"""TensorStore's errors: a status code prefix (``OUT_OF_RANGE: ...``) or its phrases."""
_KEY: Final = re.compile(r'Error reading "([^"/]+)/[^"]*" in OCDBT')
"""The array an OCDBT error is about: ``Error reading "model.kernel/.zarray" in OCDBT ...``."""
_NOT_ENTRIES: Final = re.compile(r"^(?:d|array_metadatas|ocdbt\.process_\d+)$")
"""Directories of an item that are not arrays (OCDBT's data, Orbax's metadata)."""
_FILE: Final = re.compile(r'local file "([^"]+)"')
_JSON_FILES: Final = frozenset({"_METADATA", "_sharding", "_CHECKPOINT_METADATA", "metadata"})
"""The JSON files of Orbax's array items (``array_metadatas/*`` too)."""


def _entries(tree: object) -> Iterator[tuple[str, Any]]:
    """``(dotted name, leaf)`` for every leaf of ``tree`` with a shape (as Orbax names them)."""
    leaves = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype")
    )[0]
    for path, leaf in leaves:
        if hasattr(leaf, "shape"):
            names = (
                getattr(key, "key", getattr(key, "idx", getattr(key, "name", key))) for key in path
            )
            yield ".".join(str(name) for name in names), leaf


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
        if file.is_file() and (file.name in _JSON_FILES or file.parent.name == "array_metadatas"):
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
