"""The view model of ``report.html``: everything the page shows, computed once, typed and frozen.

:func:`build_report_view` turns the discrepancies, summary.json and the unmapped codes into a
:class:`ReportView`; the templates render only from it. Values stay plain text here: the
templates escape them. Values that identify a person arrive masked in ``expected`` / ``actual``
(docs/decisions.md D29); nothing here adds a value of its own from the extract.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from checks import summary as sm
from checks.catalogue import OWNER_GROUPS
from checks.discrepancies import CATEGORIES, DISCREPANCY_COLUMNS, ENTITIES, OWNERS, status_totals, with_review_columns
from pipelines.report import charts
from pipelines.report.charts import Chart, FateBar, LegendItem
from pipelines.report.excel import OWNER_FILES
from pipelines.report.fmt import Figure, count_text, opt_text, text, when

MAX_ROWS_PER_OWNER = 2000
MAX_UNMAPPED_ROWS = 1000

ENTITY_ORDER = ENTITIES
#: owner group → (tab title, who acts)
OWNER_INFO = {o: (g.title, g.report_text) for o, g in OWNER_GROUPS.items()}
SEV_RANK = {"error": 0, "warning": 1, "info": 2}
STATUS_RANK = {"new": 0, "persisting": 1, "resolved": 2}
#: the count columns of the counts table: (key in summary.json entities, header)
COUNT_COLUMNS = (
    ("out_of_scope", "Out of scope"),
    ("rejected", "Rejected"),
    ("merged", "Merged"),
    ("migrated", "Migrated unchanged"),
    ("with_differences", "With differences"),
    ("missing", "Missing in target"),
    ("unexpected", "Unexpected in target"),
    ("expected_in_target", "Expected in target"),
    ("found_in_target", "Found in target"),
)
#: the columns of the findings per category: severities, then waived and resolved
CATEGORY_COLUMNS = ("error", "warning", "info", "waived", "resolved")


# ---------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class Gate:
    """One gate of summary.json."""

    gate: str
    category: str
    errors: int
    warnings: int | None
    waived: int
    threshold: str
    passed: bool


@dataclass(frozen=True)
class Tile:
    """A key figure under the verdict; ``cls`` colours it (its kind, or 'zero')."""

    id: str
    label: str
    value: int
    cls: str
    sub: str


@dataclass(frozen=True)
class Ledger:
    """Whether every record read is in the ledger."""

    balanced: bool | None
    records_read: Figure
    ledger_rows: Figure

    @property
    def text(self) -> str:
        """'yes', 'NO' or 'unknown'."""
        return "unknown" if self.balanced is None else ("yes" if self.balanced else "NO")

    @property
    def cls(self) -> str:
        """'ok', 'bad' or '' (unknown)."""
        return "" if self.balanced is None else ("ok" if self.balanced else "bad")


@dataclass(frozen=True)
class Verdict:
    """The head of the page: PASSED / FAILED, key figures, the failing gates."""

    passed: bool
    trial_load: str
    migration: str | None
    when: str
    lead: str
    tiles: tuple[Tile, ...]
    ledger: Ledger
    failing: tuple[Gate, ...]  # the worst few
    failing_more: int  # failing gates not in ``failing``
    #: with --archive: records in neither the target nor the archive, per entity (said first), and fixity
    lost: tuple[tuple[str, int], ...] = ()
    archive_checked: bool = False
    archive_intact: bool = True

    @property
    def lost_total(self) -> int:
        """Legacy records in neither the target nor the preservation archive."""
        return sum(n for _, n in self.lost)

    @property
    def word(self) -> str:
        """'PASSED' or 'FAILED'."""
        return "PASSED" if self.passed else "FAILED"


@dataclass(frozen=True)
class Charts:
    """The three charts and how many trial loads the trend has."""

    trend: Chart
    changes: Chart
    entities: Chart
    loads: int


@dataclass(frozen=True)
class CountCell:
    """One count of an entity; ``cls`` marks the figures to look at."""

    key: str
    value: Figure
    cls: str
    title: str | None = None


@dataclass(frozen=True)
class EntityCounts:
    """One row of the counts table."""

    name: str
    records_read: Figure
    derived: bool  # derived in the target, no legacy records of its own
    by_system: tuple[tuple[str, Figure], ...]
    cells: tuple[CountCell, ...]
    fate: FateBar | None


@dataclass(frozen=True)
class RejectedRow:
    """Rejected records of one entity, per reason (in ``Counts.reasons`` order)."""

    name: str
    counts: tuple[int, ...]
    total: int


@dataclass(frozen=True)
class ExtractFile:
    """One extract file read."""

    file: str
    status: str
    records: Figure


@dataclass(frozen=True)
class Counts:
    """Counts per entity and source system, rejected by reason, the files read."""

    systems: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    rows: tuple[EntityCounts, ...]
    reasons: tuple[str, ...]
    rejected: tuple[RejectedRow, ...]
    files: tuple[ExtractFile, ...]
    fate_legend: tuple[LegendItem, ...]


@dataclass(frozen=True)
class CategoryRow:
    """Open findings of one category, in ``CATEGORY_COLUMNS`` order; ``gate`` None when no gate names it."""

    category: str
    counts: tuple[tuple[str, int], ...]
    owners: tuple[tuple[str, int], ...]
    gate: bool | None

    @property
    def empty(self) -> bool:
        """No finding of this category at all."""
        return not any(n for _, n in self.counts)


@dataclass(frozen=True)
class Categories:
    """Findings per category and severity, and the totals."""

    rows: tuple[CategoryRow, ...]
    totals: tuple[int, ...]


@dataclass(frozen=True)
class ListColumn:
    """A column of the discrepancy lists: sort key, header, css class, width in %."""

    key: str
    label: str
    cls: str
    width: float


LIST_COLUMNS = (
    ListColumn("severity", "Severity", "c-sev", 5.5),
    ListColumn("status", "Status", "c-status", 7),
    ListColumn("category", "Category / check / id", "c-cat", 12),
    ListColumn("entity", "Entity", "c-ent", 6.5),
    ListColumn("source_ref", "Source ref", "c-ref", 10),
    ListColumn("target_ref", "Target ref", "c-ref", 7),
    ListColumn("column", "Column", "c-col", 7.5),
    ListColumn("expected", "Expected → actual", "c-val", 13),
    ListColumn("message", "Message", "c-msg", 18.5),
    ListColumn("suggested_action", "Suggested action", "c-act", 13),
)


@dataclass(frozen=True)
class Finding:
    """One discrepancy as the lists show it."""

    id: str | None
    owner: str
    severity: str
    status: str
    category: str | None
    check: str | None
    entity: str | None
    source_ref: str | None
    target_ref: str | None
    column: str | None
    expected: str | None
    actual: str | None
    nature: str | None  # of a value difference (``masking.NATURES``)
    message: str | None
    suggested_action: str | None
    waived: bool
    waiver: str | None
    decision: str | None = None  # the steward's decision in force on it (``previous_decision``), in words
    fix_still_present: bool = False  # a fix promised in an earlier trial load, the finding still there

    @property
    def decision_detail(self) -> str | None:
        """The decision in words, without the words the 'fix promised, still present' mark shows."""
        mark = "fix promised, still present"
        if self.decision and self.fix_still_present and self.decision.startswith(mark):
            return self.decision[len(mark) :].lstrip(", ")
        return self.decision

    @property
    def sev_rank(self) -> int:
        """Sort key of the severity (error first)."""
        return SEV_RANK.get(self.severity, 3)

    @property
    def status_rank(self) -> int:
        """Sort key of the status (new first)."""
        return STATUS_RANK.get(self.status, 3)


@dataclass(frozen=True)
class OwnerPanel:
    """The tab of one owner group; ``stem`` names its worklist and its element ids."""

    owner: str
    stem: str
    title: str
    who: str
    total: int
    open_errors: int
    findings: tuple[Finding, ...]  # the first MAX_ROWS_PER_OWNER
    active: bool

    @property
    def worklist(self) -> str:
        """Relative link to the owner's Excel worklist."""
        return f"worklists/{self.stem}.xlsx"


