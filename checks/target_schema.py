"""The Millennium-like target schema of ``target-schema.md``, declared once with SQLAlchemy.

A declaration only: creating it, loading it and reading it happen in ``pipelines.io.target_db``.
``CODE_SETS`` says which code set every ``*_cd`` column draws from, and ``NOMENCLATURE`` which
vocabulary every nomenclature reference must be of; both drive the simulator and the checks.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, SmallInteger, String, Table

metadata = MetaData()


def _t(name: str, *cols: Column) -> Table:
    return Table(name, metadata, *cols)


def _id(name: str) -> Column:
    return Column(name, BigInteger, primary_key=True, autoincrement=False)


def _req(name: str, type_) -> Column:
    return Column(name, type_, nullable=False)


def _opt(name: str, type_) -> Column:
    return Column(name, type_, nullable=True)


TS = DateTime(timezone=False)

code_value = _t(
    "code_value",
    _id("code_value"),
    _req("code_set", Integer),
    _req("cdf_meaning", String(12)),
    _req("display", String(40)),
    _req("active_ind", SmallInteger),
)
nomenclature = _t(
    "nomenclature",
    _id("nomenclature_id"),
    _req("source_vocabulary_cd", BigInteger),
    _req("source_identifier", String(20)),
    _req("source_string", String(255)),
    _req("active_ind", SmallInteger),
)
person = _t(
    "person",
    _id("person_id"),
    _req("name_last", String(100)),
    _req("name_first", String(100)),
    _req("sex_cd", BigInteger),
    _req("birth_dt_tm", TS),
    _opt("deceased_dt_tm", TS),
    _req("confid_level_cd", BigInteger),
    _opt("postal_code", String(10)),
    _opt("municipality_code", String(4)),
    _req("contributor_system_cd", BigInteger),
    _req("active_ind", SmallInteger),
    _req("updt_dt_tm", TS),
)
person_alias = _t(
    "person_alias",
    _id("person_alias_id"),
    _req("person_id", BigInteger),
    _req("person_alias_type_cd", BigInteger),
    _opt("alias_pool_cd", BigInteger),
    _req("alias", String(20)),
    _req("contributor_system_cd", BigInteger),
    _req("active_ind", SmallInteger),
)
encounter = _t(
    "encounter",
    _id("encntr_id"),
    _req("person_id", BigInteger),
    _req("encntr_type_cd", BigInteger),
    _req("loc_nurse_unit_cd", BigInteger),
    _req("reg_dt_tm", TS),
    _opt("disch_dt_tm", TS),
    _req("contributor_system_cd", BigInteger),
    _req("active_ind", SmallInteger),
)
encntr_alias = _t(
    "encntr_alias",
    _id("encntr_alias_id"),
    _req("encntr_id", BigInteger),
    _req("encntr_alias_type_cd", BigInteger),
    _req("alias", String(40)),
    _req("contributor_system_cd", BigInteger),
    _req("active_ind", SmallInteger),
)
diagnosis = _t(
    "diagnosis",
    _id("diagnosis_id"),
    _req("person_id", BigInteger),
    _req("encntr_id", BigInteger),
    _req("nomenclature_id", BigInteger),
    _req("diag_type_cd", BigInteger),
    _req("diag_dt_tm", TS),
    _req("contributor_system_cd", BigInteger),
    _req("active_ind", SmallInteger),
)
procedure = _t(
    "procedure",
    _id("procedure_id"),
    _req("encntr_id", BigInteger),
    _req("nomenclature_id", BigInteger),
    _req("proc_dt_tm", TS),
    _req("contributor_system_cd", BigInteger),
    _req("active_ind", SmallInteger),
)
allergy = _t(
    "allergy",
    _id("allergy_id"),
    _req("person_id", BigInteger),
    _opt("substance_nom_id", BigInteger),
    _opt("substance_ftdesc", String(255)),
    _req("severity_cd", BigInteger),
    _opt("onset_dt_tm", TS),
    _req("contributor_system_cd", BigInteger),
    _req("active_ind", SmallInteger),
)
orders = _t(
    "orders",
    _id("order_id"),
    _req("person_id", BigInteger),
    _req("atc_nomenclature_id", BigInteger),
    _req("order_mnemonic", String(100)),
    _opt("simplified_display_line", String(255)),
    _req("orig_order_dt_tm", TS),
    _opt("discontinue_dt_tm", TS),
    _req("order_status_cd", BigInteger),
    _req("contributor_system_cd", BigInteger),
    _req("active_ind", SmallInteger),
)

REFERENCE_TABLES = ["code_value", "nomenclature"]
DATA_TABLES = ["person", "person_alias", "encounter", "encntr_alias", "diagnosis", "procedure", "allergy", "orders"]
PRIMARY_KEY = {t.name: next(iter(t.primary_key.columns)).name for t in metadata.sorted_tables}

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
}


def columns_of(table: str) -> list[str]:
    """Column names of a table in DDL order."""
    return [c.name for c in metadata.tables[table].columns]
