"""The checks the target must pass on its own, declared from ``checks.target_schema``.

``load-rules.md``, "What the validation checks on the target itself".

A declaration only: no Great Expectations, no I/O. ``pipelines.io.gx_checks`` turns every
``TargetCheck`` into a GX expectation that runs inside the target database.

Kinds:

* ``not_null`` — every NOT NULL column of the DDL except the primary key (``mandatory_missing``);
* ``in_set`` — every ``*_cd`` column in an active code value of its code set, every nomenclature
  reference in an active nomenclature row of its vocabulary (``invalid_code``); nulls pass, a
  missing mandatory value being the ``not_null`` check's finding;
* ``unexpected_rows`` — a SQL query returning the failing rows' ids as ``row_id`` and, where a
  value shows what is wrong, that value as ``value``: orphans (the reference that names no row),
  persons without identity alias (no value), identity values that sit twice (the value, masked in
  the finding), allergies with neither or both substance columns (which, in words).

Every check says, in steward words, what it expects (``expected``) and what a failing row is
(``message``, a template over the value found); ``TargetCheck.failure`` fills it in, the value
masked where it identifies a person (``checks.masking``).

Queries are SQLAlchemy Core statements over ``metadata.tables`` compiled for the target's dialect
with literal binds; the batch (the table the check runs on) is written ``{batch}``, the placeholder
GX substitutes. GX 1.x substitutes it in one of two shapes, and the query must suit the one it
gets: when the query text holds the keyword JOIN, ``{batch}`` becomes a bare parenthesised
subquery that the query must alias itself (here: ``{batch} AS b``); otherwise it becomes
``(…) AS subselect``, aliased already, so the query must neither alias it nor qualify its columns.
``_gx_query`` enforces that pairing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl
import sqlalchemy as sa

from checks.catalogue import TARGET, Check
from checks.errors import MigcheckError
from checks.identity import PNR, RESNR, SAMNR
from checks.masking import mask
from checks.target_schema import CODE_SETS, DATA_TABLES, NOMENCLATURE, PRIMARY_KEY, REFERENCES, metadata

KINDS = ("not_null", "in_set", "unexpected_rows")
#: alias types of the identity alias every person must have (code set 4)
IDENTITY_ALIAS_TYPES = (PNR, SAMNR, RESNR)
#: code set of the source vocabularies nomenclature rows belong to
VOCABULARY_CODE_SET = 400
ALIAS_TYPE_CODE_SET = CODE_SETS[("person_alias", "person_alias_type_cd")]

#: table name standing for the batch while a query is compiled; replaced by ``{batch}``
_BATCH = "migcheck_gx_batch"
_BATCH_ALIAS = "b"
_JOIN = re.compile(r"\bJOIN\b", re.IGNORECASE)
#: what a steward calls a code set
CODE_SET_NAMES = {
    4: "alias type",
    17: "diagnosis type",
    57: "sex",
    71: "encounter type",
    87: "confidentiality",
    89: "contributor system",
    220: "nurse unit",
    263: "alias pool",
    319: "encounter alias type",
    6004: "order status",
    12022: "allergy severity",
}
#: how many meanings ``expected`` lists before it only counts
_LISTED = 8


@dataclass(frozen=True)
class TargetCheck:
    """One check of the target, run as one GX expectation on ``table``."""

    check_id: str  # stable id, e.g. "encounter.target.not_null.reg_dt_tm"
    table: str  # the table the expectation runs on
    kind: str  # "not_null" | "in_set" | "unexpected_rows"
    column: str | None
    category: str  # mandatory_missing | invalid_code | orphan | duplicate
    entity: str  # entity to report (the table, except identity_missing → "person_alias")
    value_set: tuple[int, ...] | None = None
    query: str | None = None  # unexpected_rows: SQL over {batch} returning the failing ids as "row_id"
    ref_table: str | None = None  # table the returned row_id belongs to (for target_ref); default = table
    description: str = ""  # one sentence for stewards
    expected: str = ""  # what a row must hold, e.g. "an active code value of code set 57 (MALE, FEMALE, UNKNOWN)"
    message: str = ""  # a failing row in steward words; "{value}" = the value found, "{what}" = " (what it is)"
    #: what a failing value is, where known (a code value of another set, an inactive one): value → words
    known: Mapping[int, str] | None = field(default=None, compare=False, repr=False)

    @property
    def target_table(self) -> str:
        """The table a failing row's ``target_ref`` names."""
        return self.ref_table or self.table

    def failure(self, value: object) -> tuple[str | None, str]:
        """(the value as a report may show it, the message) of one failing row holding ``value``.

        The value is masked where the column identifies a person (``checks.masking.mask``).
        """
        shown = mask(self.table, self.column or "", value)
        what = ""
        if self.known and value is not None:
            try:
                what = self.known.get(int(value), "")
            except (TypeError, ValueError):
                what = ""
        text = self.message or self.description or f"the row fails {self.check_id}"
        return shown, text.format(value=shown if shown is not None else "(none)", what=f" ({what})" if what else "")