@dataclass(frozen=True)
class Lists:
    """The discrepancy lists: columns, one panel per owner, the values the filters offer."""

    columns: tuple[ListColumn, ...]
    panels: tuple[OwnerPanel, ...]
    categories: tuple[str, ...]
    severities: tuple[str, ...]
    statuses: tuple[str, ...]
    entities: tuple[str, ...]


@dataclass(frozen=True)
class UnmappedCode:
    """A legacy code with no mapping and its best candidates; ``bar`` its frequency in % of the most frequent."""

    entity: str | None
    system: str
    column: str | None
    code: str | None
    count: int
    bar: int
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class Unmapped:
    """The unmapped codes shown (the most frequent first), of ``total`` codes in ``records`` records."""

    codes: tuple[UnmappedCode, ...]
    total: int
    records: int

    @property
    def capped(self) -> bool:
        """Some codes are only in unmapped_codes.csv."""
        return self.total > len(self.codes)


@dataclass(frozen=True)
class Waiver:
    """A waiver of summary.json; ``days_left`` to its expiry when the date parses."""

    id: str | None
    matched: Figure
    reason: str | None
    approver_role: str | None
    expires: str | None
    days_left: int | None
    origin: str | None = None  # waivers.yaml, or decision (a steward's worklist)

    @property
    def expires_soon(self) -> bool:
        """Expires within 30 days."""
        return self.days_left is not None and 0 <= self.days_left <= 30


