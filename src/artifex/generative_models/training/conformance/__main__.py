"""Command line: ``python -m artifex.generative_models.training.conformance pkg.mod:Factory``.

Prints the readable report; exits 0 if the trainer conforms (warnings allowed, unless
``--strict``), 1 on violations (or, with ``--static``, if mypy rejects the types), 2 on
bad usage, 130 when the person running it presses Ctrl-C (a ``SystemExit`` or
``KeyboardInterrupt`` from the trainer itself is a finding instead).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from artifex.generative_models.training.conformance._scenario_table import SCENARIOS

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m artifex.generative_models.training.conformance",
        description="Check that a custom trainer honours the artifex callback contract.",
    )
    parser.add_argument(
        "target",
        help="the harness factory, 'pkg.module:HarnessFactory': a class or zero-argument "
        "callable returning a TrainerHarness, or a harness object",
    )
    parser.add_argument(
        "--static",
        action="store_true",
        help="also run mypy: the harness is statically a TrainerHarness and build() a TrainerLike",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        help="run only this scenario (repeatable); default: all",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=20,
        help="how many runs the property scenario draws (default: 20)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 on warning-level findings too (the pytest suite's strict = True)",
    )
    parser.add_argument(
        "--example-database",
        metavar="DIR",
        default=None,
        help="keep Hypothesis's example database of the property scenario in DIR "
        "(default: none, nothing is written)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="run the scenarios in N local jax.distributed CPU processes (default: 1, this "
        "one); the harness must declare multi_process = True, else they are n/a",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the conformance suite from the command line.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 conforming, 1 violations, 2 bad usage, 130 interrupted.
    """
    args = _parser().parse_args(argv)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())

    from artifex.generative_models.training.conformance._harness import load_harness
    from artifex.generative_models.training.conformance.scenarios import (
        TrainerHarness,
        check_trainer,
    )
    from artifex.generative_models.training.conformance.static import check_static

    try:
        # With processes > 1 each process loads the harness itself, after joining the job.
        harness = args.target if args.processes > 1 else load_harness(args.target)
        if not isinstance(harness, str | TrainerHarness):
            raise TypeError(
                f"{args.target} gave a {type(harness).__qualname__}, not a TrainerHarness "
                "(it needs build(callbacks) and fit(trainer, epochs) methods)"
            )
        report = check_trainer(
            harness,
            scenarios=args.scenario,
            max_examples=args.max_examples,
            example_database=args.example_database,
            processes=args.processes,
        )
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a real Ctrl-C: the trainer's own exits are findings
        print("interrupted: the check was stopped (Ctrl-C)", file=sys.stderr)
        return 130
    print(report.format())
    status = 0 if report.ok and not (args.strict and report.warnings) else 1
    if args.static:
        static = check_static(args.target)
        print()
        print("Static check (mypy on a generated file):", "OK" if static.ok else "FAILED")
        if not static.ok:
            print(static.output)
            print("\nGenerated file:\n" + static.source)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
