"""Target checks pushed down through Great Expectations, on real SQLite and PostgreSQL targets.

Each database gets one module-scoped fixture that loads a clean and a faulted target with the
simulator and runs GX once on each; the tests read those runs. The failing ids are checked against
the load's ground truth (``load_faults.csv``) and, per kind of check, against plain SQL.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from checks.errors import MigcheckError
from checks.mapping import load_mappings
from checks.target_checks import TargetCheck, build_target_checks
from checks.target_schema import CODE_SETS, DATA_TABLES, NOMENCLATURE, PRIMARY_KEY, REFERENCES, TABLES
from pipelines.io.gx_checks import run_target_checks
from pipelines.io.target_queries import sql_of
from pipelines.io.target_schema import metadata
from pipelines.synth.trial_load import simulate_trial_load

from conftest import MAPPINGS, PG_URL, REPO, SAMPLE, _pg_engine

#: ground-truth rows the target checks alone must find: (category, entity or None for any)
TARGET_FINDABLE = {
    ("orphan", None),
    ("invalid_code", None),
    ("duplicate", "person_alias"),
    ("mandatory_missing", "person_alias"),
    ("mandatory_missing", "ce_blob"),
    ("duplicate", "ce_blob"),
}


@dataclass
class Target:
    url: str
    checks: list[TargetCheck]
    clean: object  # TargetCheckRun of the clean load
    faulted: object  # TargetCheckRun of the faulted load
    faulted_url: str
    truth: pl.DataFrame


@pytest.fixture(scope="module")
def extract(tmp_path_factory) -> Path:
    """The committed sample extract, or a fresh one of 300 patients with the default defects."""
    if (SAMPLE / "pas" / "patient.csv").exists():
        return SAMPLE
    from pipelines.synth.generator import generate

    out = tmp_path_factory.mktemp("gen") / "extract"
    generate(out, patients=300, seed=1, defects="default")
    return out


def _load_and_check(extract: Path, work: Path, clean_url: str, faulted_url: str, dialect: str) -> Target:
    m = load_mappings(MAPPINGS)
    checks = build_target_checks(m.code_value, m.nomenclature)
    clean_src, faulted_src = work / "clean_src", work / "faulted_src"
    shutil.copytree(extract, clean_src)
    shutil.copytree(extract, faulted_src)
    simulate_trial_load(clean_src, clean_url, faults="none", seed=1)
    clean = run_target_checks(clean_url, checks)
    simulate_trial_load(faulted_src, faulted_url, faults="default", seed=1)
    faulted = run_target_checks(faulted_url, checks)
    truth = pl.read_csv(faulted_src / "load_faults.csv", infer_schema_length=0)
    return Target(clean_url, checks, clean, faulted, faulted_url, truth)


@pytest.fixture(scope="module")
def sqlite_target(extract, tmp_path_factory) -> Target:
    work = tmp_path_factory.mktemp("sqlite_target")
    return _load_and_check(
        extract,
        work,
        f"sqlite:///{work / 'clean.db'}",
        f"sqlite:///{work / 'faulted.db'}",
        "sqlite",
    )


@pytest.fixture(scope="module")
def pg_target(extract, tmp_path_factory):
    """Like conftest's ``pg_url`` (fresh schemas in ``search_path``), module-scoped: GX runs once."""
    eng = _pg_engine()
    if eng is None:
        pytest.skip(f"no PostgreSQL server answers at {PG_URL.split('@')[-1]} (set MIGCHECK_TEST_PG_URL)")
    schemas = [f"t_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with eng.begin() as c:
        for s in schemas:
            c.execute(sa.text(f'CREATE SCHEMA "{s}"'))
    urls = [
        sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={s}"}).render_as_string(hide_password=False)
        for s in schemas
    ]
    try:
        yield _load_and_check(extract, tmp_path_factory.mktemp("pg_target"), urls[0], urls[1], "postgresql")
    finally:
        with eng.begin() as c:
            for s in schemas:
                c.execute(sa.text(f'DROP SCHEMA "{s}" CASCADE'))
        eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target(request) -> Target:
    return request.getfixturevalue("sqlite_target" if request.param == "sqlite" else "pg_target")


def _rows(url: str, sql: str) -> list[int]:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return sorted(r[0] for r in c.execute(sa.text(sql)))
    finally:
        eng.dispose()


def _refs(run, check_id: str) -> list[int]:
    refs = run.failures.filter(pl.col("check_id") == check_id)["target_ref"].to_list()
    return sorted(int(r.split(":")[1]) for r in refs)


# -- declarations --------------------------------------------------------------------------------


def test_checks_are_declared_from_the_schema():
    m = load_mappings(MAPPINGS)
    checks = build_target_checks(m.code_value, m.nomenclature)
    ids = {c.check_id for c in checks}
    not_null = {(t, c.name) for t in DATA_TABLES for c in TABLES[t] if not c.nullable and not c.primary_key}
    assert {f"{t}.target.not_null.{c}" for t, c in not_null} == {c.check_id for c in checks if c.kind == "not_null"}
    assert {f"{t}.target.code.{c}" for t, c in CODE_SETS} <= ids
    assert {f"{t}.target.nomenclature.{c}" for t, c in NOMENCLATURE} <= ids
    assert {f"{t}.target.orphan.{c}" for t, c in REFERENCES} <= ids
    assert {
        "person_alias.target.identity_missing",
        "person_alias.target.identity_duplicate",
        "allergy.target.substance_exactly_one",
    } <= ids
    cv = m.code_value
    sex = next(c for c in checks if c.check_id == "person.target.code.sex_cd")
    assert set(sex.value_set) == set(cv.filter((pl.col("code_set") == 57) & (pl.col("active_ind") == 1))["code_value"])
    unit = next(c for c in checks if c.check_id == "encounter.target.code.loc_nurse_unit_cd")
    inactive = cv.filter((pl.col("code_set") == 220) & (pl.col("active_ind") == 0))["code_value"].to_list()
    assert inactive and not set(inactive) & set(unit.value_set)
    for c in checks:
        if c.kind == "unexpected_rows":
            for dialect in ("sqlite", "postgresql"):
                assert sql_of(c.query, dialect).count("{batch}") == 1, (c.check_id, dialect)
    missing = next(c for c in checks if c.check_id == "person_alias.target.identity_missing")
    assert (missing.table, missing.entity, missing.target_table) == ("person", "person_alias", "person")


def test_neither_module_imports_great_expectations():
    code = "import sys, checks.target_checks, pipelines.io.gx_checks; sys.exit('great_expectations' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# -- clean and faulted loads, both databases -------------------------------------------------------


def test_clean_load_passes_every_check(target):
    assert target.clean.failures.height == 0, target.clean.failures
    assert target.clean.results.height == len(target.checks)
    assert target.clean.results["success"].all()
    assert target.clean.results["unexpected_count"].sum() == 0


def test_faulted_load_findings_match_the_ground_truth(target):
    truth = target.truth.filter(
        pl.struct("category", "entity").map_elements(
            lambda r: (r["category"], None) in TARGET_FINDABLE or (r["category"], r["entity"]) in TARGET_FINDABLE,
            return_dtype=pl.Boolean,
        )
    )
    assert truth.height >= 8  # orphans, invalid codes, identity missing and doubled
    want = sorted(truth.select("category", "entity", "target_ref").iter_rows())
    got = sorted(target.faulted.failures.select("category", "entity", "target_ref").iter_rows())
    assert got == want
    # results agree with failures
    per_check = target.faulted.failures.group_by("check_id").len()
    res = target.faulted.results.join(per_check, on="check_id", how="left").with_columns(pl.col("len").fill_null(0))
    assert (res["unexpected_count"] == res["len"]).all()
    assert (res["success"] == (res["len"] == 0)).all()


def test_failing_ids_agree_with_plain_sql(target):
    url, run = target.faulted_url, target.faulted
    # in_set: a code that is no active code value of its code set, against the target's own code_value
    assert (
        _refs(run, "person.target.code.sex_cd")
        == _rows(
            url,
            "select person_id from person where sex_cd not in "
            "(select code_value from code_value where code_set = 57 and active_ind = 1)",
        )
        != []
    )
    assert (
        _refs(run, "encounter.target.code.loc_nurse_unit_cd")
        == _rows(
            url,
            "select encntr_id from encounter where loc_nurse_unit_cd not in "
            "(select code_value from code_value where code_set = 220 and active_ind = 1)",
        )
        != []
    )
    # unexpected_rows: orphans, identity aliases
    assert (
        _refs(run, "diagnosis.target.orphan.encntr_id")
        == _rows(
            url,
            "select diagnosis_id from diagnosis d where not exists "
            "(select 1 from encounter e where e.encntr_id = d.encntr_id)",
        )
        != []
    )
    identity = "(select code_value from code_value where code_set = 4 and cdf_meaning in ('PNR', 'SAMNR', 'RESNR'))"
    assert (
        _refs(run, "person_alias.target.identity_missing")
        == _rows(
            url,
            f"select person_id from person p where not exists (select 1 from person_alias a "
            f"where a.person_id = p.person_id and a.person_alias_type_cd in {identity})",
        )
        != []
    )
    assert (
        _refs(run, "person_alias.target.identity_duplicate")
        == _rows(
            url,
            f"select person_alias_id from (select person_alias_id, row_number() over "
            f"(partition by alias order by person_alias_id) as n from person_alias "
            f"where person_alias_type_cd in {identity}) x where n > 1",
        )
        != []
    )


# -- every failing row, not GX's sample; not_null on a target without NOT NULL constraints -----------


def test_every_failing_row_comes_back_beyond_gx_limits(sqlite_target, tmp_path, monkeypatch):
    """GX returns 20 index rows and 200 query rows unless told otherwise: 250 failures of each kind.

    An unexpected-rows query's rows all come from GX itself, in one run of its query: it is run
    neither a second time to count them nor a third time to name them. The not-null and code
    checks of a table are one query: each table is read once for all of them.
    """
    from pipelines.io import gx_checks

    again: list[str] = []
    run_again = gx_checks._all_rows
    monkeypatch.setattr(gx_checks, "_all_rows", lambda engine, sql: again.append(sql) or run_again(engine, sql))
    src = sa.make_url(sqlite_target.faulted_url).database
    db = tmp_path / "relaxed.db"
    relaxed = sa.MetaData()
    for t in metadata.sorted_tables:  # the same schema without NOT NULL: what a vendor's target may be
        sa.Table(
            t.name,
            relaxed,
            *(sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=not c.primary_key) for c in t.columns),
        )
    eng = sa.create_engine(f"sqlite:///{db}")
    relaxed.create_all(eng)
    with eng.begin() as c:
        c.exec_driver_sql(f"attach database '{src}' as src")
        for t in metadata.sorted_tables:
            c.exec_driver_sql(f'insert into main."{t.name}" select * from src."{t.name}"')
        c.exec_driver_sql("update encounter set reg_dt_tm = null where encntr_id % 4 = 0")
        c.exec_driver_sql("update diagnosis set diag_type_cd = 999 where diagnosis_id % 5 = 0")
        c.exec_driver_sql("update diagnosis set encntr_id = encntr_id + 10000000 where diagnosis_id % 6 = 0")
    eng.dispose()
    url = f"sqlite:///{db}"
    checks = [c for c in sqlite_target.checks if c.table in ("encounter", "diagnosis")]
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # noqa: ANN001 - every statement any engine runs
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        run = run_target_checks(url, checks)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    orphan = [q for q in statements if "JOIN" in q.upper() and "diagnosis" in q and "encounter" in q]
    assert len(orphan) == 1, orphan  # the orphan query ran once, in GX: not again to count its rows
    columns = [q for q in statements if "CASE WHEN" in q.upper()]
    assert len(columns) == 2, columns  # encounter and diagnosis: one read each for every column check
    assert sum("reg_dt_tm IS NULL" in q for q in statements) == 1
    cases = {
        "encounter.target.not_null.reg_dt_tm": "select encntr_id from encounter where reg_dt_tm is null",
        "diagnosis.target.code.diag_type_cd": "select diagnosis_id from diagnosis where diag_type_cd = 999",
        "diagnosis.target.orphan.encntr_id": "select diagnosis_id from diagnosis d where not exists "
        "(select 1 from encounter e where e.encntr_id = d.encntr_id)",
    }
    for check_id, sql in cases.items():
        want = _rows(url, sql)
        assert len(want) > 200, check_id
        assert _refs(run, check_id) == want, check_id
        row = run.results.filter(pl.col("check_id") == check_id).row(0, named=True)
        assert row["unexpected_count"] == len(want) and row["success"] is False
    assert not [sql for sql in again if "JOIN" in sql.upper()], again  # the orphan query ran in GX only


