# Minimal local stubs for the parts of wandb this project uses (WandbLogger and its tests).
from collections.abc import Mapping, Sequence
from typing import Literal

__version__: str

class Settings:
    @property
    def sync_file(self) -> str: ...

class Run:
    @property
    def id(self) -> str: ...
    @property
    def offline(self) -> bool: ...
    @property
    def settings(self) -> Settings: ...
    def log(
        self, data: Mapping[str, object], step: int | None = None, commit: bool | None = None
    ) -> None: ...
    def finish(self, exit_code: int | None = None) -> None: ...

def init(
    *,
    entity: str | None = None,
    project: str | None = None,
    dir: str | None = None,
    id: str | None = None,
    name: str | None = None,
    tags: Sequence[str] | None = None,
    config: Mapping[str, object] | None = None,
    mode: Literal["online", "offline", "disabled"] | None = None,
    resume: bool | Literal["allow", "never", "must", "auto"] | None = None,
) -> Run: ...
def teardown(exit_code: int | None = None) -> None: ...
