# Minimal local stubs for orbax.checkpoint.utils (0.12.x): the temporary paths of a directory.
from os import PathLike
from typing import Protocol

class TemporaryPath(Protocol):
    def get(self) -> PathLike[str]: ...  # an etils epath.Path

def tmp_checkpoints(checkpoint_dir: str | PathLike[str]) -> list[TemporaryPath]: ...
