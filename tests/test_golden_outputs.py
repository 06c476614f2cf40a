"""Golden report: the whole output of a validation of the project's own loads, pinned byte for byte.

Two loads of ``sample_data/`` (a faulted TL1, then TL2 with other faults against TL1's history, so
findings are new, persisting and resolved) are validated and every output is compared with the
files in ``tests/golden/outputs/``: discrepancies (ids and order included), the ledger, the summary,
unmapped codes, JUnit, every worklist cell, and the visible text of report.html. Only what a run
cannot repeat is left out (run times, the JUnit timestamp). A change that alters any output fails
here; when the change is meant, regenerate with ``MIGCHECK_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load

GOLDEN = Path(__file__).parent / "golden" / "outputs"
UPDATE = os.environ.get("MIGCHECK_UPDATE_GOLDEN") == "1"
AS_OF = dt.date(2026, 12, 1)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.parts.append(" ".join(data.split()))


_TIME = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?( UTC|\+00:00)?")


def _no_times(text: str) -> str:
    """The text with every date and time of day (when the report was written) blanked."""
    return _TIME.sub("<time>", text)


def visible_text(html: str) -> str:
    p = _Text()
    p.feed(html)
    return "\n".join(p.parts) + "\n"


def _summary(path: Path) -> str:
    s = json.loads(path.read_text(encoding="utf-8"))
    for point in s.get("trend", []):
        point.pop("run_at", None)
    s.pop("timings", None)
    return json.dumps(s, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def _worklists(folder: Path) -> str:
    from openpyxl import load_workbook

    out = []
    for book in sorted(folder.glob("*.xlsx")):
        wb = load_workbook(book, read_only=True)
        for ws in wb.worksheets:
            out.append(f"## {book.name} / {ws.title}")
            for row in ws.iter_rows(values_only=True):
                out.append("\t".join("" if v is None else str(v) for v in row))
        wb.close()
    return _no_times("\n".join(out) + "\n")


def normalised(report: Path) -> dict[str, str]:
    """Every output of a report folder as comparable text."""
    junit = re.sub(r'timestamp="[^"]*"', 'timestamp=""', (report / "junit.xml").read_text(encoding="utf-8"))
    return {
        "discrepancies.csv": (report / "discrepancies.csv").read_text(encoding="utf-8"),
        "discrepancies.parquet.csv": pl.read_parquet(report / "discrepancies.parquet").write_csv(),
        "ledger.csv": pl.read_parquet(report / "ledger.parquet").write_csv(),
        "summary.json": _summary(report / "summary.json"),
        "unmapped_codes.csv": (report / "unmapped_codes.csv").read_text(encoding="utf-8"),
        "junit.xml": junit,
        "worklists.txt": _worklists(report / "worklists"),
        "report.txt": _no_times(visible_text((report / "report.html").read_text(encoding="utf-8"))),
    }


@pytest.fixture(scope="module")
def reports(tmp_path_factory, sample_extract):
    root = tmp_path_factory.mktemp("golden")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    hist = f"sqlite:///{root / 'history.db'}"
    out = {}
    for name, seed in (("TL1", 11), ("TL2", 12)):
        db = root / f"{name}.db"
        simulate_trial_load(extract, f"sqlite:///{db}", faults="default", seed=seed, as_of=AS_OF)
        out[name] = root / name
        run_validation(extract, f"sqlite:///{db}", name, out[name], history_url=hist, migration="golden", as_of=AS_OF)
    return out


@pytest.mark.parametrize("load", ["TL1", "TL2"])
def test_outputs_equal_the_golden_files(reports, load):
    got = normalised(reports[load])
    folder = GOLDEN / load
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in got.items():
            (folder / name).write_text(text, encoding="utf-8")
    missing = [n for n in got if not (folder / n).exists()]
    assert not missing, f"golden files missing: {missing} (MIGCHECK_UPDATE_GOLDEN=1 writes them)"
    differ = [n for n, text in got.items() if (folder / n).read_text(encoding="utf-8") != text]
    assert not differ, f"outputs differ from tests/golden/outputs/{load}: {differ}"


@pytest.mark.parametrize("load", ["TL1", "TL2"])
def test_summary_is_the_typed_model_and_its_schema_is_documented(reports, load):
    from pydantic import ValidationError

    from checks.summary import Summary, schema_text

    text = (reports[load] / "summary.json").read_text(encoding="utf-8")
    summary = Summary.model_validate_json(text)
    assert summary.trial_load == load and summary.trend[-1].trial_load == load
    assert set(summary.timings) >= {"extract", "reconcile", "partitions"}
    # an unknown field is refused: summary.json cannot grow a field the model does not declare
    with pytest.raises(ValidationError, match="extra"):
        Summary.model_validate({**json.loads(text), "surprise": 1})
    docs = Path(__file__).resolve().parents[1] / "docs" / "summary.schema.json"
    assert docs.read_text(encoding="utf-8") == schema_text(), "python -m checks.summary > docs/summary.schema.json"
