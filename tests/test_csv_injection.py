"""What came from the data never runs in a steward's spreadsheet (CSV/formula injection).

The corpus case ``hostile_values`` puts formulas and markup into the codes, units, types and
free-text allergies of both systems. The CSV files neutralise them, the worklists hold them as
text, the HTML report escapes them, and the Parquet files keep them exactly.
"""

from __future__ import annotations

import csv
import html
import io
import shutil
from pathlib import Path

import polars as pl
import pytest

from pipelines.report.csv import neutralised
from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load

CORPUS = Path(__file__).parent / "corpus"
LIVE = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    extract = root / "extract"
    shutil.copytree(CORPUS / "base", extract)
    for f in (CORPUS / "hostile_values").rglob("*"):
        if f.is_file():
            shutil.copy(f, extract / f.relative_to(CORPUS / "hostile_values"))
    db = f"sqlite:///{root / 't.db'}"
    simulate_trial_load(extract, db, faults="none")
    out = root / "report"
    run_validation(extract, db, "TL", out, history_url=f"sqlite:///{root / 'h.db'}")
    return out


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", "."))
        return True
    except ValueError:
        return False


def test_the_hostile_values_reach_the_outputs_exactly_in_parquet(report):
    d = pl.read_parquet(report / "discrepancies.parquet")
    shown = set(d["actual"].drop_nulls()) | set(d["expected"].drop_nulls())
    assert {"@SUM(1+1)*cmd|' /C calc'!A0", "+1+2", "-2+3", "=1+1"} <= shown
    # the data's formulas are there, exactly: the Parquet files are the machine-readable form
    assert any(v.startswith("=HYPERLINK(") for v in shown)


@pytest.mark.parametrize("name", ["discrepancies.csv", "unmapped_codes.csv"])
def test_no_csv_cell_starts_a_formula(report, name):
    text = (report / name).read_text(encoding="utf-8")
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    live = [c for c in cells if c.startswith(LIVE) and not _is_number(c)]
    assert not live, live[:5]
    # …and the hostile values are in the file, shown as text (a leading apostrophe)
    assert any(c.startswith("'=HYPERLINK(") or c.startswith("'@SUM(") for c in cells), name


def test_the_worklists_hold_text_never_a_formula(report):
    from openpyxl import load_workbook

    books = sorted((report / "worklists").glob("*.xlsx"))
    assert books
    seen = []
    for book in books:
        wb = load_workbook(book)  # formulas stay formulas (data_only=False): a cell of type "f"
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for cell in row:
                    assert cell.data_type != "f" or not any(
                        h in str(cell.value) for h in ("HYPERLINK", "SUM(1+1)", "1+1", "1+2", "2+3", "cmd")
                    ), (book.name, cell.coordinate, cell.value)
                    if isinstance(cell.value, str):
                        seen.append(cell.value)
    assert any(v.startswith("=HYPERLINK(") or v.startswith("@SUM(") for v in seen)  # there, as text


def test_the_html_report_escapes_the_values(report):
    page = (report / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page
    assert (
        html.escape('=HYPERLINK("http://example.invalid/","click")', quote=True) in page or "=HYPERLINK(&#34;" in page
    )
    assert 'href="http://example.invalid/' not in page


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("-3", "-3"),
        ("+4.5", "+4.5"),
        ("-1,5", "-1,5"),
        ("1e-3", "1e-3"),
        ("plain", "plain"),
        ("a=b", "a=b"),
    ],
)
def test_neutralised_cells(value, shown):
    assert neutralised(pl.DataFrame({"c": [value]}))["c"][0] == shown
