"""Excel worklists: every discrepancy exactly once, in its owner's file, with empty decision columns."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import polars as pl
import pytest

from checks.discrepancies import DISCREPANCY_COLUMNS, owner
from pipelines.report.excel import DATA_COLUMNS, DECISION_COLUMNS, OWNER_FILES, write_worklists
from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load

HEADER = DATA_COLUMNS + DECISION_COLUMNS
SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


@pytest.fixture(scope="module")
def validated(tmp_path_factory, sample_extract: Path) -> tuple[Path, pl.DataFrame]:
    """The real pipeline on a copy of sample_data/ with the default load faults."""
    import shutil

    root = tmp_path_factory.mktemp("worklists")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    db = root / "target.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="default")
    out = root / "report"
    run_validation(extract, f"sqlite:///{db}", "TL-WL", out)
    disc = pl.read_parquet(out / "discrepancies.parquet").select(DISCREPANCY_COLUMNS)
    return extract, disc


def _with_owner(disc: pl.DataFrame) -> pl.DataFrame:
    """owner / waived / waiver as the report passes them; implausible findings waived, 3 resolved rows added."""
    d = disc.with_columns(
        owner().alias("owner"),
        (pl.col("category") == "implausible").alias("waived"),
        pl.when(pl.col("category") == "implausible")
        .then(pl.lit("W-001 (data steward): accepted, dates confirmed in the source"))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("waiver"),
    )
    gone = (
        d.filter(pl.col("severity") == "error")
        .head(3)
        .with_columns(
            pl.lit("resolved").alias("status"), (pl.lit("old") + pl.col("discrepancy_id")).alias("discrepancy_id")
        )
    )
    return pl.concat([d, gone])


def _rows(path: Path) -> tuple[list[str], list[dict]]:
    wb = openpyxl.load_workbook(path, read_only=True)
    ws = wb["worklist"]
    it = ws.iter_rows(values_only=True)
    header = list(next(it))
    rows = [dict(zip(header, r, strict=True)) for r in it]
    wb.close()
    return header, rows


def test_every_discrepancy_once_in_its_owners_file(validated, tmp_path):
    _, disc = validated
    d = _with_owner(disc)
    assert d.height > 100 and d["owner"].n_unique() == 3
    paths = write_worklists(tmp_path, d)
    assert [p.name for p in paths] == [f"{s}.xlsx" for s in OWNER_FILES.values()]
    assert all(p.parent == tmp_path / "worklists" and p.exists() for p in paths)

    expected_owner = {(r["discrepancy_id"], r["status"]): r["owner"] for r in d.iter_rows(named=True)}
    seen: list[tuple[str, str]] = []
    for (owner_name, _), path in zip(OWNER_FILES.items(), paths, strict=True):
        header, rows = _rows(path)
        assert header == HEADER
        for r in rows:
            key = (r["discrepancy_id"], r["status"])
            assert expected_owner[key] == owner_name, (path.name, key)
            assert all(r[c] is None for c in DECISION_COLUMNS), r
            seen.append(key)
        # errors first among open rows; resolved rows last, marked by their status
        open_rows = [r for r in rows if r["status"] != "resolved"]
        ranks = [SEVERITY_RANK[r["severity"]] for r in open_rows]
        assert ranks == sorted(ranks)
        assert rows[: len(open_rows)] == open_rows
    assert len(seen) == len(set(seen)) == d.height
    assert set(seen) == set(expected_owner)


def test_sheet_is_pleasant_and_has_the_dropdown(validated, tmp_path):
    _, disc = validated
    d = _with_owner(disc)
    paths = write_worklists(tmp_path, d)
    vendor = d.filter(pl.col("owner") == "vendor load")
    path = paths[list(OWNER_FILES).index("vendor load")]
    wb = openpyxl.load_workbook(path)
    ws = wb["worklist"]
    n = vendor.height
    assert ws.max_row == n + 1
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(HEADER))}{n + 1}"
    dec_col = openpyxl.utils.get_column_letter(HEADER.index("decision") + 1)
    lists = [v for v in ws.data_validations.dataValidation if v.type == "list"]
    assert len(lists) == 1
    assert lists[0].formula1 == '"fix,waive"'
    assert str(lists[0].sqref) == f"{dec_col}2:{dec_col}{n + 1}"
    # wrapped message text, sensible widths, severity colour on open errors
    msg_col = HEADER.index("message") + 1
    assert ws.cell(2, msg_col).alignment.wrap_text
    widths = {c: ws.column_dimensions[openpyxl.utils.get_column_letter(i + 1)].width for i, c in enumerate(HEADER)}
    assert 10 <= widths["discrepancy_id"] <= 40 and widths["message"] >= 40
    sev = ws.cell(2, HEADER.index("severity") + 1)
    assert sev.value == "error" and sev.fill.fgColor.rgb.endswith("F8CBAD")
    # the about sheet names the trial load and says how to decide
    about = [" ".join(str(c) for c in r if c is not None) for r in wb["about"].iter_rows(values_only=True)]
    text = "\n".join(about)
    assert "TL-WL" in text and "vendor load" in text and "fix" in text and "waive" in text
    wb.close()
    # waived findings are marked with their waiver
    _, rows = _rows(paths[list(OWNER_FILES).index("source system")])
    waived = [r for r in rows if r["category"] == "implausible"]
    assert waived and all(r["waived"] == "yes" and r["waiver"].startswith("W-001") for r in waived)
    assert all(r["waived"] == "no" for r in rows if r["category"] != "implausible")


def test_no_identity_number_in_the_worklists(validated, tmp_path):
    extract, disc = validated
    pnr = pl.read_csv(extract / "pas" / "patient.csv", encoding="cp1252", infer_schema=False, separator=";")
    ids = {v.strip() for v in pnr["PNR"].drop_nulls().to_list() if len(v.strip()) >= 10}
    ids |= {i[-10:] for i in ids}  # the 10-digit form too
    assert len(ids) > 100
    for path in write_worklists(tmp_path, _with_owner(disc)):
        wb = openpyxl.load_workbook(path, read_only=True)
        for ws in wb.worksheets:
            for row in ws.iter_rows(values_only=True):
                for v in row:
                    if isinstance(v, str):
                        assert not any(i in v for i in ids), path.name
        wb.close()


def test_empty_owner_gets_a_header_only_sheet_and_text_stays_text(tmp_path):
    rows = 3_000
    base = {c: [None] * rows for c in DISCREPANCY_COLUMNS}
    base |= {
        "discrepancy_id": [f"{i:016x}" for i in range(rows)],
        "trial_load": ["TL9"] * rows,
        "check": ["person.reconcile.value"] * rows,
        "category": ["value_mismatch"] * rows,
        "severity": ["warning" if i % 3 else "error" for i in range(rows)],
        "entity": ["person"] * rows,
        "source_system": ["pas"] * rows,
        "source_ref": [f"pas:patient:{100000 + i}" for i in range(rows)],
        "message": ['=HYPERLINK("http://example.invalid") and\x07 a bell'] + ["municipality_code differs"] * (rows - 1),
        "status": ["new"] * rows,
    }
    d = pl.DataFrame(base, schema={c: pl.String for c in DISCREPANCY_COLUMNS})
    paths = write_worklists(tmp_path, d)  # owner / waived / waiver derived when absent
    by_name = {p.name: p for p in paths}
    for name in ("source-system.xlsx", "code-map.xlsx"):
        header, data = _rows(by_name[name])
        assert header == HEADER and data == []
        wb = openpyxl.load_workbook(by_name[name])
        assert any(v.type == "list" for v in wb["worklist"].data_validations.dataValidation)
        wb.close()
    header, data = _rows(by_name["vendor-load.xlsx"])
    assert len(data) == rows
    assert [r["severity"] for r in data[:3]] == ["error"] * 3
    first = next(r for r in data if r["discrepancy_id"] == f"{0:016x}")
    assert first["message"] == '=HYPERLINK("http://example.invalid") and a bell'
    wb = openpyxl.load_workbook(by_name["vendor-load.xlsx"])
    msg_col = openpyxl.utils.get_column_letter(HEADER.index("message") + 1)
    cell = next(c for c in wb["worklist"][msg_col] if isinstance(c.value, str) and c.value.startswith("=HYPER"))
    assert cell.data_type == "s"  # a string, not a formula
    wb.close()


def test_unknown_owner_is_refused(tmp_path):
    d = pl.DataFrame({c: ["x"] for c in DISCREPANCY_COLUMNS}).with_columns(
        pl.lit("somebody else").alias("owner"),
        pl.lit(False).alias("waived"),
        pl.lit(None, dtype=pl.String).alias("waiver"),
    )
    with pytest.raises(ValueError, match="owner"):
        write_worklists(tmp_path, d)
