"""Issue #8: every finding says which value failed which rule, and nothing personal leaks.

One faulted trial load of the sample extract (SQLite), validated once; the tests read its report:
unmapped and inactive codes show the code as found and where to add it, ``unmapped_codes.csv``
names the records holding each code, every target-check finding names the value it found and
what was expected, identity numbers never appear, and no GX Data Docs are written (D40, D41).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from checks.mapping import load_mappings
from checks.target_checks import build_target_checks
from checks.target_schema import PRIMARY_KEY
from pipelines.io.extract import read_extract
from pipelines.io.gx_checks import TargetCheckRun, run_target_checks
from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load

from conftest import MAPPINGS

_IN_SET = (".target.code.", ".target.nomenclature.")


@pytest.fixture(scope="module")
def report(sample_extract, tmp_path_factory):
    root = tmp_path_factory.mktemp("actionable")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    db = root / "target.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="default", seed=1)
    out = root / "report"
    run_validation(extract, f"sqlite:///{db}", "TL1", out)
    disc = pl.read_csv(out / "discrepancies.csv", infer_schema_length=0)
    return extract, db, out, disc


def _raw_codes(extract: Path) -> dict[tuple[str, str, str], str | None]:
    """(entity, source_ref, target column) → the legacy code of every coded column, as the extract holds it."""
    m = load_mappings(MAPPINGS)
    frames = read_extract(extract).frames
    out: dict[tuple[str, str, str], str | None] = {}
    for table, tm in m.tables.items():
        for src in tm.sources:
            df = frames[src.records]
            for col, cm in src.columns.items():
                if cm.source is None or (cm.code_map is None and cm.nomenclature is None):
                    continue
                for ref, raw in df.select("source_ref", pl.col(cm.source).cast(pl.String)).iter_rows():
                    out[(table, ref, col)] = raw
    return out


def _source(disc: pl.DataFrame, category: str) -> pl.DataFrame:
    return disc.filter(
        (pl.col("category") == category)
        & pl.col("check").str.contains(".source.", literal=True)
        & (pl.col("entity") != "labresult")
    )


def test_unmapped_and_inactive_codes_show_the_code_as_found_and_where_to_add_it(report):
    extract, _, _, disc = report
    raw = _raw_codes(extract)
    unmapped = _source(disc, "unmapped_code")
    assert unmapped.height > 5 and set(unmapped["entity"]) >= {"person", "encounter", "diagnosis"}
    for r in unmapped.iter_rows(named=True):
        code = raw[(r["entity"], r["source_ref"], r["column"])]
        assert code is not None and r["actual"] == code.strip() != "", r
        assert f"'{r['actual']}'" in r["message"] and not r["message"].startswith("the code for"), r
        assert r["expected"], r
        if "nomenclature" in r["expected"]:
            assert r["message"].endswith("nomenclature"), r
        else:
            assert r["expected"].startswith("a source_code of mappings/code_maps/"), r
            assert r["message"].endswith(r["expected"].removeprefix("a source_code of ")), r
    # a sex code is a code: shown as found (M/K/1/2/X…), never masked
    sex = unmapped.filter(pl.col("column") == "sex_cd")
    assert sex.height and not sex["actual"].str.contains("*", literal=True).any()
    inactive = _source(disc, "invalid_code")
    assert inactive.height > 0
    for r in inactive.iter_rows(named=True):
        code = raw[(r["entity"], r["source_ref"], r["column"])]
        assert r["actual"] and r["actual"].startswith(code.strip()) and "inactive" in r["actual"], r
        assert r["expected"] and f"'{code.strip()}'" in r["message"] and "inactive" in r["message"], r


def test_unmapped_codes_csv_names_every_record_holding_the_code(report):
    _, _, out, disc = report
    csv = pl.read_csv(out / "unmapped_codes.csv", infer_schema_length=0)
    assert "source_refs" in csv.columns
    refs = {}
    for r in csv.iter_rows(named=True):
        listed = r["source_refs"].split(" | ")
        assert len(listed) == len(set(listed)) == int(r["count"]), r  # every record, none capped
        refs[(r["entity"], r["source_system"], r["column"], r["code"])] = listed
    unmapped = _source(disc, "unmapped_code")
    for r in unmapped.iter_rows(named=True):
        key = (r["entity"], r["source_system"], r["column"], r["actual"])
        assert r["source_ref"] in refs[key], key
    assert sum(len(v) for v in refs.values()) == unmapped.height


def _target_value(db: Path, column: str, target_ref: str):
    table, row_id = target_ref.split(":")
    pk = PRIMARY_KEY[table]
    eng = sa.create_engine(f"sqlite:///{db}")
    try:
        with eng.connect() as c:
            return c.execute(sa.text(f'select "{column}" from "{table}" where {pk} = {int(row_id)}')).scalar_one()
    finally:
        eng.dispose()


def test_target_check_findings_name_the_value_and_what_was_expected(report):
    _, db, _, disc = report
    target = disc.filter(pl.col("check").str.contains(".target.", literal=True))
    assert target.height >= 8 and target["check"].str.contains(".target.code.", literal=True).any()
    for r in target.iter_rows(named=True):
        assert r["expected"], r
        assert r["message"] and r["message"] != "target check failed", r
        assert r["column"] is None or r["column"] in r["message"], r
    in_set = target.filter(pl.col("check").str.contains("|".join(_IN_SET).replace(".", r"\.")))
    assert in_set.height > 0
    for r in in_set.iter_rows(named=True):
        found = _target_value(db, r["column"], r["target_ref"])
        assert r["actual"] == str(found) and r["message"].startswith(f"{r['column']} {found}"), r
        assert "not an active" in r["message"], r
    orphans = target.filter(pl.col("category") == "orphan")
    assert orphans.height > 0
    for r in orphans.iter_rows(named=True):
        dangling = _target_value(db, r["column"], r["target_ref"])
        assert r["actual"] == str(dangling) and "names no" in r["message"], r
    sex = target.filter(pl.col("check") == "person.target.code.sex_cd")
    assert sex.height and sex["expected"].str.contains("code set 57 (MALE, FEMALE, UNKNOWN)", literal=True).all()
    assert sex["message"].str.contains("is not an active code value of code set 57 (sex)", literal=True).all()


def _identity_numbers(extract: Path) -> set[str]:
    frames = read_extract(extract).frames
    ids = {v for v in frames["pas/patient"]["PNR"].drop_nulls().to_list() if len(v) >= 10}
    ids |= {v for v in frames["pcs/patients"]["identity_value"].drop_nulls().to_list() if len(v) >= 10}
    return ids


def test_identity_values_are_masked_and_no_identity_number_appears(report):
    extract, _, out, disc = report
    dup = disc.filter(pl.col("check") == "person_alias.target.identity_duplicate")
    assert dup.height > 0
    assert dup["actual"].str.starts_with("*** (").all() and dup["expected"].is_not_null().all()
    assert dup["message"].str.contains("*** (", literal=True).all()
    ids = _identity_numbers(extract)
    assert len(ids) > 100
    text = (out / "discrepancies.csv").read_text(encoding="utf-8") + (out / "unmapped_codes.csv").read_text(
        encoding="utf-8"
    )
    assert not [i for i in ids if i in text], "identity number in the report"


def test_no_gx_data_docs(report):
    _, _, out, _ = report
    assert "data_docs_dir" not in inspect.signature(run_target_checks).parameters
    assert "data_docs" not in {f.name for f in dataclasses.fields(TargetCheckRun)}
    assert not (out / "gx_data_docs").exists()
    assert "gx_data_docs" not in json.dumps(json.loads((out / "summary.json").read_text(encoding="utf-8")))


def test_every_check_declares_what_it_expects():
    m = load_mappings(MAPPINGS)
    for c in build_target_checks(m.code_value, m.nomenclature):
        assert c.expected and c.message, c.check_id
        shown, message = c.failure(None if c.kind == "not_null" else 123456789012)
        assert message and "{" not in message, c.check_id
        if c.check_id == "person_alias.target.identity_duplicate":
            assert "123456789012" not in (shown or "") + message
