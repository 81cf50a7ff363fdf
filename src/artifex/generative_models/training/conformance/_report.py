"""What [`check_trainer`][] returns: one result per scenario, and the whole report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from artifex.generative_models.training.conformance._scenario_table import SCENARIOS
from artifex.generative_models.training.conformance.grammar import Violation

__all__ = ["SLOW_SECONDS", "ConformanceReport", "Outcome", "ScenarioResult"]

SLOW_SECONDS: Final = 10.0
"""From this many seconds on, the report states the total time and the slowest scenario."""

Outcome: TypeAlias = Literal["passed", "failed", "not applicable"]
"""How a scenario ended: ``"passed"`` may still carry warnings."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioResult:
    """The outcome of one scenario.

    Attributes:
        name: The scenario's name (a key of [`SCENARIOS`][]).
        outcome: ``"passed"``, ``"failed"`` or ``"not applicable"``.
        violations: Its findings, errors and warnings.
        detail: Why it was not applicable, or what the property scenario drew.
        seconds: How long it ran.
    """

    name: str
    outcome: Outcome
    violations: tuple[Violation, ...] = ()
    detail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConformanceReport:
    """What [`check_trainer`][] found.

    Attributes:
        harness: A description of the harness checked.
        results: One entry per scenario, in the order of [`SCENARIOS`][].
        seconds: How long the whole check ran.
    """

    harness: str
    results: tuple[ScenarioResult, ...]
    seconds: float = 0.0

    @property
    def violations(self) -> tuple[Violation, ...]:
        """Every finding, errors and warnings, scenario by scenario."""
        return tuple(violation for result in self.results for violation in result.violations)

    @property
    def errors(self) -> tuple[Violation, ...]:
        """The findings of severity ``"error"``."""
        return tuple(v for v in self.violations if v.severity == "error")

    @property
    def warnings(self) -> tuple[Violation, ...]:
        """The findings of severity ``"warning"``."""
        return tuple(v for v in self.violations if v.severity == "warning")

    @property
    def ok(self) -> bool:
        """``True`` if no scenario found an error (warnings allowed)."""
        return not self.errors

    def result(self, name: str) -> ScenarioResult:
        """The result of scenario ``name``.

        Args:
            name: A scenario name.

        Returns:
            Its result.

        Raises:
            KeyError: If the scenario was not run.
        """
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"scenario {name!r} was not run; ran {[r.name for r in self.results]}")

    def format(self) -> str:
        """The report as readable text: a table of scenarios, then every finding."""
        width = max((len(name) for name in SCENARIOS), default=0)
        lines = [f"Trainer conformance report for {self.harness}", ""]
        for result in self.results:
            label = {"passed": "passed", "failed": "FAILED", "not applicable": "n/a"}
            notes = f"{len(result.violations)} warning(s)" if result.violations else ""
            if result.outcome == "failed":
                notes = f"{sum(v.severity == 'error' for v in result.violations)} error(s)"
            detail = result.detail or SCENARIOS.get(result.name, "")
            lines.append(
                f"  {label[result.outcome]:<7} {result.name:<{width}}  {detail}"
                + (f"  [{notes}]" if notes else "")
            )
        if self.violations:
            lines += ["", "Findings (each distinct one once, with the scenarios it appears in):"]
            for first, scenarios in _distinct(self.violations):
                lines += ["", str(first)]
                if len(scenarios) > 1:
                    lines.append(f"    (also found in: {', '.join(scenarios[1:])})")
        if self.seconds >= SLOW_SECONDS:
            slowest = max(self.results, key=lambda r: r.seconds)
            lines += [
                "",
                f"The check took {self.seconds:.1f} s; the slowest scenario was "
                f"{slowest.name} ({slowest.seconds:.1f} s). The suite builds about 40 "
                "trainers: build what never changes (the optax transformation, the loss "
                "function, the data) once, outside build(), so that jitted steps compile "
                "once rather than for every trainer.",
            ]
        verdict = "OK" if self.ok else "NOT CONFORMING"
        lines += [
            "",
            f"{verdict}: {len(self.errors)} error(s), {len(self.warnings)} warning(s).",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        """Same as [`format`][]."""
        return self.format()


def _distinct(violations: tuple[Violation, ...]) -> list[tuple[Violation, list[str]]]:
    """Each distinct finding (by severity and text), first seen, with its scenarios."""
    groups: dict[tuple[str, str], tuple[Violation, list[str]]] = {}
    for violation in violations:
        _, scenarios = groups.setdefault((violation.severity, violation.expected), (violation, []))
        if violation.scenario not in scenarios:
            scenarios.append(violation.scenario)
    return list(groups.values())
