"""Database faults: wrong credentials, wrong column types, an empty target → exit 2 or findings."""

from __future__ import annotations

import shutil
import sqlite3

import polars as pl
import pytest
import sqlalchemy as sa

from checks.errors import MigcheckError
from pipelines.io.target_db import connect
from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load


@pytest.fixture()
def loaded(tmp_path, sample_extract):
    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    db = tmp_path / "t.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="none")
    return extract, db


def _run(extract, url, tmp_path, name="r"):
    out = tmp_path / name
    r = run_validation(extract, url, "TL", out, history_url=f"sqlite:///{tmp_path / 'h.db'}")
    return r, pl.read_parquet(out / "discrepancies.parquet").filter(
        ~pl.col("check").str.contains(r"\.source\.|\.count$")
    )


@pytest.mark.postgres
def test_wrong_credentials(pg_url):
    url = sa.make_url(pg_url).set(username="no_such_role", password="s3cret")
    with pytest.raises(MigcheckError) as e:
        connect(url.render_as_string(hide_password=False))
    assert "cannot connect" in e.value.reason and "s3cret" not in e.value.reason and e.value.transient


def test_wrong_column_types_give_findings_not_crashes(loaded, tmp_path):
    extract, db = loaded
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.begin() as c:
        e1, e2 = [r[0] for r in c.execute(sa.text("select encntr_id from encounter order by encntr_id limit 2"))]
        c.execute(sa.text("update encounter set reg_dt_tm = 'not a date' where encntr_id = :i"), {"i": e1})
        c.execute(sa.text("update encounter set encntr_type_cd = 'abc' where encntr_id = :i"), {"i": e2})
    eng.dispose()
    r, d = _run(extract, f"sqlite:///{db}", tmp_path)
    got = set(d.filter(pl.col("severity") != "info").select("category", "target_ref", "column").iter_rows())
    assert ("value_mismatch", f"encounter:{e1}", "reg_dt_tm") in got
    assert ("invalid_code", f"encounter:{e2}", "encntr_type_cd") in got
    assert len(got) == 2, got
    assert r.ledger_balanced


@pytest.mark.postgres
def test_postgresql_column_of_another_type_is_read(tmp_path, sample_extract, pg_url, monkeypatch):
    # the child tables in batches of 50 rows: ranges of their primary keys
    monkeypatch.setattr("pipelines.run.staging.BATCH_ROWS", 50)
    monkeypatch.setattr("pipelines.run.staging.BLOB_BATCH_ROWS", 20)
    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    simulate_trial_load(extract, pg_url, faults="none")
    eng = sa.create_engine(pg_url)
    with eng.begin() as c:  # a vendor stored timestamps as text and ids as numeric
        c.execute(sa.text("ALTER TABLE encounter ALTER COLUMN reg_dt_tm TYPE text"))
        c.execute(sa.text("ALTER TABLE diagnosis ALTER COLUMN nomenclature_id TYPE numeric(20,0)"))
    eng.dispose()
    _, d = _run(extract, pg_url, tmp_path)
    assert d.filter(pl.col("severity") != "info").height == 0


def test_an_empty_target_is_all_missing(loaded, tmp_path):
    extract, db = loaded
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.begin() as c:
        for t in ("person", "person_alias", "encounter", "encntr_alias", "diagnosis", "procedure", "orders", "allergy"):
            c.execute(sa.text(f'delete from "{t}"'))
    eng.dispose()
    r, d = _run(extract, f"sqlite:///{db}", tmp_path)
    assert r.exit_code == 1 and r.ledger_balanced
    missing = d.filter(pl.col("category") == "missing_in_target")
    assert set(missing["entity"]) == {"person"}  # everything else is folded under its missing person
    ledger = pl.read_parquet(tmp_path / "r" / "ledger.parquet")
    assert "migrated" not in set(ledger["disposition"])


def test_a_database_without_the_schema_is_exit_2(tmp_path, sample_extract):
    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE unrelated (x INTEGER)").connection.close()
    with pytest.raises(MigcheckError, match="missing in the target database"):
        run_validation(
            extract,
            f"sqlite:///{tmp_path / 'empty.db'}",
            "TL",
            tmp_path / "r",
            history_url=f"sqlite:///{tmp_path / 'h.db'}",
        )


