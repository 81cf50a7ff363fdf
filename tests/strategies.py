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
