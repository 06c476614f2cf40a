"""Pandera schemas of the frames that cross from one stage of a validation to the next.

The findings every check emits (into ``checks.discrepancies``), the discrepancy rows and the
ledger (into the report writers and the history) are validated where they cross, so a check that
emits a malformed row fails at the boundary, naming the column, not three stages later in a
writer. A failure is a bug in migcheck (``pandera.errors.SchemaError``), never a user error.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from checks.catalogue import CATEGORIES
from checks.masking import NATURES as VALUE_NATURES
from checks.note_text import NATURES as TEXT_NATURES

SEVERITIES = ["error", "warning", "info"]
STATUSES = ["new", "persisting", "resolved"]
SYSTEMS = ["pas", "pcs"]
#: the dispositions of a legacy record in the ledger
#: every word the ``nature`` column may hold: a value's nature, a note text's nature
NATURES = list(dict.fromkeys([*VALUE_NATURES, *TEXT_NATURES]))
DISPOSITIONS = ["migrated", "migrated_with_differences", "missing_in_target", "rejected", "merged", "out_of_scope"]


class _Frame(pa.DataFrameModel):
    class Config:
        strict = True  # exactly these columns, in this order
        ordered = True


def _nature_only_for_differences(data: pa.PolarsData) -> pl.LazyFrame:
    """A ``nature`` exactly on value differences (the report contract's ``nature`` column)."""
    return data.lazyframe.select(
        pl.col("nature").is_null() | pl.col("category").is_in(["value_mismatch", "text_altered"])
    )


class Finding(_Frame):
    """One finding of a check, before it becomes a discrepancy row (``checks.findings``)."""

    check: str = pa.Field(nullable=False)
    category: str = pa.Field(isin=CATEGORIES)
    entity: str = pa.Field(nullable=False)
    source_system: str = pa.Field(nullable=True, isin=SYSTEMS)
    source_ref: str = pa.Field(nullable=True)
    target_ref: str = pa.Field(nullable=True)
    column: str = pa.Field(nullable=True)
    expected: str = pa.Field(nullable=True)
    actual: str = pa.Field(nullable=True)
    nature: str = pa.Field(nullable=True, isin=list(NATURES))
    message: str = pa.Field(nullable=False)

    @pa.dataframe_check
    @classmethod
    def nature_only_for_differences(cls, data: pa.PolarsData) -> pl.LazyFrame:  # noqa: D102
        return _nature_only_for_differences(data)


class Discrepancy(_Frame):
    """One row of ``discrepancies.parquet`` (the report contract)."""

    discrepancy_id: str = pa.Field(unique=True, str_matches=r"^[0-9a-f]{16}$")
    trial_load: str = pa.Field(nullable=False)
    check: str = pa.Field(nullable=False)
    category: str = pa.Field(isin=CATEGORIES)
    severity: str = pa.Field(isin=SEVERITIES)
    entity: str = pa.Field(nullable=False)
    source_system: str = pa.Field(nullable=True, isin=SYSTEMS)
    source_ref: str = pa.Field(nullable=True)
    target_ref: str = pa.Field(nullable=True)
    column: str = pa.Field(nullable=True)
    expected: str = pa.Field(nullable=True)
    actual: str = pa.Field(nullable=True)
    nature: str = pa.Field(nullable=True, isin=list(NATURES))
    message: str = pa.Field(nullable=False)
    suggested_action: str = pa.Field(nullable=False)
    status: str = pa.Field(isin=STATUSES)

    @pa.dataframe_check
    @classmethod
    def nature_only_for_differences(cls, data: pa.PolarsData) -> pl.LazyFrame:  # noqa: D102
        return _nature_only_for_differences(data)


class LedgerRow(_Frame):
    """One legacy record's one disposition (``ledger.parquet``)."""

    source_ref: str = pa.Field(unique=True, nullable=False)
    source_system: str = pa.Field(isin=SYSTEMS)
    entity: str = pa.Field(nullable=False)
    disposition: str = pa.Field(isin=DISPOSITIONS)
    reason: str = pa.Field(nullable=True)
    archived: bool = pa.Field(nullable=True)  # with --archive: the archive holds the record unchanged
