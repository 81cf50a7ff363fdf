import datetime
from collections.abc import Sequence
from typing import Any

class PolicyCheckpointInfo:
    step: int
    time: datetime.datetime
    metrics: Any

class PreservationPolicy:
    def should_preserve(
        self, checkpoints: Sequence[PolicyCheckpointInfo], *, context: Any
    ) -> Sequence[bool]: ...

class LatestN(PreservationPolicy):
    def __init__(self, n: int | None = None) -> None: ...
