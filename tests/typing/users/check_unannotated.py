"""Unannotated hook overrides, as the specification writes them (``def on_epoch_end(self,
trainer, epoch, metrics)``).

What each checker infers for their parameters (docs/core.md, "Type checkers"): pyright and
basedpyright take the types of ``BaseCallback``'s hook only when the parameters are spelled
exactly as there, ``(self, trainer, epoch, logs, /)``; with other names, or without the
``/``, they are ``Unknown``. mypy and zuban leave an unannotated function's parameters
``Any`` (checked with ``check_untyped_defs``, as configured here); pyrefly and ty do not
take parameter types from a base class either. ``epoch.upper()`` below pins this: an error
only where ``epoch`` is inferred as ``int``.
"""

from artifex.generative_models.training.callbacks import BaseCallback, CallbackList


class AsTheSpecificationWrites(BaseCallback):
    def on_epoch_end(self, trainer, epoch, metrics):
        epoch.upper()  # epoch is Any / Unknown everywhere
        print(f"epoch {epoch}: {metrics}")


class ExactSpelling(BaseCallback):
    def on_epoch_end(self, trainer, epoch, logs, /):
        epoch.upper()  # pyright: ignore[reportAttributeAccessIssue]  # int, for pyright


class SameNamesNoSlash(BaseCallback):
    def on_epoch_end(self, trainer, epoch, logs):
        epoch.upper()  # Unknown for pyright too: BaseCallback's parameters are positional-only


def use() -> None:
    CallbackList([AsTheSpecificationWrites(), ExactSpelling(), SameNamesNoSlash()])
