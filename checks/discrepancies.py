"""Findings of every check family → the report contract's discrepancies, ledger and summary.

Pure polars: frames in, frames (and plain dicts) out. The contract is ``shared/spec/README.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import polars as pl

from checks import catalogue
from checks.catalogue import CATEGORIES
from checks.findings import FINDING_SCHEMA, FINDING_SCHEMA_INFO
from checks.frames import DISPOSITIONS, Finding
from checks.mapping import Mappings
from checks.reconcile import Reconciliation, ranked
from checks.records import FILE_ENTITY

DISCREPANCY_COLUMNS = [
    "discrepancy_id",
    "trial_load",
    "check",
    "category",
    "severity",
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
    "status",
]
#: who must act on a finding, in report order (the catalogue's owners)
OWNERS = catalogue.OWNERS
#: the entities of the report, in the order they are shown
ENTITIES = catalogue.ENTITIES
LEDGER_COLUMNS = ["source_ref", "source_system", "entity", "disposition", "reason"]
_SYSTEM = {"pas": "PAS", "pcs": "PCS"}


def _blank(df: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    return df.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in cols if c not in df.columns)


def source_findings(findings: pl.DataFrame) -> pl.DataFrame:
    """Source-layer findings (rules on the extract) with their check ids.

    ``expected``/``actual`` as the rules engine gives them: for a code, what would have been
    accepted and the code as found (D41); blank where a finding shows no value.
    """
    f = findings
    declared = pl.DataFrame(
        [(e, cat, c.id) for (e, cat), c in catalogue.SOURCE.items()],
        schema=["entity", "category", "check"],
        orient="row",
    )
    f = f.join(declared, on=["entity", "category"], how="left", maintain_order="left")
    if f["check"].null_count():
        pairs = f.filter(pl.col("check").is_null()).select("entity", "category").unique().rows()
        raise catalogue.UndeclaredCheck(f"no source check declared for (entity, category) {sorted(pairs)}")
    return _blank(f, ["target_ref", "expected", "actual", "nature"])


def target_check_findings(failures: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
    """Target-check failures, each named by its legacy record where the row was matched to one.

    ``failures`` as ``pipelines.io.gx_checks`` gives them: per failing row what the check expected,
    the value found (masked where it identifies a person) and the steward message.
    """
    if failures.height == 0:
        return pl.DataFrame(schema=FINDING_SCHEMA)
    # only the links of failing rows: never a copy of every link of the load
    link = (
        links.lazy()
        .select("target_ref", "source_ref")
        .join(failures.lazy().select("target_ref"), on="target_ref", how="semi", maintain_order="left")
        .unique("target_ref", keep="first", maintain_order=True)
        .collect(engine="in-memory")
    )
    out = failures.join(link, on="target_ref", how="left", maintain_order="left")

    def text(c: str) -> pl.Expr:
        return pl.col(c).cast(pl.String) if c in out.columns else pl.lit(None, dtype=pl.String)

    fallback = pl.lit("the row fails ") + pl.col("check_id")
    return out.select(
        pl.col("check_id").alias("check"),
        "category",
        "entity",
        pl.col("source_ref").str.split(":").list.first().alias("source_system"),
        "source_ref",
        "target_ref",
        "column",
        text("expected").alias("expected"),
        text("actual").alias("actual"),
        pl.lit(None, dtype=pl.String).alias("nature"),
        pl.coalesce(text("message"), text("description"), fallback).alias("message"),
    )


def table_counts(tables: dict[str, pl.DataFrame], column: str) -> pl.DataFrame:
    """Rows per table and contributor system (``table, contributor_system_cd, <column>``).

    Counts of several partitions add up (``sum_counts``) to those of the whole.
    """
    parts = [
        df.group_by("contributor_system_cd").len().select(pl.lit(t).alias("table"), "contributor_system_cd", "len")
        for t, df in tables.items()
    ]
    schema = {"table": pl.String, "contributor_system_cd": pl.String, column: pl.Int64}
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(parts).rename({"len": column}).cast(schema)  # type: ignore[arg-type]


def sum_counts(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Counts of ``table_counts`` summed over parts."""
    df = pl.concat(parts)
    value = df.columns[-1]
    return df.group_by("table", "contributor_system_cd", maintain_order=True).agg(pl.col(value).sum())


