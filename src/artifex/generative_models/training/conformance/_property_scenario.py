"""The property scenario: Hypothesis draws ``fit`` plans; the grammar must hold on each.

It draws one or two ``fit`` calls (epochs, validation, stop and raise points, a data
failure), runs each draw through ``execute``, and shrinks a failing draw to a
minimal one. Hypothesis is imported only when the scenario runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Literal, TypeAlias, cast

from artifex.generative_models.training.callbacks.base import HOOK_NAMES, HookName
from artifex.generative_models.training.conformance._execute import (
    Context,
    ErrorKind,
    Found,
    NotApplicable,
    execute,
    has_stop_flag,
    validating,
)
from artifex.generative_models.training.conformance._harness import FailingHarness
from artifex.generative_models.training.conformance.grammar import FitPlan, Trigger, Violation

if TYPE_CHECKING:
    from hypothesis import settings
    from hypothesis.strategies import SearchStrategy

__all__ = ["private_storage", "property_scenario"]


class _Budget(Exception):
    """Internal: the property scenario ran out of runs while shrinking."""


def property_scenario(ctx: Context) -> Found:
    """Hypothesis draws one or two ``fit`` calls; a failing draw is shrunk to a minimal one.

    Args:
        ctx: The shared context: ``max_examples`` draws, then shrinking within five
            times as many runs.

    Returns:
        The findings of the minimal failing draw (none if every draw conforms), and
        a detail naming the draw or how many draws conform.

    Raises:
        NotApplicable: If Hypothesis is not installed.
    """
    try:
        from hypothesis import find
        from hypothesis.errors import NoSuchExample
    except ImportError as error:  # pragma: no cover - hypothesis is a test dependency
        raise NotApplicable(
            f"needs Hypothesis ({error}); install artifex-nnx-callbacks[conformance]"
        ) from error
    search = _Search(ctx)
    try:
        minimal = find(_runs(ctx), search.fails, settings=_settings(ctx))
    except NoSuchExample:
        return [], f"{ctx.max_examples} drawn runs conform"
    except _Budget:
        minimal = search.last_failing[-1]
    plans, kind = minimal
    draw_text = ", ".join(map(str, plans)) + _KIND_TEXT[kind]
    findings, _ = execute(ctx, "property", plans, kind=kind)
    shrunk = [
        Violation(
            scenario=v.scenario,
            index=v.index,
            context=v.context,
            expected=f"{v.expected} [minimal failing draw: {draw_text}]",
            severity=v.severity,
        )
        for v in findings
    ]
    return shrunk, f"minimal failing draw: {draw_text}"


_Drawn: TypeAlias = tuple[tuple[FitPlan, ...], ErrorKind]


class _Search:
    """Whether a draw fails, within five times ``max_examples`` runs; the failing draws kept."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.budget = ctx.max_examples * 5
        self.last_failing: list[_Drawn] = []

    def fails(self, drawn: _Drawn) -> bool:
        if self.budget <= 0:
            raise _Budget
        self.budget -= 1
        findings, _ = execute(self.ctx, "property", drawn[0], kind=drawn[1])
        failed = any(v.severity == "error" for v in findings)
        if failed:
            self.last_failing.append(drawn)
        return failed


def _settings(ctx: Context) -> settings:
    """Derandomized, with no example database unless the user opts in (nothing in their cwd)."""
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.database import DirectoryBasedExampleDatabase

    database = None
    if ctx.example_database is not None:
        database = DirectoryBasedExampleDatabase(ctx.example_database)
    return settings(
        max_examples=ctx.max_examples,
        deadline=None,
        database=database,
        derandomize=database is None,
        # HealthCheck's metaclass has an unannotated __iter__: pyright infers the metaclass.
        suppress_health_check=cast("list[HealthCheck]", list(HealthCheck)),  # ty: ignore[redundant-cast]
        phases=[Phase.generate, Phase.shrink],
    )