def _dialect(dialect_name: str) -> sa.engine.Dialect:
    name = "postgresql.psycopg" if dialect_name == "postgresql" else dialect_name
    try:
        return sa.dialects.registry.load(name)()
    except Exception as e:  # noqa: BLE001 - NoSuchModuleError or a missing driver module
        raise MigcheckError(f"--target: unsupported database dialect {dialect_name!r}") from e


def _batch(table: str, aliased: bool) -> sa.FromClause:
    """The placeholder for the batch of ``table``: aliased ``b`` for JOIN queries, else bare."""
    placeholder = sa.table(_BATCH, *(sa.column(c.name) for c in metadata.tables[table].columns))
    return placeholder.alias(_BATCH_ALIAS) if aliased else placeholder


def _gx_query(stmt: sa.Select, dialect: sa.engine.Dialect, aliased: bool) -> str:
    """``stmt`` as SQL text for ``UnexpectedRowsExpectation``, the placeholder replaced by ``{batch}``."""
    sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    sql = " ".join(sql.split())
    # GX runs the query through str.format: literal braces must be doubled
    sql = sql.replace("{", "{{").replace("}", "}}")
    prep = dialect.identifier_preparer
    token = prep.quote(_BATCH) + (f" AS {prep.quote(_BATCH_ALIAS)}" if aliased else "")
    if sql.count(prep.quote(_BATCH)) != 1 or token not in sql:
        raise AssertionError(f"batch placeholder not found once in {sql}")
    if aliased != bool(_JOIN.search(sql)):
        raise AssertionError(f"query must alias {{batch}} exactly when it holds a JOIN: {sql}")
    return sql.replace(token, "{batch}" + (f" AS {prep.quote(_BATCH_ALIAS)}" if aliased else ""))


def _active_codes(code_value: pl.DataFrame, code_set: int) -> tuple[int, ...]:
    ids = code_value.filter((pl.col("code_set") == code_set) & (pl.col("active_ind") == 1))["code_value"]
    if ids.len() == 0:
        raise MigcheckError(f"mappings/reference/code_value.csv: no active code value in code set {code_set}")
    return tuple(sorted(int(v) for v in ids))


def _code_of(code_value: pl.DataFrame, code_set: int, meaning: str) -> int:
    hit = code_value.filter((pl.col("code_set") == code_set) & (pl.col("cdf_meaning") == meaning))["code_value"]
    if hit.len() != 1:
        raise MigcheckError(
            f"mappings/reference/code_value.csv: expected one code value {meaning!r} in code set {code_set}, "
            f"found {hit.len()}"
        )
    return int(hit[0])


def _active_nomenclature(code_value: pl.DataFrame, nomenclature: pl.DataFrame, vocabulary: str) -> tuple[int, ...]:
    vocab_cd = _code_of(code_value, VOCABULARY_CODE_SET, vocabulary)
    ids = nomenclature.filter((pl.col("source_vocabulary_cd") == vocab_cd) & (pl.col("active_ind") == 1))[
        "nomenclature_id"
    ]
    if ids.len() == 0:
        raise MigcheckError(f"mappings/reference/nomenclature.csv: no active nomenclature row of {vocabulary}")
    return tuple(sorted(int(v) for v in ids))


def _orphan_query(table: str, column: str, parent: str, parent_key: str, dialect: sa.engine.Dialect) -> str:
    """Rows of ``table`` whose ``column`` is set but names no row of ``parent``."""
    b = _batch(table, aliased=True)
    p = metadata.tables[parent].alias("p")
    stmt = (
        sa.select(b.c[PRIMARY_KEY[table]].label("row_id"), b.c[column].label("value"))
        .select_from(b.outerjoin(p, p.c[parent_key] == b.c[column]))
        .where(b.c[column].is_not(None), p.c[parent_key].is_(None))
    )
    return _gx_query(stmt, dialect, aliased=True)