# -- faults become one-line MigcheckErrors ---------------------------------------------------------


def test_target_without_tables_is_a_one_line_error(sqlite_target, tmp_path):
    empty = tmp_path / "empty.db"
    sa.create_engine(f"sqlite:///{empty}").connect().close()
    with pytest.raises(MigcheckError) as e:
        run_target_checks(f"sqlite:///{empty}", sqlite_target.checks)
    assert "--target" in e.value.reason and "not found" in e.value.reason and "\n" not in str(e.value)


def test_unreachable_database_error_hides_the_password(sqlite_target):
    with pytest.raises(MigcheckError) as e:
        run_target_checks("postgresql+psycopg://migcheck:s3cretpw@127.0.0.1:1/none", sqlite_target.checks)
    assert "s3cretpw" not in str(e.value) and "--target" in e.value.reason and "\n" not in str(e.value)


def test_primary_keys_name_target_refs(sqlite_target):
    run = sqlite_target.faulted
    for check_id, table in run.failures.select("check_id", "table").unique().iter_rows():
        refs = run.failures.filter(pl.col("check_id") == check_id)["target_ref"]
        prefix = "person" if check_id == "person_alias.target.identity_missing" else table
        assert refs.str.starts_with(f"{prefix}:").all(), check_id
    assert set(PRIMARY_KEY) >= set(DATA_TABLES)
