"""Waivers: discrepancies the stewards have accepted, with reason, approver role and expiry.

``mappings/waivers.yaml``::

    waivers:
      - id: W1
        discrepancy_id: 3f0c9a1b2c4d5e6f          # one finding, or
      - id: W2
        check: encounter.source.implausible         # a check ...
        source_ref: "pas:kontakt:9*"                # ... and a source_ref pattern (* and ?)
        reason: Contacts registered before the patient's birth in the 1990s migration; accepted.
        approver_role: PAS data steward
        expires: 2027-03-31

A waived finding stays in every report, marked, but does not count against its gate. A waiver
past its expiry date applies to nothing and is listed as expired; a live waiver that matched
nothing is listed as unmatched, so stale waivers are cleaned up.

A steward's "waive" decision in a worklist (``migcheck decisions import``) becomes a
``DecisionWaiver``: stored in the history database, never written into ``waivers.yaml`` (the users'
file), applied after the file's waivers, and described as a steward's decision
(``docs/decisions.md`` D58).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks.mapping import load_yaml_model


class Waiver(BaseModel):
    """One accepted discrepancy or family of discrepancies."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1)
    discrepancy_id: str | None = None
    check: str | None = None
    source_ref: str = "*"
    reason: str = Field(min_length=3)
    approver_role: str = Field(min_length=2)
    expires: dt.date

    @model_validator(mode="after")
    def _target(self) -> Waiver:
        if (self.discrepancy_id is None) == (self.check is None):
            raise ValueError("give either discrepancy_id or check (with an optional source_ref pattern)")
        return self

    def describe(self) -> str:
        """The waiver in one line for reports."""
        return f"{self.id}: accepted by {self.approver_role} until {self.expires.isoformat()} — {self.reason}"

    @property
    def origin(self) -> str:
        """Where the waiver comes from: ``waivers.yaml`` (the file) or ``decision`` (a steward's worklist)."""
        return "waivers.yaml"


class DecisionWaiver(Waiver):
    """A steward's "waive" decision on one finding, from a worklist (kept in the history database)."""

    decided_on: dt.date
    trial_load: str

    def describe(self) -> str:
        """The waiver in one line for reports: it says it is a steward's decision, by whom, when, in which load."""
        return (
            f"{self.id}: steward's decision (waive) by {self.approver_role} on {self.decided_on.isoformat()} "
            f"in {self.trial_load}, until {self.expires.isoformat()} — {self.reason}"
        )

    @property
    def origin(self) -> str:
        """``decision``: from a worklist."""
        return "decision"


def decision_waivers(rows: list[dict]) -> list[DecisionWaiver]:
    """The waivers of stored "waive" decisions, each named ``D-`` and its finding's id.

    ``rows``: ``discrepancy_id, reason, approver, expires, decided_on, trial_load`` (``migcheck_waiver``).
    """
    return [
        DecisionWaiver(
            id=f"D-{r['discrepancy_id']}",
            discrepancy_id=r["discrepancy_id"],
            reason=r["reason"],
            approver_role=r["approver"],
            expires=r["expires"],
            decided_on=r["decided_on"],
            trial_load=r["trial_load"],
        )
        for r in rows
    ]


class WaiverFile(BaseModel):
    """``mappings/waivers.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    waivers: list[Waiver] = []

    @model_validator(mode="after")
    def _unique(self) -> WaiverFile:
        ids = [w.id for w in self.waivers]
        if len(ids) != len(set(ids)):
            raise ValueError("waiver ids must be unique")
        return self


def load_waivers(path: Path) -> list[Waiver]:
    """The waivers; none when the file does not exist."""
    if not path.exists():
        return []
    return list(load_yaml_model(path, WaiverFile).waivers)


def _glob_regex(pattern: str) -> str:
    import re

    return "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"


def apply_waivers(disc: pl.DataFrame, waivers: list[Waiver], as_of: dt.date) -> tuple[pl.DataFrame, dict]:
    """``disc`` with ``waived``, ``waiver`` and ``waiver_origin`` columns, and what each waiver did.

    The first listed waiver that covers a finding is its waiver: pass the file's waivers before the
    decisions'.
    """
    live = [w for w in waivers if w.expires >= as_of]
    expired = [w for w in waivers if w.expires < as_of]
    waiver_col = pl.lit(None, dtype=pl.String)
    origin_col = pl.lit(None, dtype=pl.String)
    matched: dict[str, int] = {}
    conds = []
    for w in live:
        if w.discrepancy_id is not None:
            cond = pl.col("discrepancy_id") == w.discrepancy_id
        else:
            cond = (pl.col("check") == w.check) & pl.col("source_ref").fill_null("").str.contains(
                _glob_regex(w.source_ref)
            )
        conds.append((w, cond))
    for w, cond in reversed(conds):  # the first listed waiver wins
        waiver_col = pl.when(cond).then(pl.lit(w.describe())).otherwise(waiver_col)
        origin_col = pl.when(cond).then(pl.lit(w.origin)).otherwise(origin_col)
    out = disc.with_columns(waiver_col.alias("waiver"), origin_col.alias("waiver_origin")).with_columns(
        pl.col("waiver").is_not_null().alias("waived")
    )
    for w, _ in conds:
        matched[w.id] = out.filter(pl.col("waiver") == w.describe()).height

    def row(w: Waiver) -> dict:
        return {
            "id": w.id,
            "reason": w.reason,
            "approver_role": w.approver_role,
            "expires": w.expires.isoformat(),
            "origin": w.origin,
        }

    report = {
        "applied": [{**row(w), "matched": matched[w.id]} for w in live if matched[w.id] > 0],
        "unmatched": [row(w) for w in live if matched[w.id] == 0],
        "expired": [row(w) for w in expired],
    }
    return out, report
