"""The comparison of an extract's records with the archive's: multisets of (source_ref, record_hash)."""

from __future__ import annotations

import polars as pl

from checks.archive import archived_column, compare_archive


def _side(rows: list[tuple[str, str]], file: str = "pas/kontakt.csv") -> pl.DataFrame:
    return pl.DataFrame(
        {"source_ref": [r for r, _ in rows], "record_hash": [h for _, h in rows], "file": [file] * len(rows)}
    )


def test_equal_records_pair_up_as_a_multiset():
    extract = _side([("a", "1"), ("b", "2"), ("b", "2"), ("c", "3"), ("d", "4")])
    archive = _side([("d", "4"), ("b", "2"), ("a", "1"), ("c", "9")])  # b once only, c altered, order free
    cmp = compare_archive(extract, archive)
    assert cmp.missing["source_ref"].to_list() == ["b"]  # the second copy of b
    assert cmp.altered["source_ref"].to_list() == ["c"]
    assert dict(cmp.intact.iter_rows()) == {"a": 1, "b": 1, "d": 1}


def test_an_archive_holding_everything_misses_nothing():
    rows = [("a", "1"), ("a", "1"), ("b", "2")]
    cmp = compare_archive(_side(rows), _side(list(reversed(rows))))
    assert cmp.missing.height == cmp.altered.height == 0
    ledger = pl.DataFrame({"source_ref": ["a", "b", "a", "x"]})
    assert archived_column(ledger, cmp.intact).to_list() == [True, True, True, False]


def test_archived_is_true_for_as_many_rows_as_the_archive_holds():
    cmp = compare_archive(_side([("a", "1"), ("a", "1")]), _side([("a", "1")]))
    ledger = pl.DataFrame({"source_ref": ["a", "a"]})
    assert archived_column(ledger, cmp.intact).to_list() == [True, False]
    assert cmp.missing.height == 1 and cmp.altered.height == 0
