# Minimal local stubs for the parts of orbax-checkpoint (0.12.x) this project uses.

class MultiprocessingOptions:
    primary_host: int | None
    def __init__(self, primary_host: int | None = 0) -> None: ...