@dataclass(frozen=True)
class Waivers:
    """Waivers applied, in force but unmatched, and expired."""

    applied: tuple[Waiver, ...]
    unmatched: tuple[Waiver, ...]
    expired: tuple[Waiver, ...]

    @property
    def any(self) -> bool:
        """Any waiver recorded at all."""
        return bool(self.applied or self.unmatched or self.expired)


@dataclass(frozen=True)
class GateTable:
    """Every gate, failed first."""

    gates: tuple[Gate, ...]

    @property
    def has_warnings(self) -> bool:
        """Some gate counts warnings (the column is shown)."""
        return any(g.warnings is not None for g in self.gates)

    @property
    def failed(self) -> int:
        """How many gates failed."""
        return sum(not g.passed for g in self.gates)


@dataclass(frozen=True)
class NoteNature:
    """Notes whose text changed in one way (``text_altered`` of one nature)."""

    nature: str
    notes: int
    meaning: str


@dataclass(frozen=True)
class Notes:
    """The clinical notes of the load: how many arrived, and how their texts changed, by nature."""

    expected: int
    matched: int
    missing: int
    unexpected: int
    other_differences: int  # notes with a value_mismatch (person, encounter, type, signing time)
    natures: tuple[NoteNature, ...]  # every nature, the negation losses first
    altered: int

    @property
    def shown(self) -> bool:
        """The load has notes (expected or found), or a text finding."""
        return bool(self.expected or self.matched or self.unexpected or self.altered)


@dataclass(frozen=True)
class OwnerDecisionRow:
    """Decisions on one owner's open errors and warnings (summary.json ``decisions.by_owner``)."""

    owner: str
    title: str
    open: int
    waived: int
    waived_by_decision: int
    fix_promised: int
    fix_still_present: int
    undecided: int


@dataclass(frozen=True)
class DecisionsTable:
    """The stewards' decisions as they stand for this load, per owner."""

    recorded: int
    rows: tuple[OwnerDecisionRow, ...]


@dataclass(frozen=True)
class CoverageRow:
    """One code map: records by the review state of their entry; ``share`` approved, in % (None: no record)."""

    code_map: str
    records: int
    approved: int
    unchecked: int
    flagged: int
    unmapped: int
    share: float | None

    @property
    def cls(self) -> str:
        """'ok' when every record maps through an approved entry, else 'warn' ('' with no record)."""
        return "" if self.share is None else ("ok" if self.approved == self.records else "warn")


@dataclass(frozen=True)
class ReportView:
    """Everything report.html shows, in page order."""

    verdict: Verdict
    charts: Charts
    counts: Counts
    notes: Notes
    categories: Categories
    lists: Lists
    unmapped: Unmapped
    waivers: Waivers
    gates: GateTable
    errors: int
    warnings: int
    decisions: DecisionsTable = DecisionsTable(0, ())
    coverage: tuple[CoverageRow, ...] = ()

    @property
    def title(self) -> str:
        """The page title (without the product name)."""
        v = self.verdict
        return f"{v.word} · trial load {v.trial_load}" + (f" · {v.migration}" if v.migration else "")

    @property
    def meta(self) -> dict[str, object]:
        """The machine-readable summary embedded in the page."""
        return {
            "trial_load": self.verdict.trial_load,
            "verdict": self.verdict.word,
            "errors": self.errors,
            "warnings": self.warnings,
        }


# ---------------------------------------------------------------------------------------------
# building it


