"""One PEP 562 lazy loader for the packages' ``__init__`` modules.

A package lists its public names in ``__all__``, imports them under
``TYPE_CHECKING`` (so that static types resolve), and binds the module-level
``__getattr__`` and ``__dir__`` that ``lazy_exports`` returns: a name's submodule
is imported on its first use, and the value is then cached in the package. So
importing ``artifex.generative_models.training.callbacks`` never imports the trainer,
and the conformance suite's pytest plugin never imports JAX. This module imports
nothing heavy.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Build a package's PEP 562 ``__getattr__`` and ``__dir__``.

    Use it in the package's ``__init__.py``::

        __getattr__, __dir__ = lazy_exports(__name__, {"Trainer": "trainer"})

    Args:
        package: The package's ``__name__``.
        homes: Each lazily exported name, mapped to the submodule (relative to
            ``package``, e.g. ``"trainer"``) that defines it.

    Returns:
        ``(__getattr__, __dir__)``: ``__getattr__(name)`` imports the submodule of
        ``name``, caches the value in the package and returns it, and raises
        ``AttributeError`` for a name not in ``homes``; ``__dir__()`` lists the
        package's attributes and every lazy name, sorted.
    """
    table = dict(homes)

    def __getattr__(name: str) -> object:
        """Import a public name from its submodule on first use."""
        home = table.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value: object = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        """The package's attributes and its lazy names, sorted."""
        return sorted({*vars(sys.modules[package]), *table})

    return __getattr__, __dir__
