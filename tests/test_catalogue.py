"""Issue #9: every check declared once in ``checks.catalogue``; ids, owners, actions, JUnit derive from it.

One faulted trial load of the sample extract (SQLite) with ``pas/atgard.csv`` missing and
``pcs/labresults.jsonl`` empty, validated once; the tests read its report. The rest are small
frames through the real ``discrepancies`` and the real mappings.
"""

from __future__ import annotations

import dataclasses
import shutil
import xml.etree.ElementTree as ET

import openpyxl
import polars as pl
import pytest

from checks import catalogue
from checks.catalogue import EXTRACT_FILE, REGISTRY, SOURCE, UndeclaredCheck, checks_run
from checks.discrepancies import DISCREPANCY_COLUMNS, discrepancies, owner
from checks.errors import MigcheckError
from checks.findings import FINDING_SCHEMA_INFO
from checks.gates import load_gates
from checks.mapping import load_mappings
from checks.target_checks import build_target_checks
from pipelines.report.excel import OWNER_FILES
from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load

from conftest import MAPPINGS


@pytest.fixture(scope="module")
def mappings():
    return load_mappings(MAPPINGS)


@pytest.fixture(scope="module")
def report(sample_extract, tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    db = root / "target.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="default", seed=3)
    (extract / "pas" / "atgard.csv").unlink()  # the vendor loaded it; this extract lacks it
    (extract / "pcs" / "labresults.jsonl").write_bytes(b"")
    out = root / "report"
    run_validation(extract, f"sqlite:///{db}", "TL1", out, history_url=f"sqlite:///{root / 'h.db'}")
    return out, pl.read_parquet(out / "discrepancies.parquet")


def _finding(check: str, category: str, **kw) -> dict:
    row = {c: None for c in FINDING_SCHEMA_INFO} | {"check": check, "category": category, "_info": False}
    row["message"] = f"a {category} finding of {check}"  # every finding says what is wrong
    return row | kw


def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=FINDING_SCHEMA_INFO)


# --- the declarations -----------------------------------------------------------------------


def test_every_target_check_built_for_the_database_is_the_catalogues(mappings):
    built = build_target_checks(mappings.code_value, mappings.nomenclature)
    declared = {c.id for c in REGISTRY.values() if c.layer == "target"}
    assert {t.check_id for t in built} == declared and len(built) == len(declared)
    for t in built:
        c = REGISTRY[t.check_id]
        assert (t.category, t.entity, t.description) == (c.category, c.entity, c.description), t.check_id


def test_each_check_names_its_owner_in_its_action_and_severity_follows_its_category():
    frame = catalogue.catalogue_frame()
    assert frame.height == len(REGISTRY) == frame["check"].n_unique()
    for c in REGISTRY.values():
        assert c.action.startswith(catalogue.OWNER_LABEL[c.owner]), c.id
        assert c.severity == ("warning" if c.category in ("duplicate", "implausible") else "error"), c.id
        assert c.id.split(".")[0] == c.entity and c.description, c.id
    # the owners by layer: the extract and its records are the source side, codes the code map's
    by_layer = frame.group_by("layer").agg(pl.col("owner").unique().sort()).rows()
    assert dict(by_layer) == {
        "source": ["code map", "source system"],
        "extract": ["source system"],
        "reconcile": ["vendor load"],
        "target": ["vendor load"],
        "count": ["vendor load"],
        "archive": ["archive"],
    }
    assert {c.id for c in REGISTRY.values() if c.owner == "code map"} == {
        f"{e}.source.{cat}" for (e, cat) in SOURCE if cat in ("unmapped_code", "invalid_code")
    } | {c.id for c in catalogue.CODE_MAP_REVIEW.values()}
    head = ("person.x", "person", "reconcile", "value_mismatch", "vendor load")
    with pytest.raises(ValueError, match="action not beginning 'Vendor load:'"):
        catalogue.Check(*head, "Fix it", "A test.")
    with pytest.raises(ValueError, match=r"placeholders \['colour'\]"):
        catalogue.Check(*head, "Vendor load: {colour}", "A test.")


