"""Stewards' decisions from the worklists: what an import must refuse, and what decisions mean for a load.

A steward answers a finding in its worklist row (``decision`` fix or waive, ``decision_reason``,
``decided_by``, ``decided_on``, ``expires``). ``check_decisions`` takes the rows as read from the
workbooks (``SheetRow``: file, sheet, row and the cells by column name) and the findings of the
reports they belong to, and returns the decisions to record and every problem, one line each,
naming file, sheet and row. Nothing is recorded when there is any problem (``docs/decisions.md``
D57). ``with_decisions`` and ``decision_counts`` say, for a validated load, which finding has a
decision, which promised fix is still present, and what is still undecided per owner.

Pure: values and frames in, frames and text out; the workbooks and the history database are
``pipelines.io.decisions``' and ``pipelines.io.history``'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from checks.catalogue import OWNERS

#: the decision words of a worklist's ``decision`` column
DECISIONS = ("fix", "waive")
#: the sheet of a findings worklist, and the sheet of the code-map review worklist
DECISION_SHEET = "worklist"
REVIEW_SHEET = "code_map_review"
#: the worklist columns an import reads; ``expires`` is absent from worklists of an older migcheck
DECISION_COLUMNS = ("decision", "decision_reason", "decided_by", "decided_on", "expires")
#: the shortest reason and approver a waiver accepts (``checks.waivers.Waiver``)
MIN_REASON, MIN_APPROVER = 3, 2
#: the findings of the reports the worklists belong to: ``report`` is the report folder's path
KNOWN_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "report": pl.String,
    "discrepancy_id": pl.String,
    "check": pl.String,
    "owner": pl.String,
    "trial_load": pl.String,
    "migration": pl.String,
}
#: one accepted decision: what is recorded in the history database (``migcheck_decision``)
DECISION_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "migration": pl.String,
    "trial_load": pl.String,
    "discrepancy_id": pl.String,
    "check": pl.String,
    "owner": pl.String,
    "decision": pl.String,
    "reason": pl.String,
    "decided_by": pl.String,
    "decided_on": pl.Date,
    "expires": pl.Date,
    "file": pl.String,
    "sheet": pl.String,
    "row": pl.Int64,
}
#: what makes two decisions on one finding the same decision
SAME = ("decision", "reason", "decided_by", "expires")


@dataclass(frozen=True)
class Formula:
    """A cell holding a formula: its value is a spreadsheet's computation, not what a steward typed."""

    text: str


@dataclass(frozen=True)
class SheetRow:
    """One row of a worklist sheet as read: where it is, and its cells by column name (``None``: empty)."""

    report: str  # the report folder it belongs to (its path: findings are looked up by it)
    file: str  # the workbook as messages name it (``tl1/worklists/vendor-load.xlsx``)
    sheet: str
    row: int  # as the spreadsheet numbers it (the header is row 1)
    values: Mapping[str, object]

    @property
    def where(self) -> str:
        """``file, sheet S, row N``: how a problem names the row."""
        return f"{self.file}, sheet {self.sheet}, row {self.row}"


def cell_text(value: object, column: str) -> tuple[str | None, str | None]:
    """A cell as text (spaces around it trimmed, empty as None), or the problem with it."""
    if isinstance(value, Formula):
        return None, f"{column}: a formula, type the value"
    if value is None:
        return None, None
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat(), None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return (text or None), None


def cell_date(value: object, column: str) -> tuple[dt.date | None, str | None]:
    """A cell as a date: a typed date (or date and time) or ISO text ``YYYY-MM-DD``; else the problem."""
    if isinstance(value, Formula):
        return None, f"{column}: a formula, type the value"
    if value is None:
        return None, None
    if isinstance(value, dt.datetime):
        return value.date(), None
    if isinstance(value, dt.date):
        return value, None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None, None
        head = text[:10]
        if len(text) == 10 or (len(text) > 10 and text[10] in "T "):
            try:
                return dt.date.fromisoformat(head), None
            except ValueError:
                pass
        return None, f"{column} {text!r} is not a date (YYYY-MM-DD)"
    return None, f"{column} {value!r} is not a date (YYYY-MM-DD)"


@dataclass(frozen=True)
class DecisionCheck:
    """The decisions an import may record, every problem (one line each), and the rows left empty."""

    decisions: pl.DataFrame  # DECISION_SCHEMA, in the order of the rows
    problems: tuple[str, ...]
    undecided: int  # rows without any decision cell filled


