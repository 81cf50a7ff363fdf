"""Whether a chunk of ``steps_per_execution`` steps runs as one ``lax.scan``.

A chunk saves the host's per-step dispatch (tens of microseconds) by running ``k``
steps in one compiled ``lax.scan``. On an accelerator that is what it is for, and the
scan is kept. On XLA's CPU backend the rule is measured (docs/benchmarks.md):

* a step with a convolution runs on a slow path inside a while loop (a CNN's 10 steps:
  25 to 34 times slower in a scan than as 10 calls). A full unroll avoids it, but
  compiles about 5 times as long (9 s against 1.9 s) and ran slower than 10 calls;
* a step of more than [`CPU_SCAN_MAX_FLOPS`][] runs for milliseconds, beside which the
  dispatch a scan saves is noise; the scan ran at 0.92x to 1.09x of 10 calls on the
  medium MLP (2.5e9 flops a step), donated or not, and a full unroll at 0.79x to 0.86x.

So on a CPU a chunk is a scan only for a small, convolution-free step (the case the
option is for: the tiny MLP's step, 6e7 flops, runs 1.2x to 2.3x faster); any other chunk is
dispatched step by step, which is the unchunked run itself (same compiled step, same
donation, every position resumable). The step is judged once, from its lowered
program (XLA's cost estimate and the ops it contains), with nothing compiled.
"""

from __future__ import annotations

from typing import Final

import jax

__all__ = ["CPU_SCAN_MAX_FLOPS", "chunk_scans"]

CPU_SCAN_MAX_FLOPS: Final = 1e9
"""The largest step (XLA's flop estimate) that a CPU chunk runs as a scan."""


def chunk_scans(platform: str, lowered_step: jax.stages.Lowered | None) -> bool:
    """Whether chunks of this train step run as one scan on ``platform`` (the module docs).

    Args:
        platform: The platform of the state's devices (``"cpu"``, ``"gpu"``, ``"tpu"``...).
        lowered_step: The train step, lowered for its arguments (``jax.jit(...).lower``):
            needed on a CPU only.
    """
    if platform != "cpu" or lowered_step is None:
        return True
    if "convolution" in lowered_step.as_text():
        return False
    cost = lowered_step.cost_analysis()
    flops = cost.get("flops") if isinstance(cost, dict) else None
    return isinstance(flops, float | int) and 0 <= flops <= CPU_SCAN_MAX_FLOPS
