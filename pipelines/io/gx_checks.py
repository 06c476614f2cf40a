"""Run the target checks inside the target database through Great Expectations 1.x.

The checks come from ``checks.target_checks``; GX's results become frames naming every failing row.

One ephemeral GX context, one SQL data source on the target URL, one table asset with a
whole-table batch, one expectation suite and one checkpoint per table.

Each table is read once for all its not-null and code checks (D94): they are combined into one
``UnexpectedRowsExpectation`` whose query (``column_checks_sql``) returns every row failing any of
them, with a flag per check and the code found. ``_column_failures`` gives each check its own
rows, count and verdict, so the report still lists every check; GX's verdict on the combined
expectation must agree with them. The other checks (orphans, identity aliases, notes' chunks…)
are one ``UnexpectedRowsExpectation`` each. Checked one expectation per column, GX read a table
once per check and spent most of its time on its own bookkeeping: at 100,000 patients the checks
took 10 s of CPU, now 7 s.

Every failing row names the value it holds (``actual``, masked where the column identifies a
person), what the check expected and a steward message (``TargetCheck.failure``): a query returns
it as ``value`` (``v{k}`` for a code check).

No Data Docs (``docs/decisions.md`` D40): the report's own gate and target-check lists are the
documentation, and GX's pages load their styles from the internet.

Every failing row, not GX's sample of it: GX fetches an ``UnexpectedRowsExpectation``'s rows with
``fetchmany(200)`` unless its query-table metric is given ``fetch_all``, which the expectation does
not pass: migcheck's own subclass (``_every_row_expectation``) passes it, so GX returns every row
and no query runs a second time. GX's expectation also counts the rows in a query of its own; the
subclass takes their count from the rows it has, so each query runs once.

``great_expectations`` is imported inside ``run_target_checks`` only: the import costs seconds.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from checks.errors import MigcheckError
from checks.target_checks import TargetCheck
from pipelines.io.target_db import connect, safe_url, table_names
from pipelines.io.target_queries import COLUMN_KINDS, column_checks_sql, sql_of

log = logging.getLogger(__name__)

_DATASOURCE = "target"

FAILURE_SCHEMA = {
    "check_id": pl.String,
    "table": pl.String,
    "column": pl.String,
    "category": pl.String,
    "entity": pl.String,
    "target_ref": pl.String,
    "expected": pl.String,
    "actual": pl.String,
    "message": pl.String,
}
RESULT_SCHEMA = {
    "check_id": pl.String,
    "table": pl.String,
    "column": pl.String,
    "category": pl.String,
    "success": pl.Boolean,
    "unexpected_count": pl.Int64,
    "description": pl.String,
}


@dataclass(frozen=True)
class TargetCheckRun:
    """What the target checks found."""

    #: check_id, table, column, category, entity, target_ref ("{ref_table}:{row_id}"), expected,
    #: actual (the value found, masked where personal), message
    failures: pl.DataFrame
    results: pl.DataFrame  # check_id, table, column, category, success (bool), unexpected_count (int), description


def _target_url(engine_or_url: Engine | URL | str, setting: str) -> URL:
    if isinstance(engine_or_url, Engine):
        url = engine_or_url.url
    else:
        try:
            url = make_url(engine_or_url)
        except ArgumentError as e:
            raise MigcheckError(f"{setting}: not a SQLAlchemy database URL (e.g. sqlite:///target.db)") from e
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise MigcheckError(
            f"{setting} {safe_url(url)}: unsupported database; use sqlite:///FILE or postgresql+psycopg://…"
        )
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise MigcheckError(f"{setting} {safe_url(url)}: the target checks need a database file, not an in-memory one")
    return url


def _one_line(e: BaseException, url: URL) -> str:
    """The first line of an error, cut short, with the password (if any) blanked."""
    text = str(getattr(e, "orig", None) or e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    if url.password:
        line = line.replace(str(url.password), "***")
    return line[:200]


def _gx_context(gx):
    """An ephemeral context: in-memory stores, no analytics, no progress bars, no Data Docs site."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _data_source(context, url: URL):
    """GX's data source for the backend (its generic SQL one warns).

    The generic one where GX's stricter URL validation refuses a URL SQLAlchemy takes (e.g. a
    PostgreSQL unix socket).
    """
    backend = url.get_backend_name()
    text = url.render_as_string(hide_password=False)
    kwargs = {"connect_args": {"connect_timeout": 5}} if backend == "postgresql" else {}
    specific = {"sqlite": context.data_sources.add_sqlite, "postgresql": context.data_sources.add_postgres}
    if backend in specific:
        try:
            return specific[backend](name=_DATASOURCE, connection_string=text, kwargs=kwargs)
        except ValueError:  # pydantic's validation error of the connection string
            pass
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*generic SQLDatasource.*")
        return context.data_sources.add_sql(name=_DATASOURCE, connection_string=text, kwargs=kwargs)


