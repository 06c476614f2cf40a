"""``migcheck decisions import``: the stewards' worklists read back, checked, and recorded.

A worklist is read as a steward's spreadsheet program leaves it: the sheet is found by its name
(``worklist`` for findings, ``code_map_review`` for the code-map review; other sheets are
ignored), the columns by their header (spaces around a name trimmed, order free), typed dates and
ISO text dates alike; a formula in a cell that is read is refused ("a formula, type the value").
The report folder of a worklist is its folder's parent (``OUT/worklists/x.xlsx`` → ``OUT``): its
``discrepancies.parquet`` holds the findings the decisions may name and their trial load, its
``summary.json`` the migration.

Every problem is found before anything is written; with any problem nothing is imported
(``docs/decisions.md`` D57). Otherwise the decisions go into the history database (the audit trail
``migcheck_decision``; "waive" decisions into ``migcheck_waiver``, which ``validate`` applies with
``mappings/waivers.yaml``) and the reviewed code-map entries into ``mappings/code_maps/*.csv``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from checks.code_map_review import REVIEW_DATA_COLUMNS, REVIEW_STEWARD_COLUMNS, apply_review
from checks.decisions import (
    DECISION_SCHEMA,
    DECISION_SHEET,
    KNOWN_SCHEMA,
    REVIEW_SHEET,
    Formula,
    SheetRow,
    already_recorded,
    check_decisions,
    import_counts,
    latest_decisions,
)
from checks.discrepancies import owner
from checks.errors import MigcheckError
from checks.mapping import load_mappings
from pipelines.io.code_map_review import MapChange, write_code_maps
from pipelines.io.history import decision_trail, open_history, record_decisions
from pipelines.io.settings import default_mappings_root
from pipelines.io.target_db import connect, safe_url

#: the columns each sheet must have (``expires`` may be missing from a worklist of an older migcheck)
REQUIRED = {
    DECISION_SHEET: ("discrepancy_id", "decision", "decision_reason", "decided_by", "decided_on"),
    REVIEW_SHEET: ("code_map", "source_code", *REVIEW_STEWARD_COLUMNS),
}
#: the columns read from each sheet
READ = {
    DECISION_SHEET: ("discrepancy_id", "decision", "decision_reason", "decided_by", "decided_on", "expires"),
    REVIEW_SHEET: tuple(dict.fromkeys([*REVIEW_DATA_COLUMNS, *REVIEW_STEWARD_COLUMNS])),
}


@dataclass(frozen=True)
class Workbook:
    """What one workbook holds for an import: its rows per sheet kind, and the problems reading it."""

    report: Path
    rows: dict[str, list[SheetRow]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _label(path: Path) -> str:
    """How messages name a worklist: from its report folder on (``tl1/worklists/vendor-load.xlsx``)."""
    p = path.resolve()
    return "/".join(p.parts[-3:]) if len(p.parts) >= 3 else str(path)


def read_workbook(path: Path) -> Workbook:
    """The rows of a workbook's ``worklist`` and ``code_map_review`` sheets, as a spreadsheet left them."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    label = _label(path)
    report = path.resolve().parent.parent
    if not path.is_file():
        return Workbook(report, problems=[f"{label}: no such file"])
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError):
        return Workbook(report, problems=[f"{label}: cannot be read as an Excel workbook (.xlsx)"])
    out = Workbook(report)
    try:
        names = {n.strip().lower(): n for n in wb.sheetnames}
        found = [kind for kind in (DECISION_SHEET, REVIEW_SHEET) if kind in names]
        if not found:
            out.problems.append(f"{label}: no sheet named {DECISION_SHEET} or {REVIEW_SHEET}")
        for kind in found:
            sheet = names[kind]
            rows, problems = _read_sheet(wb[sheet], kind, label, sheet, str(report))
            out.rows[kind] = rows
            out.problems.extend(problems)
    finally:
        wb.close()
    return out


def _read_sheet(ws, kind: str, label: str, sheet: str, report: str) -> tuple[list[SheetRow], list[str]]:  # noqa: ANN001
    it = ws.iter_rows()
    header = next(it, None)
    names: dict[str, int] = {}
    for i, c in enumerate(header or ()):
        if isinstance(c.value, str) and c.value.strip():
            names.setdefault(c.value.strip().lower(), i)
    missing = [c for c in REQUIRED[kind] if c not in names]
    if missing:
        return [], [f"{label}, sheet {sheet}: no column {', '.join(missing)} in the header row (row 1)"]
    cols = {c: names[c] for c in READ[kind] if c in names}
    rows = []
    for number, cells in enumerate(it, start=2):
        values: dict[str, object] = {}
        for col, i in cols.items():
            cell = cells[i] if i < len(cells) else None
            if cell is None or cell.value is None:
                values[col] = None
            elif cell.data_type == "f":
                values[col] = Formula(str(cell.value))
            else:
                values[col] = cell.value
        if any(v is not None for v in values.values()):
            rows.append(SheetRow(report, label, sheet, number, values))
    return rows, []


