"""Keras 3 ``fit`` on the JAX backend as a ``bench_peers`` contender (optional).

Keras is imported here only, through importlib: it is not installed where the benchmarks
are type-checked, and it has no type information to check against, so its objects cross
this boundary as ``Any``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from flax import nnx

from _peers_models import (
    ADAM_EPS,
    BN_EPS,
    BN_MOMENTUM,
    LEARNING_RATE,
    Data,
    Net,
    Workload,
    block_arrays,
)

KERAS_VERSION = "3.15.1"  # the version pyproject.toml's `bench` group pins


def import_keras() -> ModuleType | None:
    """Keras on the JAX backend, or ``None`` (with a printed line saying why)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if os.environ["KERAS_BACKEND"] != "jax":
        print(f"KERAS_BACKEND={os.environ['KERAS_BACKEND']}: skipping the Keras contenders")
        return None
    if importlib.util.find_spec("keras") is None:
        print(
            "Keras is not installed: skipping the Keras contenders. Install it with "
            f"`pip install keras=={KERAS_VERSION}`, or run `nox -s bench`, which does."
        )
        return None
    try:
        keras = importlib.import_module("keras")
    except Exception as error:  # e.g. a Keras that does not fit this JAX: run the rest
        print(f"Keras failed to import ({type(error).__name__}: {error}): skipping its contenders")
        return None
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    return keras


def keras_model(keras: ModuleType, workload: Workload, steps_per_execution: int) -> Any:
    """A compiled ``keras.Sequential`` of the workload, with the NNX model's initial weights."""
    layers = keras.layers
    stack: list[Any] = [keras.Input(workload.input_shape)]
    for layer in workload.layers:
        if layer.kind == "dense":
            stack.append(layers.Dense(layer.size))
        elif layer.kind == "conv":
            stack.append(layers.Conv2D(layer.size, 3, padding="same"))
        elif layer.kind == "batchnorm":
            stack.append(layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPS))
        elif layer.kind == "relu":
            stack.append(layers.ReLU())
        elif layer.kind == "flatten":
            stack.append(layers.Flatten())
        else:
            stack.append(layers.Dropout(layer.rate))
    model = keras.Sequential(stack)
    arrays = block_arrays(Net(workload, rngs=nnx.Rngs(0)))
    model.set_weights([np.asarray(value) for named in arrays for value in named.values()])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE, epsilon=ADAM_EPS),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps_per_execution,
    )
    return model


class KerasContender:
    def __init__(
        self,
        keras: ModuleType,
        workload: Workload,
        data: Data,
        *,
        folder: Path | None = None,
        checkpoint: bool = True,
        steps_per_execution: int = 1,
    ) -> None:
        """Keras ``fit``, bare, or with the typical callbacks writing into ``folder``.

        ``checkpoint=False`` leaves ``ModelCheckpoint`` out of the callbacks.
        """
        self.model = keras_model(keras, workload, steps_per_execution)
        self.data = data
        self.batch_size = workload.batch_size
        self.callbacks: list[Any] = []
        self.verbose = 0
        if folder is not None:  # History is always there; verbose=1 adds the progress bar
            folder.mkdir(parents=True)
            callbacks = keras.callbacks
            self.callbacks = [
                callbacks.EarlyStopping(monitor="loss", patience=10**6),
                callbacks.CSVLogger(str(folder / "log.csv"), append=True),
            ]
            if checkpoint:
                self.callbacks.append(callbacks.ModelCheckpoint(str(folder / "model.keras")))
            self.verbose = 1

    def fit(self, epochs: int) -> Any:
        # The progress bar writes to standard output, here not a terminal (as ours).
        with contextlib.redirect_stdout(io.StringIO()):
            return self.model.fit(
                self.data.x,
                self.data.y,
                batch_size=self.batch_size,
                epochs=epochs,
                shuffle=False,
                verbose=self.verbose,
                callbacks=self.callbacks,
            )

    def run(self, epochs: int) -> None:
        self.fit(epochs)

    def losses(self, epochs: int) -> list[float]:
        return [float(loss) for loss in self.fit(epochs).history["loss"]]
