"""The preservation archive's rules (``archive.md``): record kinds, partitions, hashes, counts.

Declarations and pure functions only; ``pipelines/io/archive.py`` reads the files and writes the
bag. A legacy record of the access copy is named by its ``source_ref`` (as the readers build it),
its file and line, and ``record_hash``: the SHA-256 (hex) of the record's raw bytes — the
physical line(s) of the record exactly as they stand in the file, without the final line ending.
A PCS visit diagnosis, which has no bytes of its own, hashes its visit line's bytes followed by
``#diagnoses[i]`` (``i`` its 0-based position in the list).
"""

from __future__ import annotations

import polars as pl

from checks.codebook import codebook_rows
from checks.records import SOURCE_REF

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