def row_count_findings(expected: pl.DataFrame, actual: pl.DataFrame, tables: Sequence[str]) -> pl.DataFrame:
    """Counts per entity and source system: info when equal, error when not.

    ``expected`` and ``actual``: ``table_counts`` of the expected and of the target tables;
    ``tables`` in the order the report lists them.
    """
    rows = []
    for t in tables:
        e = expected.filter(pl.col("table") == t).select("contributor_system_cd", "expected")
        a = actual.filter(pl.col("table") == t).select("contributor_system_cd", "actual")
        j = (
            e.join(a, on="contributor_system_cd", how="full", coalesce=True)
            .fill_null(0)
            .sort("contributor_system_cd", nulls_last=True)
        )
        chk = catalogue.COUNT[t]
        for r in j.iter_rows(named=True):
            sysname = (r["contributor_system_cd"] or "unknown").lower()
            same = r["expected"] == r["actual"]
            rows.append(
                {
                    "check": chk.id,
                    "category": chk.category,
                    "entity": chk.entity,
                    "source_system": sysname if sysname in ("pas", "pcs") else None,
                    "source_ref": None,
                    "target_ref": None,
                    "column": None,
                    "expected": str(r["expected"]),
                    "actual": str(r["actual"]),
                    "message": f"{sysname.upper()} {t} rows: {r['expected']} expected, {r['actual']} in the target"
                    + ("" if same else f" ({r['actual'] - r['expected']:+d})"),
                    "_info": same,
                }
            )
    return pl.DataFrame(rows, schema=FINDING_SCHEMA_INFO)


def _code_hints(m: Mappings) -> dict[tuple[str, str, str], str]:
    hints: dict[tuple[str, str, str], str] = {}
    for t, tm in m.tables.items():
        for s in tm.sources:
            for col, cm in s.columns.items():
                if cm.code_map:
                    hints[(t, s.system, col)] = f"mappings/code_maps/{cm.code_map}.csv"
                elif cm.nomenclature:
                    hints[(t, s.system, col)] = f"the {cm.nomenclature} nomenclature"
    return hints


def _extract_files() -> dict[str, str]:
    """``system|entity`` → the extract file holding that system's records of the entity."""
    return {f"{f.split('/')[0]}|{e}": f for f, e in FILE_ENTITY.items()}


def suggested_action(m: Mappings) -> pl.Expr:
    """An expression giving what to correct and where: the action of each finding's check, filled in.

    The templates are the catalogue's (``checks.catalogue``); the mappings say which code map or
    nomenclature a column's codes belong to.
    """
    hints = _code_hints(m)
    keys = [f"{t}|{s}|{c}" for (t, s, c) in hints]
    hint = (
        pl.col("entity") + "|" + pl.col("source_system").fill_null("") + "|" + pl.col("column").fill_null("")
    ).replace_strict(dict(zip(keys, hints.values(), strict=True)), default="the code map")
    file = (pl.col("source_system").fill_null("") + "|" + pl.col("entity")).replace_strict(
        _extract_files(), default="the extract file"
    )
    return catalogue.render_action(
        {
            "system": pl.col("source_system").fill_null("").str.to_uppercase(),
            "code_map": hint,
            "column": pl.col("column").fill_null("the value"),
            "field": pl.col("column").fill_null("the line"),
            "file": file,
        }
    )


def _stable_id(
    check: str,
    source_ref: str | None,
    target_ref: str | None,
    column: str | None,
    entity: str | None,
    system: str | None,
) -> str:
    anchor = source_ref or target_ref or f"{entity}:{system or ''}"
    return hashlib.sha1(f"{check}|{anchor}|{column or ''}".encode()).hexdigest()[:16]