def build_report_view(
    disc: pl.DataFrame,
    summary: sm.Summary | None,
    unmapped: pl.DataFrame | None,
    *,
    max_rows_per_owner: int = MAX_ROWS_PER_OWNER,
    max_unmapped_rows: int = MAX_UNMAPPED_ROWS,
) -> ReportView:
    """The view of one trial load's report.

    ``disc``: the discrepancies (contract columns; ``owner``, ``waived`` and ``waiver`` are derived
    when absent); ``summary``: the run's ``checks.summary.Summary`` (None: the page is built from the
    discrepancies alone, as for a report without its summary); ``unmapped``: the unmapped codes
    with their candidates.
    """
    disc = _prepare(disc)
    open_ = disc.filter(pl.col("status") != "resolved")
    ents = _entities(summary)
    gates = _gates(summary)
    totals = _totals(open_, disc, summary)
    passed = summary.gate_passed if summary is not None else totals["errors"] == 0
    trial = text(summary.trial_load if summary is not None else (disc["trial_load"][0] if disc.height else ""))
    trend: list[dict] = [p.model_dump() for p in summary.trend] if summary is not None else []
    if not trend:
        trend = [{"trial_load": trial, "run_at": None, **totals}]
    # this load's point shows the figures of this page, so chart and tiles agree
    trend = [({**p, **totals} if p.get("trial_load") == trial else p) for p in trend]
    this_run = next((p for p in reversed(trend) if p.get("trial_load") == trial), None)
    run_at = (this_run or {}).get("run_at")
    try:
        today = dt.datetime.fromisoformat(str(run_at)).date() if run_at else dt.date.today()
    except ValueError:
        today = dt.date.today()
    return ReportView(
        verdict=_verdict(summary, trial, totals, gates, passed, when(run_at)),
        charts=_charts(trend, open_, ents),
        counts=_counts(summary, ents),
        notes=_notes(open_, ents),
        categories=_categories(disc, gates),
        lists=_lists(disc, max_rows_per_owner),
        unmapped=_unmapped(unmapped, max_unmapped_rows),
        waivers=_waivers(summary, today),
        gates=GateTable(tuple(sorted(gates, key=lambda g: (g.passed, -g.errors, g.gate)))),
        errors=totals["errors"],
        warnings=totals["warnings"],
        decisions=_decisions(summary),
        coverage=_coverage(summary),
    )


def _decisions(summary: sm.Summary | None) -> DecisionsTable:
    if summary is None:
        return DecisionsTable(0, ())
    d = summary.decisions
    rows = tuple(
        OwnerDecisionRow(
            owner=r.owner,
            title=OWNER_INFO.get(r.owner, (r.owner.capitalize(), ""))[0],
            open=r.open,
            waived=r.waived,
            waived_by_decision=r.waived_by_decision,
            fix_promised=r.fix_promised,
            fix_still_present=r.fix_still_present,
            undecided=r.undecided,
        )
        for r in d.by_owner
    )
    return DecisionsTable(d.recorded, rows)


def _coverage(summary: sm.Summary | None) -> tuple[CoverageRow, ...]:
    if summary is None:
        return ()
    return tuple(
        CoverageRow(
            text(c.code_map),
            c.records,
            c.approved,
            c.unchecked,
            c.flagged,
            c.unmapped,
            None if c.coverage is None else round(100 * c.coverage, 1),
        )
        for c in summary.code_maps
    )


def _prepare(disc: pl.DataFrame) -> pl.DataFrame:
    """The discrepancies with every column the page uses, in the page's order."""
    for c in DISCREPANCY_COLUMNS:
        if c not in disc.columns:
            disc = disc.with_columns(pl.lit(None, dtype=pl.String).alias(c))
    disc = with_review_columns(disc).with_columns(
        pl.col("waived").cast(pl.Boolean).fill_null(False),
        pl.col("status").fill_null("new"),
        pl.col("owner").fill_null("vendor load"),
    )
    return (
        disc.with_columns(
            pl.col("severity").replace_strict(SEV_RANK, default=3, return_dtype=pl.Int8).alias("_sev"),
            pl.col("status").replace_strict(STATUS_RANK, default=3, return_dtype=pl.Int8).alias("_st"),
        )
        .sort(["_st", "_sev", "waived", "entity", "category", "source_ref", "target_ref", "column"], nulls_last=True)
        .drop("_sev", "_st")
    )


