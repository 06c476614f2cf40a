"""``summary.json``: one typed model, its JSON Schema in ``docs/summary.schema.json``.

The validation builds a ``Summary`` once, from its parts, and writes it with ``model_dump_json``;
nothing patches a dict afterwards. Every model forbids unknown fields, so a field added in code
and not here fails at once. ``python -m checks.summary`` prints the schema (the docs file is
checked against it by the tests).
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityCounts(_Strict):
    """Counts of one entity: where its legacy records went and what the target holds."""

    records_read: int = Field(description="legacy records of the entity read from the extract")
    records_read_by_system: dict[str, int] = Field(description="records read per source system (pas, pcs)")
    out_of_scope: int
    rejected: int
    rejected_by_category: dict[str, int] = Field(description="rejected records per rule (category)")
    merged: int = Field(description="records merged into another record of the same person")
    expected_in_target: int
    found_in_target: int
    matched: int
    missing: int
    unexpected: int
    with_differences: int = Field(description="records migrated with at least one value difference")
    migrated: int = Field(description="records migrated unchanged")


class GateResult(_Strict):
    """One gate: the error findings of one check against its threshold."""

    check: str
    category: str | None
    errors: int
    warnings: int
    waived: int
    threshold: str
    passed: bool


class FileStatus(_Strict):
    """One extract file: read (ok), empty or missing, and its records."""

    file: str
    status: str = Field(description="ok, empty or missing")
    records: int


class WaiverRow(_Strict):
    """A waiver of ``mappings/waivers.yaml``, or of a steward's "waive" decision, as the report lists it."""

    id: str
    reason: str
    approver_role: str
    expires: str
    origin: str = Field(
        "waivers.yaml",
        description="waivers.yaml (mappings/waivers.yaml) or decision (a steward's decision in a worklist, kept in "
        "the history database)",
    )


class AppliedWaiver(WaiverRow):
    """A waiver that waived findings in this run."""

    matched: int = Field(description="findings it waives")


class Waivers(_Strict):
    """What the waivers did in this run."""

    applied: list[AppliedWaiver]
    unmatched: list[WaiverRow]
    expired: list[WaiverRow]


class OwnerDecisions(_Strict):
    """Decisions on one owner's open errors and warnings of this load, and what is still undecided."""

    owner: str
    open: int = Field(description="open (not resolved) errors and warnings of the owner")
    waived: int = Field(description="of them, covered by a waiver (waivers.yaml or a decision)")
    waived_by_decision: int = Field(description="of the waived, by a steward's waive decision")
    fix_promised: int = Field(description="not waived, with a fix decision in force")
    fix_still_present: int = Field(description="of them, promised in an earlier trial load: still present")
    undecided: int = Field(description="neither waived nor with a fix promised")


class Decisions(_Strict):
    """The stewards' decisions (``migcheck decisions import``) as they stand for this load."""

    recorded: int = Field(0, description="decisions recorded in the history for the migration (every import)")
    by_owner: list[OwnerDecisions] = Field(default_factory=list, description="per owner group, in report order")


class CodeMapCoverage(_Strict):
    """One code map: the records of this load with a code it looks up, by the review state of their entry."""

    code_map: str = Field(description="the file name without .csv in mappings/code_maps/")
    records: int = Field(description="records (not out of scope) holding a code the map looks up")
    approved: int
    unchecked: int
    flagged: int
    unmapped: int = Field(description="records whose code has no entry")
    coverage: float | None = Field(description="approved / records (null when no record holds a code)")


class Totals(_Strict):
    """The run's totals over open findings."""

    errors: int
    warnings: int
    waived: int
    new: int
    persisting: int
    resolved: int
    gate_passed: bool
    ledger_balanced: bool


class TrendPoint(Totals):
    """The latest run of one trial load of the migration (from the history database): its totals."""

    trial_load: str
    run_at: str


class ArchiveCounts(_Strict):
    """Where the legacy records of one entity are kept: in the target, in the archive, both, neither."""

    migrated: int = Field(description="records in the target (migrated, with or without differences, or merged)")
    archived: int = Field(description="records the preservation archive holds unchanged")
    both: int
    neither: int = Field(description="records in neither place: lost")


class ArchiveSummary(_Strict):
    """The check against the preservation archive (``--archive``)."""

    archive: str = Field(description="the archive folder checked")
    intact: bool = Field(description="the bag passed its fixity check")
    lost: int = Field(description="legacy records in neither the target nor the archive")
    entities: dict[str, ArchiveCounts]


class Summary(_Strict):
    """``summary.json`` of one validation."""

    trial_load: str
    migration: str
    entities: dict[str, EntityCounts] = Field(description="per entity, in report order")
    by_category: dict[str, dict[str, int]] = Field(description="open findings per category and severity")
    gates: list[GateResult]
    gate_passed: bool
    ledger_balanced: bool = Field(description="every record read has exactly one disposition")
    records_read: int
    ledger_rows: int
    files: list[FileStatus]
    waivers: Waivers
    totals: Totals
    trend: list[TrendPoint] = Field(description="the migration's trial loads, oldest first, this one last")
    timings: dict[str, float] = Field(description="seconds per stage of this run (differ run to run)")
    decisions: Decisions = Field(Decisions(recorded=0, by_owner=[]), description="the stewards' decisions per owner")
    code_maps: list[CodeMapCoverage] = Field(
        default_factory=list, description="per code map: records by the review state of their entry, and coverage"
    )
    archive: ArchiveSummary | None = Field(None, description="with --archive: where every legacy record is kept")


def schema_text() -> str:
    """The JSON Schema of ``Summary``, as written to ``docs/summary.schema.json``."""
    return json.dumps(Summary.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
