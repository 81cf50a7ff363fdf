"""Every configurable built-in callback takes its config or the config's fields as keywords.

The callbacks are found in ``callbacks.__all__`` (a new one cannot be left out): each
``BaseCallback`` there is a ``ConfiguredCallback`` except those with forms of their own.
The static side (a misspelt keyword is a type error) is ``tests/typing/check_configured.py``,
which must name every one of them.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Any

import pytest

from artifex.generative_models.training import callbacks
from artifex.generative_models.training.callbacks._configured import ConfiguredCallback

OWN_FORMS = {"BaseCallback", "History", "LambdaCallback"}
"""The public callbacks built otherwise: the no-op base, no arguments, one per hook."""

CHANGED: dict[str, dict[str, Any]] = {
    "CSVLogger": {"filename": "log.csv", "append": False},
    "EarlyStopping": {"monitor": "loss", "patience": 5},
    "JAXProfiler": {"start_step": 2, "stop_step": 4},
    "LearningRateMonitor": {"key": "learning_rate"},
    "MemoryProfiler": {"every_n_epochs": 2},
    "MLflowLogger": {"experiment": "demo", "params": {"lr": 0.1}},
    "ModelCheckpoint": {"dirpath": "ckpt", "monitor": "val_loss", "save_top_k": 1},
    "ProgressBar": {"steps_per_epoch": 10},
    "ReduceLROnPlateau": {"factor": 0.5},
    "TensorBoardLogger": {"log_dir": "tb", "flush_secs": 5},
    "TerminateOnNaN": {"monitor": "val_loss"},
    "ThroughputMonitor": {"every_n_steps": 10},
    "WandbLogger": {"project": "demo", "config": {"lr": 0.1}},
}
"""Keywords, other than the defaults, that each configurable callback accepts."""


def _public_callbacks() -> dict[str, type[Any]]:
    found = {name: getattr(callbacks, name) for name in callbacks.__all__}
    return {
        name: value
        for name, value in found.items()
        if isinstance(value, type) and issubclass(value, callbacks.BaseCallback)
    }


CONFIGURED = sorted(
    name for name, cls in _public_callbacks().items() if issubclass(cls, ConfiguredCallback)
)


def _forms(cls: type[Any]) -> tuple[type[Any], type[Any]]:
    """The config class and the keywords' TypedDict of ``cls``, read from its ``__init__``."""
    hints = typing.get_type_hints(cls.__init__)
    params = list(inspect.signature(cls.__init__).parameters.values())
    config, kwargs = params[1], params[-1]
    assert config.kind is inspect.Parameter.POSITIONAL_ONLY, cls
    assert kwargs.kind is inspect.Parameter.VAR_KEYWORD, cls
    (config_type,) = (arg for arg in typing.get_args(hints[config.name]) if arg is not type(None))
    unpacked = hints[kwargs.name]
    assert typing.get_origin(unpacked) is typing.Unpack, cls
    (keywords,) = typing.get_args(unpacked)
    return config_type, keywords


def test_every_public_callback_is_configured_or_has_its_own_form() -> None:
    public = set(_public_callbacks())
    assert public >= OWN_FORMS
    assert set(CONFIGURED) == public - OWN_FORMS
    assert set(CHANGED) == set(CONFIGURED), "give a new callback its keywords in CHANGED"


@pytest.mark.parametrize("name", CONFIGURED)
def test_the_keywords_typeddict_is_the_configs_fields(name: str) -> None:
    config_type, keywords = _forms(getattr(callbacks, name))
    fields = {field.name for field in dataclasses.fields(config_type) if field.init}
    assert keywords.__name__ == config_type.__name__.replace("Config", "Kwargs")
    assert set(keywords.__annotations__) == fields
    assert keywords.__required_keys__ == frozenset()  # total=False: each keyword optional
    field_types = typing.get_type_hints(config_type)
    assert typing.get_type_hints(keywords) == {key: field_types[key] for key in fields}


@pytest.mark.parametrize("name", CONFIGURED)
def test_both_forms_give_equal_configs(name: str) -> None:
    cls = getattr(callbacks, name)
    config_type, _ = _forms(cls)
    changed = CHANGED[name]
    by_keywords, by_config = cls(**changed), cls(config_type(**changed))
    assert by_keywords.config == by_config.config == config_type(**changed)
    assert by_keywords.config != config_type(), "CHANGED must change the config"
    assert repr(by_keywords) == repr(by_config) == f"{name}({config_type(**changed)!r})"
    defaults = config_type()
    every_field = {
        field.name: getattr(defaults, field.name) for field in dataclasses.fields(defaults)
    }
    assert cls(**every_field).config == cls().config == defaults


@pytest.mark.parametrize("name", CONFIGURED)
def test_a_config_and_keywords_together_are_refused(name: str) -> None:
    cls = getattr(callbacks, name)
    config_type, _ = _forms(cls)
    key = next(iter(CHANGED[name]))
    with pytest.raises(TypeError, match=rf"^{name} takes either .*not both.*'{key}'"):
        cls(config_type(), **{key: CHANGED[name][key]})


@pytest.mark.parametrize("name", CONFIGURED)
def test_an_unknown_keyword_is_refused_by_name(name: str) -> None:
    cls = getattr(callbacks, name)
    config_type, _ = _forms(cls)
    key = next(iter(CHANGED[name]))
    misspelt = key[:-1]
    with pytest.raises(TypeError, match=rf"^{name} got an unexpected keyword '{misspelt}'") as info:
        cls(**{misspelt: CHANGED[name][key]})
    assert f"did you mean '{key}'?" in str(info.value)
    assert config_type.__name__ in str(info.value)
    with pytest.raises(TypeError, match=rf"^{name} got an unexpected keyword 'zzz';"):
        cls(zzz=1)


@pytest.mark.parametrize("name", CONFIGURED)
def test_a_config_of_another_type_is_refused(name: str) -> None:
    cls = getattr(callbacks, name)
    config_type, _ = _forms(cls)
    with pytest.raises(TypeError, match=rf"^{name} takes a config of type {config_type.__name__}"):
        cls({"monitor": "loss"})


def test_the_typing_cases_name_every_configurable_callback() -> None:
    path = Path(__file__).parents[2] / "typing" / "check_configured.py"
    functions = {
        node.name: node
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef)
    }
    for function in ("keyword_form", "config_form", "misspelt_keyword"):
        called = {
            node.func.id
            for node in ast.walk(functions[function])
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert set(CONFIGURED) <= called, (function, set(CONFIGURED) - called)