def _entities(summary: sm.Summary | None) -> dict[str, sm.EntityCounts]:
    ents = summary.entities if summary is not None else {}
    order = {n: i for i, n in enumerate(ENTITY_ORDER)}
    return dict(sorted(ents.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))


def _totals(open_: pl.DataFrame, disc: pl.DataFrame, summary: sm.Summary | None) -> dict[str, int]:
    """Errors / warnings (open, not waived), waived (open), new / persisting / resolved."""
    t = {**status_totals(disc), "info": open_.filter(pl.col("severity") == "info").height}
    if summary is not None:  # the figures of summary.json win, so the page and CI agree
        given = summary.totals.model_dump()
        t |= {k: int(given[k]) for k in t if k in given and not isinstance(given[k], bool)}
    return t


def _gates(summary: sm.Summary | None) -> list[Gate]:
    return [
        Gate(
            gate=text(g.check),
            category=text(g.category or ""),
            errors=g.errors,
            warnings=g.warnings,
            waived=g.waived,
            threshold=text(g.threshold),
            passed=g.passed,
        )
        for g in (summary.gates if summary is not None else [])
    ]


def _verdict(
    summary: sm.Summary | None, trial: str, totals: dict[str, int], gates: list[Gate], passed: bool, at: str
) -> Verdict:
    failing = [g for g in gates if not g.passed]
    n_all, n_failing = count_text(len(gates)), count_text(len(failing))
    if passed:
        lead = (
            f"All {n_all} gates pass." if gates else "No gate failed."
        ) + " The trial load may proceed as far as this validation can tell."
    else:
        lead = (
            f"{n_failing} of {n_all} gates fail: error findings above their threshold, not waived."
            if gates
            else "The trial load fails its gate."
        )
    tiles = (
        ("k-errors", "Errors", "errors", "error", "open, not waived"),
        ("k-warnings", "Warnings", "warnings", "warning", "open, not waived"),
        ("k-waived", "Waived", "waived", "waived", "accepted by stewards"),
        ("k-new", "New", "new", "new", "since the previous load"),
        ("k-persisting", "Persisting", "persisting", "persisting", "still open"),
        ("k-resolved", "Resolved", "resolved", "resolved", "gone since last"),
    )
    shown = sorted(failing, key=lambda g: -g.errors)[:8]
    archive = summary.archive if summary is not None else None
    return Verdict(
        passed=passed,
        trial_load=trial,
        migration=opt_text(summary.migration if summary is not None else None),
        when=at,
        lead=lead,
        tiles=tuple(Tile(i, label, totals[k], cls if totals[k] else "zero", sub) for i, label, k, cls, sub in tiles),
        ledger=Ledger(None, None, None)
        if summary is None
        else Ledger(summary.ledger_balanced, summary.records_read, summary.ledger_rows),
        failing=tuple(shown),
        failing_more=len(failing) - len(shown),
        lost=tuple((e, c.neither) for e, c in archive.entities.items() if c.neither) if archive else (),
        archive_checked=archive is not None,
        archive_intact=archive.intact if archive is not None else True,
    )


def _charts(trend: list[dict], open_: pl.DataFrame, ents: dict[str, sm.EntityCounts]) -> Charts:
    names = list(ents) or ENTITY_ORDER
    extra = sorted(set(open_["entity"].drop_nulls().to_list()) - set(names))
    rows = []
    for name in [*names, *extra]:
        sub = open_.filter(pl.col("entity") == name)
        nw = sub.filter(~pl.col("waived"))
        rows.append(
            (
                name,
                nw.filter(pl.col("severity") == "error").height,
                nw.filter(pl.col("severity") == "warning").height,
                sub.filter(pl.col("waived") & (pl.col("severity") != "info")).height,
            )
        )
    return Charts(charts.trend_lines(trend), charts.trend_changes(trend), charts.entity_bars(rows), len(trend))


