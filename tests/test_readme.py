"""The README's two commands: the tests one is what ``.ci/run`` runs, both name real sessions.

The documentation's home page (docs/index.md) gives the same two commands.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands(page: str = "README.md") -> dict[str, str]:
    """``{"main job": command, "tests": command}`` from a page's first bash block."""
    text = (ROOT / page).read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    commands: dict[str, str] = {}
    for line in block.strip().splitlines():
        command, _, comment = line.partition("#")
        role = "main job" if comment.strip().startswith("the main job") else "tests"
        assert role not in commands, f"the README's first bash block has two {role} lines"
        commands[role] = command.strip()
    return commands


def _ci_command() -> str:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return commands[-1]


def _nox_sessions() -> set[str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("nox.session" in ast.unparse(decorator) for decorator in node.decorator_list)
    }


def _sessions_of(command: str) -> list[str]:
    words = shlex.split(command.rsplit("&&", 1)[-1])
    assert words[:4] == ["python3", "-m", "nox", "-s"], command
    return words[4:]


def test_readme_lists_the_main_job_then_the_tests() -> None:
    assert list(_readme_commands()) == ["main job", "tests"]


def test_readme_tests_command_is_what_ci_runs() -> None:
    assert _readme_commands()["tests"] == _ci_command()


def test_readme_commands_run_existing_nox_sessions() -> None:
    sessions = _nox_sessions()
    for role, command in _readme_commands().items():
        named = _sessions_of(command)
        assert named, f"the README's {role} command names no session"
        assert set(named) <= sessions, f"{role}: {sorted(set(named) - sessions)} not in noxfile"
    assert _sessions_of(_readme_commands()["main job"]) == ["demo"]
    assert re.search(r"\bpip install 'nox\[uv\]'", _ci_command())


def test_docs_home_page_gives_the_readme_commands() -> None:
    assert _readme_commands("docs/index.md") == _readme_commands()


def test_ci_builds_the_package_and_tries_the_wheel() -> None:
    assert "build" in _sessions_of(_ci_command())
