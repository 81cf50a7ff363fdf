"""Log params and metrics to an MLflow run (with the ``mlflow`` package)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict, Unpack, overload

from artifex.generative_models.training._checks import check_name, set_int
from artifex.generative_models.training.callbacks._tracker_checks import (
    cannot_resume,
    check_mlflow_store,
)
from artifex.generative_models.training.callbacks._tracking import (
    TrackerCallback,
    missing_extra,
    read_only_mapping,
    run_failed,
)
from artifex.generative_models.training.callbacks.base import TrainerLike

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["MLflowConfig", "MLflowKwargs", "MLflowLogger"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MLflowConfig:
    """Configuration of [`MLflowLogger`][].

    Attributes:
        tracking_uri: Where runs are stored: a database URI (the default, a SQLite file
            ``mlflow.db`` in the working directory, is MLflow's own default backend),
            ``http(s)://`` for a tracking server, or a ``file:`` directory.
        experiment: The experiment's name; created if it does not exist.
        run_name: The run's name (``None``: MLflow makes one up).
        params: The hyperparameters, logged once, when the run is created (MLflow
            stores them as strings); copied into a read-only mapping.
        tags: Tags of the run (values as strings).
        log_every_n_steps: Also log the batch logs every n global steps, as
            ``batch/<key>``, in one device fetch each time. The default ``0`` logs epoch
            metrics only and never reads a batch log.
    """

    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "Default"
    run_name: str | None = None
    params: Mapping[str, object] = field(default_factory=dict, hash=False)
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    log_every_n_steps: int = 0

    def __post_init__(self) -> None:
        """Validate the fields; store ``params`` and ``tags`` read-only.

        Raises:
            TypeError: If ``params`` or ``tags`` is not a mapping, or a count not an int.
            ValueError: If a name or key is empty, a tag not a str, or a count negative.
        """
        check_name("tracking_uri", self.tracking_uri)
        check_name("experiment", self.experiment)
        check_name("run_name", self.run_name, optional=True)
        object.__setattr__(self, "params", read_only_mapping("params", self.params))
        tags = read_only_mapping("tags", self.tags)
        bad = {key: value for key, value in tags.items() if not isinstance(value, str)}
        if bad:
            raise ValueError(f"tags values must be str, got {bad!r}")
        object.__setattr__(self, "tags", tags)
        set_int(self, "log_every_n_steps", minimum=0)


class MLflowKwargs(TypedDict, total=False):
    """The fields of [`MLflowConfig`][], as keyword arguments (each optional)."""

    tracking_uri: str
    experiment: str
    run_name: str | None
    params: Mapping[str, object]
    tags: Mapping[str, str]
    log_every_n_steps: int


class MLflowLogger(TrackerCallback[MLflowConfig]):
    """Log params once and metrics at the global step to an MLflow run.

    Needs ``mlflow`` (``pip install 'artifex-nnx-callbacks[mlflow]'``), imported at
    ``on_train_begin``, which creates the run (in ``experiment``, at ``tracking_uri``)
    and logs ``params``. Epoch logs go to the run at the global step (the training
    steps done, see ``TrackerCallback``), with ``epoch``; batch logs only if
    ``log_every_n_steps`` is set. ``on_train_end`` ends the run as ``FINISHED``, or
    ``FAILED`` when the fit failed. It talks to the store through its own
    ``MlflowClient``: the fluent API's active run (``mlflow.start_run``) is left alone.

    Its ``preflight`` checks the store before any callback creates anything: a URI
    MLflow refuses, a SQLite database in a missing folder, a tracking server that
    does not answer within a few seconds (one try, not MLflow's retries), or a
    checkpointed run the store does not hold.

    It is a ``StatefulCallback`` (``state_key`` ``"MLflowLogger"``): a checkpoint holds
    the run's id, and a fit resumed from it (or a second ``fit`` of this instance)
    reopens that run (``RUNNING`` again) and goes on logging to it; params are not
    logged again.

    Args:
        config: The configuration (positional-only); the defaults if omitted.
        **kwargs: Instead of ``config``, its fields ([`MLflowKwargs`][]).
    """

    __slots__ = ("_checked", "_client")

    @overload
    def __init__(self, config: MLflowConfig | None, /) -> None: ...
    @overload
    def __init__(self, /, **kwargs: Unpack[MLflowKwargs]) -> None: ...
    def __init__(
        self, config: MLflowConfig | None = None, /, **kwargs: Unpack[MLflowKwargs]
    ) -> None:
        super().__init__(self._configure(MLflowConfig, config, kwargs).log_every_n_steps)
        self._client: MlflowClient | None = None
        self._checked = False  # preflight checked the store for the next on_train_begin

    def preflight(self, trainer: TrainerLike, /) -> None:
        """Refuse the run now if the tracking store cannot be used; create nothing.

        Raises:
            ImportError: If ``mlflow`` is not installed.
            ValueError: If the store is refused or unreachable, or the run to resume
                is not in it.
        """
        check_mlflow_store(self.config.tracking_uri, self._run_id)
        self._checked = True

    def on_train_begin(self, trainer: TrainerLike, /) -> None:
        """Create the run and log the params, or reopen the run of the checkpoint.

        Runs the checks of [`preflight`][] first, for trainers that do not call it.

        Raises:
            ImportError: If ``mlflow`` is not installed.
            ValueError: As [`preflight`][].
        """
        if not self._checked:
            check_mlflow_store(self.config.tracking_uri, self._run_id)
        self._checked = False
        try:
            from mlflow.entities import Param
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise missing_extra("MLflowLogger", "mlflow", "mlflow") from exc
        cfg = self.config
        client = MlflowClient(tracking_uri=cfg.tracking_uri)
        if self._run_id is not None:
            try:
                client.update_run(self._run_id, status="RUNNING")
            except MlflowException as exc:
                raise cannot_resume(self._run_id, cfg.tracking_uri, exc) from exc
        else:
            experiment = client.get_experiment_by_name(cfg.experiment)
            experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else client.create_experiment(cfg.experiment)
            )
            run = client.create_run(experiment_id, run_name=cfg.run_name, tags=dict(cfg.tags))
            self._run_id = run.info.run_id
            params = [Param(key, str(value)) for key, value in cfg.params.items()]
            if params:
                client.log_batch(self._run_id, params=params)
        self._client = client

    def _log(self, values: dict[str, float], step: int, /) -> None:
        from mlflow.entities import Metric

        if self._client is None or self._run_id is None:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in values.items()]
        self._client.log_batch(self._run_id, metrics=metrics)

    def on_train_end(self, trainer: TrainerLike, /) -> None:
        """End the run: ``FAILED`` if the fit failed, else ``FINISHED``."""
        client, self._client = self._client, None
        if client is not None and self._run_id is not None:
            client.set_terminated(
                self._run_id, status="FAILED" if run_failed(trainer) else "FINISHED"
            )
