"""The ``data`` item (format 5): the training data's position, as JSON, one file per process.

``Trainer.state_dict()["data"]`` (a ``StatefulData``'s ``state_dict()``, a grain
iterator's state among them) is saved apart from the arrays of the ``state`` item,
where Orbax would turn its scalars into 0-d arrays and could not hold bytes or
strings. It is JSON: ``bytes`` become ``{"__bytes__": base64}`` and tuples lists, so
that what comes back is what was saved, as Python values. In a multi-process job each
process saves its own position, in its own file of the item
(``process_<i>-of-<n>.json``), and restores its own. Each file is sealed with the
checksum of its content and records the checkpoint's step and run, so that a damaged
file, or one put there from another checkpoint, is refused.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import args as ocp_args

from artifex.generative_models.training._checkpointing._integrity import (
    check_bound,
    seal,
    unseal,
)

__all__ = ["DATA_ITEM", "DataHandler", "DataRestore", "DataSave", "decode_data", "encode_data"]

DATA_ITEM: Final = "data"
_BYTES: Final = "__bytes__"


@dataclasses.dataclass
class DataSave(ocp_args.CheckpointArgs):
    """Save arguments of the data item: this process's encoded position."""

    item: Mapping[str, Any]


@dataclasses.dataclass
class DataRestore(ocp_args.CheckpointArgs):
    """Restore arguments of the data item (none: this process's file is read)."""


class DataHandler(ocp.JsonCheckpointHandler):
    """The item's handler: every process writes (and reads) its own JSON file."""

    def __init__(self) -> None:
        super().__init__(
            filename=_filename(jax.process_index(), jax.process_count()),
            multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=None),
        )

    def restore(
        self,
        directory: os.PathLike[str],
        item: Mapping[str, Any] | None = None,
        args: Any = None,
    ) -> Mapping[str, Any]:
        """This process's saved position: else, in another process count, process 0's."""
        folder = Path(directory)
        name = _filename(jax.process_index(), jax.process_count())
        if not (folder / name).exists():
            saved = sorted(folder.glob("process_*-of-*.json"))
            mine = [p for p in saved if p.name.startswith(f"process_{jax.process_index()}-")]
            first = [p for p in saved if p.name.startswith("process_0-")]
            name = (mine or first or [folder / name])[0].name
        content: Mapping[str, Any] = json.loads((folder / name).read_text())
        return content


def _filename(index: int, count: int) -> str:
    return f"process_{index}-of-{count}.json"


# Orbax picks an item's handler by the type of its save arguments.
ocp_args.register_with_handler(DataHandler, for_save=True)(DataSave)
ocp_args.register_with_handler(DataHandler, for_restore=True)(DataRestore)


def encode_data(state: object, *, step: object, run: object) -> dict[str, Any]:
    """The item's JSON for a data position, sealed, naming its checkpoint's step and run."""
    return seal({"state": _encode(state, "state_dict()"), "step": step, "run": run})


def decode_data(saved: object, where: str, *, step: int, run: object) -> Any:
    """The data position the item holds, as Python values (bytes decoded), checked."""
    try:
        content = unseal(saved, f"its {DATA_ITEM!r} item")
    except ValueError as error:
        raise ValueError(f"{where} is damaged: {error}") from None
    check_bound(where, DATA_ITEM, (content.get("step"), content.get("run")), step, run)
    return _decode(content.get("state"))


def _encode(value: object, where: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    if isinstance(value, list | tuple):
        return [_encode(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        encoded: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"the training data's {where} has the key {key!r} "
                    f"({type(key).__qualname__}); a data position needs string keys"
                )
            encoded[key] = _encode(item, f"{where}[{key!r}]")
        return encoded
    if isinstance(value, np.generic | np.ndarray | jax.Array) and np.ndim(value) == 0:
        return _encode(np.asarray(value).item(), where)  # a NumPy or JAX scalar
    raise TypeError(
        f"the training data's {where} is of type {type(value).__qualname__}, which a "
        "checkpoint cannot hold; a data position holds JSON values (int, float, bool, str, None, "
        "bytes, lists and dicts of them)"
    )


def _decode(value: object) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, dict):
        if set(value) == {_BYTES} and isinstance(value[_BYTES], str):
            return base64.b64decode(value[_BYTES])
        return {key: _decode(item) for key, item in value.items()}
    return value