def _declared(df: pl.DataFrame) -> pl.DataFrame:
    """The findings with their check's declaration (``_severity``); raises on an undeclared check.

    A finding whose check the catalogue does not declare, or whose category is not its check's, is
    a bug in the check that emitted it, never a user error.
    """
    unknown = catalogue.undeclared(df["check"].unique().to_list())
    if unknown:
        raise catalogue.UndeclaredCheck(
            f"findings name check ids that checks/catalogue.py does not declare: {', '.join(map(str, unknown))}"
        )
    decl = catalogue.catalogue_frame().select(
        "check", pl.col("category").alias("_declared_category"), pl.col("severity").alias("_severity")
    )
    df = df.join(decl, on="check", how="left", maintain_order="left")
    wrong = df.filter(pl.col("category").ne_missing(pl.col("_declared_category")))
    if wrong.height:
        pairs = sorted(wrong.select("check", "category").unique().rows(), key=str)
        raise catalogue.UndeclaredCheck(f"findings carry a category their check does not declare: {pairs}")
    return df.drop("_declared_category")


def discrepancies(parts: list[pl.DataFrame], trial_load: str, m: Mappings) -> pl.DataFrame:
    """All findings as the contract's discrepancy rows, sorted, with stable ids.

    Severity and suggested action come from each finding's check in the catalogue; a finding of an
    undeclared check raises ``catalogue.UndeclaredCheck``.
    """
    cols = list(FINDING_SCHEMA)
    frames = []
    for p in parts:
        p = _blank(p, cols + ["_info"])
        frames.append(p.select(*cols, pl.col("_info").cast(pl.Boolean)))
    df = _declared(pl.concat(frames, how="vertical_relaxed"))
    Finding.validate(df.select(cols))  # the boundary from the checks into the report rows
    df = df.with_columns(
        pl.when(pl.col("_info").fill_null(False)).then(pl.lit("info")).otherwise(pl.col("_severity")).alias("severity"),
        pl.lit(trial_load).alias("trial_load"),
        pl.lit("new").alias("status"),
    ).with_columns(suggested_action(m).alias("suggested_action"))
    df = df.with_columns(
        pl.struct("check", "source_ref", "target_ref", "column", "entity", "source_system")
        .map_elements(
            lambda r: _stable_id(
                r["check"], r["source_ref"], r["target_ref"], r["column"], r["entity"], r["source_system"]
            ),
            return_dtype=pl.String,
        )
        .alias("discrepancy_id")
    )
    order = {"error": 0, "warning": 1, "info": 2}
    return (
        df.with_columns(pl.col("severity").replace_strict(order, return_dtype=pl.Int8).alias("_o"))
        .sort(
            [
                "_o",
                "entity",
                "category",
                "source_ref",
                "target_ref",
                "column",
                "check",
                "discrepancy_id",
                "expected",
                "actual",
                "message",
            ],
            nulls_last=True,
            maintain_order=True,
        )
        .select(DISCREPANCY_COLUMNS)
    )


#: the record kinds whose staged rows link a legacy record to its (merged) person
PERSON_RECORDS = ("pas/patient", "pcs/patients")


