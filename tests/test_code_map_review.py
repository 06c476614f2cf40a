"""Issue #15: code-map review: review columns in the maps, warnings for entries not approved, the review worklist
round trip into ``mappings/code_maps/*.csv`` (with its diff), and each map's coverage.

A real validation of a copy of ``sample_data/`` against a copy of ``mappings/`` in which one unit entry is
flagged; the code-map review worklist is filled in with openpyxl, imported with ``migcheck decisions
import``, and the next trial load (loaded by the reviewed maps) is validated.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import openpyxl
import polars as pl
import pytest

from checks.errors import MigcheckError
from checks.mapping import CODE_MAP_COLUMNS, load_mappings
from pipelines.cli import main
from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load

from conftest import MAPPINGS

REVIEW = "code_map_review"


def _flag(mappings, name: str, code: str, comment: str) -> None:
    path = mappings / "code_maps" / f"{name}.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(f"{code},"):
            meaning = line.split(",")[1]
            lines[i] = f"{code},{meaning},flagged,unit steward,2026-10-01,{comment}\n"
    path.write_text("".join(lines), encoding="utf-8")


@pytest.fixture(scope="module")
def tl1(tmp_path_factory, sample_extract):
    root = tmp_path_factory.mktemp("code_map_review")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    mappings = root / "mappings"
    shutil.copytree(MAPPINGS, mappings)
    _flag(mappings, "map_pas_unit", "MED2", "two wards share this code")
    simulate_trial_load(extract, f"sqlite:///{root / 'tl1.db'}", faults="default", seed=1, mappings_root=mappings)
    out = root / "tl1"
    history = f"sqlite:///{root / 'history.db'}"
    run_validation(
        extract,
        f"sqlite:///{root / 'tl1.db'}",
        "TL1",
        out,
        mappings_root=mappings,
        history_url=history,
        target_checks=False,
    )
    return root, out, mappings, history


def _review_sheet(path):
    wb = openpyxl.load_workbook(path)
    ws = wb[REVIEW]
    col = {c.value.strip(): c.column for c in ws[1]}
    rows = {
        (ws.cell(r, col["code_map"]).value, ws.cell(r, col["source_code"]).value): r for r in range(2, ws.max_row + 1)
    }
    return wb, ws, col, rows


def test_a_flagged_entry_warns_once_and_the_worklist_lists_what_needs_review(tl1):
    _, out, mappings, _ = tl1
    disc = pl.read_parquet(out / "discrepancies.parquet")
    warn = disc.filter(pl.col("check") == "encounter.source.code_map_review")
    assert warn.height == 1  # one finding per entry, however many records rely on it
    w = warn.row(0, named=True)
    assert (w["category"], w["severity"], w["column"], w["source_system"]) == (
        "implausible",
        "warning",
        "loc_nurse_unit_cd",
        "pas",
    )
    assert "'MED2'" in w["message"] and "mappings/code_maps/map_pas_unit.csv" in w["message"]
    assert "flagged, not approved" in w["message"] and w["actual"] == "MED2 → SAS_MED2 (flagged)"
    assert w["source_ref"].startswith("pas:kontakt:")  # the first record relying on it
    assert w["suggested_action"].startswith("Code map owner: review this entry of mappings/code_maps/map_pas_unit.csv")
    summary = json.loads((out / "summary.json").read_text())
    cov = {c["code_map"]: c for c in summary["code_maps"]}
    unit = cov["map_pas_unit"]
    assert unit["flagged"] > 1 and unit["unchecked"] == 0 and unit["unmapped"] >= 1
    assert unit["records"] == unit["approved"] + unit["flagged"] + unit["unmapped"]
    assert unit["coverage"] == round(unit["approved"] / unit["records"], 4)
    assert cov["pcs_diagnosis_type"]["coverage"] == 1.0
    assert any(g["check"] == "encounter.source.code_map_review" and g["passed"] for g in summary["gates"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="coverage-table"' in html and "map_pas_unit" in html
    # the review worklist: every unmapped code of a code map, then every entry not approved
    _, ws, col, rows = _review_sheet(out / "worklists" / "code-map-review.xlsx")
    header = [c.value for c in ws[1]]
    assert header[-5:] == ["target_cdf_meaning", "review_state", "reviewer", "reviewed_on", "comment"]
    unmapped = pl.read_csv(out / "unmapped_codes.csv", infer_schema=False)
    coded = unmapped.filter(pl.col("column").is_in(["loc_nurse_unit_cd", "encntr_type_cd", "sex_cd", "severity_cd"]))
    assert {("unmapped", c) for c in coded["code"]} <= {
        (ws.cell(r, col["kind"]).value, ws.cell(r, col["source_code"]).value) for r in rows.values()
    }
    med2 = {k: ws.cell(rows[("map_pas_unit", "MED2")], c).value for k, c in col.items()}
    assert (med2["kind"], med2["mapped_to"], med2["current_state"], med2["current_review"]) == (
        "entry",
        "SAS_MED2",
        "flagged",
        "by unit steward on 2026-10-01: two wards share this code",
    )
    assert all(med2[c] is None for c in header[-5:])  # the steward's columns start empty
    assert med2["records"] == unit["flagged"]
    avd7 = {k: ws.cell(rows[("map_pas_unit", "AVD7")], c).value for k, c in col.items()}
    assert avd7["records"] >= 1 and "SAS_MED1" in avd7["candidates"] and avd7["target_cdf_meaning"] is None


def test_review_round_trip_maps_the_approved_code_and_prints_the_diff(tl1, capsys, tmp_path):
    root, out, mappings, history = tl1
    path = out / "worklists" / "code-map-review.xlsx"
    before = {p.name: p.read_text(encoding="utf-8") for p in (mappings / "code_maps").glob("*.csv")}
    wb, ws, col, rows = _review_sheet(path)
    avd7, extreme = rows[("map_pas_unit", "AVD7")], rows[("pcs_allergy_severity", "extreme")]
    ws.cell(avd7, col["target_cdf_meaning"]).value = "SAS_MED1 "
    ws.cell(avd7, col["review_state"]).value = "approved"
    ws.cell(avd7, col["reviewer"]).value = "unit steward "
    ws.cell(avd7, col["reviewed_on"]).value = dt.datetime(2026, 11, 30)
    ws.cell(extreme, col["target_cdf_meaning"]).value = "SEVERE"
    ws.cell(extreme, col["review_state"]).value = "approved"
    ws.cell(extreme, col["reviewer"]).value = "allergy steward"
    ws.cell(extreme, col["reviewed_on"]).value = "2026-11-29"
    ws.cell(extreme, col["comment"]).value = "as the vendor's list says"
    med2 = rows[("map_pas_unit", "MED2")]  # a new review of an entry: its meaning kept
    ws.cell(med2, col["review_state"]).value = "flagged"
    ws.cell(med2, col["reviewer"]).value = "ward steward"
    ws.cell(med2, col["comment"]).value = "still two wards"
    ws.cell(1, col["comment"]).value = "comment "  # a header with a trailing space
    wb.create_sheet("scratch").append(["=SUM(1,2)"])  # an extra sheet, a formula where nothing is read
    wb.save(path)

    # a copy with every refusal: nothing is written while any row is wrong
    wb, ws, col, rows = _review_sheet(path)

    def first(name: str, but: str | None = None) -> int:
        return next(r for (m, c), r in rows.items() if m == name and c != but)

    bad = {
        first("map_pas_unit", but="AVD7"): (
            {"target_cdf_meaning": "SAS_MED3", "review_state": "approved", "reviewer": "unit steward"},
            "'SAS_MED3' is an inactive value of code set 220; choose an active one",
        ),
        first("map_pcs_unit"): (
            {"target_cdf_meaning": "NOPE", "review_state": "approved", "reviewer": "unit steward"},
            "'NOPE' is no meaning of code set 220 (reference/code_value.csv)",
        ),
        first("pas_contact_type"): (
            {"review_state": "approved", "reviewer": "PAS steward"},
            "no target_cdf_meaning (a new entry needs the meaning its code maps to)",
        ),
        first("pcs_visit_type"): (
            {"target_cdf_meaning": "PCVISIT", "review_state": "aproved"},
            "review_state 'aproved' is not one of unchecked, approved, flagged",
        ),
        first("pas_sex"): ({"target_cdf_meaning": "UNKNOWN", "review_state": '=LOWER("APPROVED")'}, None),
    }
    for r, (cells, _) in bad.items():
        for k, v in cells.items():
            ws.cell(r, col[k]).value = v
    bad[first("pas_sex")] = ({}, "review_state: a formula, type the value")
    ws.cell(avd7, col["reviewer"]).value = None
    bad[avd7] = ({}, "approved without reviewer")
    wb.save(out / "worklists" / "code-map-review (2).xlsx")
    args = ["decisions", "import", "--history", history, "--mappings", str(mappings)]
    assert main([*args, str(out / "worklists" / "code-map-review (2).xlsx")]) == 2
    err = capsys.readouterr().err.splitlines()
    where = "tl1/worklists/code-map-review (2).xlsx, sheet code_map_review, row"
    assert sorted(err[:-1]) == sorted(f"{where} {r}: {problem}" for r, (_, problem) in bad.items())
    assert err[-1] == "migcheck: 6 problems in the worklists: nothing imported"
    assert {p.name: p.read_text(encoding="utf-8") for p in (mappings / "code_maps").glob("*.csv")} == before
    (out / "worklists" / "code-map-review (2).xlsx").unlink()

    assert main([*args, str(path)]) == 0
    printed = capsys.readouterr().out
    assert "code map entries: 2 added, 1 updated" in printed
    today = dt.date.today().isoformat()
    assert "\n-MED2,SAS_MED2,flagged,unit steward,2026-10-01,two wards share this code\n" in printed
    assert f"\n+MED2,SAS_MED2,flagged,ward steward,{today},still two wards\n" in printed
    assert "--- a/code_maps/map_pas_unit.csv\n+++ b/code_maps/map_pas_unit.csv\n" in printed
    assert "\n+AVD7,SAS_MED1,approved,unit steward,2026-11-30,\n" in printed
    assert "\n+extreme,SEVERE,approved,allergy steward,2026-11-29,as the vendor's list says\n" in printed
    changed = {
        p.name for p in (mappings / "code_maps").glob("*.csv") if p.read_text(encoding="utf-8") != before[p.name]
    }
    assert changed == {"map_pas_unit.csv", "pcs_allergy_severity.csv"}
    assert not list((mappings / "code_maps").glob(".*"))  # no temporary file left
    unit = pl.read_csv(mappings / "code_maps" / "map_pas_unit.csv", infer_schema=False)
    assert unit.columns == CODE_MAP_COLUMNS and unit["source_code"].to_list()[-1] == "AVD7"
    assert main([*args, str(path)]) == 0  # the same worklist again: nothing more changes
    assert "code map entries" not in capsys.readouterr().out

    # the next load, by the reviewed maps: the approved code is mapped, the flagged entry still warns
    simulate_trial_load(root / "extract", f"sqlite:///{root / 'tl2.db'}", faults="none", mappings_root=mappings)
    out2 = root / "tl2"
    run_validation(
        root / "extract",
        f"sqlite:///{root / 'tl2.db'}",
        "TL2",
        out2,
        mappings_root=mappings,
        history_url=history,
        target_checks=False,
    )
    d1 = pl.read_parquet(out / "discrepancies.parquet")
    d2 = pl.read_parquet(out2 / "discrepancies.parquet")
    was = d1.filter((pl.col("category") == "unmapped_code") & pl.col("actual").is_in(["AVD7", "extreme"]))
    assert was.height == 2
    refs = was["source_ref"].to_list()
    assert d2.filter(pl.col("source_ref").is_in(refs) & (pl.col("status") != "resolved")).height == 0
    assert set(d2.filter(pl.col("status") == "resolved")["discrepancy_id"]) >= set(was["discrepancy_id"])
    ledger = pl.read_parquet(out2 / "ledger.parquet").filter(pl.col("source_ref").is_in(refs))
    assert ledger["disposition"].to_list() == ["migrated", "migrated"]
    review = d2.filter(pl.col("check").str.ends_with(".code_map_review") & (pl.col("status") != "resolved"))
    assert review["actual"].to_list() == ["MED2 → SAS_MED2 (flagged)"]
    cov = {c["code_map"]: c for c in json.loads((out2 / "summary.json").read_text())["code_maps"]}
    assert cov["pcs_allergy_severity"]["unmapped"] == 1  # 'lethal' is still unmapped
    assert cov["map_pas_unit"]["unmapped"] == 1 and cov["map_pas_unit"]["approved"] > 0


def test_maps_without_review_columns_load_as_unchecked_and_bad_review_values_name_file_and_line(tmp_path):
    root = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, root)
    old = root / "code_maps" / "pcs_sex.csv"
    old.write_text("source_code,target_cdf_meaning\n1,MALE\n2,FEMALE\n0,UNKNOWN\n9,UNKNOWN\n", encoding="utf-8")
    m = load_mappings(root)
    assert m.code_maps["pcs_sex"].columns == CODE_MAP_COLUMNS
    assert set(m.code_maps["pcs_sex"]["review_state"]) == {"unchecked"}
    assert set(m.code_maps["pas_sex"]["review_state"]) == {"approved"}  # the shipped maps are approved
    assert m.code_maps["pas_sex"].filter(pl.col("target_cdf_meaning") == "UNKNOWN")["source_code"][0] == ""
    unit = root / "code_maps" / "map_pas_unit.csv"
    text = unit.read_text(encoding="utf-8")
    unit.write_text(text.replace("KIR1,SAS_KIR1,approved", "KIR1,SAS_KIR1,aproved"), encoding="utf-8")
    with pytest.raises(MigcheckError, match=r"map_pas_unit.csv line 4: review_state 'aproved' is not one of"):
        load_mappings(root)
    unit.write_text(
        text.replace("KIR1,SAS_KIR1,approved,migration team,2026-06-01", "KIR1,SAS_KIR1,approved,x,1/6/2026")
    )
    with pytest.raises(MigcheckError, match=r"map_pas_unit.csv line 4: reviewed_on '1/6/2026' is not a date"):
        load_mappings(root)
    unit.write_text("code,meaning\nA,B\n", encoding="utf-8")
    with pytest.raises(MigcheckError, match=r"map_pas_unit.csv line 1: columns must be"):
        load_mappings(root)
