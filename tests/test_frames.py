"""The pandera schemas at the stage boundaries refuse malformed rows (checks/frames.py)."""

from __future__ import annotations

from pathlib import Path

import pandera.errors
import polars as pl
import pytest

from checks.frames import Discrepancy, Finding, LedgerRow

GOLDEN = Path(__file__).parent / "golden" / "outputs" / "TL1"


@pytest.fixture(scope="module")
def disc() -> pl.DataFrame:
    # the project's own faulted load, as pinned by the golden outputs (every category is there)
    return pl.read_csv(GOLDEN / "discrepancies.parquet.csv", infer_schema_length=0)


def test_the_golden_rows_pass(disc):
    Discrepancy.validate(disc)
    Finding.validate(disc.select(list(Finding.to_schema().columns)))
    ledger = pl.read_csv(GOLDEN / "ledger.csv", infer_schema_length=0)
    LedgerRow.validate(ledger.with_columns(pl.col("archived").cast(pl.Boolean)))  # empty without --archive


@pytest.mark.parametrize(
    ("column", "value", "where"),
    [
        ("category", "lost_in_space", "category"),  # not a category of the contract
        ("severity", "fatal", "severity"),
        ("status", "maybe", "status"),
        ("nature", "vanished", "nature"),  # not a nature of the contract
        ("source_system", "xyz", "source_system"),
    ],
)
def test_a_malformed_discrepancy_is_refused_naming_the_column(disc, column, value, where):
    bad = disc.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
    )
    with pytest.raises(pandera.errors.SchemaError, match=where):
        Discrepancy.validate(bad)


def test_a_nature_on_anything_but_a_difference_is_refused(disc):
    row = (
        disc.filter(pl.col("category") == "missing_in_target").head(1).with_columns(pl.lit("encoding").alias("nature"))
    )
    with pytest.raises(pandera.errors.SchemaError, match="nature_only_for_differences"):
        Discrepancy.validate(row)


def test_duplicate_ids_and_a_record_twice_in_the_ledger_are_refused(disc):
    with pytest.raises(pandera.errors.SchemaError, match="discrepancy_id"):
        Discrepancy.validate(pl.concat([disc.head(2), disc.head(1)]))
    ledger = pl.read_csv(GOLDEN / "ledger.csv", infer_schema_length=0)
    with pytest.raises(pandera.errors.SchemaError, match="source_ref"):
        LedgerRow.validate(pl.concat([ledger, ledger.head(1)]))


def test_a_missing_or_extra_column_is_refused(disc):
    with pytest.raises(pandera.errors.SchemaError):
        Discrepancy.validate(disc.drop("nature"))
    with pytest.raises(pandera.errors.SchemaError):
        Discrepancy.validate(disc.with_columns(pl.lit("x").alias("owner")))
