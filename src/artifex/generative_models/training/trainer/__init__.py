r"""The reference trainer: a jitted, donated NNX step driving ``TrainingCallback``s.

[`Trainer`][] splits the model's graph once per ``fit`` (``nnx.split``) and runs a
``jax.jit``-compiled functional step over flat lists of state arrays, donating the
parameter, optimizer and metric buffers. It never syncs the host during an epoch:
batch logs are device scalars, epoch means are accumulated on device and fetched in
one ``jax.device_get`` at the epoch's end.

Model sync policy: between steps the trained arrays live in the trainer; the module's
``nnx.Variable``\\ s are updated lazily, when ``trainer.model`` or [`Trainer.state_dict`][]
is read and always before ``on_epoch_end``, ``on_train_end`` and the return of ``fit``.
Arrays handed out are never donated afterwards (the next step copies them), and a
callback's changes to the module (``nnx.update``) are picked up before the next step. A
module reference kept from an earlier hook is stale inside an epoch (its arrays may have
been donated); read ``trainer.model`` in the hook instead.

Where each part lives (private modules of this package): ``_fit`` (one ``fit`` from its
start to how it ended: the epoch loop, the batch pairs, chunk rollback, teardown),
``_chunks`` (the data side: batches checked, placed and cut into chunks), ``_trainer``
(the ``Trainer`` class), ``_steps`` (compiled steps), ``_chunk_rule`` (whether a
chunk runs as one scan or step by step), ``_leaves`` (flat state, sync
flags), ``_means`` (log averages), ``_position`` (counters, mid-epoch positions),
``_stops`` (stop requests, the ``Stopper`` union), ``_preemption``, ``_coordination``
(stop agreement across processes), ``_injected`` (optimizer hyperparameters) and
``_batch_errors``; ``training._spmd`` (mesh placement) and ``training._checkpointing``
(``resume``) are shared with the checkpoints, and ``training._grain`` (grain data as a
``StatefulData``) with the data side.
"""

from __future__ import annotations

from artifex.generative_models.training._spmd import DataAxis
from artifex.generative_models.training.trainer._chunks import DataSource, ReplayedDataWarning
from artifex.generative_models.training.trainer._preemption import Preempted
from artifex.generative_models.training.trainer._steps import LossFn, LossOutput
from artifex.generative_models.training.trainer._stops import RemoteStop
from artifex.generative_models.training.trainer._trainer import Trainer

__all__ = [
    "DataAxis",
    "DataSource",
    "LossFn",
    "LossOutput",
    "Preempted",
    "RemoteStop",
    "ReplayedDataWarning",
    "Trainer",
]
