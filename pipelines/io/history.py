"""The trial-load history: every validation run and its findings, in a database (SQLAlchemy).

SQLite beside the reports by default, PostgreSQL by URL (``--history`` or
``MIGCHECK_HISTORY_URL``). A run is compared with the latest run of the same migration for
another trial load: what it had and this one has is ``persisting``, what it did not have is
``new``, what it had and this one lacks is ``resolved``. Only discrepancy rows are stored — they
hold no personal data in clear (masked values only).
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checks.discrepancies import DISCREPANCY_COLUMNS
from checks.errors import MigcheckError
from pipelines.io.target_db import connect

meta = sa.MetaData()
runs = sa.Table(
    "migcheck_run",
    meta,
    sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("migration", sa.String(100), nullable=False, index=True),
    sa.Column("trial_load", sa.String(100), nullable=False),
    sa.Column("run_at", sa.DateTime, nullable=False),
    sa.Column("errors", sa.Integer, nullable=False),
    sa.Column("warnings", sa.Integer, nullable=False),
    sa.Column("waived", sa.Integer, nullable=False),
    sa.Column("new", sa.Integer, nullable=False),
    sa.Column("persisting", sa.Integer, nullable=False),
    sa.Column("resolved", sa.Integer, nullable=False),
    sa.Column("gate_passed", sa.Boolean, nullable=False),
    sa.Column("ledger_balanced", sa.Boolean, nullable=False),
)
findings = sa.Table(
    "migcheck_finding",
    meta,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("migcheck_run.run_id"), nullable=False, index=True),
    *[sa.Column(c, sa.Text, nullable=True) for c in DISCREPANCY_COLUMNS],
)

#: the stewards' decisions imported from the worklists: an audit trail, appended to, never changed
#: (``migcheck decisions import``; ``checks.decisions``)
decisions = sa.Table(
    "migcheck_decision",
    meta,
    sa.Column("decision_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("migration", sa.String(100), nullable=False, index=True),
    sa.Column("trial_load", sa.String(100), nullable=False),
    sa.Column("discrepancy_id", sa.String(16), nullable=False, index=True),
    sa.Column("check", sa.Text, nullable=False),
    sa.Column("owner", sa.String(40), nullable=False),
    sa.Column("decision", sa.String(10), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("decided_by", sa.Text, nullable=False),
    sa.Column("decided_on", sa.Date, nullable=False),
    sa.Column("expires", sa.Date, nullable=True),
    sa.Column("imported_at", sa.DateTime, nullable=False),
    sa.Column("file", sa.Text, nullable=False),
    sa.Column("sheet", sa.Text, nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
)
#: the waivers of the "waive" decisions in force: one per finding, replaced by a later decision on it
decision_waivers = sa.Table(
    "migcheck_waiver",
    meta,
    sa.Column("migration", sa.String(100), primary_key=True),
    sa.Column("discrepancy_id", sa.String(16), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("approver", sa.Text, nullable=False),
    sa.Column("expires", sa.Date, nullable=False),
    sa.Column("decided_on", sa.Date, nullable=False),
    sa.Column("trial_load", sa.String(100), nullable=False),
    sa.Column("decision_id", sa.Integer, sa.ForeignKey("migcheck_decision.decision_id"), nullable=False),
)


def open_history(url: str) -> Engine:
    """Connect, create the history tables if needed, and add the discrepancy columns they lack.

    A history an older migcheck created has the findings table without the columns added to the
    contract since (``nature``): they are added, empty for the runs recorded before.
    """
    engine = connect(url, setting="--history")
    if engine.dialect.name == "sqlite":
        engine = sa.create_engine(engine.url, connect_args={"timeout": 60})
    try:
        meta.create_all(engine)
        _add_missing_columns(engine)
    except sa.exc.SQLAlchemyError as e:
        raise MigcheckError(f"--history: cannot create the history tables ({type(e).__name__})") from e
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """``ALTER TABLE … ADD COLUMN`` (nullable text) for every discrepancy column the findings table lacks."""
    have = {c["name"] for c in sa.inspect(engine).get_columns(findings.name)}
    missing = [c for c in DISCREPANCY_COLUMNS if c not in have]
    if not missing:
        return
    prep = engine.dialect.identifier_preparer
    for col in missing:
        try:
            with engine.begin() as c:
                c.execute(sa.text(f"ALTER TABLE {prep.quote(findings.name)} ADD COLUMN {prep.quote(col)} TEXT"))
        except sa.exc.SQLAlchemyError:
            # another run may have added it meanwhile; only a column still missing is an error
            if col not in {c["name"] for c in sa.inspect(engine).get_columns(findings.name)}:
                raise


def previous_findings(engine: Engine, migration: str, trial_load: str) -> pl.DataFrame | None:
    """Findings (not resolved) of the latest run of the migration for another trial load."""
    with engine.connect() as c:
        row = c.execute(
            sa.select(runs.c.run_id)
            .where(runs.c.migration == migration, runs.c.trial_load != trial_load)
            .order_by(runs.c.run_at.desc(), runs.c.run_id.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        rows = c.execute(
            sa.select(*[findings.c[k] for k in DISCREPANCY_COLUMNS]).where(
                findings.c.run_id == row.run_id, findings.c.status != "resolved"
            )
        ).all()
    return pl.DataFrame([tuple(r) for r in rows], schema={k: pl.String for k in DISCREPANCY_COLUMNS}, orient="row")


def record_run(engine: Engine, migration: str, trial_load: str, disc: pl.DataFrame, totals: dict) -> int:
    """Store one run and its findings in one transaction; returns the run id."""
    with engine.begin() as c:
        key = c.execute(
            sa.insert(runs).values(
                migration=migration,
                trial_load=trial_load,
                run_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                **totals,
            )
        ).inserted_primary_key
        if key is None:
            raise MigcheckError("history database: the run was stored without an id")
        run_id = key[0]
        rows = disc.select(DISCREPANCY_COLUMNS).with_columns(pl.all().cast(pl.String)).to_dicts()
        if rows:
            c.execute(sa.insert(findings), [{"run_id": run_id, **r} for r in rows])
    return int(run_id)


def trend(engine: Engine, migration: str) -> list[dict]:
    """The latest run of every trial load of the migration, oldest first."""
    with engine.connect() as c:
        rows = (
            c.execute(sa.select(runs).where(runs.c.migration == migration).order_by(runs.c.run_at, runs.c.run_id))
            .mappings()
            .all()
        )
    latest: dict[str, dict] = {}
    for r in rows:
        latest[r["trial_load"]] = dict(r)  # a re-run keeps its place, with its latest figures
    return [
        {
            k: (v.replace(tzinfo=dt.UTC).isoformat(timespec="seconds") if isinstance(v, dt.datetime) else v)
            for k, v in r.items()
            if k not in ("run_id", "migration")
        }
        for r in latest.values()
    ]


def record_decisions(engine: Engine, rows: pl.DataFrame, imported_at: dt.datetime) -> int:
    """Append decisions to the audit trail and bring the waivers in line, in one transaction.

    ``rows``: ``checks.decisions.DECISION_SCHEMA``. A "waive" becomes the waiver of its finding
    (replacing an earlier one); a "fix" ends an earlier waiver of its finding. Returns the rows stored.
    """
    stamp = imported_at.astimezone(dt.UTC).replace(tzinfo=None) if imported_at.tzinfo else imported_at
    with engine.begin() as c:
        for r in rows.iter_rows(named=True):
            key = c.execute(sa.insert(decisions).values(**r, imported_at=stamp)).inserted_primary_key
            if key is None:
                raise MigcheckError("history database: a decision was stored without an id")
            c.execute(
                sa.delete(decision_waivers).where(
                    decision_waivers.c.migration == r["migration"],
                    decision_waivers.c.discrepancy_id == r["discrepancy_id"],
                )
            )
            if r["decision"] == "waive":
                c.execute(
                    sa.insert(decision_waivers).values(
                        migration=r["migration"],
                        discrepancy_id=r["discrepancy_id"],
                        reason=r["reason"],
                        approver=r["decided_by"],
                        expires=r["expires"],
                        decided_on=r["decided_on"],
                        trial_load=r["trial_load"],
                        decision_id=key[0],
                    )
                )
    return rows.height


def decision_trail(engine: Engine, migration: str | None = None) -> pl.DataFrame:
    """The audit trail of decisions (of one migration, or all), oldest first."""
    q = sa.select(decisions).order_by(decisions.c.imported_at, decisions.c.decision_id)
    if migration is not None:
        q = q.where(decisions.c.migration == migration)
    with engine.connect() as c:
        rows = [dict(r) for r in c.execute(q).mappings().all()]
    schema = {
        col.name: (
            pl.Int64
            if isinstance(col.type, sa.Integer)
            else pl.Date
            if isinstance(col.type, sa.Date) and not isinstance(col.type, sa.DateTime)
            else pl.Datetime("us")
            if isinstance(col.type, sa.DateTime)
            else pl.String
        )
        for col in decisions.columns
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def waiver_rows(engine: Engine, migration: str) -> list[dict]:
    """The waivers of the migration's "waive" decisions in force (expired ones too), by finding."""
    with engine.connect() as c:
        rows = c.execute(
            sa.select(decision_waivers)
            .where(decision_waivers.c.migration == migration)
            .order_by(decision_waivers.c.discrepancy_id)
        )
        return [dict(r) for r in rows.mappings().all()]
