# Minimal local stubs for the parts of orbax-checkpoint (0.12.x) this project uses.
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from typing import Any

from orbax.checkpoint import args as args
from orbax.checkpoint import checkpoint_managers as checkpoint_managers
from orbax.checkpoint import future as future
from orbax.checkpoint import options as options
from orbax.checkpoint import step as step
from orbax.checkpoint import utils as utils
from orbax.checkpoint.args import CheckpointArgs
from orbax.checkpoint.checkpoint_managers import PreservationPolicy

class CheckpointHandler: ...

class StandardCheckpointHandler(CheckpointHandler):
    def __init__(self) -> None: ...

class JsonCheckpointHandler(CheckpointHandler):
    def __init__(
        self,
        filename: str | None = None,
        *,
        multiprocessing_options: options.MultiprocessingOptions = ...,
    ) -> None: ...
    def restore(
        self,
        directory: PathLike[str],
        item: Mapping[str, Any] | None = None,
        args: Any = None,
    ) -> Mapping[str, Any]: ...

class AsyncOptions:
    def __init__(
        self,
        *,
        timeout_secs: int = 1200,
        create_directories_asynchronously: bool = True,
    ) -> None: ...

class CheckpointManagerOptions:
    def __init__(
        self,
        *,
        max_to_keep: int | None = None,
        best_fn: Callable[[Any], float] | None = None,
        best_mode: str = "max",
        create: bool = True,
        read_only: bool = False,
        enable_async_checkpointing: bool = True,
        preservation_policy: PreservationPolicy | None = None,
        cleanup_tmp_directories: bool = False,
        step_name_format: step.NameFormat[step.Metadata] | None = None,
        async_options: AsyncOptions | None = None,
    ) -> None: ...

class CheckpointManager:
    def __init__(
        self,
        directory: str | PathLike[str],
        *,
        options: CheckpointManagerOptions | None = None,
        item_names: Sequence[str] | None = None,
        item_handlers: Mapping[str, CheckpointHandler] | None = None,
    ) -> None: ...
    def save(
        self,
        step: int,
        *,
        args: CheckpointArgs | None = None,
        metrics: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> bool: ...
    def restore(self, step: int | None, *, args: CheckpointArgs | None = None) -> Any: ...
    def item_metadata(self, step: int) -> Any: ...
    def all_steps(self, read: bool = False) -> Sequence[int]: ...
    def latest_step(self) -> int | None: ...
    def best_step(self) -> int | None: ...
    def metrics(self, step: int) -> Any: ...
    def wait_until_finished(self) -> None: ...
    def is_saving_in_progress(self) -> bool: ...
    def delete(self, step: int) -> None: ...
    def reload(self) -> None: ...
    def close(self) -> None: ...
    @property
    def directory(self) -> Any: ...