def test_the_checks_that_run_follow_the_mappings(mappings):
    run = set(checks_run(mappings, [])["check"])
    assert not {c for c in run if REGISTRY[c].layer == "target"}  # target checks switched off
    assert {"diagnosis.source.orphan", "person.source.invalid_identifier", "labresult.source.unmapped_code"} <= run
    assert "diagnosis.source.invalid_identifier" not in run and "person.source.orphan" not in run
    assert {c.id for c in EXTRACT_FILE.values()} <= run
    # allergies mapped to no table: their rules stop, and the records are unmapped as a kind
    tables = dict(mappings.tables) | {"allergy": mappings.tables["allergy"].model_copy(update={"sources": []})}
    bare = set(checks_run(dataclasses.replace(mappings, tables=tables), ["allergy.target.orphan.person_id"])["check"])
    assert {"allergy.source.orphan", "allergy.source.mandatory_missing", "allergy.source.invalid_code"} & bare == set()
    assert {"allergy.source.unmapped_code", "allergy.source.unparseable", "allergy.target.orphan.person_id"} <= bare
    with pytest.raises(UndeclaredCheck, match="allergy.target.colour"):
        checks_run(mappings, ["allergy.target.colour"])


def test_a_gate_on_a_check_or_category_migcheck_does_not_have_names_the_file(tmp_path):
    g = tmp_path / "gates.yaml"
    g.write_text("default: {max_count: 0}\nchecks:\n  encounter.reconcile.value: {max_count: 3}\n")
    assert load_gates(g).checks["encounter.reconcile.value"].max_count == 3
    g.write_text("default: {max_count: 0}\nchecks:\n  encounter.reconcile.valeu: {max_count: 3}\n")
    with pytest.raises(MigcheckError, match=r"gates.yaml.*encounter.reconcile.valeu"):
        load_gates(g)
    g.write_text("categories:\n  value_mismatches: {max_share: 0.01}\n")
    with pytest.raises(MigcheckError, match=r"gates.yaml.*value_mismatches"):
        load_gates(g)


# --- findings through discrepancies() ------------------------------------------------------------


def test_a_finding_of_an_undeclared_check_is_a_bug(mappings):
    good = _finding("person.reconcile.missing", "missing_in_target", entity="person", source_ref="pas:patient:1")
    assert discrepancies([_frame([good])], "TL", mappings).height == 1
    bad = _finding("person.reconcile.vanished", "missing_in_target", entity="person", source_ref="pas:patient:2")
    with pytest.raises(UndeclaredCheck, match=r"person\.reconcile\.vanished"):
        discrepancies([_frame([good, bad])], "TL", mappings)
    with pytest.raises(UndeclaredCheck, match="None"):
        discrepancies([_frame([good | {"check": None}])], "TL", mappings)
    wrong = good | {"category": "unexpected_in_target"}  # a check's category is its declaration's
    with pytest.raises(UndeclaredCheck, match="category"):
        discrepancies([_frame([wrong])], "TL", mappings)


