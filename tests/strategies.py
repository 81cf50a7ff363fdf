"""All Hypothesis strategies of the test suite, in one place."""

from __future__ import annotations
