"""A conformance suite for custom trainers: does yours honour the callback contract?

Implement a :class:`TrainerHarness` (``build(callbacks)`` and ``fit(trainer, epochs)``),
then run :func:`check_trainer` on it, subclass
:class:`~artifex.generative_models.training.conformance.pytest_plugin.TrainerConformanceSuite`
in your tests, or run ``python -m artifex.generative_models.training.conformance
pkg.module:HarnessFactory [--static]``.

Names are loaded lazily, so importing the pytest plugin stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from artifex.generative_models.training.conformance._names import SCENARIOS
    from artifex.generative_models.training.conformance.grammar import (
        FitPlan,
        Severity,
        Trigger,
        Violation,
        check_events,
    )
    from artifex.generative_models.training.conformance.recorder import (
        Event,
        EventRecorder,
        FailingData,
        ProbeError,
        ProbeInterrupt,
        RaiseAt,
        StopAt,
    )
    from artifex.generative_models.training.conformance.scenarios import (
        ConformanceReport,
        FailingHarness,
        Outcome,
        ScenarioResult,
        TrainerHarness,
        ValidatingHarness,
        check_trainer,
    )
    from artifex.generative_models.training.conformance.static import check_static

__all__ = [
    "SCENARIOS",
    "ConformanceReport",
    "Event",
    "EventRecorder",
    "FailingData",
    "FailingHarness",
    "FitPlan",
    "Outcome",
    "ProbeError",
    "ProbeInterrupt",
    "RaiseAt",
    "ScenarioResult",
    "Severity",
    "StopAt",
    "TrainerHarness",
    "Trigger",
    "ValidatingHarness",
    "Violation",
    "check_events",
    "check_static",
    "check_trainer",
]

_HOME: Final[dict[str, str]] = {
    **dict.fromkeys(["FitPlan", "Severity", "Trigger", "Violation", "check_events"], "grammar"),
    **dict.fromkeys(
        [
            "Event",
            "EventRecorder",
            "FailingData",
            "ProbeError",
            "ProbeInterrupt",
            "RaiseAt",
            "StopAt",
        ],
        "recorder",
    ),
    **dict.fromkeys(
        [
            "ConformanceReport",
            "FailingHarness",
            "Outcome",
            "ScenarioResult",
            "TrainerHarness",
            "ValidatingHarness",
            "check_trainer",
        ],
        "scenarios",
    ),
    "check_static": "static",
    "SCENARIOS": "_names",
}


def __getattr__(name: str) -> object:
    """Import a public name from its submodule on first use."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: object = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
