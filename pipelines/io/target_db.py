"""The target database, through SQLAlchemy: connect, create the schema, bulk write, read.

Connection faults become ``MigcheckError`` naming the setting, with the password hidden.
Bulk rows go through the driver's fast path (sqlite3 ``executemany``, PostgreSQL ``COPY``);
reads of whole tables go through an Arrow-native reader (connectorx) where the database allows,
SQLAlchemy being the fallback.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from checks.errors import MigcheckError
from checks.target_schema import DATA_TABLES, REFERENCE_TABLES, columns_of
from pipelines.io.target_schema import metadata


def safe_url(url: str | URL) -> str:
    """The URL as text with any password masked: the only form that may reach a log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not a database URL>"


def _check_sqlite_file(u: URL, setting: str, must_exist: bool) -> None:
    """A SQLite URL names a database file: its folder exists; the file exists where it must, and is one.

    SQLite itself would create an empty database for a mistyped path, and reports a file that is not
    a database only at the first query.
    """
    shown = f"{setting} {safe_url(u)}"
    if not u.database:
        raise MigcheckError(f"{shown}: names no database file")
    path = Path(u.database).expanduser().resolve()
    if not path.parent.is_dir():
        raise MigcheckError(f"{shown}: folder {path.parent} does not exist")
    if path.is_dir():
        raise MigcheckError(f"{shown}: is a directory, not a SQLite database file")
    if not path.exists():
        if must_exist:
            raise MigcheckError(f"{shown}: no such database file (check the path)")
        return
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise MigcheckError(f"{shown}: cannot be read ({e.strerror})") from e
    if head and head != b"SQLite format 3\x00":
        raise MigcheckError(f"{shown}: is not a SQLite database file")


def connect(url: str, setting: str = "--target", must_exist: bool = False) -> Engine:
    """An engine that has answered once; a fault is a one-line ``MigcheckError``.

    ``must_exist``: a SQLite database file must already be there (validation reads a target; only
    the simulated trial load and the history may create one).
    """
    if url.startswith(("env:", "block:")):
        raise MigcheckError(f"{setting} {url}: a setting, not a URL (resolve it first)")
    try:
        u = make_url(url)
    except ArgumentError as e:
        raise MigcheckError(f"{setting}: not a SQLAlchemy database URL (e.g. sqlite:///target.db)") from e
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        _check_sqlite_file(u, setting, must_exist)
    try:
        kwargs = {"connect_args": {"connect_timeout": 5}} if u.get_backend_name() == "postgresql" else {}
        engine = sa.create_engine(u, **kwargs)
        with engine.connect() as c:
            c.execute(sa.text("SELECT 1"))
    except (NoSuchModuleError, ModuleNotFoundError) as e:
        raise MigcheckError(
            f"{setting} {safe_url(u)}: unsupported database driver {u.drivername!r} "
            "(use sqlite:/// or postgresql+psycopg://)"
        ) from e
    except (OperationalError, SQLAlchemyError, OSError) as e:
        first = str(getattr(e, "orig", e)).strip().splitlines()[0] if str(getattr(e, "orig", e)).strip() else ""
        raise MigcheckError(f"{setting} {safe_url(u)}: cannot connect ({first[:160]})", transient=True) from e
    return engine


def create_target(engine: Engine) -> None:
    """Drop and create every table of the target schema (a trial load starts from empty)."""
    metadata.drop_all(engine)
    metadata.create_all(engine)


#: rows handed to the database driver at a time
WRITE_CHUNK_ROWS = 100_000


def write_frame(engine: Engine, table: str, df: pl.DataFrame) -> None:
    """Append a frame whose columns are the table's (in any order) with the driver's bulk path."""
    cols = columns_of(table)
    df = df.select(cols)
    if df.height == 0:
        return
    backend = engine.dialect.name
    with engine.begin() as conn:
        if backend == "postgresql":
            raw = conn.connection.driver_connection
            if raw is None:
                raise MigcheckError(f"{table}: the PostgreSQL connection was closed before the bulk write")
            collist = ", ".join(f'"{c}"' for c in cols)
            with raw.cursor() as cur, cur.copy(f'COPY "{table}" ({collist}) FROM STDIN') as cp:
                for chunk in df.iter_slices(WRITE_CHUNK_ROWS):
                    for row in chunk.iter_rows():
                        cp.write_row(row)
        else:
            ts_cols = [c for c, t in df.schema.items() if isinstance(t, pl.Datetime)]
            df = df.with_columns(pl.col(c).dt.strftime("%Y-%m-%d %H:%M:%S") for c in ts_cols)
            stmt = sa.insert(metadata.tables[table])
            sql = str(stmt.compile(dialect=engine.dialect, column_keys=cols))
            if backend == "sqlite":
                sql = f'INSERT INTO "{table}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'
            # in slices: a region-sized table as Python rows all at once would take many GB
            for chunk in df.iter_slices(WRITE_CHUNK_ROWS):
                if backend == "sqlite":
                    conn.exec_driver_sql(sql, list(chunk.iter_rows()))
                else:
                    conn.execute(stmt, chunk.to_dicts())


def load_reference(engine: Engine, mappings_root: Path) -> None:
    """code_value and nomenclature from the mappings' reference data."""
    for t in REFERENCE_TABLES:
        df = pl.read_csv(mappings_root / "reference" / f"{t}.csv", infer_schema_length=0)
        df = df.with_columns(
            pl.col(c).cast(pl.Int64)
            for c in df.columns
            if c not in ("cdf_meaning", "display", "source_identifier", "source_string")
        )
        write_frame(engine, t, df)


def table_names(engine: Engine) -> set[str]:
    """Tables that exist in the target."""
    return set(sa.inspect(engine).get_table_names())


__all__ = ["DATA_TABLES", "connect", "create_target", "load_reference", "safe_url", "table_names", "write_frame"]
