"""The Millennium-like target schema of ``target-schema.md``, declared once as plain data.

A declaration only, with no database library: ``pipelines.io.target_schema`` turns it into the
SQLAlchemy tables that create, load and read the target. ``CODE_SETS`` says which code set every
``*_cd`` column draws from, and ``NOMENCLATURE`` which vocabulary every nomenclature reference must
be of; both drive the simulator and the checks.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the column types of the DDL
BIGINT, INT, SMALLINT, TS, TEXT = "bigint", "int", "smallint", "timestamp", "text"
TYPES = (BIGINT, INT, SMALLINT, TS, TEXT)


@dataclass(frozen=True)
class Column:
    """One column of the DDL."""

    name: str
    type: str  # one of TYPES
    nullable: bool = False
    length: int | None = None  # TEXT: the VARCHAR length
    primary_key: bool = False


def _id(name: str) -> Column:
    return Column(name, BIGINT, primary_key=True)


def _req(name: str, type_: str, length: int | None = None) -> Column:
    return Column(name, type_, nullable=False, length=length)


def _opt(name: str, type_: str, length: int | None = None) -> Column:
    return Column(name, type_, nullable=True, length=length)


#: every table of the target, its columns in DDL order
TABLES: dict[str, tuple[Column, ...]] = {
    "code_value": (
        _id("code_value"),
        _req("code_set", INT),
        _req("cdf_meaning", TEXT, 12),
        _req("display", TEXT, 40),
        _req("active_ind", SMALLINT),
    ),
    "nomenclature": (
        _id("nomenclature_id"),
        _req("source_vocabulary_cd", BIGINT),
        _req("source_identifier", TEXT, 20),
        _req("source_string", TEXT, 255),
        _req("active_ind", SMALLINT),
    ),
    "person": (
        _id("person_id"),
        _req("name_last", TEXT, 100),
        _req("name_first", TEXT, 100),
        _req("sex_cd", BIGINT),
        _req("birth_dt_tm", TS),
        _opt("deceased_dt_tm", TS),
        _req("confid_level_cd", BIGINT),
        _opt("postal_code", TEXT, 10),
        _opt("municipality_code", TEXT, 4),
        _req("contributor_system_cd", BIGINT),
        _req("active_ind", SMALLINT),
        _req("updt_dt_tm", TS),
    ),
    "person_alias": (
        _id("person_alias_id"),
        _req("person_id", BIGINT),
        _req("person_alias_type_cd", BIGINT),
        _opt("alias_pool_cd", BIGINT),
        _req("alias", TEXT, 20),
        _req("contributor_system_cd", BIGINT),
        _req("active_ind", SMALLINT),
    ),
    "encounter": (
        _id("encntr_id"),
        _req("person_id", BIGINT),
        _req("encntr_type_cd", BIGINT),
        _req("loc_nurse_unit_cd", BIGINT),
        _req("reg_dt_tm", TS),
        _opt("disch_dt_tm", TS),
        _req("contributor_system_cd", BIGINT),
        _req("active_ind", SMALLINT),
    ),
    "encntr_alias": (
        _id("encntr_alias_id"),
        _req("encntr_id", BIGINT),
        _req("encntr_alias_type_cd", BIGINT),
        _req("alias", TEXT, 40),
        _req("contributor_system_cd", BIGINT),
        _req("active_ind", SMALLINT),
    ),
    "diagnosis": (
        _id("diagnosis_id"),
        _req("person_id", BIGINT),
        _req("encntr_id", BIGINT),
        _req("nomenclature_id", BIGINT),
        _req("diag_type_cd", BIGINT),
        _req("diag_dt_tm", TS),
        _req("contributor_system_cd", BIGINT),
        _req("active_ind", SMALLINT),
    ),
    "procedure": (
        _id("procedure_id"),
        _req("encntr_id", BIGINT),
        _req("nomenclature_id", BIGINT),
        _req("proc_dt_tm", TS),
        _req("contributor_system_cd", BIGINT),
        _req("active_ind", SMALLINT),
    ),
    "allergy": (
        _id("allergy_id"),
        _req("person_id", BIGINT),
        _opt("substance_nom_id", BIGINT),
        _opt("substance_ftdesc", TEXT, 255),
        _req("severity_cd", BIGINT),
        _opt("onset_dt_tm", TS),
        _req("contributor_system_cd", BIGINT),
        _req("active_ind", SMALLINT),
    ),
    "orders": (
        _id("order_id"),
        _req("person_id", BIGINT),
        _req("atc_nomenclature_id", BIGINT),
        _req("order_mnemonic", TEXT, 100),
        _opt("simplified_display_line", TEXT, 255),
        _req("orig_order_dt_tm", TS),
        _opt("discontinue_dt_tm", TS),
        _req("order_status_cd", BIGINT),
        _req("contributor_system_cd", BIGINT),
        _req("active_ind", SMALLINT),
    ),
    "clinical_event": (
        _id("clinical_event_id"),
        _req("person_id", BIGINT),
        _req("encntr_id", BIGINT),
        _req("event_cd", BIGINT),
        _req("result_status_cd", BIGINT),
        _req("event_end_dt_tm", TS),
        _req("reference_nbr", TEXT, 40),
        _req("contributor_system_cd", BIGINT),
        _req("active_ind", SMALLINT),
    ),
    "ce_blob": (
        _id("ce_blob_id"),
        _req("clinical_event_id", BIGINT),
        _req("blob_seq_num", INT),
        _req("blob_contents", TEXT, 4000),
    ),
}

REFERENCE_TABLES = ["code_value", "nomenclature"]
DATA_TABLES = [
    "person",
    "person_alias",
    "encounter",
    "encntr_alias",
    "diagnosis",
    "procedure",
    "allergy",
    "orders",
    "clinical_event",
    "ce_blob",
]
PRIMARY_KEY = {t: next(c.name for c in cols if c.primary_key) for t, cols in TABLES.items()}

#: code set of every coded column
CODE_SETS: dict[tuple[str, str], int] = {
    ("person", "sex_cd"): 57,
    ("person", "confid_level_cd"): 87,
    ("person", "contributor_system_cd"): 89,
    ("person_alias", "person_alias_type_cd"): 4,
    ("person_alias", "alias_pool_cd"): 263,
    ("person_alias", "contributor_system_cd"): 89,
    ("encounter", "encntr_type_cd"): 71,
    ("encounter", "loc_nurse_unit_cd"): 220,
    ("encounter", "contributor_system_cd"): 89,
    ("encntr_alias", "encntr_alias_type_cd"): 319,
    ("encntr_alias", "contributor_system_cd"): 89,
    ("diagnosis", "diag_type_cd"): 17,
    ("diagnosis", "contributor_system_cd"): 89,
    ("procedure", "contributor_system_cd"): 89,
    ("allergy", "severity_cd"): 12022,
    ("allergy", "contributor_system_cd"): 89,
    ("orders", "order_status_cd"): 6004,
    ("orders", "contributor_system_cd"): 89,
    ("clinical_event", "event_cd"): 72,
    ("clinical_event", "result_status_cd"): 8,
    ("clinical_event", "contributor_system_cd"): 89,
}
#: the code set of the source vocabularies (ICD10SE, KVA, ATC) nomenclature rows belong to
VOCABULARY_CODE_SET = 400
#: vocabulary of every nomenclature reference
NOMENCLATURE: dict[tuple[str, str], str] = {
    ("diagnosis", "nomenclature_id"): "ICD10SE",
    ("procedure", "nomenclature_id"): "KVA",
    ("orders", "atc_nomenclature_id"): "ATC",
    ("allergy", "substance_nom_id"): "ATC",
}
#: parent references: (table, column) → (parent table, parent key)
REFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    ("person_alias", "person_id"): ("person", "person_id"),
    ("encounter", "person_id"): ("person", "person_id"),
    ("encntr_alias", "encntr_id"): ("encounter", "encntr_id"),
    ("diagnosis", "person_id"): ("person", "person_id"),
    ("diagnosis", "encntr_id"): ("encounter", "encntr_id"),
    ("procedure", "encntr_id"): ("encounter", "encntr_id"),
    ("allergy", "person_id"): ("person", "person_id"),
    ("orders", "person_id"): ("person", "person_id"),
    ("clinical_event", "person_id"): ("person", "person_id"),
    ("clinical_event", "encntr_id"): ("encounter", "encntr_id"),
    ("ce_blob", "clinical_event_id"): ("clinical_event", "clinical_event_id"),
}


@dataclass(frozen=True)
class TextBlobs:
    """A table whose text is stored in numbered chunks of another table (``clinical-notes.md``)."""

    table: str  # the chunk table
    parent_key: str  # its column naming the row the chunk belongs to
    seq: str  # the chunk's number, from 1, in text order
    contents: str  # the chunk's text
    column: str  # the logical column the chunks joined in order make (not a column of the DDL)
    chunk: int  # characters (Unicode code points) per chunk


#: the tables whose text lives in chunks: clinical events' notes in ce_blob
TEXT_BLOBS: dict[str, TextBlobs] = {
    "clinical_event": TextBlobs("ce_blob", "clinical_event_id", "blob_seq_num", "blob_contents", "note_text", 4000),
}
#: chunk tables, read and checked but reconciled through the table they belong to
CHUNK_TABLES = {b.table for b in TEXT_BLOBS.values()}


def logical_columns_of(table: str) -> list[str]:
    """Columns a mapping may fill beyond the DDL's: the text a chunk table holds for the table."""
    return [TEXT_BLOBS[table].column] if table in TEXT_BLOBS else []


def columns_of(table: str) -> list[str]:
    """Column names of a table in DDL order."""
    return [c.name for c in TABLES[table]]