def test_wrong_column_types_in_child_tables_read_in_batches(loaded, tmp_path, monkeypatch):
    # child tables are read in batches (here of 50 rows); a value connectorx cannot read makes the
    # table be read again through SQLAlchemy, from its first row: each row once, the fault found
    monkeypatch.setattr("pipelines.run.staging.BATCH_ROWS", 50)
    monkeypatch.setattr("pipelines.run.staging.BLOB_BATCH_ROWS", 20)
    extract, db = loaded
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.begin() as c:
        d1 = c.execute(sa.text("select diagnosis_id from diagnosis order by diagnosis_id desc limit 1")).scalar()
        c.execute(sa.text("update diagnosis set nomenclature_id = 'abc' where diagnosis_id = :i"), {"i": d1})
        n1 = c.execute(sa.text("select clinical_event_id from clinical_event order by 1 desc limit 1")).scalar()
        c.execute(
            sa.text("update clinical_event set event_end_dt_tm = 'not a date' where clinical_event_id = :i"), {"i": n1}
        )
    eng.dispose()
    r, d = _run(extract, f"sqlite:///{db}", tmp_path)
    got = set(d.filter(pl.col("severity") != "info").select("category", "target_ref", "column").iter_rows())
    assert ("invalid_code", f"diagnosis:{d1}", "nomenclature_id") in got
    assert ("value_mismatch", f"clinical_event:{n1}", "event_end_dt_tm") in got
    assert len(got) == 2, got
    assert r.ledger_balanced and r.summary["records_read"] > 0


def test_an_encounter_loaded_twice_names_its_record_and_the_first_load(loaded, tmp_path):
    # the vendor loads one legacy encounter twice, both rows with its VISITID alias; the second is
    # unexpected, named by the legacy record and by the encounter that already accounts for it
    extract, db = loaded
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.begin() as c:
        enc = [r[1] for r in c.execute(sa.text("pragma table_info(encounter)"))]
        als = [r[1] for r in c.execute(sa.text("pragma table_info(encntr_alias)"))]
        first, alias, system = c.execute(
            sa.text(
                "select e.encntr_id, a.alias, a.contributor_system_cd from encounter e join encntr_alias a "
                "using (encntr_id) where a.contributor_system_cd = (select code_value from code_value "
                "where code_set = 89 and cdf_meaning = 'PAS') order by e.encntr_id limit 1"
            )
        ).one()
        second = c.execute(sa.text("select max(encntr_id) + 1 from encounter")).scalar()
        rest = [x for x in enc if x != "encntr_id"]
        c.execute(
            sa.text(
                f"insert into encounter (encntr_id, {', '.join(rest)}) select :n, {', '.join(rest)} "
                "from encounter where encntr_id = :i"
            ),
            {"n": second, "i": first},
        )
        keep = [x for x in als if x not in ("encntr_alias_id", "encntr_id")]
        c.execute(
            sa.text(
                f"insert into encntr_alias (encntr_alias_id, encntr_id, {', '.join(keep)}) "
                f"select (select max(encntr_alias_id) + 1 from encntr_alias), :n, {', '.join(keep)} "
                "from encntr_alias where encntr_id = :i"
            ),
            {"n": second, "i": first},
        )
    eng.dispose()
    r, d = _run(extract, f"sqlite:///{db}", tmp_path)
    bad = d.filter(pl.col("severity") != "info")
    assert bad.select("category", "entity", "source_ref", "target_ref").rows() == [
        ("unexpected_in_target", "encounter", f"pas:kontakt:{alias}", f"encounter:{second}")
    ]
    assert bad["message"].item() == (
        f"encounter loaded twice: its VISITID alias names a legacy record that encounter:{first} already accounts for"
    )
    ledger = pl.read_parquet(tmp_path / "r" / "ledger.parquet")
    assert ledger.filter(pl.col("source_ref") == f"pas:kontakt:{alias}")["disposition"].item() == (
        "migrated_with_differences"
    )
    assert r.ledger_balanced
