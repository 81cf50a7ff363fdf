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
    claims = _claims(owner)
    if claims is None:
        key = id(owner)

        def forget(ref: weakref.ref[object], key: int = key) -> None:
            found = _LINEAGE.get(key)
            if found is not None and found[0] is ref:
                del _LINEAGE[key]

        try:
            held = weakref.ref(owner, forget)
        except TypeError:  # no weak references (``__slots__`` without ``__weakref__``)
            return
        claims = {}
        _LINEAGE[key] = (held, claims)
    claims[directory] = RunClaim(run, supersede)


def _claims(owner: object) -> dict[Path, RunClaim] | None:
    """The claims remembered for ``owner`` (not for another object that had its id)."""
    entry = _LINEAGE.get(id(owner))
    return entry[1] if entry is not None and entry[0]() is owner else None


def claimed_run(owners: tuple[object, ...], directory: Path) -> RunClaim | None:
    """The run of ``directory`` that the first of ``owners`` known to continue one continues."""
    found = (_claims(owner) for owner in owners)
    return next((c[directory] for c in found if c is not None and directory in c), None)


def claims_of(owner: object) -> dict[Path, RunClaim]:
    """A copy of the runs ``owner`` is known to continue, by directory."""
    return dict(_claims(owner) or {})


def reset_claims(owner: object, claims: dict[Path, RunClaim]) -> None:
    """Make ``claims`` (from [`claims_of`][]) again all that ``owner`` continues."""
    found = _claims(owner)
    if found is not None:
        found.clear()
        found.update(claims)
    else:
        for directory, claim in claims.items():
            remember_run(owner, directory, claim.run, supersede=claim.supersede)
