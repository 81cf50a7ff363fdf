# Minimal local stubs for orbax.checkpoint.step (0.12.x): step name formats.
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Generic, Protocol, TypeVar

class Metadata:
    step: int
    path: Path

MetadataT = TypeVar("MetadataT", bound=Metadata, covariant=True)

class NameFormat(Protocol, Generic[MetadataT]):
    def build_name(self, step: int) -> str: ...
    def find_all(self, base_path: str | PathLike[str]) -> Iterator[MetadataT]: ...
    def find_step(self, base_path: str | PathLike[str], step: int) -> MetadataT: ...

def standard_name_format() -> NameFormat[Metadata]: ...
