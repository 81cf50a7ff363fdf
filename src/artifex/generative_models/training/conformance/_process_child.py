"""One process of the multi-process mode: join the JAX job, run the scenarios, write JSON.

Started by ``_processes.run_processes`` as ``python -m <this module> TARGET OUT
--coordinator HOST:PORT --process-id I --processes N [--scenario NAME ...]
--max-examples K``. It calls ``jax.distributed.initialize`` before anything imports
the harness's module (which may touch JAX), then loads the harness by its import name.
A harness without the ``multi_process`` declaration is not run: the process writes
``{"applicable": false}``. Otherwise it runs [`check_trainer`][] in this process and two
recorded runs whose events the launcher compares across processes: a plain two-epoch
``fit``, and one where a ``StopRequester`` asks to stop at ``on_batch_end`` #0 on
process 0 only. It writes ``process-I.json`` into ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from artifex.generative_models.training.callbacks.base import HookName

__all__ = ["main", "recorded_runs"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conformance-process")
    parser.add_argument("target")
    parser.add_argument("out")
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--scenario", action="append")
    parser.add_argument("--max-examples", type=int, default=20)
    return parser


def recorded_runs(harness: Any, process_id: int) -> dict[str, list[list[Any]]]:
    """The events of a plain run and of a run stopped on process 0 only, as JSON lists.

    Each event is ``[hook, number, sorted logs keys or None, status]``: what every
    process must see alike (``stopped_by`` differs by design: the requester on process
    0, a remote stop elsewhere; values may differ in the last float bits).

    Args:
        harness: The harness, in a process of a multi-process job.
        process_id: This process's index.

    Returns:
        ``{"plain": events, "stop_on_process_0": events}``.
    """
    from artifex.generative_models.training.conformance.recorder import EventRecorder, StopAt

    runs: dict[str, list[list[Any]]] = {}
    stop: tuple[HookName, int] | None = ("on_batch_end", 0) if process_id == 0 else None
    for name, schedule in (("plain", [None]), ("stop_on_process_0", [stop])):
        recorder = EventRecorder()
        stopper = StopAt(schedule)
        trainer = harness.build([recorder, stopper])
        harness.fit(trainer, 2)
        runs[name] = [
            [
                event.hook,
                repr(event.number),
                None if event.logs is None else sorted(key for key, _ in event.logs),
                event.status,
            ]
            for event in recorder.events
        ]
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    """Run one process of the multi-process mode (module docs).

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        0 once the JSON is written; a crash exits non-zero with its traceback.
    """
    args = _parser().parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.processes,
        process_id=args.process_id,
    )
    from artifex.generative_models.training.conformance._harness import (
        load_harness,
        multi_process_capable,
    )
    from artifex.generative_models.training.conformance.scenarios import check_trainer

    harness = load_harness(args.target)
    result: dict[str, Any] = {"applicable": multi_process_capable(harness)}
    if result["applicable"]:
        report = check_trainer(
            harness,  # type: ignore[arg-type]  # check_trainer checks it is a harness  # ty: ignore[invalid-argument-type]
            scenarios=args.scenario,
            max_examples=args.max_examples,
        )
        result["results"] = [
            {
                "name": r.name,
                "outcome": r.outcome,
                "detail": r.detail,
                "seconds": r.seconds,
                "violations": [
                    [v.scenario, v.index, list(v.context), v.expected, v.severity]
                    for v in r.violations
                ],
            }
            for r in report.results
        ]
        began = time.perf_counter()
        result["events"] = recorded_runs(harness, args.process_id)
        result["events_seconds"] = time.perf_counter() - began
    path = Path(args.out) / f"process-{args.process_id}.json"
    path.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
