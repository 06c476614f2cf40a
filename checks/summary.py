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
    """A waiver of ``mappings/waivers.yaml`` as the report lists it."""

    id: str
    reason: str
    approver_role: str
    expires: str


class AppliedWaiver(WaiverRow):
    """A waiver that waived findings in this run."""

    matched: int = Field(description="findings it waives")


class Waivers(_Strict):
    """What the waivers did in this run."""

    applied: list[AppliedWaiver]
    unmatched: list[WaiverRow]
    expired: list[WaiverRow]


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


def schema_text() -> str:
    """The JSON Schema of ``Summary``, as written to ``docs/summary.schema.json``."""
    return json.dumps(Summary.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