def test_actions_severity_and_owner_come_from_the_catalogue(mappings):
    rows = [
        _finding("procedure.extract.file", "row_count", entity="procedure", source_system="pas", actual="0"),
        _finding("labresult.extract.file", "row_count", entity="labresult", source_system="pcs", _info=True),
        _finding(
            "diagnosis.source.unmapped_code",
            "unmapped_code",
            entity="diagnosis",
            source_system="pas",
            source_ref="pas:diagnos:1:X:1",
            column="nomenclature_id",
        ),
        _finding(
            "encounter.source.unmapped_code",
            "unmapped_code",
            entity="encounter",
            source_system="pcs",
            source_ref="pcs:visit:V-1",
            column="loc_nurse_unit_cd",
        ),
        _finding("person.source.schema", "implausible", entity="person", source_system="pas", column="postal_code"),
        _finding("encounter.source.duplicate", "duplicate", entity="encounter", source_system="pas", source_ref="x"),
        _finding("orders.reconcile.value", "value_mismatch", entity="orders", column="order_mnemonic"),
        _finding("person.count", "row_count", entity="person", source_system="pcs", _info=True),
        _finding("allergy.target.substance_exactly_one", "mandatory_missing", entity="allergy", target_ref="a:1"),
    ]
    d = discrepancies([_frame(rows)], "TL", mappings).with_columns(owner().alias("owner"))
    assert d.columns == [*DISCREPANCY_COLUMNS, "owner"]
    got = {r["check"]: (r["severity"], r["owner"], r["suggested_action"]) for r in d.iter_rows(named=True)}
    deliver = "in the next extract, with its records (or confirm it is meant to be empty)"
    assert got == {
        "procedure.extract.file": ("error", "source system", f"Source system: deliver pas/atgard.csv {deliver}"),
        "labresult.extract.file": ("info", "source system", f"Source system: deliver pcs/labresults.jsonl {deliver}"),
        "diagnosis.source.unmapped_code": (
            "error",
            "code map",
            "Code map owner: add this code to the ICD10SE nomenclature, or correct the code in PAS",
        ),
        "encounter.source.unmapped_code": (
            "error",
            "code map",
            "Code map owner: add this code to mappings/code_maps/map_pcs_unit.csv, or correct the code in PCS",
        ),
        "person.source.schema": (
            "warning",
            "source system",
            "Source system: check postal_code of this record in PAS and correct it if wrong (it is loaded as it "
            "stands)",
        ),
        "encounter.source.duplicate": (
            "warning",
            "source system",
            "Source system: remove the repeated rows of this contact id in PAS (the first row loads)",
        ),
        "orders.reconcile.value": (
            "error",
            "vendor load",
            "Vendor load: correct order_mnemonic to the source value (see message for the nature of the difference)",
        ),
        "person.count": (
            "info",
            "vendor load",
            "Vendor load: see the missing/unexpected findings of this entity for the rows behind the count",
        ),
        "allergy.target.substance_exactly_one": ("error", "vendor load", "Vendor load: fill the mandatory value"),
    }


# --- a real faulted load ----------------------------------------------------------------------


def test_every_check_of_a_faulted_load_is_declared_with_its_category(report):
    _, disc = report
    emitted = disc.select("check", "category").unique()
    assert emitted.height > 40 and catalogue.undeclared(emitted["check"]) == []
    for check, category in emitted.iter_rows():
        assert REGISTRY[check].category == category, check
    # every layer but the archive's, which runs with --archive only (tests/test_validate_archive.py)
    assert {REGISTRY[c].layer for c in emitted["check"]} == set(catalogue.LAYERS) - {"archive"}
    missing = disc.filter(pl.col("check") == "procedure.extract.file")
    assert missing.height == 1 and missing["severity"][0] == "error"
    assert missing["suggested_action"][0].startswith("Source system: deliver pas/atgard.csv in the next extract")
    empty = disc.filter(pl.col("check") == "labresult.extract.file")
    assert empty.height == 1 and empty["severity"][0] == "info"


def test_junit_has_exactly_the_catalogues_test_cases_for_the_checks_that_ran(report, mappings):
    out, disc = report
    target_ids = [c.check_id for c in build_target_checks(mappings.code_value, mappings.nomenclature)]
    expected = checks_run(mappings, target_ids)["check"].to_list()
    cases = ET.parse(out / "junit.xml").getroot().findall("testsuite/testcase")
    names = [c.get("name") for c in cases]
    assert len(names) == len(set(names)) and set(names) == set(expected)
    assert set(disc["check"]) <= set(names)  # every check with a finding ran
    for case in cases:
        assert case.get("classname") == "migcheck." + REGISTRY[case.get("name")].entity
    failing = {c.get("name") for c in cases if c.find("failure") is not None}
    errors = set(disc.filter(pl.col("severity") == "error")["check"])
    assert failing == errors  # the default gate: any error fails its check


def test_each_worklist_holds_the_findings_its_owner_declares(report):
    out, disc = report
    owners = dict(disc.select("discrepancy_id", owner()).rows())
    assert set(owners.values()) == set(OWNER_FILES) - {"archive"}  # the archive's owner: with --archive only
    for who, stem in OWNER_FILES.items():
        wb = openpyxl.load_workbook(out / "worklists" / f"{stem}.xlsx", read_only=True)
        rows = list(wb["worklist"].iter_rows(values_only=True))
        wb.close()
        ids = [r[rows[0].index("discrepancy_id")] for r in rows[1:]]
        assert sorted(ids) == sorted(i for i, o in owners.items() if o == who), who
    extract_file = disc.filter(pl.col("check") == "procedure.extract.file")["discrepancy_id"][0]
    assert owners[extract_file] == "source system"
