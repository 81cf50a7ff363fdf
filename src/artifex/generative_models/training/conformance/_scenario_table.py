"""The scenario registry: every scenario's name and what it checks, without JAX.

This table is the one list of scenarios: ``check_trainer`` runs them in its order,
the CLI and the pytest plugin (which loads it at every pytest start, so this module
must not import JAX) offer its names, and the report prints its descriptions. A new
scenario is a row here, a runner in ``_fixed_scenarios.RUNNERS`` under the same name
(written in ``_fixed_scenarios``, or in a module of its own like ``_property_scenario``),
and a row in the scenario table of ``docs/conformance.md``;
``tests/training/conformance/test_registry.py`` checks that all three agree.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SCENARIOS"]

SCENARIOS: Final[dict[str, str]] = {
    "protocol": "build() returns a TrainerLike whose model is an nnx.Module",
    "plain_run": "fit(epochs=2): lifecycle order, numbering, logs types",
    "zero_epochs": "fit(epochs=0) dispatches on_train_begin then on_train_end only",
    "validation": "fit with validation data: one validation pair per epoch, val_* epoch logs",
    "model": "trainer.model: one live module, trained in place; a callback's edits stay",
    "stop_at_epoch_end": "a StopRequester asks to stop at on_epoch_end #1",
    "stop_at_batch_end": "a StopRequester asks to stop mid-epoch at an on_batch_end",
    "stop_at_last_batch": "a StopRequester asks to stop at an epoch's last on_batch_end",
    "stop_training_flag": "trainer.stop_training = True at on_batch_end #0; a next fit trains",
    "stop_at_any_hook": "a stop asked for at every other hook, by a StopRequester and the flag",
    "stop_then_fit": "a stop ends its own fit only; a flag set between fits is dropped",
    "callback_raises": "a callback raises (or exits) at chosen hooks: teardown, same exception",
    "data_raises": "the data raises (interrupts, exits) mid-epoch: teardown, same object",
    "fit_twice": "fit called twice on one trainer: counters continue",
    "fit_after_failure": "a failed fit, then a clean one: it trains and error is None",
    "preflight_refusal": "a PreflightCallback refuses: nothing begins, nothing is torn down",
    "steps_per_epoch": "an endless stream with steps_per_epoch=3: 3 batch pairs per epoch",
    "property": "Hypothesis draws epochs, stops and raises; the grammar holds on every draw",
}
"""Every scenario's name and what it checks, in the order they run."""
