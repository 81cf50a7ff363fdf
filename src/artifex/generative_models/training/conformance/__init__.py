"""A conformance suite for custom trainers: does yours honour the callback contract?

Implement a [`TrainerHarness`][] (``build(callbacks)`` and ``fit(trainer, epochs)``),
then run [`check_trainer`][] on it, subclass
[`TrainerConformanceSuite`][.pytest_plugin.TrainerConformanceSuite] in your tests, or run
``python -m artifex.generative_models.training.conformance pkg.module:HarnessFactory
[--static]``.

Names are loaded lazily, so importing the pytest plugin stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from artifex.generative_models.training._lazy import lazy_exports

if TYPE_CHECKING:
    from artifex.generative_models.training.conformance._harness import (
        FailingHarness,
        StreamingHarness,
        TrainerHarness,
        ValidatingHarness,
    )
    from artifex.generative_models.training.conformance._report import (
        ConformanceReport,
        Outcome,
        ScenarioResult,
    )
    from artifex.generative_models.training.conformance._scenario_table import SCENARIOS
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
    from artifex.generative_models.training.conformance.scenarios import check_trainer
    from artifex.generative_models.training.conformance.static import check_static

__all__ = [
    "SCENARIOS",
    "ConformanceReport",
    "Event",
    "EventRecorder",
    "FailingData",
    "FailingHarness",
    "StreamingHarness",
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

__getattr__: Callable[[str], object]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
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
        **dict.fromkeys(["ConformanceReport", "Outcome", "ScenarioResult"], "_report"),
        **dict.fromkeys(
            ["FailingHarness", "StreamingHarness", "TrainerHarness", "ValidatingHarness"],
            "_harness",
        ),
        "check_trainer": "scenarios",
        "check_static": "static",
        "SCENARIOS": "_scenario_table",
    },
)
