"""Typing checks of the configurable built-in callbacks (see check_protocols.py for how).

Each one takes its config (positional-only, the specification's form) or the config's
fields as keywords, typed by a ``TypedDict`` (``**kwargs: Unpack[...Kwargs]``): a misspelt
keyword, a wrong value type, or a config and keywords together are static errors.
``tests/training/callbacks/test_configured.py`` checks that each function below names
every configurable built-in of ``callbacks.__all__``.
"""

from __future__ import annotations

from typing import assert_type

from artifex.generative_models.training.callbacks import (
    CallbackList,
    CheckpointConfig,
    CSVLogger,
    CSVLoggerConfig,
    EarlyStopping,
    EarlyStoppingConfig,
    History,
    JAXProfiler,
    JAXProfilerConfig,
    LearningRateMonitor,
    LearningRateMonitorConfig,
    MemoryProfiler,
    MemoryProfilerConfig,
    MLflowConfig,
    MLflowLogger,
    ModelCheckpoint,
    ProgressBar,
    ProgressBarConfig,
    ReduceLROnPlateau,
    ReduceLROnPlateauConfig,
    TensorBoardConfig,
    TensorBoardLogger,
    TerminateOnNaN,
    TerminateOnNaNConfig,
    ThroughputMonitor,
    ThroughputMonitorConfig,
    WandbConfig,
    WandbLogger,
)
from artifex.generative_models.training.callbacks.early_stopping import EarlyStoppingKwargs


def keyword_form() -> None:
    assert_type(CSVLogger(filename="log.csv", append=False), CSVLogger)
    assert_type(EarlyStopping(monitor="val_loss", patience=5), EarlyStopping)
    assert_type(JAXProfiler(log_dir="profile", start_step=2), JAXProfiler)
    assert_type(LearningRateMonitor(key="lr"), LearningRateMonitor)
    assert_type(MemoryProfiler(every_n_epochs=2), MemoryProfiler)
    assert_type(MLflowLogger(experiment="demo", params={"lr": 0.1}), MLflowLogger)
    assert_type(ModelCheckpoint(dirpath="ckpt", monitor="val_loss", mode="min"), ModelCheckpoint)
    assert_type(ProgressBar(steps_per_epoch=10), ProgressBar)
    assert_type(ReduceLROnPlateau(factor=0.5, patience=2), ReduceLROnPlateau)
    assert_type(TensorBoardLogger(log_dir="tb"), TensorBoardLogger)
    assert_type(TerminateOnNaN(monitor="loss"), TerminateOnNaN)
    assert_type(ThroughputMonitor(every_n_steps=10), ThroughputMonitor)
    # `config` is a field of WandbConfig (the run's config): a keyword like the others.
    assert_type(WandbLogger(project="demo", config={"lr": 0.1}), WandbLogger)
    # No argument at all: the defaults, and the config's type is the callback's own.
    assert_type(EarlyStopping().config, EarlyStoppingConfig)
    # The TypedDict forwards keywords (a wrapper that passes them on type-checks).
    options: EarlyStoppingKwargs = {"patience": 3}
    assert_type(EarlyStopping(**options), EarlyStopping)


def mixed_list() -> None:
    # Different configured callbacks in one list join to a list of callbacks (the config
    # type parameter is covariant; an invariant one made mypy infer list[object]).
    trackers = [EarlyStopping(patience=3), ModelCheckpoint(dirpath="ckpt"), WandbLogger()]
    CallbackList(trackers)
    CallbackList([*trackers, History(), TerminateOnNaN()])


def config_form() -> None:
    assert_type(CSVLogger(CSVLoggerConfig(filename="log.csv")), CSVLogger)
    assert_type(EarlyStopping(EarlyStoppingConfig(patience=5)), EarlyStopping)
    assert_type(JAXProfiler(JAXProfilerConfig()), JAXProfiler)
    assert_type(LearningRateMonitor(LearningRateMonitorConfig()), LearningRateMonitor)
    assert_type(MemoryProfiler(MemoryProfilerConfig()), MemoryProfiler)
    assert_type(MLflowLogger(MLflowConfig()), MLflowLogger)
    assert_type(ModelCheckpoint(CheckpointConfig(dirpath="ckpt")), ModelCheckpoint)
    assert_type(ProgressBar(ProgressBarConfig()), ProgressBar)
    assert_type(ReduceLROnPlateau(ReduceLROnPlateauConfig()), ReduceLROnPlateau)
    assert_type(TensorBoardLogger(TensorBoardConfig()), TensorBoardLogger)
    assert_type(TerminateOnNaN(TerminateOnNaNConfig()), TerminateOnNaN)
    assert_type(ThroughputMonitor(ThroughputMonitorConfig()), ThroughputMonitor)
    assert_type(WandbLogger(WandbConfig(project="demo")), WandbLogger)
    # None stands for the defaults, as before the keyword form existed.
    maybe: EarlyStoppingConfig | None = None
    assert_type(EarlyStopping(maybe), EarlyStopping)


def misspelt_keyword() -> None:
    CSVLogger(filenme="log.csv")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    EarlyStopping(monitr="val_loss")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    JAXProfiler(logdir="profile")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    LearningRateMonitor(keys="lr")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    MemoryProfiler(every_n_epoch=2)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    MLflowLogger(experiement="demo")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    ModelCheckpoint(filepath="ckpt")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    ProgressBar(steps_per_epochs=10)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    ReduceLROnPlateau(factr=0.5)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    TensorBoardLogger(logdir="tb")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    TerminateOnNaN(monitr="loss")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    ThroughputMonitor(every_n_step=10)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    WandbLogger(projct="demo")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]


def other_errors() -> None:
    # A value of the wrong type, a config and keywords together, a config of another
    # callback, a config by keyword (it is positional-only), a keyword of the TypedDict
    # missing from the config's fields.
    EarlyStopping(patience="5")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]  # pyrefly: ignore[bad-argument-type]  # ty: ignore[invalid-argument-type]
    EarlyStopping(EarlyStoppingConfig(), patience=5)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[no-matching-overload]  # ty: ignore[no-matching-overload]
    EarlyStopping(CheckpointConfig())  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]  # pyrefly: ignore[bad-argument-type]  # ty: ignore[invalid-argument-type]
    EarlyStopping(config=EarlyStoppingConfig())  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # pyrefly: ignore[unexpected-keyword]
    ModelCheckpoint(mode="best")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]  # pyrefly: ignore[bad-argument-type]  # ty: ignore[invalid-argument-type]
    options: EarlyStoppingKwargs = {"patiense": 3}  # type: ignore[typeddict-unknown-key]  # pyright: ignore[reportAssignmentType]  # pyrefly: ignore[bad-typed-dict-key]  # ty: ignore[unknown-typed-dict-constructor-key]
    EarlyStopping(**options)
