"""The model's mode flags (``model.eval()`` / ``model.train()``) while a fit runs.

``model.eval()`` sets NNX's ``deterministic`` and ``use_running_average`` flags,
which are static: they belong to the module's graph definition, which the
compiled steps are built for. A callback that evaluates the model with
``model.eval()`` and forgets ``model.train()`` leaves them changed; the trainer
(``FlatState``) puts them back before the next step, and the epoch loop warns once,
naming the flags, the hooks that ran since the last step and the callbacks that
override them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Final, TypeAlias

from flax import nnx

from artifex.generative_models.training.callbacks.base import (
    BaseCallback,
    TrainingCallback,
    flatten_callbacks,
)

__all__ = [
    "MODE_FLAGS",
    "ModeFlags",
    "changed_modes",
    "mode_flags",
    "restore_modes",
    "suspects",
    "warn_modes_restored",
]

MODE_FLAGS: Final[tuple[str, ...]] = ("deterministic", "use_running_average")
"""The flags ``nnx.Module.eval()`` and ``train()`` set, where a submodule has them."""

ModeFlags: TypeAlias = dict[tuple[tuple[object, ...], str], object]
"""``{(submodule path, flag): value}`` for every submodule holding a mode flag."""

_LIBRARY = "artifex.generative_models.training."


def mode_flags(model: nnx.Module) -> ModeFlags:
    """The mode flags of ``model``'s submodules."""
    return {
        (tuple(path), flag): getattr(module, flag)
        for path, module in nnx.iter_modules(model)
        for flag in MODE_FLAGS
        if hasattr(module, flag)
    }


def changed_modes(model: nnx.Module, trained: ModeFlags) -> list[str]:
    """The flags of ``model`` that differ from ``trained``, as ``path.flag (old -> new)``."""
    now = mode_flags(model)
    return [
        f"{'.'.join(map(str, (*path, flag)))} ({value!r} -> {now[path, flag]!r})"
        for (path, flag), value in trained.items()
        if (path, flag) in now and now[path, flag] != value
    ]


def restore_modes(model: nnx.Module, trained: ModeFlags) -> None:
    """Set ``model``'s mode flags back to ``trained``."""
    for path, module in nnx.iter_modules(model):
        for flag in MODE_FLAGS:
            key = (tuple(path), flag)
            if key in trained and getattr(module, flag) != trained[key]:
                setattr(module, flag, trained[key])


def suspects(callbacks: Iterable[TrainingCallback], hooks: Iterable[str]) -> str:
    """Name the hooks that ran since the last step and the callbacks overriding them.

    The library's own callbacks never change the mode; they are named only when no
    other callback overrides those hooks.
    """
    hooks = tuple(hooks)
    found: list[tuple[bool, str]] = []
    for _, callback in flatten_callbacks(callbacks):
        cls = type(callback)
        overridden = [h for h in hooks if getattr(cls, h, None) is not getattr(BaseCallback, h)]
        if overridden:
            ours = cls.__module__.startswith(_LIBRARY)
            found.append((ours, f"{cls.__qualname__} ({', '.join(overridden)})"))
    named = [text for ours, text in found if not ours] or [text for _, text in found]
    who = ", ".join(named) if named else "none"
    return f"hooks run since the last step: {', '.join(hooks)}; callbacks overriding them: {who}"


def warn_modes_restored(restored: Iterable[str], where: str) -> None:
    """Warn that the trainer put the mode flags ``restored`` back to training mode.

    Args:
        restored: The flags, as ``changed_modes`` names them.
        where: What ran since the last step (``suspects``'s text).
    """
    warnings.warn(
        f"the model's mode flags changed outside a step: {', '.join(restored)}; the trainer "
        f"restored training mode ({where}). A callback that calls model.eval() must call "
        "model.train() after it; for validation metrics such as accuracy, return "
        "(loss, {'accuracy': ...}) from loss_fn or eval_fn instead",
        RuntimeWarning,
        stacklevel=3,
    )