def _row_decision(row: SheetRow, known: dict[tuple[str, str], dict], as_of: dt.date) -> tuple[dict | None, list[str]]:
    """One row's decision, or why it cannot be recorded; (None, []) for a row left empty."""
    filled = [c for c in DECISION_COLUMNS if not is_empty(row.values.get(c))]
    if not filled:
        return None, []
    problems: list[str] = []
    bad: set[str] = set()  # columns whose cell cannot be read
    texts: dict[str, str | None] = {}
    dates: dict[str, dt.date | None] = {}
    for col in ("discrepancy_id", "decision", "decision_reason", "decided_by", "decided_on", "expires"):
        read = cell_date if col in ("decided_on", "expires") else cell_text
        value, p = read(row.values.get(col), col)
        if p:
            problems.append(p)
            bad.add(col)
        if col in ("decided_on", "expires"):
            dates[col] = value  # type: ignore[assignment]
        else:
            texts[col] = value  # type: ignore[assignment]
    word = (texts["decision"] or "").lower()
    reason, by, ident = texts["decision_reason"], texts["decided_by"], texts["discrepancy_id"]
    decided_on, expires = dates["decided_on"], dates["expires"]
    finding = known.get((row.report, ident or ""))
    if ident is None and "discrepancy_id" not in bad:
        problems.append("no discrepancy_id")
    elif ident is not None and finding is None:
        report = row.report.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        problems.append(f"unknown discrepancy_id {ident} (not a finding of the report {report})")
    if "decision" not in bad:
        if not word:
            problems.append(f"{', '.join(filled)} filled but no decision (fix or waive)")
        elif word not in DECISIONS:
            problems.append(f"decision {texts['decision']!r} is neither fix nor waive")
    if word == "waive":
        if "decision_reason" not in bad and (reason is None or len(reason) < MIN_REASON):
            problems.append("waive without decision_reason")
        if "expires" not in bad and expires is None:
            problems.append("waive without expires (the date the waiver ends)")
    if word in DECISIONS and "decided_by" not in bad and (by is None or len(by) < MIN_APPROVER):
        problems.append(f"{word} without decided_by")
    if expires is not None and expires < as_of:
        problems.append(f"expires {expires.isoformat()} lies in the past")
    if decided_on is not None and decided_on > as_of:
        problems.append(f"decided_on {decided_on.isoformat()} lies in the future")
    if problems or finding is None:
        return None, problems
    return {
        "migration": finding["migration"],
        "trial_load": finding["trial_load"],
        "discrepancy_id": ident,
        "check": finding["check"],
        "owner": finding["owner"],
        "decision": word,
        "reason": reason,
        "decided_by": by,
        "decided_on": decided_on or as_of,
        "expires": expires,
        "file": row.file,
        "sheet": row.sheet,
        "row": row.row,
    }, []


def is_empty(value: object) -> bool:
    """A cell left empty (or only spaces)."""
    return value is None or (isinstance(value, str) and not value.strip())


def check_decisions(rows: Sequence[SheetRow], known: pl.DataFrame, as_of: dt.date) -> DecisionCheck:
    """The decisions of the worklist rows, checked against the findings of their reports.

    ``known``: ``KNOWN_SCHEMA``, the findings of every report the rows belong to. Refused, one
    problem per line naming file, sheet and row: an unknown discrepancy id, an unknown decision
    word, a waive without reason, approver (``decided_by``) or expiry, any decision without
    ``decided_by``, an expiry in the past, a decision dated in the future, a formula or a
    non-date in a read cell, and two rows (in one workbook or two) deciding the same finding
    differently. An empty ``decided_on`` is the import's day (``as_of``).
    """
    by_id = {(r["report"], r["discrepancy_id"]): r for r in known.iter_rows(named=True)}
    accepted: list[tuple[SheetRow, dict]] = []
    problems: list[str] = []
    undecided = 0
    for row in rows:
        decision, found = _row_decision(row, by_id, as_of)
        problems += [f"{row.where}: {p}" for p in found]
        if decision is not None:
            accepted.append((row, decision))
        elif not found:
            undecided += 1
    first: dict[tuple[str, str], tuple[SheetRow, dict]] = {}
    for row, d in accepted:
        key = (d["migration"], d["discrepancy_id"])
        if key not in first:
            first[key] = (row, d)
            continue
        other_row, other = first[key]
        if tuple(d[k] for k in SAME) != tuple(other[k] for k in SAME):
            what = (
                d["decision"] if d["decision"] != other["decision"] else "a decision with other reason, by or expires"
            )
            problems.append(
                f"{row.where}: {d['discrepancy_id']} is decided differently in {other_row.where} "
                f"({what} here, {other['decision']} there)"
            )
    frame = pl.DataFrame([d for _, d in accepted], schema=DECISION_SCHEMA, orient="row")
    return DecisionCheck(frame if not problems else frame.head(0), tuple(problems), undecided)


def latest_decisions(audit: pl.DataFrame) -> pl.DataFrame:
    """The decision in force per finding: the latest recorded (``imported_at``, then record order)."""
    if audit.height == 0:
        return audit
    order = [c for c in ("imported_at", "decision_id") if c in audit.columns]
    return (
        audit.sort(order, maintain_order=True)
        .group_by("migration", "discrepancy_id", maintain_order=True)
        .last()
        .sort("migration", "discrepancy_id")
    )