def _counts(summary: sm.Summary | None, ents: dict[str, sm.EntityCounts]) -> Counts:
    systems = tuple(sorted({s for v in ents.values() for s in v.records_read_by_system}))
    rows = []
    for name, v in ents.items():
        by = v.records_read_by_system
        read = v.records_read
        cells = []
        for k, _ in COUNT_COLUMNS:
            val = getattr(v, k)
            cls = "num"
            if k in ("missing", "unexpected", "with_differences") and val:
                cls += " hl-bad"
            elif k == "rejected" and val:
                cls += " hl-warn"
            title = None
            if k == "rejected" and v.rejected_by_category:
                title = ", ".join(f"{c}: {n}" for c, n in v.rejected_by_category.items())
            cells.append(CountCell(k, val, cls, title))
        rows.append(
            EntityCounts(
                name=name,
                records_read=read,
                derived=not read and not by,
                by_system=tuple((s, by.get(s, 0)) for s in systems),
                cells=tuple(cells),
                fate=charts.fate_bar(v.model_dump()),
            )
        )
    reasons = tuple(sorted({r for v in ents.values() for r in v.rejected_by_category}))
    rejected = tuple(
        RejectedRow(name, tuple(rc.get(r, 0) for r in reasons), sum(rc.values()))
        for name, v in ents.items()
        if (rc := v.rejected_by_category)
    )
    files = tuple(
        ExtractFile(text(f.file), text(f.status), f.records) for f in (summary.files if summary is not None else [])
    )
    return Counts(systems, COUNT_COLUMNS, tuple(rows), reasons, rejected, files, charts.fate_legend())


#: what each nature of a text change means, in the report's order: the negation losses first
NOTE_NATURES: tuple[tuple[str, str], ...] = (
    ("negation_lost", "a negation word (ingen, inte, ej …) is missing: the note may now say the opposite"),
    ("chunk_missing", "a whole 4,000-character chunk of the text is missing"),
    ("chunk_order", "every chunk is there, in the wrong order"),
    ("truncated", "the text is cut short"),
    ("encoding", "UTF-8 text read as Windows-1252 (Ã¶ for ö)"),
    ("markup", "RTF or HTML formatting code arrived as text"),
    ("words_lost", "other words are missing"),
    ("words_added", "words are there that the source text does not hold"),
    ("line_breaks_lost", "the words are the same, the line breaks are not"),
    ("other", "other characters differ (punctuation, spaces)"),
)


def _notes(open_: pl.DataFrame, ents: dict[str, sm.EntityCounts]) -> Notes:
    """The clinical notes section: counts of the notes and of their text changes per nature."""
    ce = ents.get("clinical_event")
    notes = open_.filter(pl.col("entity") == "clinical_event")
    text = notes.filter(pl.col("category") == "text_altered")
    per = dict(text.group_by("nature").agg(pl.col("source_ref").n_unique()).iter_rows())
    values = notes.filter(pl.col("category") == "value_mismatch")["source_ref"].n_unique()
    return Notes(
        expected=ce.expected_in_target if ce else 0,
        matched=ce.matched if ce else 0,
        missing=ce.missing if ce else 0,
        unexpected=ce.unexpected if ce else 0,
        other_differences=values,
        natures=tuple(NoteNature(n, int(per.get(n, 0)), meaning) for n, meaning in NOTE_NATURES),
        altered=text["source_ref"].n_unique(),
    )


def _categories(disc: pl.DataFrame, gates: list[Gate]) -> Categories:
    open_ = disc.filter(pl.col("status") != "resolved")
    cats = list(CATEGORIES) + sorted(set(disc["category"].drop_nulls().to_list()) - set(CATEGORIES))
    gate_state: dict[str, bool] = {}
    for g in gates:
        if g.category:
            gate_state[g.category] = gate_state.get(g.category, True) and g.passed
    rows = []
    totals = dict.fromkeys(CATEGORY_COLUMNS, 0)
    for c in cats:
        sub = open_.filter(pl.col("category") == c)
        nw = sub.filter(~pl.col("waived"))
        vals = {s: nw.filter(pl.col("severity") == s).height for s in ("error", "warning", "info")}
        vals["waived"] = sub.filter(pl.col("waived")).height
        vals["resolved"] = disc.filter((pl.col("category") == c) & (pl.col("status") == "resolved")).height
        for k in totals:
            totals[k] += vals[k]
        owners = tuple((o, n) for o, n in sub.group_by("owner").len().sort("owner").iter_rows())
        rows.append(CategoryRow(c, tuple((k, vals[k]) for k in CATEGORY_COLUMNS), owners, gate_state.get(c)))
    return Categories(tuple(rows), tuple(totals.values()))


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def _finding(r: dict) -> Finding:
    return Finding(
        id=opt_text(r.get("discrepancy_id")),
        owner=text(r.get("owner")),
        severity=text(r.get("severity")),
        status=text(r.get("status")),
        category=opt_text(r.get("category")),
        check=opt_text(r.get("check")),
        entity=opt_text(r.get("entity")),
        source_ref=opt_text(r.get("source_ref")),
        target_ref=opt_text(r.get("target_ref")),
        column=opt_text(r.get("column")),
        expected=opt_text(r.get("expected")),
        actual=opt_text(r.get("actual")),
        nature=opt_text(r.get("nature")),
        message=opt_text(r.get("message")),
        suggested_action=opt_text(r.get("suggested_action")),
        waived=bool(r.get("waived")),
        waiver=opt_text(r.get("waiver")),
        decision=opt_text(r.get("previous_decision")),
        fix_still_present=bool(r.get("fix_still_present")),
    )


