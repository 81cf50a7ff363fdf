"""Run the benchmarks with the JAX this machine has, on its default backend; install nothing.

``nox -s bench`` forces the CPU (``JAX_PLATFORMS=cpu``) and installs from the package
index; a machine with an accelerator may have no network. This script runs each
``benchmarks/bench_*.py`` (as ``nox -s bench`` does) with the Python that runs it, with
``JAX_PLATFORMS`` removed from the environment, so that JAX picks the accelerator if it
finds one, the checkout's ``src`` first on ``PYTHONPATH`` and ``KERAS_BACKEND=jax`` (the
Keras contenders of bench_peers.py run if Keras is installed, and are skipped with a
printed line if not). It prints what JAX sees, then each benchmark's figures as they come.

The benchmarks run one at a time, each in its own process: this process never imports
JAX, so that it holds no accelerator memory while they run. It also runs on a machine
with a CPU only.

Usage: ``python benchmarks/run_on_accelerator.py [--quick] [--only NAME ...]
[--timeout SECONDS] [-- ARGS]``; ``ARGS`` go to every benchmark run (e.g. ``--rounds 5``,
which bench_trainer.py, bench_peers.py and a few others accept). Exits non-zero if a
benchmark failed or ran out of time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
SRC = BENCHMARKS.parent / "src"
PROBE = (
    "import jax; "
    "print(f'jax {jax.__version__}, default backend {jax.default_backend()}, devices:'); "
    "[print(f'  {d.platform}: {d.device_kind}') for d in jax.devices()]"
)


def environment() -> dict[str, str]:
    """This process's environment, without the CPU forcing, with the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "JAX_PLATFORM_NAME")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["KERAS_BACKEND"] = "jax"
    return env


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only these, e.g. bench_peers bench_trainer"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark")
    parser.add_argument("args", nargs="*", help="arguments for every benchmark (after --)")
    options = parser.parse_args()
    scripts = sorted(BENCHMARKS.glob("bench_*.py"))
    if options.only:
        unknown = sorted(set(options.only) - {script.stem for script in scripts})
        if unknown:
            names = ", ".join(script.stem for script in scripts)
            parser.error(f"no benchmark named {', '.join(unknown)}; there are: {names}")
        scripts = [script for script in scripts if script.stem in options.only]
    env = environment()
    print(f"python {sys.version.split()[0]} ({sys.executable}); JAX_PLATFORMS unset", flush=True)
    probe = subprocess.run([sys.executable, "-c", PROBE], env=env, check=False)
    if probe.returncode:
        print("JAX could not be imported or initialised here: nothing was run")
        return 1
    extra = (["--quick"] if options.quick else []) + options.args
    failed: list[str] = []
    for script in scripts:
        print(f"\n===== {script.name} {' '.join(extra)}".rstrip(), flush=True)
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, str(script), *extra], env=env, timeout=options.timeout, check=False
            )
        except subprocess.TimeoutExpired:
            failed.append(f"{script.stem} (over {options.timeout:.0f} s)")
            continue
        if done.returncode:
            failed.append(f"{script.stem} (exit status {done.returncode})")
        print(f"===== {script.name}: {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