def _identity_missing_query(identity_types: tuple[int, ...], dialect: sa.engine.Dialect) -> str:
    """Persons with no identity alias."""
    b = _batch("person", aliased=True)
    a = metadata.tables["person_alias"].alias("a")
    stmt = (
        sa.select(b.c.person_id.label("row_id"))
        .select_from(
            b.outerjoin(a, sa.and_(a.c.person_id == b.c.person_id, a.c.person_alias_type_cd.in_(identity_types)))
        )
        .where(a.c.person_alias_id.is_(None))
    )
    return _gx_query(stmt, dialect, aliased=True)


def _identity_duplicate_query(identity_types: tuple[int, ...], dialect: sa.engine.Dialect) -> str:
    """Every identity alias row whose value sits on an identity alias with a lower id, with that value."""
    b = _batch("person_alias", aliased=True)
    pa = metadata.tables["person_alias"].alias("pa")
    first = (
        sa.select(pa.c.alias, sa.func.min(pa.c.person_alias_id).label("first_id"))
        .where(pa.c.person_alias_type_cd.in_(identity_types))
        .group_by(pa.c.alias)
        .having(sa.func.count() > 1)
        .subquery("d")
    )
    stmt = (
        sa.select(b.c.person_alias_id.label("row_id"), b.c.alias.label("value"))
        .select_from(b.join(first, first.c.alias == b.c.alias))
        .where(b.c.person_alias_type_cd.in_(identity_types), b.c.person_alias_id > first.c.first_id)
    )
    return _gx_query(stmt, dialect, aliased=True)


def _allergy_substance_query(dialect: sa.engine.Dialect) -> str:
    """Allergies with neither or both of substance_nom_id / substance_ftdesc (blank text = absent), and which."""
    # the batch's columns, unqualified: GX names the batch "subselect" (see module docstring)
    nom, text = sa.column("substance_nom_id"), sa.column("substance_ftdesc")
    text_absent = sa.or_(text.is_(None), sa.func.trim(text) == "")
    which = sa.case(
        (nom.is_(None), sa.literal("neither substance_nom_id nor substance_ftdesc")),
        else_=sa.literal("both substance_nom_id and substance_ftdesc"),
    )
    stmt = (
        sa.select(sa.column(PRIMARY_KEY["allergy"]).label("row_id"), which.label("value"))
        .select_from(_batch("allergy", aliased=False))
        .where(sa.or_(sa.and_(nom.is_(None), text_absent), sa.and_(nom.is_not(None), sa.not_(text_absent))))
    )
    return _gx_query(stmt, dialect, aliased=False)


class _Known(Mapping):
    """What a value of another set, or an inactive one of the check's own set, is: id → words.

    One shared table of every code value (or nomenclature row) as ``id → (set, name, active)``,
    read relative to the set ``own`` the check expects: ``SAS_MED3, inactive`` in its own set,
    ``MALE of code set 57`` in another.
    """

    def __init__(self, rows: dict[int, tuple[str, str, bool]], own: str) -> None:
        self._rows, self._own = rows, own

    def __getitem__(self, key: int) -> str:
        group, name, active = self._rows[key]
        if group == self._own:
            return name if active else f"{name}, inactive"
        return f"{name} of {group}"

    def __iter__(self):  # noqa: ANN204 - Mapping protocol
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def _code_rows(code_value: pl.DataFrame) -> dict[int, tuple[str, str, bool]]:
    return {
        int(v): (f"code set {cs}", str(meaning), a == 1)
        for v, cs, meaning, a in code_value.select("code_value", "code_set", "cdf_meaning", "active_ind").iter_rows()
    }


def _nomenclature_rows(code_value: pl.DataFrame, nomenclature: pl.DataFrame) -> dict[int, tuple[str, str, bool]]:
    vocabularies = code_value.filter(pl.col("code_set") == VOCABULARY_CODE_SET)
    vocab = dict(vocabularies.select("code_value", "cdf_meaning").iter_rows())
    return {
        int(i): (str(vocab.get(v, f"vocabulary {v}")), str(ident), a == 1)
        for i, v, ident, a in nomenclature.select(
            "nomenclature_id", "source_vocabulary_cd", "source_identifier", "active_ind"
        ).iter_rows()
    }


