"""The SQL of the target checks: the ``unexpected_rows`` rules (``RowsQuery``), and each table's column checks.

Queries are SQLAlchemy Core statements over the target's tables (``pipelines.io.target_schema``)
compiled for the target's dialect with literal binds; the batch (the table the check runs on) is
written ``{batch}``, the placeholder GX substitutes. GX 1.x substitutes it in one of two shapes,
and the query must suit the one it gets: when the query text holds the keyword JOIN, ``{batch}``
becomes a bare parenthesised subquery that the query must alias itself (here: ``{batch} AS b``);
otherwise it becomes ``(…) AS subselect``, aliased already, so the query must neither alias it nor
qualify its columns. ``_gx_query`` enforces that pairing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

import sqlalchemy as sa

from checks.errors import MigcheckError
from checks.target_checks import RowsQuery, TargetCheck
from checks.target_schema import PRIMARY_KEY
from pipelines.io.target_schema import metadata

#: table name standing for the batch while a query is compiled; replaced by ``{batch}``
_BATCH = "migcheck_gx_batch"
_BATCH_ALIAS = "b"
_JOIN = re.compile(r"\bJOIN\b", re.IGNORECASE)


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


def _orphan_query(q: RowsQuery, dialect: sa.engine.Dialect) -> str:
    """Rows of ``table`` whose ``column`` is set but names no row of ``parent``."""
    table, column, parent, parent_key = q.table, q.column or "", q.parent or "", q.parent_key or ""
    b = _batch(table, aliased=True)
    p = metadata.tables[parent].alias("p")
    stmt = (
        sa.select(b.c[PRIMARY_KEY[table]].label("row_id"), b.c[column].label("value"))
        .select_from(b.outerjoin(p, p.c[parent_key] == b.c[column]))
        .where(b.c[column].is_not(None), p.c[parent_key].is_(None))
    )
    return _gx_query(stmt, dialect, aliased=True)


def _identity_missing_query(q: RowsQuery, dialect: sa.engine.Dialect) -> str:
    """Persons with no identity alias."""
    identity_types = q.codes
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


def _later_repeats(table: str, key: list[str], value: str, where: list[Any]) -> sa.Select:
    """Rows of ``table`` whose ``key`` values (none null) sit on a row with a lower id, with ``value``.

    One pass over the table (a window ranking each key's rows by id), not a grouping joined back
    to the table: the table is read once, whatever its size. The batch's columns are unqualified
    (GX names it ``subselect``: see the module docstring).
    """
    pk = PRIMARY_KEY[table]
    col: Callable[[str], sa.ColumnClause[Any]] = sa.column
    rank = sa.func.row_number().over(partition_by=[col(k) for k in key], order_by=col(pk))
    ranked = (
        sa.select(col(pk).label("row_id"), col(value).label("value"), rank.label("n"))
        .select_from(_batch(table, aliased=False))
        .where(*(col(k).is_not(None) for k in key), *where)
        .subquery("r")
    )
    return sa.select(ranked.c.row_id, ranked.c.value).where(ranked.c.n > 1)


def _identity_duplicate_query(q: RowsQuery, dialect: sa.engine.Dialect) -> str:
    """Every identity alias row whose value sits on an identity alias with a lower id, with that value."""
    typ: sa.ColumnClause[Any] = sa.column("person_alias_type_cd")
    stmt = _later_repeats("person_alias", ["alias"], "alias", [typ.in_(q.codes)])
    return _gx_query(stmt, dialect, aliased=False)


def _allergy_substance_query(q: RowsQuery, dialect: sa.engine.Dialect) -> str:
    """Allergies with neither or both of substance_nom_id / substance_ftdesc (blank text = absent), and which."""
    # the batch's columns, unqualified: GX names the batch "subselect" (see module docstring)
    nom: sa.ColumnClause[Any] = sa.column("substance_nom_id")
    text: sa.ColumnClause[Any] = sa.column("substance_ftdesc")
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


def _without_children_query(q: RowsQuery, dialect: sa.engine.Dialect) -> str:
    """Rows of ``table`` that no row of ``parent`` (the child table) names by ``parent_key``."""
    table, child, key = q.table, q.parent or "", q.parent_key or ""
    b = _batch(table, aliased=True)
    c = metadata.tables[child].alias("c")
    pk = PRIMARY_KEY[table]
    stmt = (
        sa.select(b.c[pk].label("row_id"))
        .select_from(b.outerjoin(c, c.c[key] == b.c[pk]))
        .where(c.c[PRIMARY_KEY[child]].is_(None))
    )
    return _gx_query(stmt, dialect, aliased=True)


def _repeated_in_parent_query(q: RowsQuery, dialect: sa.engine.Dialect) -> str:
    """Rows whose ``column`` value sits on a row of the same ``parent_key`` with a lower id, with that value."""
    column, key = q.column or "", q.parent_key or ""
    return _gx_query(_later_repeats(q.table, [key, column], column, []), dialect, aliased=False)


def _longer_than_query(q: RowsQuery, dialect: sa.engine.Dialect) -> str:
    """Rows whose text ``column`` holds more than ``codes[0]`` characters, with the length."""
    column: sa.ColumnClause[Any] = sa.column(q.column or "")
    length = sa.func.length(column)  # characters in both SQLite and PostgreSQL
    stmt = (
        sa.select(sa.column(PRIMARY_KEY[q.table]).label("row_id"), length.label("value"))
        .select_from(_batch(q.table, aliased=False))
        .where(length > q.codes[0])
    )
    return _gx_query(stmt, dialect, aliased=False)


#: the SQL of each rule
_RULES: dict[str, Callable[[RowsQuery, sa.engine.Dialect], str]] = {
    "orphan": _orphan_query,
    "identity_missing": _identity_missing_query,
    "identity_duplicate": _identity_duplicate_query,
    "substance_exactly_one": _allergy_substance_query,
    "without_children": _without_children_query,
    "repeated_in_parent": _repeated_in_parent_query,
    "longer_than": _longer_than_query,
}


@cache
def sql_of(query: RowsQuery, dialect_name: str) -> str:
    """The SQL of ``query`` for a target of ``dialect_name``, over ``{batch}``."""
    if query.rule not in _RULES:
        raise ValueError(f"no SQL for target-check rule {query.rule!r}")
    return _RULES[query.rule](query, _dialect(dialect_name))


#: the kinds of check ``column_checks_sql`` combines: one value of one row decides each
COLUMN_KINDS = ("not_null", "in_set")


def _fails(check: TargetCheck) -> sa.ColumnElement[bool]:
    """Where one column check fails: a null (``not_null``); a value not in its set, nulls passing (``in_set``)."""
    col: sa.ColumnClause[Any] = sa.column(check.column or "")
    if check.kind == "not_null":
        return col.is_(None)
    values = list(check.value_set or ())
    return sa.and_(col.is_not(None), col.not_in(values)) if values else col.is_not(None)


@cache
def column_checks_sql(checks: tuple[TargetCheck, ...], dialect_name: str) -> str:
    """One query for the column checks (``COLUMN_KINDS``) of one table, over ``{batch}``: the table read once.

    It returns every row that fails any of them: its id as ``row_id``, ``f{k}`` (1 where the
    ``k``-th check fails, else 0) and, for an ``in_set`` check, the value found as ``v{k}``. A
    check fails on a row exactly as GX's ``ExpectColumnValuesToNotBeNull`` and
    ``ExpectColumnValuesToBeInSet`` judge it.
    """
    tables = {c.table for c in checks}
    if len(tables) != 1 or any(c.kind not in COLUMN_KINDS for c in checks):
        raise ValueError("column_checks_sql: the not_null and in_set checks of one table")
    table = tables.pop()
    fails = [_fails(c) for c in checks]
    stmt = (
        sa.select(
            sa.column(PRIMARY_KEY[table]).label("row_id"),
            *(sa.case((f, 1), else_=0).label(f"f{k}") for k, f in enumerate(fails)),
            *(sa.column(c.column or "").label(f"v{k}") for k, c in enumerate(checks) if c.kind == "in_set"),
        )
        .select_from(_batch(table, aliased=False))
        .where(sa.or_(*fails))
    )
    return _gx_query(stmt, _dialect(dialect_name), aliased=False)
