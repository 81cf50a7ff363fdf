"""The docs' minimal-trainer example is the file users copy, verbatim."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_docs_minimal_trainer_is_the_example_file() -> None:
    text = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    block = text.split("<!-- minimal-trainer:start -->")[1].split("<!-- minimal-trainer:end -->")[0]
    code = block.strip().removeprefix("```python").removesuffix("```").strip()
    assert code == (ROOT / "examples" / "minimal_trainer.py").read_text(encoding="utf-8").strip()
