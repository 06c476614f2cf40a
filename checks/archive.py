"""The preservation archive's rules (``archive.md``): record kinds, hashes, and the check against it.

``validate --archive`` compares the extract's records with the archive's (the end of this module).
Declarations and pure functions only; ``pipelines/io/archive.py`` reads the files and writes the
bag. A legacy record of the access copy is named by its ``source_ref`` (as the readers build it),
its file and line, and ``record_hash``: the SHA-256 (hex) of the record's raw bytes — the
physical line(s) of the record exactly as they stand in the file, without the final line ending.
A PCS visit diagnosis, which has no bytes of its own, hashes its visit line's bytes followed by
``#diagnoses[i]`` (``i`` its 0-based position in the list).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from checks.catalogue import ARCHIVE, Check
from checks.codebook import codebook_rows
from checks.findings import FINDING_SCHEMA
from checks.records import FILE_ENTITY, SOURCE_REF

#: the record kind of unparseable lines (one partition per system; their file is a column)
UNPARSEABLE = "unparseable"
#: the partition of records without a date (patients, drafts, unparseable lines)
UNKNOWN_YEAR = "unknown"

#: the reader's frame name → the date field whose year partitions it (None: ``year=unknown``)
YEAR_FIELD: dict[str, str | None] = {
    "pas/patient": None,
    "pas/kontakt": "INDATUM",
    "pas/diagnos": "REGDATUM",
    "pas/atgard": "DATUM",
    "pas/anteckning": "SIGNERAD",
    "pcs/patients": None,
    "pcs/visits": "start",
    "pcs/visit_diagnosis": "start",  # the visit's start
    "pcs/medications": "start",
    "pcs/allergies": "recorded",
    "pcs/labresults": "taken",
    "pcs/notes": "signed",
}

#: the columns every record of the access copy has, before its fields: (name, meaning, form)
ACCESS_COLUMNS: list[tuple[str, str, str]] = [
    ("source_ref", "the record's stable reference, as in the validation's ledger", "text"),
    ("file", "the original file, under data/original/", "pas/<name>.csv or pcs/<name>.jsonl"),
    ("line", "physical line where the record starts (CSV header = line 1; JSON Lines: first line = 1)", "integer"),
    (
        "record_hash",
        "SHA-256 of the record's raw bytes: its physical line(s) exactly as in the file, without the final "
        "line ending (a visit diagnosis: its visit line's bytes followed by '#diagnoses[i]')",
        "64 lower-case hex digits",
    ),
]
#: the columns of an unparseable line, after ``ACCESS_COLUMNS``
UNPARSEABLE_COLUMNS: list[tuple[str, str, str]] = [
    ("reason", "why the reader could not read the line", "text"),
    ("raw", "the line's bytes exactly as in the file", "bytes (Parquet BINARY)"),
]
#: the extra columns of a visit diagnosis, before its element's fields
DIAGNOSIS_COLUMNS: list[tuple[str, str, str]] = [
    ("visit_id", "the visit's id field as it stands", "text"),
    ("index", "the element's position in the visit's diagnoses list", "integer, from 0"),
]


def record_kind(frame: str) -> tuple[str, str]:
    """(system, kind) of a reader frame: ``pas/patient`` → (pas, patient), ``pcs/visits`` → (pcs, visit)."""
    system, kind, _ = SOURCE_REF[frame][0].split(":", 2)
    return system, kind


def partition_dir(system: str, kind: str, year: str) -> str:
    """The access copy's folder of one record kind and year, relative to the payload ``data/``."""
    return f"records/system={system}/kind={kind}/year={year}"


def year_of(column: str) -> pl.Expr:
    """The year of a date or timestamp written as it stands (``YYYY-…``), else ``unknown``."""
    return pl.col(column).str.extract(r"^\s*(\d{4})-", 1).fill_null(UNKNOWN_YEAR).alias("year")


def diagnosis_suffix(index: int) -> bytes:
    """What follows the visit line's bytes in a visit diagnosis's hashed bytes."""
    return f"#diagnoses[{index}]".encode("ascii")


def count_problems(originals: dict[str, int], access: dict[str, int], declared: dict[str, int]) -> list[str]:
    """One line per file whose record counts disagree: originals, access copy, bag-info.

    ``originals``: records counted in ``data/original`` by the readers' record boundaries;
    ``access``: rows of the access copy per file; ``declared``: the counts in ``bag-info.txt``.
    """
    out = []
    for f in sorted(set(originals) | set(access) | set(declared)):
        o, a = originals.get(f, 0), access.get(f, 0)
        if o != a:
            out.append(f"{f}: the access copy holds {a} records, the original file {o}")
        if f in declared and declared[f] != o:
            out.append(f"{f}: bag-info.txt declares {declared[f]} records, the original file holds {o}")
    return out


