"""The multi-process mode: the scenarios in local ``jax.distributed`` CPU processes.

[`run_processes`][] starts ``processes`` fresh Python processes of
``_process_child`` on a free loopback port (one CPU device each; JAX's CPU
collectives), waits for them within a timeout, and merges what each wrote into one
[`ConformanceReport`][]: process 0's scenario results, with an error wherever another
process found otherwise, and a ``processes_agree`` result that compares the events of
a plain run and of a run stopped on process 0 only, process by process. A process that
crashes or outlives the timeout is a finding that quotes every process's output.
This module imports no JAX: the children start it themselves.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from artifex.generative_models.training.conformance._harness import multi_process_capable
from artifex.generative_models.training.conformance._report import Outcome, ScenarioResult
from artifex.generative_models.training.conformance._scenario_table import SCENARIOS
from artifex.generative_models.training.conformance.grammar import Violation

__all__ = ["AGREE", "TIMEOUT_SECONDS", "check_processes", "import_name", "run_processes"]

AGREE: Final = "processes_agree"
"""The name of the result that compares what the processes saw."""

TIMEOUT_SECONDS: Final = 900.0
"""How long a multi-process check may run before every process is killed."""

_CHILD: Final = "artifex.generative_models.training.conformance._process_child"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _finding(text: str, *, scenario: str = AGREE) -> Violation:
    return Violation(scenario=scenario, index=None, context=(), expected=text)


def _start(target: str, out: Path, processes: int, options: Sequence[str]) -> list[Any]:
    """Start the children, with this process's import path and a fresh coordinator port."""
    path = os.pathsep.join(entry or os.getcwd() for entry in sys.path)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
    command = [sys.executable, "-m", _CHILD, target, str(out), *options]
    command += ["--coordinator", f"127.0.0.1:{_free_port()}", "--processes", str(processes)]
    return [
        subprocess.Popen(
            [*command, "--process-id", str(pid)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for pid in range(processes)
    ]


def _wait(procs: list[Any], timeout: float) -> list[str]:
    """Each process's output; every process is killed once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    outputs: list[str] = []
    try:
        for proc in procs:
            try:
                output, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                for other in procs:
                    other.kill()
                output, _ = proc.communicate()
                output += f"\n[killed: the job ran past {timeout:.0f} s]"
            outputs.append(output)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return outputs


def run_processes(
    target: str,
    *,
    processes: int,
    scenarios: Sequence[str] | None,
    max_examples: int,
    timeout: float = TIMEOUT_SECONDS,
) -> tuple[list[ScenarioResult], bool]:
    """Run the scenarios in ``processes`` processes of one local JAX job.

    Args:
        target: The harness's import name, ``'pkg.module:HarnessFactory'``.
        processes: How many processes (>= 2).
        scenarios: The scenario names; all by default.
        max_examples: How many runs the ``property`` scenario draws.
        timeout: Seconds the whole job may take.

    Returns:
        The merged results, and whether the harness declared ``multi_process``
        (``False``: nothing was run, the results are empty).
    """
    options = [f"--max-examples={max_examples}"]
    options += [f"--scenario={name}" for name in scenarios or ()]
    with tempfile.TemporaryDirectory(prefix="artifex-conformance-") as out:
        began = time.perf_counter()
        procs = _start(target, Path(out), processes, options)
        outputs = _wait(procs, timeout)
        written: list[dict[str, Any] | None] = []
        for pid in range(processes):
            file = Path(out) / f"process-{pid}.json"
            written.append(json.loads(file.read_text("utf-8")) if file.exists() else None)
        seconds = time.perf_counter() - began
    failed = [pid for pid, data in enumerate(written) if data is None]
    if failed:  # every scenario fails with the same finding, which the report shows once
        tails = [f"--- process {pid} ---\n{outputs[pid][-3000:]}" for pid in range(processes)]
        text = f"process(es) {failed} ended without a report:\n" + "\n".join(tails)
        crashed = [
            ScenarioResult(name=name, outcome="failed", violations=(_finding(text, scenario=name),))
            for name in scenarios or SCENARIOS
        ]
        return [*crashed, _agree_result([_finding(text)], seconds)], True
    reports = [data for data in written if data is not None]
    if not all(data["applicable"] for data in reports):
        return [], False
    return _merge(reports), True


def _agree_result(found: list[Violation], seconds: float) -> ScenarioResult:
    outcome: Outcome = "failed" if any(v.severity == "error" for v in found) else "passed"
    return ScenarioResult(
        name=AGREE,
        outcome=outcome,
        violations=tuple(found),
        detail=_AGREE_DETAIL,
        seconds=seconds,
    )


_AGREE_DETAIL: Final = "every process sees the same events; a stop on process 0 stops all"


def _result(entry: dict[str, Any]) -> ScenarioResult:
    return ScenarioResult(
        name=entry["name"],
        outcome=entry["outcome"],
        detail=entry["detail"],
        seconds=entry["seconds"],
        violations=tuple(
            Violation(scenario=s, index=i, context=tuple(c), expected=e, severity=sev)
            for s, i, c, e, sev in entry["violations"]
        ),
    )


def _merge(reports: list[dict[str, Any]]) -> list[ScenarioResult]:
    """Process 0's results, each with an error where another process disagrees."""
    first = [_result(entry) for entry in reports[0]["results"]]
    merged: list[ScenarioResult] = []
    for index, result in enumerate(first):
        found = list(result.violations)
        for pid, data in enumerate(reports[1:], start=1):
            other = _result(data["results"][index])
            if (other.outcome, other.violations) != (result.outcome, result.violations):
                found.append(
                    _finding(
                        f"process {pid} {other.outcome} this scenario with "
                        f"{len(other.violations)} finding(s), process 0 {result.outcome} it "
                        f"with {len(result.violations)}: every process must see the same "
                        "events" + "".join(f"\n    process {pid}: {v}" for v in other.violations),
                        scenario=result.name,
                    )
                )
        failed = any(v.severity == "error" for v in found)
        outcome = "failed" if failed else result.outcome
        merged.append(
            ScenarioResult(
                name=result.name,
                outcome=outcome,
                violations=tuple(found),
                detail=result.detail,
                seconds=result.seconds,
            )
        )
    seconds = reports[0]["events_seconds"]  # its own two runs, not the whole job's time
    return [*merged, _agree_result(_event_findings(reports), seconds)]


def _event_findings(reports: list[dict[str, Any]]) -> list[Violation]:
    """Where a process's recorded events differ from process 0's, the first difference."""
    found: list[Violation] = []
    for run, events in reports[0]["events"].items():
        for pid, data in enumerate(reports[1:], start=1):
            theirs = data["events"][run]
            if theirs == events:
                continue
            at = next(
                (i for i, (a, b) in enumerate(zip(events, theirs, strict=False)) if a != b),
                min(len(events), len(theirs)),
            )
            mine = events[at] if at < len(events) else "the end of the record"
            other = theirs[at] if at < len(theirs) else "the end of the record"
            why = " (a stop asked for on process 0 only must stop every process)"
            found.append(
                _finding(
                    f"in the {run.replace('_', ' ')} run, process {pid} saw {other} at event "
                    f"#{at} where process 0 saw {mine}: every process must see the same events"
                    + (why if run.startswith("stop") else "")
                )
            )
    return found


def import_name(harness: object) -> str:
    """The import name of a harness's class, which the children call to get one each.

    Args:
        harness: A harness object.

    Returns:
        ``'module:Class'``.

    Raises:
        TypeError: If the class cannot be imported by name in a fresh process.
    """
    kind = type(harness)
    if kind.__module__ == "__main__" or "<locals>" in kind.__qualname__:
        raise TypeError(
            f"processes > 1 starts fresh processes, which cannot import "
            f"{kind.__module__}.{kind.__qualname__}: pass the harness factory's import name "
            "('pkg.module:HarnessFactory') instead"
        )
    return f"{kind.__module__}:{kind.__qualname__}"


def check_processes(
    harness: object, *, processes: int, chosen: Sequence[str], max_examples: int
) -> list[ScenarioResult]:
    """The results of the multi-process mode, or "not applicable" for each scenario.

    Args:
        harness: A harness object (its class is called without arguments in each
            process) or the harness factory's import name.
        processes: How many processes (>= 2).
        chosen: The scenario names to run.
        max_examples: How many runs the ``property`` scenario draws.

    Returns:
        One result per chosen scenario, then the ``processes_agree`` result; every
        result "not applicable" if the harness does not declare ``multi_process``.

    Raises:
        TypeError: If ``harness`` is an object whose class has no import name.
    """
    results: list[ScenarioResult] = []
    if isinstance(harness, str) and not all(harness.partition(":")[::2]):
        raise ValueError(f"expected 'pkg.module:HarnessFactory', got {harness!r}")
    capable = isinstance(harness, str) or multi_process_capable(harness)
    if capable:
        target = harness if isinstance(harness, str) else import_name(harness)
        results, capable = run_processes(
            target, processes=processes, scenarios=chosen, max_examples=max_examples
        )
    if capable:
        return results
    why = "the harness does not declare multi_process = True"
    return [
        ScenarioResult(name=name, outcome="not applicable", detail=why) for name in [*chosen, AGREE]
    ]
