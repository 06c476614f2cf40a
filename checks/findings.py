"""The one shape every check family's findings take before they become discrepancies."""

from __future__ import annotations

import polars as pl

#: check id, category, entity, source system, refs, column, masked values, the nature of a value
#: difference (``masking.NATURES``; null for every other finding), steward message
FINDING_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    c: pl.String
    for c in (
        "check",
        "category",
        "entity",
        "source_system",
        "source_ref",
        "target_ref",
        "column",
        "expected",
        "actual",
        "nature",
        "message",
    )
}
#: the same, with ``_info`` marking a finding that needs no action (a count that matches)
FINDING_SCHEMA_INFO: dict[str, pl.DataType | type[pl.DataType]] = {**FINDING_SCHEMA, "_info": pl.Boolean}
