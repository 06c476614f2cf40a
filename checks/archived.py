"""Whether every legacy record of the extract is in the preservation archive, unchanged (``archive.md``).

Pure polars. The extract's records and the archive's access copy are compared as multisets of
(``source_ref``, ``record_hash``): equal records pair up in order, so a record the extract holds
twice must be in the archive twice. What is left over on the extract's side is either held by the
archive under the same ``source_ref`` with another hash (``archive_altered``) or not held at all
(``missing_in_archive``). The ledger's ``archived`` column follows from the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from checks.catalogue import ARCHIVE, Check
from checks.findings import FINDING_SCHEMA
from checks.records import FILE_ENTITY

#: the columns each side gives: every record's reference and the hash of its raw bytes
KEY = ["source_ref", "record_hash"]


@dataclass(frozen=True)
class ArchiveComparison:
    """The records that are missing or altered in the archive, and how many of each ref it holds intact."""

    missing: pl.DataFrame  # source_ref, file: records of the extract the archive does not hold
    altered: pl.DataFrame  # source_ref, file: records the archive holds with another record_hash
    intact: pl.DataFrame  # source_ref, intact: how many records of each ref the archive holds unchanged


def _ranked(df: pl.DataFrame, by: list[str], name: str) -> pl.DataFrame:
    """``df`` with each row's position among the rows of equal ``by`` (in row order), from 0."""
    return df.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over(by).alias(name))


def compare_archive(extract: pl.DataFrame, archive: pl.DataFrame) -> ArchiveComparison:
    """``extract`` (source_ref, record_hash, file) against ``archive`` (source_ref, record_hash).

    Rows of either side in file order; the result names each record by its ``source_ref`` and
    extract file.
    """
    e = _ranked(extract.select(*KEY, "file"), KEY, "_r")
    a = _ranked(archive.select(KEY), KEY, "_r")
    paired = e.join(a, on=[*KEY, "_r"], how="semi")
    e_left = _ranked(e.join(a, on=[*KEY, "_r"], how="anti"), ["source_ref"], "_r2")
    a_left = _ranked(a.join(e, on=[*KEY, "_r"], how="anti"), ["source_ref"], "_r2")
    altered = e_left.join(a_left.select("source_ref", "_r2"), on=["source_ref", "_r2"], how="semi")
    missing = e_left.join(a_left.select("source_ref", "_r2"), on=["source_ref", "_r2"], how="anti")
    intact = paired.group_by("source_ref", maintain_order=True).len("intact")
    return ArchiveComparison(
        missing=missing.select("source_ref", "file"),
        altered=altered.select("source_ref", "file"),
        intact=intact.with_columns(pl.col("intact").cast(pl.Int64)),
    )


def archived_column(ledger: pl.DataFrame, intact: pl.DataFrame) -> pl.Series:
    """The ledger's ``archived``: true for as many rows of each ``source_ref`` as the archive holds intact.

    The ledger names a record by its ``source_ref`` (two identical rows share one and are listed
    twice); its rows of one ref are taken in ledger order.
    """
    ranked = _ranked(ledger.select("source_ref"), ["source_ref"], "_r")
    joined = ranked.join(intact, on="source_ref", how="left", maintain_order="left")
    return (joined["_r"] < joined["intact"].fill_null(0)).alias("archived")


def archive_findings(cmp: ArchiveComparison, fixity: list[str]) -> pl.DataFrame:
    """The findings of an archive check: one per record missing or altered, one per fixity problem.

    ``fixity``: the bag's problems as ``pipelines.io.archive.verify_archive`` words them (each
    names a file of the bag, never its content).
    """
    rows = []
    for kind, df, message in (
        ("missing", cmp.missing, "not in the preservation archive (or not as often as in the extract)"),
        ("altered", cmp.altered, "the preservation archive holds this record with other bytes (record_hash differs)"),
    ):
        part = df.with_columns(
            pl.col("file").replace_strict(FILE_ENTITY, default="labresult").alias("entity"),
            pl.col("source_ref").str.split(":").list.first().alias("source_system"),
        )
        for entity, ref, system in part.select("entity", "source_ref", "source_system").iter_rows():
            check = ARCHIVE[(entity, kind)]
            rows.append(_row(check, ref, system, f"{entity} record {message}"))
    check = ARCHIVE[("archive", "fixity")]
    rows += [_row(check, None, None, f"the archive's bag fails its fixity check: {p}") for p in fixity]
    return pl.DataFrame(rows, schema=FINDING_SCHEMA)


def _row(check: Check, ref: str | None, system: str | None, message: str) -> dict[str, str | None]:
    return {
        "check": check.id,
        "category": check.category,
        "entity": check.entity,
        "source_system": system,
        "source_ref": ref,
        "target_ref": None,
        "column": None,
        "expected": None,
        "actual": None,
        "nature": None,
        "message": message,
    }


#: dispositions whose record is in the target (a merged record lives on in the record it was merged into)
IN_TARGET = ("migrated", "migrated_with_differences", "merged")


def archive_counts(ledger: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Per entity: records migrated, archived, both and neither, from a ledger with ``archived``."""
    flags = ledger.select(
        "entity",
        pl.col("disposition").is_in(IN_TARGET).alias("m"),
        pl.col("archived").fill_null(False).alias("a"),
    )
    per = flags.group_by("entity", maintain_order=True).agg(
        pl.col("m").sum().alias("migrated"),
        pl.col("a").sum().alias("archived"),
        (pl.col("m") & pl.col("a")).sum().alias("both"),
        (~pl.col("m") & ~pl.col("a")).sum().alias("neither"),
    )
    return {r.pop("entity"): {k: int(v) for k, v in r.items()} for r in per.iter_rows(named=True)}