def already_recorded(decisions: pl.DataFrame, current: pl.DataFrame) -> pl.Series:
    """Per decision, whether the decision in force on its finding is the same (a re-import): not recorded again."""
    if current.height == 0 or decisions.height == 0:
        return pl.Series("recorded", [False] * decisions.height, dtype=pl.Boolean)
    cols = [*SAME, "decided_on"]
    cur = current.select("migration", "discrepancy_id", *[pl.col(c).alias(f"_cur_{c}") for c in cols])
    joined = decisions.join(cur, on=["migration", "discrepancy_id"], how="left", maintain_order="left")
    same = pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"_cur_{c}")) for c in cols])
    return joined.select((pl.col("_cur_decision").is_not_null() & same).alias("recorded"))["recorded"]


def import_counts(decisions: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Decisions per owner and word: ``{owner: {fix: n, waive: m}}``, in report order of the owners."""
    counts = {o: dict.fromkeys(DECISIONS, 0) for o in OWNERS}
    for owner, word, n in decisions.group_by("owner", "decision").len().iter_rows():
        counts.setdefault(owner, dict.fromkeys(DECISIONS, 0))[word] = n
    return {o: c for o, c in counts.items() if any(c.values())}


def _phrase(r: dict, trial_load: str, status: str | None) -> str:
    by = f"decided by {r['decided_by']} on {r['decided_on']} in {r['trial_load']}"
    if r["decision"] == "waive":
        until = f", until {r['expires']}" if r["expires"] is not None else ""
        return f"waive ({by}{until})"
    due = f", due {r['expires']}" if r["expires"] is not None else ""
    if status == "resolved":
        return f"fix promised, done ({by})"
    if r["trial_load"] != trial_load:
        return f"fix promised, still present{due} ({by})"
    return f"fix promised{due} ({by})"


def with_decisions(view: pl.DataFrame, current: pl.DataFrame, trial_load: str) -> pl.DataFrame:
    """The findings with the decision in force on each (``previous_decision``, in words) and flags.

    ``current``: ``latest_decisions`` of the migration. ``fix_still_present``: a fix promised in an
    earlier trial load whose finding is still there in this one (not resolved). ``decided``: the
    decision word in force, or null.
    """
    if current.height == 0:
        return view.with_columns(
            pl.lit(None, dtype=pl.String).alias("previous_decision"),
            pl.lit(None, dtype=pl.String).alias("decided"),
            pl.lit(False).alias("fix_still_present"),
        )
    cur = {r["discrepancy_id"]: r for r in current.iter_rows(named=True)}
    ids = view["discrepancy_id"].to_list()
    statuses = view["status"].to_list() if "status" in view.columns else [None] * len(ids)
    text = [None if i not in cur else _phrase(cur[i], trial_load, s) for i, s in zip(ids, statuses, strict=True)]
    word = [cur[i]["decision"] if i in cur else None for i in ids]
    still = [
        i in cur and cur[i]["decision"] == "fix" and cur[i]["trial_load"] != trial_load and s != "resolved"
        for i, s in zip(ids, statuses, strict=True)
    ]
    return view.with_columns(
        pl.Series("previous_decision", text, dtype=pl.String),
        pl.Series("decided", word, dtype=pl.String),
        pl.Series("fix_still_present", still, dtype=pl.Boolean),
    )


def decision_counts(view: pl.DataFrame, recorded: int) -> dict:
    """Decisions taken and findings still undecided, per owner, over the open errors and warnings.

    ``view``: ``with_decisions`` output with ``owner``, ``waived`` and ``waiver_origin``.
    ``waived``: covered by any waiver; ``waived_by_decision``: of them, by a steward's decision;
    ``fix_promised``: a fix decided and not waived (``fix_still_present``: promised in an earlier
    load); ``undecided``: neither waived nor with a fix promised.
    """
    live = view.filter((pl.col("status") != "resolved") & pl.col("severity").is_in(["error", "warning"]))
    rows = []
    for o in OWNERS:
        sub = live.filter(pl.col("owner") == o)
        waived = sub.filter(pl.col("waived"))
        fix = sub.filter(~pl.col("waived") & (pl.col("decided") == "fix"))
        rows.append(
            {
                "owner": o,
                "open": sub.height,
                "waived": waived.height,
                "waived_by_decision": waived.filter(pl.col("waiver_origin") == "decision").height,
                "fix_promised": fix.height,
                "fix_still_present": fix.filter(pl.col("fix_still_present")).height,
                "undecided": sub.height - waived.height - fix.height,
            }
        )
    return {"recorded": recorded, "by_owner": rows}