def person_links(staged: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """``source_ref → person_ref`` of every patient record (the merged person it belongs to).

    Staged records of a partition carry ``_row`` (their position in the extract file): then the
    links carry ``_records`` and ``_row`` too, so that the links of partitions can be put back in
    extract order.
    """
    return pl.concat(
        [
            df.select(
                "source_ref",
                "person_ref",
                *([pl.lit(k).alias("_records"), pl.col("_row").cast(pl.Int64)] if "_row" in df.columns else []),
            )
            for k, df in staged.items()
            if k in PERSON_RECORDS
        ],
        how="vertical_relaxed",
    )


def touched_refs(disc: pl.DataFrame) -> pl.Series:
    """The legacy records a reconciliation or target-check discrepancy (not an info) names.

    A record found in the target that one of them names is ``migrated_with_differences``.
    """
    return (
        disc.filter(pl.col("severity") != "info")
        .filter(catalogue.layer_of().is_in(["reconcile", "target"]) & pl.col("source_ref").is_not_null())["source_ref"]
        .unique()
        .sort()
    )


def final_ledger(
    ledger: pl.DataFrame,
    persons: pl.DataFrame,
    status: pl.DataFrame,
    touched: pl.Series,
    keep: Sequence[str] = (),
) -> pl.DataFrame:
    """One row per legacy record with its final disposition.

    ``ledger``: the expected ledger (every record with its disposition before reconciliation);
    ``persons``: ``person_links``; ``status``: the statuses of the reconciliation
    (``EntityPart.status``: entity, source_ref, person_ref, _rank, status); ``touched``:
    ``touched_refs`` of the discrepancies. ``keep``: columns of ``ledger`` kept beside the
    contract's (a partition's ``_records`` and ``_row``).

    It may be given the records of one partition with their persons and statuses: a record, its
    person and every status of both lie in one partition (``checks.components``), so the rows are
    the ones the whole load would give.
    """
    person_of = persons.lazy().filter(pl.col("person_ref").is_not_null()).unique("source_ref", keep="first")
    pstatus = (
        status.lazy()
        .filter(pl.col("entity") == "person")
        .select(pl.col("source_ref").alias("person_ref"), pl.col("status").alias("_pstatus"))
    )
    # the k-th ledger row of a (source_ref, entity) takes the k-th status of it; ranked by a window
    # only where a pair repeats (two identical legacy rows): a window over millions of one-row
    # groups would hold every group at once. The statuses are joined to the keys alone and set
    # beside the ledger (every join keeps the ledger's rows and order), so no join copies its text.
    key = ["source_ref", "entity"]
    others = ranked(
        status.filter(pl.col("entity") != "person").select(*key, pl.col("status").alias("_ostatus")),
        key,
        "_ri",
        "_k",
    ).lazy()
    keys = ranked(ledger.select(key), key, "_ri", "_k")
    joined = (
        keys.lazy()
        .join(person_of, on="source_ref", how="left", maintain_order="left")
        .join(pstatus, on="person_ref", how="left", maintain_order="left")
        .join(others, on=[*key, "_k"], how="left", maintain_order="left")
        .select(pl.when(pl.col("entity") == "person").then(pl.col("_pstatus")).otherwise(pl.col("_ostatus")))
        .collect(engine="in-memory")
        .to_series()
    )
    if joined.len() != keys.height:  # a status of a record given twice: the ledger must not grow
        raise ValueError("final_ledger: a record has more than one status")
    led = ledger.lazy().select(*LEDGER_COLUMNS, *keep).with_columns(joined.alias("_st"))
    st = (
        pl.when((pl.col("_st") == "migrated") & pl.col("source_ref").is_in(touched.implode()))
        .then(pl.lit("migrated_with_differences"))
        .otherwise(pl.col("_st"))
    )
    final = (
        pl.when(pl.col("disposition") == "expected")
        .then(st.fill_null("missing_in_target"))
        .otherwise(pl.col("disposition"))
    )
    reason = (
        pl.when(pl.col("disposition") != "expected")
        .then(pl.col("reason"))
        .when(final == "missing_in_target")
        .then(pl.lit("not found in the target"))
        .when(final == "migrated_with_differences")
        .then(pl.lit("found in the target; see its discrepancies"))
        .otherwise(pl.lit("found in the target, all compared values equal"))
    )
    return (
        led.with_columns(final.alias("disposition"), reason.alias("reason"))
        .select(*LEDGER_COLUMNS, *keep)
        .collect(engine="in-memory")
    )


#: the columns ledger_counts counts the ledger's rows by
COUNT_KEYS = ["entity", "source_system", "disposition", "_cat", "archived", "_no_ref"]


def ledger_counts(ledger: pl.DataFrame) -> pl.DataFrame:
    """The ledger's rows counted by what the summary reports of them (``COUNT_KEYS``, ``len``).

    ``_cat``: a rejected record's category (``parent_rejected`` or its reason's first word);
    ``archived``: with ``--archive``, the archive holds it intact (else false); ``_no_ref``: it
    has no ``source_ref``. Groups in the order first met: the counts of a ledger written in
    slices (``merge_ledger_counts``) are those of the whole ledger.
    """
    archived = pl.col("archived").fill_null(False) if "archived" in ledger.columns else pl.lit(False)
    cat = (
        pl.when(pl.col("disposition") != "rejected")
        .then(pl.lit(None, dtype=pl.String))
        .when(pl.col("reason").str.starts_with("parent rejected"))
        .then(pl.lit("parent_rejected"))
        .otherwise(pl.col("reason").str.split(":").list.first())
    )
    return (
        ledger.lazy()
        .select(
            "entity",
            "source_system",
            "disposition",
            cat.alias("_cat"),
            archived.alias("archived"),
            pl.col("source_ref").is_null().alias("_no_ref"),
        )
        .group_by(COUNT_KEYS, maintain_order=True)
        .len()
        .collect(engine="in-memory")
    )


def merge_ledger_counts(counts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The ``ledger_counts`` of slices of a ledger (in ledger order) as those of the whole."""
    return pl.concat(counts, how="vertical_relaxed").group_by(COUNT_KEYS, maintain_order=True).agg(pl.col("len").sum())


@dataclass(frozen=True)
class EntitySummary:
    """Counts of one entity."""

    entity: str
    records_read: int
    records_read_by_system: dict
    out_of_scope: int
    rejected: int
    rejected_by_category: dict
    merged: int
    expected_in_target: int
    found_in_target: int
    matched: int
    missing: int
    unexpected: int
    with_differences: int
    migrated: int

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class RunSummary:
    """summary.json."""

    trial_load: str
    entities: list[EntitySummary]
    by_category: dict
    gates: list[dict]
    gate_passed: bool
    ledger_balanced: bool
    records_read: int
    ledger_rows: int
    files: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        d = asdict(self)
        d["entities"] = {e.entity: {k: v for k, v in e.to_dict().items() if k != "entity"} for e in self.entities}
        return d


def summarise(
    trial_load: str,
    expected_rows: dict[str, int],
    recon: Reconciliation,
    found: dict[str, int],
    counts: pl.DataFrame,
    disc: pl.DataFrame,
    records_read: int,
    files: pl.DataFrame,
) -> RunSummary:
    """Per entity and category counts, the default gate (no error), and the ledger balance.

    ``counts``: the final ledger's ``ledger_counts`` (the ledger itself may be far larger than memory).
    """
    entities = []
    per_entity = {r["entity"]: r for r in recon.counts.iter_rows(named=True)}
    for e in ENTITIES:
        le = counts.filter(pl.col("entity") == e)
        c = per_entity.get(e, {})
        by_disp = {d: int(n) for d, n in le.group_by("disposition").agg(pl.col("len").sum()).iter_rows()}

        def d(state: str, _counts: dict = by_disp) -> int:
            return _counts.get(state, 0)

        ent_disc = disc.filter(pl.col("entity") == e)
        rejected = le.filter(pl.col("disposition") == "rejected").group_by("_cat").agg(pl.col("len").sum())
        entities.append(
            EntitySummary(
                entity=e,
                records_read=int(le["len"].sum()),
                records_read_by_system={
                    s: int(n)
                    for s, n in le.group_by("source_system").agg(pl.col("len").sum()).sort("source_system").iter_rows()
                },
                out_of_scope=d("out_of_scope"),
                rejected=d("rejected"),
                rejected_by_category={k: int(n) for k, n in rejected.sort("_cat").iter_rows()},
                merged=d("merged"),
                expected_in_target=expected_rows.get(e, 0),
                found_in_target=found.get(e, 0),
                matched=c.get("matched", 0)
                if e in per_entity
                else (
                    expected_rows[e] - ent_disc.filter(pl.col("category") == "missing_in_target").height
                    if e in expected_rows
                    else 0
                ),
                missing=c.get("missing", ent_disc.filter(pl.col("category") == "missing_in_target").height),
                unexpected=c.get("unexpected", ent_disc.filter(pl.col("category") == "unexpected_in_target").height),
                with_differences=d("migrated_with_differences"),
                migrated=d("migrated"),
            )
        )
    by_cat: dict[str, dict[str, int]] = {}
    for r in disc.group_by("category", "severity").len().sort("category", "severity").iter_rows(named=True):
        by_cat.setdefault(r["category"], {})[r["severity"]] = r["len"]
    gates = []
    for cat in CATEGORIES:
        n = disc.filter((pl.col("category") == cat) & (pl.col("severity") == "error")).height
        gates.append({"gate": cat, "errors": n, "max_errors": 0, "passed": n == 0})
    rows = int(counts["len"].sum())
    balanced = (
        rows == records_read
        and bool(counts["disposition"].is_in(DISPOSITIONS).all())
        and not bool(counts["_no_ref"].any())
    )
    return RunSummary(
        trial_load=trial_load,
        entities=entities,
        by_category=by_cat,
        gates=gates,
        gate_passed=all(g["passed"] for g in gates),
        ledger_balanced=bool(balanced),
        records_read=records_read,
        ledger_rows=rows,
        files=files.to_dicts(),
    )


def status_totals(view: pl.DataFrame) -> dict[str, int]:
    """Errors and warnings open and not waived, waived (open), and new / persisting / resolved.

    ``view``: discrepancies with their ``status`` against the previous load and ``waived``.
    """
    live = view.filter(pl.col("status") != "resolved")
    return {
        "errors": live.filter((pl.col("severity") == "error") & ~pl.col("waived")).height,
        "warnings": live.filter((pl.col("severity") == "warning") & ~pl.col("waived")).height,
        "waived": live.filter(pl.col("waived")).height,
        "new": view.filter(pl.col("status") == "new").height,
        "persisting": view.filter(pl.col("status") == "persisting").height,
        "resolved": view.filter(pl.col("status") == "resolved").height,
    }


def apply_baseline(disc: pl.DataFrame, previous: pl.DataFrame) -> pl.DataFrame:
    """Mark findings ``new`` or ``persisting`` against an earlier report.

    What disappeared is added back as ``resolved`` rows, as it was in the earlier report. An earlier
    report written before a column was added (``nature``) has it empty.
    """
    prev = _blank(previous, DISCREPANCY_COLUMNS).filter(pl.col("status") != "resolved")
    prev_ids = set(prev["discrepancy_id"].to_list())
    now = disc.with_columns(
        pl.when(pl.col("discrepancy_id").is_in(list(prev_ids)))
        .then(pl.lit("persisting"))
        .otherwise(pl.lit("new"))
        .alias("status")
    )
    trial = disc["trial_load"][0] if disc.height else (prev["trial_load"][0] if prev.height else "")
    gone = prev.filter(~pl.col("discrepancy_id").is_in(disc["discrepancy_id"].to_list())).with_columns(
        pl.lit("resolved").alias("status"), pl.lit(trial).alias("trial_load")
    )
    return pl.concat([now, gone.select(DISCREPANCY_COLUMNS)], how="vertical_relaxed")


def with_review_columns(disc: pl.DataFrame) -> pl.DataFrame:
    """The discrepancies with the columns of a steward's view, added where absent.

    ``owner`` (derived from the check), ``waived`` (false) and ``waiver`` (none), as the report and
    the worklists show them.
    """
    return disc.with_columns(
        *([] if "owner" in disc.columns else [owner().alias("owner")]),
        *([] if "waived" in disc.columns else [pl.lit(False).alias("waived")]),
        *([] if "waiver" in disc.columns else [pl.lit(None, dtype=pl.String).alias("waiver")]),
    )


def owner() -> pl.Expr:
    """Who must act on a discrepancy: source system, code map or vendor load (``OWNERS``).

    The owner its check declares in the catalogue, never stored. A check id the catalogue does not
    declare (a resolved finding of a report an older migcheck wrote) is left to the vendor load,
    as the report does with an owner it does not know.
    """
    return catalogue.owner_of().fill_null("vendor load")
