"""Issue #15: stewards' decisions flow back from the worklists into the history and the next load's report.

A real validation of a copy of ``sample_data/`` (trial load TL1, default load faults) writes the
worklists; they are filled in with openpyxl as a steward's spreadsheet program leaves them (an
extra sheet, typed dates, ISO text dates, trailing spaces in cells and in a header, a formula),
imported with ``migcheck decisions import``, and the next trial load of the same extract (TL2,
other faults) is validated against the same history database.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from checks.decisions import (
    DECISION_SCHEMA,
    KNOWN_SCHEMA,
    Formula,
    SheetRow,
    cell_date,
    cell_text,
    check_decisions,
    decision_counts,
    latest_decisions,
    with_decisions,
)
from pipelines.cli import main
from pipelines.io.history import decision_trail, open_history
from pipelines.report.excel import DATA_COLUMNS, DECISION_COLUMNS
from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load

from conftest import MAPPINGS

FAR = dt.date(2099, 12, 31)  # an expiry that never ages


@pytest.fixture(scope="module")
def tl1(tmp_path_factory, sample_extract):
    """TL1 validated: its report folder, the extract, the history URL and a mappings copy."""
    root = tmp_path_factory.mktemp("decisions")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    mappings = root / "mappings"
    shutil.copytree(MAPPINGS, mappings)
    history = f"sqlite:///{root / 'history.db'}"
    simulate_trial_load(extract, f"sqlite:///{root / 'tl1.db'}", faults="default", seed=1)
    out = root / "tl1"
    run_validation(
        extract,
        f"sqlite:///{root / 'tl1.db'}",
        "TL1",
        out,
        mappings_root=mappings,
        history_url=history,
        migration="west",
        target_checks=False,
    )
    return root, out, history, mappings


def _sheet(path: Path):
    wb = openpyxl.load_workbook(path)
    ws = wb["worklist"]
    col = {c.value.strip(): c.column for c in ws[1]}
    return wb, ws, col


def _row_of(ws, col: dict, discrepancy_id: str) -> int:
    return next(r for r in range(2, ws.max_row + 1) if ws.cell(r, col["discrepancy_id"]).value == discrepancy_id)


def _decide(ws, col: dict, row: int, **cells) -> None:
    for name, value in cells.items():
        ws.cell(row, col[name]).value = value


def test_decisions_flow_back_into_the_next_load(tl1, capsys):
    root, out, history, mappings = tl1
    disc = pl.read_parquet(out / "discrepancies.parquet")
    source = disc.filter(pl.col("check").str.contains(r"\.source\.") & (pl.col("severity") == "error"))
    waive_id, fix_id, other_id = source["discrepancy_id"].head(3).to_list()
    vendor_id = disc.filter(pl.col("check").str.contains(r"\.reconcile\."))["discrepancy_id"][0]
    worklists = out / "worklists"
    header = DATA_COLUMNS + DECISION_COLUMNS
    assert "expires" in DECISION_COLUMNS and "previous_decision" in DATA_COLUMNS

    # a steward's copy of the source-system worklist: typed dates, ISO text, trailing spaces, an extra sheet
    wb, ws, col = _sheet(worklists / "source-system.xlsx")
    assert [c.value for c in ws[1]] == header
    r_waive, r_fix = _row_of(ws, col, waive_id), _row_of(ws, col, fix_id)
    _decide(
        ws,
        col,
        r_waive,
        decision="waive ",
        decision_reason="Confirmed in PAS: the record is right as it is.  ",
        decided_by="PAS data steward ",
        decided_on=dt.datetime(2026, 11, 30, 9, 15),
        expires=FAR,
    )
    _decide(
        ws, col, r_fix, decision="Fix", decided_by="PAS data steward", decided_on="2026-11-30", expires="2099-01-31"
    )
    ws.cell(1, col["decided_by"]).value = "decided_by  "  # a header with trailing spaces
    wb.create_sheet("my notes").append(["call the ward on Monday"])
    wb.save(worklists / "source-system.xlsx")
    wb, ws, col = _sheet(worklists / "vendor-load.xlsx")
    r_vendor = _row_of(ws, col, vendor_id)
    _decide(ws, col, r_vendor, decision="waive", decision_reason="Known gap", decided_by="vendor lead", expires=FAR)
    wb.save(worklists / "vendor-load.xlsx")

    # a second copy deciding differently, and every kind of refusal
    wb, ws, col = _sheet(worklists / "source-system.xlsx")
    bad = {}
    _decide(ws, col, r_waive, decision="fix", decision_reason=None, decided_on=None, expires=None)
    rows = [r for r in range(2, ws.max_row + 1) if r not in (r_waive, r_fix)][:6]
    _decide(ws, col, rows[0], discrepancy_id="ffffffffffffffff", decision="fix", decided_by="PAS data steward")
    bad[rows[0]] = "unknown discrepancy_id ffffffffffffffff (not a finding of the report tl1)"
    _decide(ws, col, rows[1], decision="waive", decided_by="PAS data steward", expires=FAR)
    bad[rows[1]] = "waive without decision_reason"
    _decide(ws, col, rows[2], decision="waive", decision_reason="accepted", expires=FAR)
    bad[rows[2]] = "waive without decided_by"
    _decide(ws, col, rows[3], decision="waive", decision_reason="accepted", decided_by="lead", expires="2020-01-31")
    bad[rows[3]] = "expires 2020-01-31 lies in the past"
    _decide(ws, col, rows[4], decision="fixed", decided_by="lead")
    bad[rows[4]] = "decision 'fixed' is neither fix nor waive"
    _decide(
        ws, col, rows[5], decision="waive", decision_reason='=CONCAT("acc","epted")', decided_by="lead", expires=FAR
    )
    bad[rows[5]] = "decision_reason: a formula, type the value"
    wb.save(worklists / "source-system (2).xlsx")

    good = [worklists / f for f in ("source-system.xlsx", "vendor-load.xlsx", "code-map.xlsx", "code-map-review.xlsx")]
    args = ["decisions", "import", "--history", history, "--mappings", str(mappings)]
    assert main([*args, *map(str, good), str(worklists / "source-system (2).xlsx")]) == 2
    err = capsys.readouterr().err.splitlines()
    where = "tl1/worklists/source-system (2).xlsx, sheet worklist, row"
    expected = [f"{where} {r}: {p}" for r, p in sorted(bad.items())]
    expected.append(
        f"{where} {r_waive}: {waive_id} is decided differently in tl1/worklists/source-system.xlsx, sheet worklist, "
        f"row {r_waive} (fix here, waive there)"
    )
    assert sorted(err[:-1]) == sorted(expected)
    assert err[-1] == "migcheck: 7 problems in the worklists: nothing imported"
    engine = open_history(history)
    assert decision_trail(engine).height == 0  # nothing imported
    (worklists / "source-system (2).xlsx").unlink()

    assert main([*args, *map(str, good)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("decisions recorded: 3 (fix 1, waive 2) in sqlite:///")
    assert "  source system: fix 1, waive 1" in lines and "  vendor load: fix 0, waive 1" in lines
    # the audit trail: who, when, which load, which finding, what, why, and where it was typed
    trail = decision_trail(engine, "west")
    assert trail.height == 3
    by_id = {r["discrepancy_id"]: r for r in trail.iter_rows(named=True)}
    w = by_id[waive_id]
    assert (w["migration"], w["trial_load"], w["decision"], w["owner"]) == ("west", "TL1", "waive", "source system")
    assert w["check"] == disc.filter(pl.col("discrepancy_id") == waive_id)["check"][0]
    assert (w["reason"], w["decided_by"]) == ("Confirmed in PAS: the record is right as it is.", "PAS data steward")
    assert (w["decided_on"], w["expires"]) == (dt.date(2026, 11, 30), FAR)
    assert (w["file"], w["sheet"], w["row"]) == ("tl1/worklists/source-system.xlsx", "worklist", r_waive)
    f = by_id[fix_id]
    assert (f["decision"], f["reason"], f["decided_on"], f["expires"]) == (
        "fix",
        None,
        dt.date(2026, 11, 30),
        dt.date(2099, 1, 31),
    )
    assert by_id[vendor_id]["decided_on"] == dt.date.today()  # left empty: the day of the import
    assert all(r["imported_at"] is not None for r in trail.iter_rows(named=True))
    # importing the same worklists again records nothing twice
    assert main([*args, *map(str, good)]) == 0
    assert "already recorded, unchanged: 3" in capsys.readouterr().out
    assert decision_trail(engine).height == 3
    engine.dispose()
    # the users' waivers file is never rewritten: the decisions' waivers live in the history
    assert (mappings / "waivers.yaml").read_text() == (MAPPINGS / "waivers.yaml").read_text()

    # the next trial load of the same extract, other faults, same history
    simulate_trial_load(root / "extract", f"sqlite:///{root / 'tl2.db'}", faults="default", seed=2)
    out2 = root / "tl2"
    run_validation(
        root / "extract",
        f"sqlite:///{root / 'tl2.db'}",
        "TL2",
        out2,
        mappings_root=mappings,
        history_url=history,
        migration="west",
        target_checks=False,
    )
    d2 = pl.read_parquet(out2 / "discrepancies.parquet")
    assert (
        d2.filter(pl.col("discrepancy_id").is_in([waive_id, fix_id, other_id]))["status"].to_list()
        == ["persisting"] * 3
    )
    summary = json.loads((out2 / "summary.json").read_text())
    applied = {w["id"]: w for w in summary["waivers"]["applied"]}
    assert applied[f"D-{waive_id}"]["origin"] == "decision" and applied[f"D-{waive_id}"]["matched"] == 1
    assert applied[f"D-{waive_id}"]["approver_role"] == "PAS data steward"
    src = next(o for o in summary["decisions"]["by_owner"] if o["owner"] == "source system")
    assert src["waived_by_decision"] == 1 and src["fix_promised"] == 1 and src["fix_still_present"] == 1
    assert src["undecided"] == src["open"] - src["waived"] - src["fix_promised"]
    assert summary["decisions"]["recorded"] == 3
    # the worklists of TL2: the waived finding waived by the steward's decision, the promised fix flagged
    wb, ws, col = _sheet(out2 / "worklists" / "source-system.xlsx")
    row = {name: ws.cell(_row_of(ws, col, waive_id), c).value for name, c in col.items()}
    assert (
        row["waived"] == "yes"
        and "steward's decision (waive) by PAS data steward on 2026-11-30 in TL1" in row["waiver"]
    )
    row = {name: ws.cell(_row_of(ws, col, fix_id), c).value for name, c in col.items()}
    assert row["waived"] == "no" and row["previous_decision"].startswith("fix promised, still present, due 2099-01-31")
    assert all(row[c] is None for c in DECISION_COLUMNS)  # the decision columns are the steward's again
    assert ws.cell(_row_of(ws, col, other_id), col["previous_decision"]).value is None
    html = (out2 / "report.html").read_text(encoding="utf-8")
    assert html.count('<div class="waiver decision"><span class="pill bad">fix promised, still present</span>') == 1
    assert 'id="decisions-table"' in html and "steward&#39;s decision" in html
    # the gate no longer counts the waived error
    waived_check = disc.filter(pl.col("discrepancy_id") == waive_id)["check"][0]
    g = next(g for g in summary["gates"] if g["check"] == waived_check)
    assert g["waived"] >= 1


# --- the rules on small frames ------------------------------------------------------------------


def _known(*ids: str) -> pl.DataFrame:
    rows = [("OUT", i, "person.source.orphan", "source system", "TL1", "m") for i in ids]
    return pl.DataFrame(rows, schema=KNOWN_SCHEMA, orient="row")


def _row(n: int, file: str = "tl1/worklists/a.xlsx", **values) -> SheetRow:
    return SheetRow("OUT", file, "worklist", n, values)


def test_cells_as_a_spreadsheet_leaves_them():
    assert cell_text("  waive  ", "decision") == ("waive", None)
    assert cell_text(12.0, "decided_by") == ("12", None)
    assert cell_text(Formula("=A1"), "decided_by") == (None, "decided_by: a formula, type the value")
    assert cell_date(dt.datetime(2026, 3, 1, 8, 0), "decided_on") == (dt.date(2026, 3, 1), None)
    assert cell_date(dt.date(2026, 3, 1), "decided_on") == (dt.date(2026, 3, 1), None)
    assert cell_date("2026-03-01 ", "decided_on") == (dt.date(2026, 3, 1), None)
    assert cell_date("2026-03-01T10:00:00", "decided_on") == (dt.date(2026, 3, 1), None)
    assert cell_date("1/3/2026", "expires") == (None, "expires '1/3/2026' is not a date (YYYY-MM-DD)")
    assert cell_date(46000, "expires")[1] == "expires 46000 is not a date (YYYY-MM-DD)"


def test_rules_refuse_what_cannot_be_right_and_keep_the_rest():
    as_of = dt.date(2026, 6, 1)
    rows = [
        _row(
            2, discrepancy_id="a" * 16, decision="waive", decision_reason="ok, accepted", decided_by="lead", expires=FAR
        ),
        _row(3, discrepancy_id="b" * 16),  # no decision typed
        _row(4, discrepancy_id="b" * 16, decision_reason="forgot the word"),
        _row(5, discrepancy_id="c" * 16, decision="fix", decided_by="lead", decided_on="2026-07-01"),
        _row(
            2,
            "tl1/worklists/b.xlsx",
            discrepancy_id="a" * 16,
            decision="waive",
            decision_reason="ok, accepted",
            decided_by="lead",
            expires=FAR,
        ),  # the same decision twice: fine
    ]
    got = check_decisions(rows, _known("a" * 16, "b" * 16, "c" * 16), as_of)
    assert got.problems == (
        "tl1/worklists/a.xlsx, sheet worklist, row 4: decision_reason filled but no decision (fix or waive)",
        "tl1/worklists/a.xlsx, sheet worklist, row 5: decided_on 2026-07-01 lies in the future",
    )
    assert got.decisions.height == 0 and got.undecided == 1  # nothing when anything is wrong
    ok = check_decisions([rows[0], rows[4]], _known("a" * 16), as_of)
    assert ok.problems == () and ok.decisions.height == 2
    assert ok.decisions.schema == pl.Schema(DECISION_SCHEMA)
    assert ok.decisions["decided_on"].to_list() == [as_of, as_of]


def test_the_decision_in_force_and_the_counts_per_owner():
    audit = pl.DataFrame(
        [
            (
                "m",
                "TL1",
                "a" * 16,
                "person.source.orphan",
                "source system",
                "waive",
                "ok",
                "lead",
                dt.date(2026, 1, 1),
                FAR,
                "f",
                "worklist",
                2,
                dt.datetime(2026, 1, 1),
                1,
            ),
            (
                "m",
                "TL1",
                "a" * 16,
                "person.source.orphan",
                "source system",
                "fix",
                None,
                "lead",
                dt.date(2026, 1, 2),
                None,
                "f",
                "worklist",
                2,
                dt.datetime(2026, 1, 2),
                2,
            ),
            (
                "m",
                "TL1",
                "b" * 16,
                "person.source.orphan",
                "source system",
                "fix",
                None,
                "lead",
                dt.date(2026, 1, 2),
                None,
                "f",
                "worklist",
                3,
                dt.datetime(2026, 1, 2),
                3,
            ),
        ],
        schema={**DECISION_SCHEMA, "imported_at": pl.Datetime("us"), "decision_id": pl.Int64},
        orient="row",
    )
    current = latest_decisions(audit)
    assert current["decision"].to_list() == ["fix", "fix"]  # the later decision replaces the waive
    view = pl.DataFrame(
        {
            "discrepancy_id": ["a" * 16, "b" * 16, "c" * 16],
            "status": ["persisting", "resolved", "new"],
            "severity": ["error", "error", "warning"],
            "owner": ["source system"] * 3,
            "waived": [False, False, False],
            "waiver_origin": [None, None, None],
        }
    )
    seen = with_decisions(view, current, "TL2")
    assert seen["previous_decision"].to_list() == [
        "fix promised, still present (decided by lead on 2026-01-02 in TL1)",
        "fix promised, done (decided by lead on 2026-01-02 in TL1)",
        None,
    ]
    assert seen["fix_still_present"].to_list() == [True, False, False]
    counts = decision_counts(seen, 3)
    src = next(o for o in counts["by_owner"] if o["owner"] == "source system")
    assert (src["open"], src["fix_promised"], src["fix_still_present"], src["undecided"]) == (2, 1, 1, 1)
    # the same load again: promised, not yet due to be gone
    assert with_decisions(view, current, "TL1")["previous_decision"][0].startswith("fix promised (decided")


def test_the_import_decisions_flow_imports_or_fails_with_every_problem(tl1, harness, tmp_path):
    from prefect.states import StateType

    from pipelines.run.flows import import_decisions_flow

    _, out, _, mappings = tl1
    report = tmp_path / "tl1"
    shutil.copytree(out, report)
    history = f"sqlite:///{tmp_path / 'migcheck-history.db'}"
    open_history(history).dispose()
    path = report / "worklists" / "vendor-load.xlsx"
    wb, ws, col = _sheet(path)
    _decide(ws, col, 2, decision="fix", decision_reason=None, decided_by="vendor lead", decided_on=None, expires=None)
    _decide(ws, col, 3, decision="waive", decision_reason=None, decided_by="vendor lead", decided_on=None, expires=FAR)
    wb.save(path)
    state = import_decisions_flow([str(path)], mappings=str(mappings), history=history, return_state=True)
    assert state.type == StateType.FAILED
    result = state.result(raise_on_failure=False)
    assert result["problems"] == [
        "tl1/worklists/vendor-load.xlsx, sheet worklist, row 3: waive without decision_reason"
    ]
    engine = open_history(history)
    assert decision_trail(engine).height == 0
    wb, ws, col = _sheet(path)
    _decide(ws, col, 3, decision=None, expires=None, decided_by=None)
    wb.save(path)
    state = import_decisions_flow([str(path)], mappings=str(mappings), history=history, return_state=True)
    assert state.type == StateType.COMPLETED
    result = state.result()
    assert result["recorded"] == 1 and result["by_owner"] == {"vendor load": {"fix": 1, "waive": 0}}
    assert decision_trail(engine)["row"].to_list() == [2]
    engine.dispose()


def test_the_audit_trail_and_waivers_in_a_postgresql_history(pg_url):
    from pipelines.io.history import record_decisions, waiver_rows

    def decision(word: str, row: int, **kw) -> dict:
        base = {
            "migration": "m",
            "trial_load": "TL1",
            "discrepancy_id": "a" * 16,
            "check": "person.source.orphan",
            "owner": "source system",
            "decision": word,
            "reason": "accepted as it is" if word == "waive" else None,
            "decided_by": "PAS data steward",
            "decided_on": dt.date(2026, 11, 30),
            "expires": FAR if word == "waive" else None,
            "file": "tl1/worklists/source-system.xlsx",
            "sheet": "worklist",
            "row": row,
        }
        return base | kw

    engine = open_history(pg_url)
    try:
        first = pl.DataFrame(
            [decision("waive", 2), decision("fix", 3, discrepancy_id="b" * 16)], schema=DECISION_SCHEMA
        )
        assert record_decisions(engine, first, dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)) == 2
        assert [(w["discrepancy_id"], w["approver"], w["expires"]) for w in waiver_rows(engine, "m")] == [
            ("a" * 16, "PAS data steward", FAR)
        ]
        later = pl.DataFrame([decision("fix", 7, trial_load="TL2")], schema=DECISION_SCHEMA)
        record_decisions(engine, later, dt.datetime(2026, 12, 2, 8, tzinfo=dt.UTC))
        assert waiver_rows(engine, "m") == []  # a later fix ends the waiver
        trail = decision_trail(engine, "m")
        assert trail["row"].to_list() == [2, 3, 7] and trail["imported_at"][0] == dt.datetime(2026, 12, 1, 8)
        current = latest_decisions(trail)
        assert dict(current.select("discrepancy_id", "decision").rows()) == {"a" * 16: "fix", "b" * 16: "fix"}
        assert decision_trail(engine, "other").height == 0
    finally:
        engine.dispose()