def _expectation(gxe, check: TargetCheck, dialect: str):
    meta = {"check_id": check.check_id, "category": check.category, "entity": check.entity}
    common = {"meta": meta, "description": check.description or None}
    if check.kind == "unexpected_rows":
        every = _every_row_expectation(gxe)
        return every(unexpected_rows_query=sql_of(check.query, dialect), **common)
    raise ValueError(f"{check.check_id}: unknown kind {check.kind!r}")


def _column_expectation(gxe, table: str, checks: tuple[TargetCheck, ...], dialect: str):
    """One expectation for the not-null and code checks of ``table``: one query reads the table once.

    Its rows name which of ``checks`` each fails (``column_checks_sql``); ``_column_failures``
    gives every check its own rows, count and verdict.
    """
    every = _every_row_expectation(gxe)
    return every(
        unexpected_rows_query=column_checks_sql(checks, dialect),
        meta={"check_ids": [c.check_id for c in checks], "table": table},
        description=f"the not-null and code checks of {table}, one read of the table",
    )


def _expectations(gxe, table_checks: list[TargetCheck], dialect: str) -> list:
    """The table's expectations: its column checks combined into one, each row check on its own."""
    columns = tuple(c for c in table_checks if c.kind in COLUMN_KINDS)
    rows = [_expectation(gxe, c, dialect) for c in table_checks if c.kind not in COLUMN_KINDS]
    return ([_column_expectation(gxe, columns[0].table, columns, dialect)] if columns else []) + rows


@cache  # one class: GX registers an expectation class by its name
def _every_row_expectation(gxe) -> type:  # noqa: ANN001 - the great_expectations.expectations module
    """``UnexpectedRowsExpectation`` that has GX fetch every row its query returns, not the first 200, once.

    GX fetches an unexpected-rows query's rows with ``fetchmany(200)`` unless the query-table
    metric is given ``fetch_all``, which the expectation never passes; without it, a check failing
    on more rows ran its query a third time (``_all_rows``) to name them all. Its count is the
    number of rows fetched: GX would run the query once more (``unexpected_rows_query.row_count``).
    """
    from great_expectations.validator.metric_configuration import MetricConfiguration

    class MigcheckUnexpectedRows(gxe.UnexpectedRowsExpectation):
        #: the rows alone: their count is their number, so the query is not run again to count them
        metric_dependencies: ClassVar[tuple[str, ...]] = ("unexpected_rows_query.table",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # noqa: ANN001, ANN202
            counted = {**metrics, "unexpected_rows_query.row_count": len(metrics["unexpected_rows_query.table"])}
            return super()._validate(counted, runtime_configuration, execution_engine)

        def get_validation_dependencies(self, execution_engine=None, runtime_configuration=None):  # noqa: ANN001, ANN202
            deps = super().get_validation_dependencies(execution_engine, runtime_configuration)
            name = "unexpected_rows_query.table"
            table = deps.get_metric_configuration(name)
            if table is not None:
                kwargs = {**table.metric_value_kwargs, "fetch_all": True}
                deps.set_metric_configuration(name, MetricConfiguration(name, table.metric_domain_kwargs, kwargs))
            return deps

    return MigcheckUnexpectedRows


def _raised(exception_info) -> str | None:
    """The message of the first exception GX recorded for a result, if any."""
    if not exception_info:
        return None
    infos = exception_info.values() if "raised_exception" not in exception_info else [exception_info]
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "unknown error")
    return None


