"""Excel worklists for the people who must act: one ``.xlsx`` per owner group.

``write_worklists(out_dir, disc)`` writes ``out_dir/worklists/source-system.xlsx``,
``code-map.xlsx`` and ``vendor-load.xlsx``: one row per discrepancy of that owner (resolved ones
too, marked), the columns a data steward needs, and empty decision columns (``decision`` with a
fix / waive dropdown, ``decision_reason``, ``decided_by``, ``decided_on``). A second sheet,
``about``, says what the file holds and how to fill it in.

Written with xlsxwriter in ``constant_memory`` mode (rows streamed to disk, inline strings), so
100,000 rows stay cheap. Text is always written as text: a value starting with ``=`` never becomes
a formula, nor a URL a hyperlink. The values are the report's, already masked (``docs/decisions.md``
D29); nothing here reads personal data.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import xlsxwriter

from checks.catalogue import OWNER_GROUPS, OWNERS
from checks.discrepancies import with_review_columns

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
]
DECISION_COLUMNS = ["decision", "decision_reason", "decided_by", "decided_on"]
DECISIONS = ["fix", "waive"]
SHEET = "worklist"
_WRAP = {"message", "suggested_action", "waiver"}
_WIDTH = {"message": 60, "suggested_action": 50, "waiver": 30, "decision": 12, "decision_reason": 40}
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
        if c == "decided_on":
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
    ws.data_validation(
        1,
        d0 + 3,
        rows_,
        d0 + 3,
        {
            "validate": "date",
            "criteria": ">=",
            "value": dt.date(2000, 1, 1),
            "input_title": "Decided on",
            "input_message": "The date of the decision (YYYY-MM-DD).",
            "error_title": "Decided on",
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
            "Why. Required for waive: the reason goes into the waiver file (mappings/), "
            "with the approver role and an expiry date.",
        ),
        ("decided_by", "Your role or name, as agreed in the migration team."),
        ("decided_on", "The date of the decision, YYYY-MM-DD."),
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