def _lists(disc: pl.DataFrame, max_rows: int) -> Lists:
    owners = list(OWNERS) + sorted(set(disc["owner"].drop_nulls().to_list()) - set(OWNERS))
    panels = []
    for i, o in enumerate(owners):
        sub = disc.filter(pl.col("owner") == o)
        open_err = sub.filter(
            (pl.col("status") != "resolved") & (pl.col("severity") == "error") & ~pl.col("waived")
        ).height
        title, who = OWNER_INFO.get(o, (o.capitalize(), ""))
        panels.append(
            OwnerPanel(
                owner=o,
                stem=OWNER_FILES.get(o) or _slug(o),
                title=title,
                who=who,
                total=sub.height,
                open_errors=open_err,
                findings=tuple(_finding(r) for r in sub.head(max_rows).iter_rows(named=True)),
                active=i == 0,
            )
        )

    def options(col: str, order: list[str]) -> tuple[str, ...]:
        vals = {text(v) for v in disc[col].drop_nulls().to_list()}
        return tuple([v for v in order if v in vals] + sorted(vals - set(order)))

    return Lists(
        columns=LIST_COLUMNS,
        panels=tuple(panels),
        categories=options("category", CATEGORIES),
        severities=options("severity", list(SEV_RANK)),
        statuses=options("status", list(STATUS_RANK)),
        entities=options("entity", ENTITY_ORDER),
    )


def _unmapped(unmapped: pl.DataFrame | None, max_rows: int) -> Unmapped:
    if unmapped is None or unmapped.height == 0:
        return Unmapped((), 0, 0)
    u = unmapped
    for c in ("entity", "source_system", "column", "code"):
        if c not in u.columns:
            u = u.with_columns(pl.lit(None, dtype=pl.String).alias(c))
    if "count" not in u.columns:
        u = u.with_columns(pl.lit(0).alias("count"))
    if "candidates" not in u.columns:
        u = u.with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("candidates"))
    u = u.sort(["count", "entity", "code"], descending=[True, False, False], nulls_last=True)
    vmax = max(int(u.select(pl.col("count").fill_null(0).max()).item() or 0), 1)
    codes = []
    for r in u.head(max_rows).iter_rows(named=True):
        cnt = int(r.get("count") or 0)
        cands = r.get("candidates") or []
        if isinstance(cands, str):
            cands = [cands]
        codes.append(
            UnmappedCode(
                entity=opt_text(r.get("entity")),
                system=text(r.get("source_system") or "").upper(),
                column=opt_text(r.get("column")),
                code=None if r.get("code") in (None, "") else text(r.get("code")),
                count=cnt,
                bar=round(100 * cnt / vmax),
                candidates=tuple(text(c) for c in list(cands)[:5]),
            )
        )
    return Unmapped(tuple(codes), u.height, int(u["count"].fill_null(0).sum()))


def _days_to(expires: object, today: dt.date) -> int | None:
    try:
        return (dt.date.fromisoformat(str(expires)[:10]) - today).days
    except ValueError:
        return None


def _waivers(summary: sm.Summary | None, today: dt.date) -> Waivers:
    def items(rows: list[sm.AppliedWaiver] | list[sm.WaiverRow]) -> tuple[Waiver, ...]:
        return tuple(
            Waiver(
                id=opt_text(x.id),
                matched=getattr(x, "matched", None),
                reason=opt_text(x.reason),
                approver_role=opt_text(x.approver_role),
                expires=opt_text(x.expires),
                days_left=_days_to(x.expires, today),
                origin=opt_text(x.origin),
            )
            for x in rows
        )

    if summary is None:
        return Waivers((), (), ())
    w = summary.waivers
    return Waivers(items(w.applied), items(w.unmatched), items(w.expired))
