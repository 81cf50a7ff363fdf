"""The Trainer's mesh options, in this process (one CPU device): checks and a 1-device mesh.

Runs on several devices and processes are in ``tests/laws/test_spmd.py``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding

from artifex.generative_models.training import Trainer
from tests.training.test_trainer import batches, linear, mse_with_metrics, new_trainer


def one_device_mesh(*axes: str) -> Mesh:
    return Mesh(np.array(jax.devices()[:1]).reshape((1,) * len(axes)), axes)


def test_a_one_device_mesh_trains_like_no_mesh() -> None:
    mesh = one_device_mesh("data")
    plain = new_trainer()
    meshed = new_trainer(mesh=mesh, steps_per_execution=2)
    assert (plain.mesh, meshed.mesh) == (None, mesh)
    data = batches(6)
    history = plain.fit(data, epochs=2, val_data=data)
    meshed_history = meshed.fit(data, epochs=2, val_data=data)
    for logs, meshed_logs in zip(history, meshed_history, strict=True):
        assert logs.keys() == meshed_logs.keys()
        np.testing.assert_allclose(list(meshed_logs.values()), list(logs.values()), rtol=1e-6)
    kernel = meshed.model.kernel[...]
    assert isinstance(kernel.sharding, NamedSharding)
    assert kernel.sharding.mesh == mesh
    np.testing.assert_allclose(kernel, plain.model.kernel[...], rtol=1e-6)
    assert meshed.evaluate(data).keys() == {"loss"}


def test_metrics_and_a_tuple_data_axis() -> None:
    mesh = one_device_mesh("replica", "data")
    trainer = Trainer(
        linear(), optax.sgd(0.1), mse_with_metrics, mesh=mesh, data_axis=("replica", "data")
    )
    [logs] = trainer.fit(batches(2), epochs=1)
    assert logs.keys() == {"loss", "mae"}
    sharding = trainer.model.kernel[...].sharding
    assert isinstance(sharding, NamedSharding)
    assert sharding.mesh == mesh


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"mesh": "cpu"}, TypeError, "mesh must be a jax.sharding.Mesh, got str 'cpu'"),
        ({"data_axis": 3}, TypeError, "data_axis must be a mesh axis name .* got int 3"),
        ({"data_axis": ()}, TypeError, "data_axis must be .* got tuple"),
        ({"data_axis": "batch"}, ValueError, r"data_axis 'batch' names \['batch'\] .*\('data',\)"),
    ],
)
def test_bad_mesh_options_name_the_culprit(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    options.setdefault("mesh", one_device_mesh("data"))
    with pytest.raises(error, match=message):
        new_trainer(**options)


def test_a_batch_without_a_leading_axis_is_refused() -> None:
    trainer = new_trainer(mesh=one_device_mesh("data"))
    x, y = batches(1)[0]
    with pytest.raises(ValueError, match=r"batch leaf of shape \(\): a data-parallel batch"):
        trainer.fit([(x, y[0, 0])], epochs=1)