def _runs(ctx: Context) -> SearchStrategy[_Drawn]:
    """One or two ``fit`` plans with one stop source, and what the injected failures raise."""
    from hypothesis import strategies as st

    plan = _plans(ctx)

    @st.composite
    def run(draw: st.DrawFn) -> _Drawn:
        plans = draw(st.lists(plan, min_size=1, max_size=2))
        via = plans[0].stop_via  # one stop source per trainer
        kind: ErrorKind = draw(st.sampled_from(["error", "interrupt", "exit"]))
        return tuple(replace(p, stop_via=via) for p in plans), kind

    return run()


def _plans(ctx: Context) -> SearchStrategy[FitPlan]:
    """One ``fit`` call: epochs, validation, a stop point, a raise point, a data failure."""
    from hypothesis import strategies as st

    batches, with_validation = ctx.batches, validating(ctx)
    failing = isinstance(ctx.harness, FailingHarness)
    hooks: list[HookName] = [h for h in HOOK_NAMES if with_validation or "validation" not in h]
    stop_hooks: list[HookName] = [h for h in hooks if h != "on_train_end"]
    vias: list[Literal["requester", "flag"]] = (
        ["requester", "flag"] if has_stop_flag(ctx) else ["requester"]
    )

    @st.composite
    def plan(draw: st.DrawFn) -> FitPlan:
        epochs = draw(st.integers(0, 3))
        validation = with_validation and draw(st.booleans())
        stop_hook = draw(st.sampled_from([None, "on_epoch_end", "on_batch_end", "elsewhere"]))
        stop = None
        if stop_hook == "on_epoch_end" and epochs:
            stop = Trigger(hook="on_epoch_end", occurrence=draw(st.integers(0, epochs - 1)))
        elif stop_hook == "on_batch_end" and epochs * batches:
            last = epochs * batches - 1
            stop = Trigger(hook="on_batch_end", occurrence=draw(st.integers(0, last)))
        elif stop_hook == "elsewhere":
            hook: HookName = draw(st.sampled_from(stop_hooks))
            stop = Trigger(hook=hook, occurrence=draw(st.integers(0, 2)))
        raises: tuple[Trigger, ...] = ()
        failure = draw(
            st.sampled_from([None, "callback", "data"] if failing else [None, "callback"])
        )
        if failure == "callback":
            hook = draw(st.sampled_from(hooks))
            raises = (Trigger(hook=hook, occurrence=draw(st.integers(0, 2))),)
        data_failure = None
        if failure == "data" and epochs * batches and not validation:
            data_failure = draw(st.integers(0, epochs * batches - 1))
        return FitPlan(
            epochs=epochs,
            validation=validation,
            stop=stop,
            raises=raises,
            data_failure=data_failure,
            stop_via=draw(st.sampled_from(vias)),
        )

    return plan()


_KIND_TEXT: dict[ErrorKind, str] = {
    "error": "",
    "interrupt": " (raising KeyboardInterrupt)",
    "exit": " (raising SystemExit)",
}


@contextmanager
def private_storage() -> Generator[None]:
    """Point Hypothesis's storage directory at a temporary one, and back afterwards.

    Hypothesis caches the constants of the modules it draws from under its storage
    directory (``.hypothesis/`` in the working directory by default) whatever
    ``database=None`` says. Its switch is process-wide, so it is set only around the
    check and restored after; the temporary directory is removed.
    """
    try:
        from hypothesis.configuration import set_hypothesis_home_dir, storage_directory
    except ImportError:  # pragma: no cover - hypothesis is a test dependency
        yield
        return
    previous = storage_directory(intent_to_write=False).home_directory
    with tempfile.TemporaryDirectory(prefix="conformance-hypothesis-") as home:
        set_hypothesis_home_dir(home)
        try:
            yield
        finally:
            set_hypothesis_home_dir(previous)
