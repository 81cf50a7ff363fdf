"""The one way to build a configurable built-in callback: its config, or the config's fields.

``EarlyStopping(EarlyStoppingConfig(patience=5))`` (the specification's form) and
``EarlyStopping(patience=5)`` build the same callback. Each callback types its own
``__init__`` as two overloads, the config (positional-only) or its fields as keywords
(``**kwargs: Unpack[...Kwargs]``, a ``TypedDict`` of the config's fields), because a
``TypedDict`` cannot be a type variable; the rules and the ``repr`` live here.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from artifex.generative_models.training.callbacks.base import BaseCallback

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["ConfiguredCallback"]

C = TypeVar("C", covariant=True)
T = TypeVar("T", bound="DataclassInstance")


class ConfiguredCallback(BaseCallback, Generic[C]):
    """A callback built from one frozen config, which it holds as ``config``."""

    # Covariant, so a list of different callbacks joins to a list of callbacks (mypy
    # joins invariant ConfiguredCallback[A] and [B] to object); so `config` is read-only.
    __slots__ = ("_config",)

    @property
    def config(self) -> C:
        """The configuration: the one given, or the one built from the keywords."""
        return cast("C", self._config)

    def _configure(self, config_type: type[T], config: T | None, fields: Mapping[str, object]) -> T:
        """Set ``config``: the one given, or one of ``config_type`` built from ``fields``.

        Raises:
            TypeError: If both or a wrong config are given, or a keyword is not a field.
        """
        owner, expected = type(self).__name__, config_type.__qualname__
        if config is not None and fields:
            raise TypeError(
                f"{owner} takes either a config ({expected}) or its fields as keywords, not "
                f"both; got a config and {', '.join(map(repr, fields))}"
            )
        untrusted: object = config
        if untrusted is not None and not isinstance(untrusted, config_type):
            raise TypeError(
                f"{owner} takes a config of type {expected} (or its fields as keywords), "
                f"got {type(untrusted).__qualname__}"
            )
        names = [field.name for field in dataclasses.fields(config_type) if field.init]
        for name in fields:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(
                    f"{owner} got an unexpected keyword {name!r}{hint}; its keywords are the "
                    f"fields of {expected}: {', '.join(names)}"
                )
        resolved = config_type(**fields) if config is None else config
        self._config: object = resolved
        return resolved

    def __repr__(self) -> str:
        """``Name(Config(...))``: the callback's class and its config."""
        return f"{type(self).__name__}({self.config!r})"
