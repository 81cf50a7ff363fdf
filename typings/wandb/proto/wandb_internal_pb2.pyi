# The records of a .wandb file that the WandbLogger tests read (protobuf messages).
from collections.abc import Sequence

class HistoryItem:
    key: str
    nested_key: Sequence[str]
    value_json: str

class HistoryStep:
    num: int

class HistoryRecord:
    item: Sequence[HistoryItem]
    step: HistoryStep

class ConfigItem:
    key: str
    value_json: str

class ConfigRecord:
    update: Sequence[ConfigItem]

class RunRecord:
    run_id: str
    project: str
    display_name: str
    tags: Sequence[str]
    config: ConfigRecord

class RunExitRecord:
    exit_code: int

class Record:
    history: HistoryRecord
    run: RunRecord
    exit: RunExitRecord
    def ParseFromString(self, serialized: bytes) -> int: ...
    def WhichOneof(self, oneof_group: str) -> str | None: ...
