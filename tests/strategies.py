"""All Hypothesis strategies of the test suite, in one place."""

from __future__ import annotations

from typing import Literal, TypeAlias

from hypothesis import strategies as st

from artifex.generative_models.training.callbacks import HOOK_NAMES, HookName

# ------------------------------------------------------------------ callback core
# Used by tests/test_callback_list_stateful.py.

Behaviour: TypeAlias = Literal["record", "raise", "append", "remove_self"]
"""What a scripted callback does when one of its hooks is called (it always records)."""

hook_names: st.SearchStrategy[HookName] = st.sampled_from(HOOK_NAMES)

behaviours: st.SearchStrategy[Behaviour] = st.sampled_from(
    ("record", "record", "raise", "append", "remove_self")
)


@st.composite
def callback_scripts(draw: st.DrawFn) -> dict[HookName, Behaviour]:
    """Draw the hooks a scripted callback overrides, and what each does."""
    overridden = draw(st.sets(hook_names))
    return {hook: draw(behaviours) for hook in sorted(overridden)}


# --------------------------------------------------------------- built-in callbacks
# Used by tests/callbacks/test_early_stopping.py.


@st.composite
def early_stopping_scores(
    draw: st.DrawFn,
) -> tuple[list[float], int, float, Literal["min", "max"]]:
    """Draw (epoch scores with some NaNs, patience, min_delta, mode) for EarlyStopping."""
    score = st.one_of(
        st.floats(-10, 10, allow_nan=False), st.sampled_from([1.0, 0.0]), st.just(float("nan"))
    )
    scores = draw(st.lists(score, min_size=0, max_size=15))
    patience = draw(st.integers(0, 4))
    min_delta = draw(st.sampled_from([0.0, 0.1, 0.5]))
    mode: Literal["min", "max"] = draw(st.sampled_from(["min", "max"]))
    return scores, patience, min_delta, mode
