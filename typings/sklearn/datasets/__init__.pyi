from typing import Any, Literal, overload

import numpy as np

class Bunch(dict[str, Any]):
    data: np.ndarray
    target: np.ndarray
    images: np.ndarray

@overload
def load_digits(
    *, n_class: int = 10, return_X_y: Literal[False] = False, as_frame: bool = False
) -> Bunch: ...
@overload
def load_digits(
    *, n_class: int = 10, return_X_y: Literal[True], as_frame: bool = False
) -> tuple[np.ndarray, np.ndarray]: ...
