"""The final ledger held on disk: settled a unit at a time, streamed into ledger.parquet in extract order."""

from __future__ import annotations

import polars as pl
import pyarrow.parquet as pq
import pytest
from pandera.errors import SchemaError

from checks.discrepancies import ledger_counts
from pipelines.run import staging
from pipelines.run.staging import _final_path, _write, ledger_pieces, write_ledger

NO_LINES = pl.DataFrame(
    schema={"source_ref": pl.String, "source_system": pl.String, "entity": pl.String, "reason": pl.String}
)


def _rows(kind: str, refs: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source_ref": [f"pas:{kind}:{r}" for r in refs],
            "source_system": "pas",
            "entity": "encounter",
            "disposition": "migrated",
            "reason": "found in the target, all compared values equal",
            "_row": refs,
            "archived": None,
        },
        schema_overrides={"archived": pl.Boolean, "_row": pl.Int64},
    )


def _settle(work: str, kind: str, unit: str, refs: list[int], slice_rows: int) -> dict[str, list[int]]:
    """What ``settle`` leaves: the unit's rows of ``kind`` in slices of ``slice_rows`` extract rows."""
    df = _rows(kind, refs).with_columns((pl.col("_row") // slice_rows).alias("_piece"))
    written: dict[str, list[int]] = {}
    for (piece,), part in df.partition_by("_piece", as_dict=True).items():
        _write(part.drop("_piece"), _final_path(work, kind, piece, unit))
        written.setdefault(kind, []).append(piece)
    return written


def test_units_rows_come_out_in_extract_order_in_fixed_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(staging, "LEDGER_ROW_GROUP", 4)
    work = str(tmp_path / "work")
    # three units hold interleaved rows of one kind, in slices of 5 extract rows; a second kind follows
    settled = {
        "u-a": _settle(work, "visit", "u-a", [0, 3, 6, 9, 12], 5),
        "u-b": _settle(work, "visit", "u-b", [1, 4, 7, 10], 5),
        "u-c": _settle(work, "visit", "u-c", [2, 5, 8, 11], 5) | _settle(work, "diag", "u-c", [0, 1], 5),
    }
    out = tmp_path / "ledger.parquet"
    counts = write_ledger(out, work, ["visit", "diag"], ledger_pieces(settled), NO_LINES)
    got = pl.read_parquet(out)
    assert got["source_ref"].to_list() == [f"pas:visit:{i}" for i in range(13)] + ["pas:diag:0", "pas:diag:1"]
    assert got.columns == ["source_ref", "source_system", "entity", "disposition", "reason", "archived"]
    assert pq.ParquetFile(out).metadata.num_row_groups == 4  # 15 rows in groups of 4, however they were sliced
    assert counts.equals(ledger_counts(got))
    # the same rows in one slice give the same bytes
    one = {u: _settle(str(tmp_path / "w2"), k, u, r, 100) for u, k, r in [("u", "visit", list(range(13)))]}
    one["v"] = _settle(str(tmp_path / "w2"), "diag", "v", [0, 1], 100)
    again = tmp_path / "again.parquet"
    write_ledger(again, str(tmp_path / "w2"), ["visit", "diag"], ledger_pieces(one), NO_LINES)
    assert again.read_bytes() == out.read_bytes()


def test_a_source_ref_given_twice_in_different_slices_fails_the_contract(tmp_path):
    work = str(tmp_path / "work")
    settled = {"u-a": _settle(work, "visit", "u-a", [0, 1, 2], 2), "u-b": _settle(work, "visit", "u-b", [3], 2)}
    # the same ref written again in another slice (as a broken settle would)
    dup = _rows("visit", [7]).with_columns(pl.lit("pas:visit:0").alias("source_ref"))
    _write(dup, _final_path(work, "visit", 3, "u-b"))
    settled["u-b"]["visit"].append(3)
    with pytest.raises(SchemaError, match="source_ref"):
        write_ledger(tmp_path / "ledger.parquet", work, ["visit"], ledger_pieces(settled), NO_LINES)


def test_a_unit_settled_with_a_row_outside_the_contract_fails_before_it_is_written(tmp_path, monkeypatch):
    """``settle`` holds each unit's rows to the ledger contract: ``write_ledger`` no longer checks them again."""
    work = str(tmp_path / "work")
    bad = _rows("visit", [0, 1]).with_columns(
        pl.Series("disposition", ["migrated", "lost somewhere"]), pl.lit("visit").alias("_records")
    )
    monkeypatch.setattr(staging, "_read", lambda path: pl.DataFrame())
    monkeypatch.setattr(staging, "with_differences", lambda status, differing: status)
    monkeypatch.setattr(staging, "final_ledger", lambda *args, **kwargs: bad.drop("archived"))
    with pytest.raises(SchemaError, match="disposition"):
        staging.settle(work, "u-a", pl.Series(dtype=pl.String), pl.Series(dtype=pl.String))
    assert not (tmp_path / "work").exists()  # nothing written
    ok = bad.with_columns(pl.lit("migrated").alias("disposition")).drop("archived")
    monkeypatch.setattr(staging, "final_ledger", lambda *args, **kwargs: ok)
    assert staging.settle(work, "u-a", pl.Series(dtype=pl.String), pl.Series(dtype=pl.String)) == {"visit": [0]}