def _all_rows(engine: Engine, sql: str) -> list[dict]:
    """Every row ``sql`` returns, as GX gives them: a dict per row, by column label."""
    with engine.connect() as c:
        return [dict(row._mapping) for row in c.execute(sa.text(sql))]


def _query_rows(result: dict, engine: Engine, table: str, sql: str) -> list[dict]:
    """Every row of an unexpected-rows result: GX's, or (had it fetched fewer than it counted) ``sql`` run here.

    ``sql``: the expectation's query, over ``{batch}``, which becomes ``table``.
    """
    count = int(result.get("observed_value") or 0)
    rows = result.get("details", {}).get("unexpected_rows") or []
    if len(rows) >= count:
        return rows
    return _all_rows(engine, sql.format(batch=engine.dialect.identifier_preparer.quote(table)))


def _by_id(check: TargetCheck, rows: list[tuple[Any, object]], count: int) -> list[tuple[int, object]]:
    """``rows`` (id, value) in id order, each id once; as many as ``count``, or the check's run is not trusted."""
    by_id: dict[int, object] = {}
    for i, v in rows:
        by_id.setdefault(int(i), v)
    if len(by_id) != count:
        raise MigcheckError(f"target check {check.check_id}: {count} rows failed but {len(by_id)} ids came back")
    return sorted(by_id.items())


def _row_failures(check: TargetCheck, result: dict, engine: Engine) -> list[tuple[int, object]]:
    """Every failing row (id, value) of an unexpected-rows check."""
    sql = sql_of(check.query, engine.dialect.name)
    rows = [(r["row_id"], r.get("value")) for r in _query_rows(result, engine, check.table, sql)]
    return _by_id(check, rows, int(result.get("observed_value") or 0))


def _column_failures(checks: list[TargetCheck], result: dict, engine: Engine) -> dict[str, list[tuple[int, object]]]:
    """Per check, every failing row (id, value) of a table's combined column checks (``column_checks_sql``).

    A ``not_null`` check's rows hold no value (it is null); an ``in_set`` check's the value found.
    """
    rows = _query_rows(result, engine, checks[0].table, column_checks_sql(tuple(checks), engine.dialect.name))
    out = {}
    for k, check in enumerate(checks):
        mine = [(r["row_id"], r.get(f"v{k}")) for r in rows if r[f"f{k}"]]
        out[check.check_id] = _by_id(check, mine, len(mine))
    return out


def _group(checks: Iterable[TargetCheck]) -> dict[str, list[TargetCheck]]:
    out: dict[str, list[TargetCheck]] = {}
    for c in checks:
        out.setdefault(c.table, []).append(c)
    return out


def run_target_checks(
    engine_or_url: Engine | URL | str,
    checks: list[TargetCheck],
    *,
    setting: str = "--target",
) -> TargetCheckRun:
    """Run ``checks`` in the target database; every failing row becomes a row of ``failures``."""
    url = _target_url(engine_or_url, setting)
    shown = safe_url(url)
    engine = connect(url.render_as_string(hide_password=False), setting)
    try:
        by_table = _group(checks)
        missing = sorted(set(by_table) - table_names(engine))
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise MigcheckError(f"{setting} {shown}: table {missing[0]}{more} not found (is this a trial-load target?)")
        results = _run_gx(url, shown, setting, by_table)
        try:
            return _frames(results, {c.check_id: c for c in checks}, engine, setting)
        except SQLAlchemyError as e:
            raise MigcheckError(f"{setting} {shown}: could not read the failing rows ({_one_line(e, url)})") from e
    finally:
        engine.dispose()


