"""Run ids, and which objects continue which directory's run (by weak reference).

An object continues a directory's run when its state was restored from there, or a
``ModelCheckpoint`` wrote there for it in this process (docs/checkpoints.md).
"""

from __future__ import annotations

import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["RunClaim", "claimed_run", "claims_of", "new_run_id", "remember_run", "reset_claims"]


@dataclass(frozen=True, slots=True)
class RunClaim:
    """That an object continues a directory's run."""

    run: str | None
    supersede: bool = False
    """Whether the run may move the directory's checkpoints after its step aside (the
    user resumed from an older checkpoint with ``supersede=True``)."""


_Entry = tuple["weakref.ref[object]", dict[Path, RunClaim]]
_LINEAGE: Final[dict[int, _Entry]] = {}


def new_run_id() -> str:
    """A new run id (a uuid4 hex)."""
    return uuid.uuid4().hex


def remember_run(
    owner: object, directory: Path, run: str | None, *, supersede: bool = False
) -> None:
    """Remember that ``owner`` continues the run ``run`` of ``directory``."""
    key = id(owner)
    entry = _LINEAGE.get(key)
    if entry is None or entry[0]() is not owner:

        def forget(ref: weakref.ref[object], key: int = key) -> None:
            found = _LINEAGE.get(key)
            if found is not None and found[0] is ref:
                del _LINEAGE[key]

        try:
            entry = (weakref.ref(owner, forget), {})
        except TypeError:  # no weak references (``__slots__`` without ``__weakref__``)
            return
        _LINEAGE[key] = entry
    entry[1][directory] = RunClaim(run, supersede)


def claimed_run(owners: tuple[object, ...], directory: Path) -> RunClaim | None:
    """The run of ``directory`` that the first of ``owners`` known to continue one continues."""
    for owner in owners:
        entry = _LINEAGE.get(id(owner))
        if entry is not None and entry[0]() is owner:
            claim = entry[1].get(directory)
            if claim is not None:
                return claim
    return None


def claims_of(owner: object) -> dict[Path, RunClaim]:
    """A copy of the runs ``owner`` is known to continue, by directory."""
    entry = _LINEAGE.get(id(owner))
    return dict(entry[1]) if entry is not None and entry[0]() is owner else {}


def reset_claims(owner: object, claims: dict[Path, RunClaim]) -> None:
    """Make ``claims`` (from [`claims_of`][]) again all that ``owner`` continues."""
    entry = _LINEAGE.get(id(owner))
    if entry is not None and entry[0]() is owner:
        entry[1].clear()
        entry[1].update(claims)
    else:
        for directory, claim in claims.items():
            remember_run(owner, directory, claim.run, supersede=claim.supersede)