def known_findings(report: Path) -> tuple[pl.DataFrame, list[str]]:
    """The findings of a report folder (``KNOWN_SCHEMA``), or why there are none."""
    path = report / "discrepancies.parquet"
    try:
        disc = pl.read_parquet(path, columns=["discrepancy_id", "check", "trial_load"])
    except FileNotFoundError:
        return pl.DataFrame(schema=KNOWN_SCHEMA), [
            f"{report.name}: no discrepancies.parquet in {report} (a worklist lives in OUT/worklists/ of its report)"
        ]
    except Exception:  # noqa: BLE001 - a damaged file
        return pl.DataFrame(schema=KNOWN_SCHEMA), [f"{path}: cannot be read as Parquet"]
    migration = "default"
    try:
        migration = str(json.loads((report / "summary.json").read_text(encoding="utf-8")).get("migration") or migration)
    except (OSError, ValueError):
        pass
    frame = disc.unique("discrepancy_id", keep="first", maintain_order=True).select(
        pl.lit(str(report)).alias("report"),
        "discrepancy_id",
        "check",
        owner().alias("owner"),
        "trial_load",
        pl.lit(migration).alias("migration"),
    )
    return frame.cast(KNOWN_SCHEMA), []  # type: ignore[arg-type]


@dataclass(frozen=True)
class ImportResult:
    """What an import did, or (``problems``) why it did nothing."""

    problems: tuple[str, ...]
    recorded: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=DECISION_SCHEMA))
    already: int = 0  # decisions the history already held, as they are (a re-import)
    undecided: int = 0  # rows no decision was typed into
    code_maps: tuple[MapChange, ...] = ()
    added: int = 0
    updated: int = 0
    history: str | None = None

    def to_dict(self) -> dict:
        """Plain data for a flow's result: the problems, the lines to print, the diffs, counts per owner."""
        return {
            "problems": list(self.problems),
            "lines": self.lines() if not self.problems else [],
            "diffs": [c.diff for c in self.code_maps],
            "recorded": self.recorded.height,
            "by_owner": import_counts(self.recorded),
            "code_map_entries": {"added": self.added, "updated": self.updated},
        }

    def lines(self) -> list[str]:
        """What the import did, one line each (the diffs follow separately)."""
        counts = import_counts(self.recorded)
        words = self.recorded.group_by("decision").len().sort("decision").rows()
        total = ", ".join(f"{w} {n}" for w, n in words) or "none"
        where = f" in {self.history}" if self.history else ""
        out = [f"decisions recorded: {self.recorded.height} ({total}){where}"]
        for o, c in counts.items():
            out.append(f"  {o}: " + ", ".join(f"{w} {n}" for w, n in c.items()))
        if self.already:
            out.append(f"already recorded, unchanged: {self.already}")
        out.append(f"rows without a decision: {self.undecided}")
        if self.code_maps or self.added or self.updated:
            files = ", ".join(str(c.path) for c in self.code_maps)
            out.append(f"code map entries: {self.added} added, {self.updated} updated ({files})")
        return out


def _history_url(given: str | None, reports: list[Path]) -> str:
    if given:
        return given
    if os.environ.get("MIGCHECK_HISTORY_URL"):
        return os.environ["MIGCHECK_HISTORY_URL"]
    parents = {r.parent for r in reports}
    if len(parents) != 1:
        raise MigcheckError("--history: the worklists belong to reports in different folders; give --history")
    return f"sqlite:///{parents.pop() / 'migcheck-history.db'}"


def import_decisions(
    paths: Sequence[Path],
    mappings_root: Path | None = None,
    history_url: str | None = None,
    as_of: dt.date | None = None,
    now: dt.datetime | None = None,
) -> ImportResult:
    """Read, check and record the decisions of worklists; nothing is written when any problem is found.

    ``history_url``: the history database (default ``$MIGCHECK_HISTORY_URL``, else the
    ``migcheck-history.db`` beside the worklists' report folder, which must exist). ``as_of``: the
    import's day (default today): expiries before it are refused, an empty ``decided_on`` is it.
    """
    if not paths:
        raise MigcheckError("decisions import: give the worklists to import (OUT/worklists/*.xlsx)")
    as_of = as_of or dt.date.today()
    books = [read_workbook(Path(p)) for p in paths]
    problems = [p for b in books for p in b.problems]
    reports = list(dict.fromkeys(b.report for b in books if b.rows.get(DECISION_SHEET)))
    known = []
    for r in reports:
        frame, found = known_findings(r)
        known.append(frame)
        problems += found
    decision_rows = [row for b in books for row in b.rows.get(DECISION_SHEET, [])]
    review_rows = [row for b in books for row in b.rows.get(REVIEW_SHEET, [])]
    checked = check_decisions(decision_rows, pl.concat(known) if known else pl.DataFrame(schema=KNOWN_SCHEMA), as_of)
    problems += checked.problems
    review = None
    root = Path(mappings_root) if mappings_root is not None else default_mappings_root()
    if review_rows:
        if not root.is_dir():
            raise MigcheckError(f"--mappings {root}: no such folder")
        review = apply_review(review_rows, load_mappings(root), as_of)
        problems += review.problems
    if problems:
        return ImportResult(tuple(problems), undecided=checked.undecided)
    decisions = checked.decisions
    history = None
    already = 0
    if decisions.height:
        url = _history_url(history_url, reports)
        connect(url, setting="--history", must_exist=True).dispose()
        engine = open_history(url)
        try:
            current = latest_decisions(decision_trail(engine))
            mask = already_recorded(decisions, current)
            already = int(mask.sum())
            decisions = decisions.filter(~mask)
            changes = write_code_maps(root, review.maps) if review is not None else []
            record_decisions(engine, decisions, now or dt.datetime.now(dt.UTC))
        finally:
            engine.dispose()
        history = safe_url(url)
    else:
        changes = write_code_maps(root, review.maps) if review is not None else []
    return ImportResult(
        (),
        recorded=decisions,
        already=already,
        undecided=checked.undecided,
        code_maps=tuple(changes),
        added=len(review.added) if review is not None else 0,
        updated=len(review.updated) if review is not None else 0,
        history=history,
    )
