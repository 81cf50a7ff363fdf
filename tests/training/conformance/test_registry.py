"""One scenario registry: the runners and the docs' scenario table follow ``SCENARIOS``.

``SCENARIOS`` (in the JAX-free ``_scenario_table``) names every scenario in order; the runners
of ``_fixed_scenarios.RUNNERS`` and the scenario table of the docs' "Check your own trainer" page
(``docs/conformance.md``) must list exactly those names, in that order, as
``tests/test_public_api.py`` checks the API pages against every ``__all__``.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from artifex.generative_models.training.conformance import SCENARIOS, _fixed_scenarios, scenarios

PAGE = Path(__file__).resolve().parents[3] / "docs" / "conformance.md"
SECTION = "# Check your own trainer"
HEADER = "| scenario | what it checks |"


def _docs_scenarios() -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    assert SECTION in text, f"{PAGE.name} has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    assert HEADER in section, f"{PAGE.name}'s {SECTION!r} section has no {HEADER!r} table"
    table = section.split(HEADER, 1)[1]
    names: list[str] = []
    for line in table.strip().splitlines()[1:]:  # the first is the |---|---| rule
        if not line.startswith("|"):
            break
        found = re.fullmatch(r"`([^`]+)`", line.strip("|").split("|")[0].strip())
        assert found, f"a scenario row of {PAGE.name} does not start with a `name`: {line!r}"
        names.append(found.group(1))
    return names


def test_scenarios_is_the_public_registry() -> None:
    assert scenarios.SCENARIOS is SCENARIOS
    assert SCENARIOS, "no scenario is registered"
    assert all(SCENARIOS.values()), "every scenario needs a one-line description"


def test_every_scenario_has_a_runner_in_order() -> None:
    assert list(_fixed_scenarios.RUNNERS) == list(SCENARIOS)


def test_every_runner_has_the_one_runner_shape() -> None:
    for name, runner in _fixed_scenarios.RUNNERS.items():
        parameters = list(inspect.signature(runner).parameters.values())
        assert len(parameters) == 1, name
        assert parameters[0].kind in {
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        }, name


def test_docs_scenario_table_lists_the_registry_in_order() -> None:
    assert _docs_scenarios() == list(SCENARIOS)