def import_gx():  # noqa: ANN201 - the great_expectations module and its expectations module
    """Great Expectations imported (seconds: imported only where the checks run), without its analytics.

    A worker process started ahead of the checks calls it while it waits (``WorkerProcess``).
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx, gxe


def _run_gx(url: URL, shown: str, setting: str, by_table: dict[str, list[TargetCheck]]) -> list:
    """Build the context, data source, assets, suites and checkpoints; run; return GX's results."""
    try:
        gx, gxe = import_gx()
    except Exception as e:  # noqa: BLE001 - a broken install shows as several exception types
        raise MigcheckError(f"great_expectations cannot be imported ({_one_line(e, url)}): reinstall migcheck") from e

    step = "set up the GX context"
    try:
        context = _gx_context(gx)
        step = "open the GX data source"
        ds = _data_source(context, url)
        checkpoints = []
        for table, table_checks in by_table.items():
            step = f"declare the checks of table {table}"
            asset = ds.add_table_asset(name=table, table_name=table)
            batch = asset.add_batch_definition_whole_table(name=f"{table}.whole")
            # the expectations go in with the suite: add_expectation re-serialises the suite each time
            suite = context.suites.add(
                gx.ExpectationSuite(
                    name=f"migcheck.target.{table}",
                    expectations=_expectations(gxe, table_checks, url.get_backend_name()),
                )
            )
            vd = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"migcheck.target.{table}", data=batch, suite=suite)
            )
            checkpoints.append(
                context.checkpoints.add(
                    gx.Checkpoint(
                        name=f"migcheck.target.{table}",
                        validation_definitions=[vd],
                        actions=[],
                        result_format={"result_format": "COMPLETE"},
                    )
                )
            )
        out = []
        for cp in checkpoints:
            step = f"run the checks of table {cp.name.rsplit('.', 1)[-1]}"
            out.extend(cp.run().run_results.values())
    except MigcheckError:
        raise
    except Exception as e:  # noqa: BLE001 - GX and the driver raise many kinds; each is a one-line reason
        raise MigcheckError(f"{setting} {shown}: could not {step} ({_one_line(e, url)})") from e
    return out


def _frames(
    suite_results: list,
    by_id: dict[str, TargetCheck],
    engine: Engine,
    setting: str,
) -> TargetCheckRun:
    failures: list[dict] = []
    results: list[dict] = []
    shown = safe_url(engine.url)
    for suite_result in suite_results:
        for r in suite_result.results:
            meta = r.expectation_config.meta
            group = [by_id[c] for c in meta.get("check_ids") or [meta["check_id"]]]
            error = _raised(r.exception_info)
            if error is not None:
                line = error.strip().splitlines()[0] if error.strip() else "unknown error"
                what = group[0].check_id if len(group) == 1 else f"{', '.join(c.check_id for c in group[:2])} …"
                raise MigcheckError(f"{setting} {shown}: target check {what} failed to run ({line[:200]})")
            result = r.result or {}
            failing = (
                _column_failures(group, result, engine)
                if "check_ids" in meta
                else {group[0].check_id: _row_failures(group[0], result, engine)}
            )
            if bool(r.success) != (not any(failing.values())):
                raise MigcheckError(
                    f"target check {group[0].check_id}: GX verdict disagrees with "
                    f"{sum(map(len, failing.values()))} failing rows"
                )
            for check in group:
                rows = failing[check.check_id]
                named = dict(check_id=check.check_id, table=check.table, column=check.column, category=check.category)
                results.append(
                    dict(**named, success=not rows, unexpected_count=len(rows), description=check.description)
                )
                for i, value in rows:
                    actual, message = check.failure(value)
                    failures.append(
                        dict(
                            **named,
                            entity=check.entity,
                            target_ref=f"{check.target_table}:{i}",
                            expected=check.expected or None,
                            actual=actual,
                            message=message,
                            _id=i,
                        )
                    )
    order = {cid: n for n, cid in enumerate(by_id)}
    results_df = pl.DataFrame(results, schema=RESULT_SCHEMA).sort(
        pl.col("check_id").replace_strict(order, return_dtype=pl.Int64)
    )
    failures_df = (
        pl.DataFrame(failures, schema={**FAILURE_SCHEMA, "_id": pl.Int64})
        .sort(pl.col("check_id").replace_strict(order, return_dtype=pl.Int64), "_id")
        .drop("_id")
    )
    return TargetCheckRun(failures_df, results_df)