def codebook(version: str) -> dict:
    """The archive's ``codebook.json``: the access copy's own columns and every legacy field."""
    return {
        "written_by": f"migcheck {version}",
        "record": (
            "one row per legacy record (legacy-exports.md): a CSV data row, a JSON line, one element of a "
            "visit's diagnoses, or a line that cannot be parsed"
        ),
        "values": (
            "every field as text exactly as it stands in the file: no trimming, no mapping. PAS: the CSV "
            "field without its quotes (an empty field is empty text). PCS: a top-level JSON string as it "
            "is; any other JSON value as JSON text; a key that is absent or null is null"
        ),
        "partitions": "records/system=<pas|pcs>/kind=<record kind>/year=<YYYY|unknown>/part-0.parquet",
        "access_columns": [{"column": c, "meaning": m, "form": f} for c, m, f in ACCESS_COLUMNS],
        "unparseable_columns": [{"column": c, "meaning": m, "form": f} for c, m, f in UNPARSEABLE_COLUMNS],
        "diagnosis_columns": [{"column": c, "meaning": m, "form": f} for c, m, f in DIAGNOSIS_COLUMNS],
        "year_field": {"/".join(record_kind(k)): v for k, v in YEAR_FIELD.items()},
        "fields": codebook_rows(),
    }


# ------------------------------------------------------------------------------------------------
# validate --archive: is every legacy record of the extract in the archive, unchanged?
#
# The extract's records and the access copy are compared as multisets of (``source_ref``,
# ``record_hash``): equal records pair up in order, so a record the extract holds twice must be in
# the archive twice. What is left over on the extract's side is either held by the archive under
# the same ``source_ref`` with another hash (``archive_altered``) or not held at all
# (``missing_in_archive``). The ledger's ``archived`` column follows from the pairs.

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
    frames = [
        _record_findings(kind, df, message)
        for kind, df, message in (
            ("missing", cmp.missing, "not in the preservation archive (or not as often as in the extract)"),
            (
                "altered",
                cmp.altered,
                "the preservation archive holds this record with other bytes (record_hash differs)",
            ),
        )
    ]
    check = ARCHIVE[("archive", "fixity")]
    rows = [_row(check, None, None, f"the archive's bag fails its fixity check: {p}") for p in fixity]
    return pl.concat([*frames, pl.DataFrame(rows, schema=FINDING_SCHEMA)])


def _record_findings(kind: str, df: pl.DataFrame, message: str) -> pl.DataFrame:
    """One finding of the ``kind`` check of its record's entity per record of ``df`` (``file``, ``source_ref``)."""
    checks = {e: c for (e, k), c in ARCHIVE.items() if k == kind}
    entity = pl.col("file").replace_strict(FILE_ENTITY, default="labresult")

    def of_check(attr: str) -> pl.Expr:
        return entity.replace_strict({e: getattr(c, attr) for e, c in checks.items()}, return_dtype=pl.String)

    none = pl.lit(None, dtype=pl.String)
    return df.select(
        of_check("id").alias("check"),
        of_check("category").alias("category"),
        of_check("entity").alias("entity"),
        pl.col("source_ref").str.split(":").list.first().alias("source_system"),
        pl.col("source_ref").cast(pl.String),
        *(none.alias(c) for c in ("target_ref", "column", "expected", "actual", "nature")),
        (entity + pl.lit(f" record {message}")).alias("message"),
    ).cast(FINDING_SCHEMA)  # type: ignore[arg-type]


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


def archive_counts(counts: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Per entity: records migrated, archived, both and neither.

    ``counts``: the final ledger's ``checks.discrepancies.ledger_counts`` (rows by entity,
    disposition and ``archived``), entities in the order the ledger first names them.
    """
    flags = counts.select(
        "entity",
        pl.col("disposition").is_in(IN_TARGET).alias("m"),
        pl.col("archived").fill_null(False).alias("a"),
        "len",
    )
    per = flags.group_by("entity", maintain_order=True).agg(
        pl.col("len").filter(pl.col("m")).sum().alias("migrated"),
        pl.col("len").filter(pl.col("a")).sum().alias("archived"),
        pl.col("len").filter(pl.col("m") & pl.col("a")).sum().alias("both"),
        pl.col("len").filter(~pl.col("m") & ~pl.col("a")).sum().alias("neither"),
    )
    return {r.pop("entity"): {k: int(v) for k, v in r.items()} for r in per.iter_rows(named=True)}
