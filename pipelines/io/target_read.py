"""Read the target tables into polars: Arrow-native (connectorx) first, SQLAlchemy as fallback.

Only the columns of the spec's schema are read (extra columns are ignored); a missing table or
column is a ``MigcheckError`` naming it. Frames are cast to one canonical schema (Int64 ids and
codes, naive UTC ``Datetime("us")``, text), whatever the reader and database gave.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checks.errors import MigcheckError
from checks.target_schema import DATA_TABLES, PRIMARY_KEY, REFERENCE_TABLES
from pipelines.io.target_schema import metadata

log = logging.getLogger("migcheck.target")
_TS = pl.Datetime("us")


def canonical_schema(table: str) -> dict[str, pl.DataType | type[pl.DataType]]:
    """The polars dtype of every spec column of a table."""
    out: dict[str, pl.DataType | type[pl.DataType]] = {}
    for c in metadata.tables[table].columns:
        if isinstance(c.type, sa.DateTime):
            out[c.name] = _TS
        elif isinstance(c.type, sa.String):
            out[c.name] = pl.String
        else:
            out[c.name] = pl.Int64
    return out


def _schema_name(engine: Engine) -> str | None:
    """The schema named by a PostgreSQL URL's ``options=-csearch_path=...``, if any."""
    opts = engine.url.query.get("options")
    if isinstance(opts, tuple):
        opts = " ".join(opts)
    if opts and "search_path=" in opts:
        return opts.split("search_path=")[1].split()[0].split(",")[0]
    return None


def check_tables(engine: Engine, tables: list[str]) -> None:
    """Every table and spec column exists; else one ``MigcheckError`` naming what is missing."""
    insp = sa.inspect(engine)
    schema = _schema_name(engine)
    present = set(insp.get_table_names(schema=schema))
    missing = [t for t in tables if t not in present]
    if missing:
        raise MigcheckError(f"--target: table(s) {', '.join(missing)} missing in the target database")
    for t in tables:
        cols = {c["name"].lower() for c in insp.get_columns(t, schema=schema)}
        lacking = [c for c in canonical_schema(t) if c not in cols]
        if lacking:
            raise MigcheckError(f"--target: table {t} lacks column(s) {', '.join(lacking)}")


def _cast(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """Cast to the canonical dtypes.

    ``_unreadable`` names the columns of a row whose value was present but could not be read as
    its type (text in a code column, a garbled timestamp).
    """
    exprs = []
    for name, dtype in canonical_schema(table).items():
        col = pl.col(name)
        src = df.schema[name]
        if dtype == _TS:
            if src == pl.String:
                col = pl.coalesce(
                    col.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"),
                    col.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us"),
                    col.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us"),
                )
            elif isinstance(src, pl.Datetime) and src.time_zone is not None:
                col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            exprs.append(col.cast(_TS, strict=False).alias(name))
        else:
            exprs.append(col.cast(dtype, strict=False).alias(name))
    cast = df.select(exprs)
    flags = [pl.when(df[c].is_not_null() & cast[c].is_null()).then(pl.lit(c)) for c in canonical_schema(table)]
    return cast.with_columns(pl.concat_list(flags).list.drop_nulls().alias("_unreadable"))


def _table(engine: Engine, table: str) -> sa.TableClause:
    t = metadata.tables[table]
    return sa.table(t.name, *[sa.column(c.name) for c in t.columns], schema=_schema_name(engine))


def _query(engine: Engine, table: str, where: sa.ColumnElement[bool] | None = None) -> str:
    tbl = _table(engine, table)
    stmt = sa.select(*[tbl.c[c.name] for c in metadata.tables[table].columns])
    if where is not None:
        stmt = stmt.where(where)
    return str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


def _cx_url(engine: Engine) -> str | None:
    u = engine.url
    backend = u.get_backend_name()
    if backend == "sqlite" and u.database not in (None, "", ":memory:"):
        return f"sqlite://{Path(u.database).resolve()}"
    if backend == "postgresql":
        return u.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    return None


def read_table(engine: Engine, table: str) -> pl.DataFrame:
    """One table, spec columns only, canonical dtypes."""
    return _read_sql(engine, table, _query(engine, table))


def _read_sql(engine: Engine, table: str, sql: str) -> pl.DataFrame:
    """The rows of ``sql`` (a select of ``table``'s spec columns) as a frame of canonical dtypes."""
    url = _cx_url(engine)
    df: pl.DataFrame | None = None
    if url is not None:
        try:
            import connectorx as cx

            read = pl.from_arrow(cx.read_sql(url, sql, return_type="arrow"))
            if not isinstance(read, pl.DataFrame):  # an Arrow table always gives a frame
                raise TypeError(f"connectorx gave a {type(read).__name__}, not a table")
            df = read
        except Exception as e:  # noqa: BLE001 - fall back to SQLAlchemy on any reader fault
            log.info("connectorx could not read %s (%s); reading through SQLAlchemy", table, type(e).__name__)
            df = None
    if df is None:
        with engine.connect() as conn:
            result = conn.execute(sa.text(sql))
            rows = result.fetchall()
            cols = list(result.keys())
        df = pl.DataFrame([tuple(r) for r in rows], schema=cols, orient="row", infer_schema_length=None)
    df = df.rename({c: c.lower() for c in df.columns})
    return _cast(df, table)


def read_table_batches(engine: Engine, table: str, rows: int) -> Iterator[pl.DataFrame]:
    """One table in batches of about ``rows`` rows (spec columns only, canonical dtypes): never whole in memory.

    The batches are ranges of the row key (SQLite's ``rowid``, else the table's primary key), each
    read as ``read_table`` reads a table (connectorx, SQLAlchemy where it cannot), so a value one
    reader cannot read costs only its batch the faster reader; rows without a key come last. A
    key that is not an integer, or a small table, gives one batch. At least one batch, if empty.
    """
    key_name = "rowid" if engine.url.get_backend_name() == "sqlite" else PRIMARY_KEY[table]
    key: sa.ColumnClause[Any] = sa.column(key_name)
    tbl = _table(engine, table)
    with engine.connect() as conn:
        lo, hi, count = conn.execute(
            sa.select(sa.func.min(key), sa.func.max(key), sa.func.count()).select_from(tbl)
        ).one()
    if count <= rows or not isinstance(lo, int) or not isinstance(hi, int):
        yield read_table(engine, table)
        return
    width = math.ceil((hi - lo + 1) / math.ceil(count / rows))
    for start in range(lo, hi + 1, width):
        yield _read_sql(engine, table, _query(engine, table, (key >= start) & (key < start + width)))
    if key_name != "rowid":
        nulls = _read_sql(engine, table, _query(engine, table, key.is_(None)))
        if nulls.height:
            yield nulls


def read_target(engine: Engine) -> dict[str, pl.DataFrame]:
    """Every table of the spec's schema, reference data included."""
    tables = REFERENCE_TABLES + DATA_TABLES
    check_tables(engine, tables)
    try:
        return {t: read_table(engine, t) for t in tables}
    except sa.exc.SQLAlchemyError as e:
        raise MigcheckError(
            f"--target: reading the target failed ({str(getattr(e, 'orig', e)).splitlines()[0][:160]})"
        ) from e
