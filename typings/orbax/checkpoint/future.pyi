from collections.abc import Coroutine
from typing import Any

class Future:
    def result(self, timeout: float | None = None) -> Any: ...

class CommitFutureAwaitingContractedSignals(Future):
    def __init__(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> None: ...
