# Minimal local stubs for grain (0.2.x): the library ships no type information, and the
# project uses it only in tests and docs (src reaches it through ``sys.modules``).
from typing import Any

def __getattr__(name: str) -> Any: ...