def _meanings(code_value: pl.DataFrame, code_set: int) -> str:
    """The active meanings of a code set, listed up to ``_LISTED``: ``MALE, FEMALE, UNKNOWN``."""
    cv = code_value.filter((pl.col("code_set") == code_set) & (pl.col("active_ind") == 1)).sort("code_value")
    names = [str(m) for m in cv["cdf_meaning"].to_list()]
    if len(names) <= _LISTED:
        return ", ".join(names)
    return ", ".join(names[:_LISTED]) + f", … ({len(names)} in all)"


def build_target_checks(code_value: pl.DataFrame, nomenclature: pl.DataFrame, dialect_name: str) -> list[TargetCheck]:
    """Every target check, in table order (``DATA_TABLES``), for a target of ``dialect_name``."""
    dialect = _dialect(dialect_name)
    identity_types = tuple(sorted(_code_of(code_value, ALIAS_TYPE_CODE_SET, m) for m in IDENTITY_ALIAS_TYPES))
    # fmt: off
    checks: list[TargetCheck] = []

    def add(check: Check, table: str, kind: str, column: str | None, **kw) -> None:
        """The GX form of a check the catalogue declares (id, category, entity, description)."""
        checks.append(TargetCheck(check.id, table, kind, column, check.category, check.entity,
                                  description=check.description, **kw))

    code_rows = _code_rows(code_value)
    nom_rows = _nomenclature_rows(code_value, nomenclature)
    for table in DATA_TABLES:
        for c in metadata.tables[table].columns:
            if not c.nullable and not c.primary_key:
                add(TARGET[(table, "not_null", c.name)], table, "not_null", c.name,
                    expected="a value (NOT NULL)",
                    message=f"{c.name} is empty; every {table} row must have it")
        for col, code_set in ((col, cs) for (t, col), cs in CODE_SETS.items() if t == table):
            name = CODE_SET_NAMES.get(code_set, f"code set {code_set}")
            add(TARGET[(table, "code", col)], table, "in_set", col,
                value_set=_active_codes(code_value, code_set),
                expected=f"an active code value of code set {code_set} ({_meanings(code_value, code_set)})",
                message=f"{col} {{value}}{{what}} is not an active code value of code set {code_set} ({name})",
                known=_Known(code_rows, f"code set {code_set}"))
        for col, vocabulary in ((col, v) for (t, col), v in NOMENCLATURE.items() if t == table):
            add(TARGET[(table, "nomenclature", col)], table, "in_set", col,
                value_set=_active_nomenclature(code_value, nomenclature, vocabulary),
                expected=f"the nomenclature_id of an active {vocabulary} nomenclature row",
                message=f"{col} {{value}}{{what}} is not an active {vocabulary} nomenclature row",
                known=_Known(nom_rows, vocabulary))
        for col, (parent, key) in ((col, p) for (t, col), p in REFERENCES.items() if t == table):
            add(TARGET[(table, "orphan", col)], table, "unexpected_rows", col,
                query=_orphan_query(table, col, parent, key, dialect),
                expected=f"an existing {parent} row ({parent}.{key})",
                message=f"{col} {{value}} names no {parent} row (no {parent}.{key} {{value}})")
        if table == "person":
            add(TARGET[("person_alias", "identity_missing", None)], "person", "unexpected_rows", "alias",
                ref_table="person", query=_identity_missing_query(identity_types, dialect),
                expected=f"an identity alias ({', '.join(IDENTITY_ALIAS_TYPES[:-1])} or "
                f"{IDENTITY_ALIAS_TYPES[-1]}) in person_alias",
                message="the person has no identity alias (personnummer, samordningsnummer or reservnummer) "
                "in person_alias")
        if table == "person_alias":
            add(TARGET[("person_alias", "identity_duplicate", None)], "person_alias", "unexpected_rows", "alias",
                query=_identity_duplicate_query(identity_types, dialect),
                expected="an identity value found on one identity alias only",
                message="identity value {value} already sits on an identity alias with a lower "
                "person_alias_id; this copy is extra")
        if table == "allergy":
            add(TARGET[("allergy", "substance_exactly_one", None)], "allergy", "unexpected_rows", None,
                query=_allergy_substance_query(dialect),
                expected="exactly one of substance_nom_id and substance_ftdesc",
                message="the allergy names its substance in {value}")
    # fmt: on
    ids = [c.check_id for c in checks]
    assert len(ids) == len(set(ids)), "check ids must be unique"
    return checks
