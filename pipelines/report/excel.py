"""Excel worklists for the people who must act: one ``.xlsx`` per owner group.

``write_worklists(out_dir, disc)`` writes ``out_dir/worklists/source-system.xlsx``,
``code-map.xlsx`` and ``vendor-load.xlsx``: one row per discrepancy of that owner (resolved ones
too, marked), the columns a data steward needs (``previous_decision``: the decision recorded for
the finding, "fix promised, still present" where a promised fix did not happen), and empty decision
columns (``decision`` with a fix / waive dropdown, ``decision_reason``, ``decided_by``,
``decided_on``, ``expires``) that ``migcheck decisions import`` reads back. A second sheet,
``about``, says what the file holds and how to fill it in.

``write_code_map_review(out_dir, rows, trial_load)`` writes ``worklists/code-map-review.xlsx``:
sheet ``code_map_review`` lists every unmapped code of a code map with its frequency and ranked
candidates, and every code map entry not approved, with the steward's columns
(``target_cdf_meaning``, ``review_state``, ``reviewer``, ``reviewed_on``, ``comment``).

Written with xlsxwriter in ``constant_memory`` mode (rows streamed to disk, inline strings), so
100,000 rows stay cheap. Text is always written as text: a value starting with ``=`` never becomes
a formula, nor a URL a hyperlink. The values are the report's, already masked (``docs/decisions.md``
D29); nothing here reads personal data.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import xlsxwriter

from checks.catalogue import OWNER_GROUPS, OWNERS
from checks.code_map_review import REVIEW_DATA_COLUMNS, REVIEW_STEWARD_COLUMNS
from checks.decisions import DECISION_COLUMNS as DECISION_WORDS_COLUMNS
from checks.decisions import DECISION_SHEET, REVIEW_SHEET
from checks.decisions import DECISIONS as DECISION_WORDS
from checks.discrepancies import with_review_columns
from checks.mapping import REVIEW_STATES

#: the worklist file of each owner group (``checks.catalogue.OWNERS``): ``code map`` → ``code-map.xlsx``
OWNER_FILES = {owner: OWNER_GROUPS[owner].file for owner in OWNERS}
#: the discrepancy columns shown, in order, with their header width cap
DATA_COLUMNS = [
    "discrepancy_id",
    "trial_load",
    "status",
    "severity",
    "category",
    "check",
    "entity",
    "source_system",
    "source_ref",
    "target_ref",
    "column",
    "expected",
    "actual",
    "nature",
    "message",
    "suggested_action",
    "waived",
    "waiver",
    "previous_decision",
]
DECISION_COLUMNS = list(DECISION_WORDS_COLUMNS)
DECISIONS = list(DECISION_WORDS)
SHEET = DECISION_SHEET
#: the dated decision columns (a date validation, shown as YYYY-MM-DD)
_DATES = ("decided_on", "expires")
_WRAP = {"message", "suggested_action", "waiver", "previous_decision"}
_WIDTH = {
    "message": 60,
    "suggested_action": 50,
    "waiver": 30,
    "previous_decision": 30,
    "decision": 12,
    "decision_reason": 40,
}
_MAX_WIDTH = 40
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_EXCEL_MAX_TEXT = 32767
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"  # not allowed in XML text


def _prepare(disc: pl.DataFrame) -> pl.DataFrame:
    """Add owner / waived / waiver where absent, clean text, sort: open first, errors first."""
    disc = with_review_columns(disc)
    if "status" not in disc.columns:
        disc = disc.with_columns(pl.lit("new").alias("status"))
    unknown = set(disc["owner"].drop_nulls().unique().to_list()) - set(OWNER_FILES)
    if unknown or disc["owner"].null_count():
        raise ValueError(f"unknown owner group(s) {sorted(unknown) or [None]}; known: {list(OWNER_FILES)}")
    text_cols = [c for c in DATA_COLUMNS if c != "waived"]
    disc = disc.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in text_cols if c not in disc.columns)
    disc = disc.with_columns(
        *[
            pl.col(c).cast(pl.String).str.replace_all(_CONTROL, "").str.slice(0, _EXCEL_MAX_TEXT).alias(c)
            for c in text_cols
        ],
        pl.col("waived").cast(pl.Boolean).fill_null(False),
    )
    return disc.with_columns(
        (pl.col("status") == "resolved").fill_null(False).alias("_resolved"),
        pl.col("severity").replace_strict(_SEVERITY_ORDER, default=3, return_dtype=pl.Int8).alias("_sev"),
    ).sort(
        ["_resolved", "_sev", "waived", "entity", "category", "source_ref", "target_ref", "column", "discrepancy_id"],
        nulls_last=True,
    )


def _widths(df: pl.DataFrame) -> dict[str, float]:
    """A column width per column: the longest value (or header), capped."""
    widths: dict[str, float] = {}
    lens = (
        df.select(pl.col(c).str.len_chars().max().alias(c) for c in DATA_COLUMNS if c != "waived").row(0, named=True)
        if df.height
        else {}
    )
    for c in DATA_COLUMNS + DECISION_COLUMNS:
        longest = max(len(c), int(lens.get(c) or 0))
        widths[c] = min(_WIDTH.get(c, _MAX_WIDTH), longest + 2)
    widths["waived"] = 8
    widths["decided_on"] = 12
    widths["expires"] = 12
    widths["decided_by"] = 18
    return widths


def _formats(wb: xlsxwriter.Workbook) -> dict[str, object]:
    base: dict[str, object] = {"valign": "top", "font_size": 10}
    f = {
        "header": wb.add_format(
            {**base, "bold": True, "bg_color": "#1F3864", "font_color": "#FFFFFF", "border": 1, "text_wrap": True}
        ),
        "decision_header": wb.add_format(
            {**base, "bold": True, "bg_color": "#FFE699", "font_color": "#000000", "border": 1, "text_wrap": True}
        ),
        "cell": wb.add_format(base),
        "wrap": wb.add_format({**base, "text_wrap": True}),
        "resolved": wb.add_format({**base, "font_color": "#808080", "italic": True}),
        "resolved_wrap": wb.add_format({**base, "font_color": "#808080", "italic": True, "text_wrap": True}),
        "decision": wb.add_format({**base, "bg_color": "#FFF9E5", "border": 1, "border_color": "#D9D9D9"}),
        "decision_date": wb.add_format(
            {**base, "bg_color": "#FFF9E5", "border": 1, "border_color": "#D9D9D9", "num_format": "yyyy-mm-dd"}
        ),
        "title": wb.add_format({"bold": True, "font_size": 14}),
        "bold": wb.add_format({"bold": True}),
        "text": wb.add_format({"text_wrap": True, "valign": "top"}),
    }
    sev: dict[str, dict[str, object]] = {
        "error": {"bg_color": "#F8CBAD", "font_color": "#9C0006", "bold": True},
        "warning": {"bg_color": "#FFEB9C", "font_color": "#9C5700"},
        "info": {"bg_color": "#DDEBF7", "font_color": "#1F4E78"},
    }
    for k, v in sev.items():
        f[f"sev_{k}"] = wb.add_format({**base, **v})
    f["waived_yes"] = wb.add_format({**base, "bg_color": "#E2EFDA", "font_color": "#375623"})
    return f


def _write_sheet(wb: xlsxwriter.Workbook, df: pl.DataFrame, fmt: dict) -> None:
    ws = wb.add_worksheet(SHEET)
    headers = DATA_COLUMNS + DECISION_COLUMNS
    widths = _widths(df)
    for i, c in enumerate(headers):
        if c in _DATES:
            col_fmt = fmt["decision_date"]
        elif c in DECISION_COLUMNS:
            col_fmt = fmt["decision"]  # empty, shaded cells for the steward's decision
        elif c in _WRAP:
            col_fmt = fmt["wrap"]
        else:
            col_fmt = None
        ws.set_column(i, i, widths[c], col_fmt)
    # the header row (constant_memory: rows strictly in order)
    ws.set_row(0, 30)
    for i, c in enumerate(headers):
        ws.write_string(0, i, c, fmt["decision_header"] if c in DECISION_COLUMNS else fmt["header"])
    ws.freeze_panes(1, 0)
    n = df.height
    last_col = len(headers) - 1
    ws.autofilter(0, 0, max(n, 1), last_col)
    d0 = len(DATA_COLUMNS)
    rows_ = max(n, 1)
    ws.data_validation(
        1,
        d0,
        rows_,
        d0,
        {
            "validate": "list",
            "source": DECISIONS,
            "input_title": "Decision",
            "input_message": "fix: the owner corrects it. waive: accepted as it is (give a reason).",
            "error_title": "Decision",
            "error_message": "Choose fix or waive.",
        },
    )
    for c, title, message in (
        ("decided_on", "Decided on", "The date of the decision (YYYY-MM-DD)."),
        ("expires", "Expires", "waive: the last day the waiver holds; fix: the date the fix is promised by."),
    ):
        i = headers.index(c)
        ws.data_validation(
            1,
            i,
            rows_,
            i,
            {
                "validate": "date",
                "criteria": ">=",
                "value": dt.date(2000, 1, 1),
                "input_title": title,
                "input_message": message,
                "error_title": title,
                "error_message": "Enter a date, e.g. 2025-03-31.",
            },
        )
    wrap_idx = {i for i, c in enumerate(DATA_COLUMNS) if c in _WRAP}
    sev_idx = DATA_COLUMNS.index("severity")
    waived_idx = DATA_COLUMNS.index("waived")
    text_cols = [c for c in DATA_COLUMNS if c != "waived"]
    cols = df.select(*text_cols, "waived", "_resolved").iter_rows()
    order = [DATA_COLUMNS.index(c) for c in text_cols]
    cell, wrap, rcell, rwrap = fmt["cell"], fmt["wrap"], fmt["resolved"], fmt["resolved_wrap"]
    write = ws.write_string
    for r, row in enumerate(cols, start=1):
        resolved = row[-1]
        for j, v in zip(order, row[:-2], strict=True):
            if v is None:
                continue
            if j == sev_idx and not resolved:
                f = fmt.get(f"sev_{v}", cell)
            elif j in wrap_idx:
                f = rwrap if resolved else wrap
            else:
                f = rcell if resolved else cell
            write(r, j, v, f)
        waived = row[-2]
        write(r, waived_idx, "yes" if waived else "no", fmt["waived_yes"] if waived else (rcell if resolved else cell))


def _write_about(wb: xlsxwriter.Workbook, df: pl.DataFrame, owner: str, trial_load: str, fmt: dict) -> None:
    ws = wb.add_worksheet("about")
    ws.set_column(0, 0, 26)
    ws.set_column(1, 1, 90, fmt["text"])
    r = 0
    ws.write_string(r, 0, f"migcheck worklist: {owner}", fmt["title"])
    r += 2

    def kv(key: str, value: str | int) -> None:
        nonlocal r
        ws.write_string(r, 0, key, fmt["bold"])
        if isinstance(value, int):
            ws.write_number(r, 1, value, fmt["text"])
        else:
            ws.write_string(r, 1, value, fmt["text"])
        r += 1

    kv("trial load", trial_load or "")
    kv("owner group", owner)
    kv("what", OWNER_GROUPS[owner].worklist_text)
    kv("written", dt.datetime.now().replace(microsecond=0).isoformat(sep=" "))
    r += 1
    ws.write_string(r, 0, "counts", fmt["bold"])
    r += 1
    open_ = df.filter(~pl.col("_resolved"))
    kv("discrepancies (rows)", df.height)
    for sev in ("error", "warning", "info"):
        kv(f"  open {sev}s", open_.filter(pl.col("severity") == sev).height)
    kv("  of them waived", open_.filter(pl.col("waived")).height)
    for st in ("new", "persisting", "resolved"):
        kv(f"  {st}", df.filter(pl.col("status") == st).height)
    if df.height:
        r += 1
        ws.write_string(r, 0, "open by category", fmt["bold"])
        r += 1
        for cat, n in open_.group_by("category").len().sort(["len", "category"], descending=[True, False]).iter_rows():
            kv(f"  {cat}", n)
    r += 1
    ws.write_string(r, 0, "how to fill in", fmt["bold"])
    r += 1
    for key, text in [
        (
            "order",
            "Open findings first (errors, then warnings, then info; waived after unwaived), resolved "
            "findings last, in grey: they disappeared in this trial load and need no decision.",
        ),
        (
            "decision",
            "Choose from the list: fix (the owner corrects the cause before the next trial load) or "
            "waive (the difference is accepted as it is).",
        ),
        (
            "decision_reason",
            "Why. Required for waive: the reason becomes the waiver's, with decided_by as its approver and "
            "expires as its end.",
        ),
        ("decided_by", "Your role or name, as agreed in the migration team (required: it is the audit trail's who)."),
        ("decided_on", "The date of the decision, YYYY-MM-DD (empty: the day it is imported)."),
        (
            "expires",
            "Required for waive: the last day the waiver holds (not in the past). For fix, optional: the "
            "date the fix is promised by.",
        ),
        (
            "import",
            "migcheck decisions import OUT/worklists/*.xlsx records every decision in the history database "
            "(who, when, which load, which finding, what, why); waive decisions then waive their findings in "
            "the next validations. A problem in any row (an unknown id, a waive without reason, approver or "
            "expiry, an expiry in the past, a formula, two rows deciding one finding differently) is "
            "listed with file, sheet and row, and nothing is imported.",
        ),
        (
            "previous_decision",
            "The decision recorded for this finding in an earlier import; 'fix promised, still present' where "
            "a fix was promised in an earlier trial load and the finding is still there.",
        ),
        (
            "discrepancy_id",
            "Keep it unchanged: it identifies the same finding in every trial load, so a "
            "decision can be matched to the next load's findings and to a waiver.",
        ),
        ("waived / waiver", "Already covered by a recorded waiver: visible, but it does not fail the gate."),
        (
            "personal data",
            "Names, identity numbers, postal codes and dates of birth are masked: expected/actual "
            "show only their form (length, character classes, first letter). Do not add personal data to "
            "this file; look the record up by its source_ref in the source system.",
        ),
    ]:
        kv(key, text)


def _workbook(path: Path) -> xlsxwriter.Workbook:
    return xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )


def write_worklists(out_dir: Path, disc: pl.DataFrame) -> list[Path]:
    """Write ``out_dir/worklists/{source-system,code-map,vendor-load}.xlsx``; return their paths.

    ``disc``: the discrepancies (contract columns) plus ``owner``, ``waived`` and ``waiver``.
    Every discrepancy lands in exactly one file, the file of its owner; every file is written,
    header-only when its owner has nothing.
    """
    folder = Path(out_dir) / "worklists"
    folder.mkdir(parents=True, exist_ok=True)
    df = _prepare(disc)
    trial = df["trial_load"].drop_nulls()
    trial_load = trial[0] if trial.len() else ""
    paths = []
    for owner_name, stem in OWNER_FILES.items():
        part = df.filter(pl.col("owner") == owner_name)
        path = folder / f"{stem}.xlsx"
        wb = _workbook(path)
        fmt = _formats(wb)
        _write_sheet(wb, part, fmt)
        _write_about(wb, part, owner_name, trial_load, fmt)
        wb.close()
        paths.append(path)
    return paths


#: the code-map review worklist's file (``worklists/code-map-review.xlsx``)
REVIEW_FILE = "code-map-review"
REVIEW_COLUMNS = REVIEW_DATA_COLUMNS + REVIEW_STEWARD_COLUMNS
_REVIEW_WIDTH = {
    "kind": 10,
    "code_map": 22,
    "entity": 12,
    "source_system": 8,
    "column": 18,
    "source_code": 16,
    "records": 9,
    "candidates": 60,
    "mapped_to": 18,
    "current_state": 12,
    "current_review": 30,
    "target_cdf_meaning": 22,
    "review_state": 13,
    "reviewer": 18,
    "reviewed_on": 12,
    "comment": 40,
}


def write_code_map_review(out_dir: Path, rows: pl.DataFrame, trial_load: str) -> Path:
    """Write ``out_dir/worklists/code-map-review.xlsx``: unmapped codes and code map entries not approved.

    ``rows``: ``checks.code_map_review.review_rows``. Sheet ``code_map_review`` (the name the import
    recognises) with the steward's columns shaded, a dropdown of review states and a date check on
    ``reviewed_on``; sheet ``about`` says how to fill it in.
    """
    folder = Path(out_dir) / "worklists"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{REVIEW_FILE}.xlsx"
    wb = _workbook(path)
    fmt = _formats(wb)
    ws = wb.add_worksheet(REVIEW_SHEET)
    steward = set(REVIEW_STEWARD_COLUMNS)
    for i, c in enumerate(REVIEW_COLUMNS):
        col_fmt = fmt["decision_date"] if c == "reviewed_on" else fmt["decision"] if c in steward else None
        if c == "candidates":
            col_fmt = fmt["wrap"]
        ws.set_column(i, i, _REVIEW_WIDTH.get(c, 16), col_fmt)
    ws.set_row(0, 30)
    for i, c in enumerate(REVIEW_COLUMNS):
        ws.write_string(0, i, c, fmt["decision_header"] if c in steward else fmt["header"])
    ws.freeze_panes(1, 0)
    n = max(rows.height, 1)
    ws.autofilter(0, 0, n, len(REVIEW_COLUMNS) - 1)
    state = REVIEW_COLUMNS.index("review_state")
    ws.data_validation(
        1,
        state,
        n,
        state,
        {
            "validate": "list",
            "source": list(REVIEW_STATES),
            "input_title": "Review state",
            "input_message": "approved: the entry is right. flagged: it needs another look. unchecked: not reviewed.",
            "error_title": "Review state",
            "error_message": "Choose unchecked, approved or flagged.",
        },
    )
    on = REVIEW_COLUMNS.index("reviewed_on")
    ws.data_validation(
        1,
        on,
        n,
        on,
        {
            "validate": "date",
            "criteria": ">=",
            "value": dt.date(2000, 1, 1),
            "input_title": "Reviewed on",
            "input_message": "The date of the review (YYYY-MM-DD).",
            "error_title": "Reviewed on",
            "error_message": "Enter a date, e.g. 2025-03-31.",
        },
    )
    records = REVIEW_COLUMNS.index("records")
    for r, row in enumerate(rows.select(REVIEW_COLUMNS).iter_rows(), start=1):
        for j, v in enumerate(row):
            if v is None:
                continue
            if j == records:
                ws.write_number(r, j, int(v), fmt["cell"])
            else:
                text = re.sub(_CONTROL, "", str(v))[:_EXCEL_MAX_TEXT]
                ws.write_string(r, j, text, fmt["wrap"] if REVIEW_COLUMNS[j] == "candidates" else fmt["cell"])
    about = wb.add_worksheet("about")
    about.set_column(0, 0, 26)
    about.set_column(1, 1, 90, fmt["text"])
    about.write_string(0, 0, "migcheck worklist: code-map review", fmt["title"])
    unmapped = rows.filter(pl.col("kind") == "unmapped").height
    lines: list[tuple[str, str | int]] = [
        ("trial load", trial_load or ""),
        ("unmapped codes", unmapped),
        ("entries not approved", rows.height - unmapped),
        ("written", dt.datetime.now().replace(microsecond=0).isoformat(sep=" ")),
        (
            "what",
            "kind unmapped: a legacy code of this load that its code map lacks (records: how many records hold it; "
            "candidates: the best matches, best first). kind entry: an entry of mappings/code_maps/ that is "
            "not approved (records: how many records of this load rely on it).",
        ),
        (
            "mapped_to, current_state, current_review",
            "An entry as it is now: its meaning, its review state, and by whom, when and with what comment "
            "it was reviewed.",
        ),
        (
            "target_cdf_meaning",
            "The meaning the code maps to (a cdf_meaning of the column's code set in "
            "mappings/reference/code_value.csv, active). Required for an unmapped code; for an entry, "
            "empty keeps its meaning.",
        ),
        ("review_state", "approved, flagged or unchecked (empty: unchecked)."),
        ("reviewer", "Your role or name: required for approved and flagged."),
        ("reviewed_on", "The date of the review, YYYY-MM-DD (empty: the day it is imported)."),
        ("comment", "Optional; it replaces the entry's comment."),
        (
            "import",
            "migcheck decisions import OUT/worklists/code-map-review.xlsx adds each row you filled in to its "
            "code map in mappings/code_maps/ (or updates the entry) and prints the diff of every file it "
            "changes. Rows left as written change nothing. A problem in any row is listed with its row "
            "number and nothing is imported.",
        ),
    ]
    for r, (key, value) in enumerate(lines, start=2):
        about.write_string(r, 0, key, fmt["bold"])
        if isinstance(value, int):
            about.write_number(r, 1, value, fmt["text"])
        else:
            about.write_string(r, 1, value, fmt["text"])
    wb.close()
    return path
