"""Findings of every check family → the report contract's discrepancies, ledger and summary.

Pure polars: frames in, frames (and plain dicts) out. The contract is ``shared/spec/README.md``.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import polars as pl

from checks.expected import SEVERITY, Expected
from checks.findings import FINDING_SCHEMA, FINDING_SCHEMA_INFO
from checks.mapping import Mappings
from checks.reconcile import Reconciliation

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
    "message",
    "suggested_action",
    "status",
]
CATEGORIES = [
    "row_count",
    "missing_in_target",
    "unexpected_in_target",
    "value_mismatch",
    "mandatory_missing",
    "invalid_identifier",
    "unmapped_code",
    "invalid_code",
    "duplicate",
    "orphan",
    "implausible",
    "confidentiality",
    "unparseable",
]
WARNING = {c for c, sev in SEVERITY.items() if sev == "warning"}  # the load rules' warning categories
DISPOSITIONS = ["migrated", "migrated_with_differences", "missing_in_target", "rejected", "merged", "out_of_scope"]
#: the entities of the report, in the order they are shown
ENTITIES = [
    "person",
    "person_alias",
    "encounter",
    "encntr_alias",
    "diagnosis",
    "procedure",
    "orders",
    "allergy",
    "labresult",
]
LEDGER_COLUMNS = ["source_ref", "source_system", "entity", "disposition", "reason"]
_SYSTEM = {"pas": "PAS", "pcs": "PCS"}


def _blank(df: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    return df.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in cols if c not in df.columns)


def source_findings(exp: Expected) -> pl.DataFrame:
    """Source-layer findings (rules on the extract) with their check ids.

    ``expected``/``actual`` as the rules engine gives them: for a code, what would have been
    accepted and the code as found (D41); blank where a finding shows no value.
    """
    f = exp.findings
    return _blank(
        f.with_columns((pl.col("entity") + ".source." + pl.col("category")).alias("check")),
        ["target_ref", "expected", "actual"],
    )


def target_check_findings(failures: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
    """Target-check failures, each named by its legacy record where the row was matched to one.

    ``failures`` as ``pipelines.gx_checks`` gives them: per failing row what the check expected,
    the value found (masked where it identifies a person) and the steward message.
    """
    if failures.height == 0:
        return pl.DataFrame(schema=FINDING_SCHEMA)
    link = links.select("target_ref", "source_ref").unique("target_ref", keep="first")
    out = failures.join(link, on="target_ref", how="left")

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
        pl.coalesce(text("message"), text("description"), fallback).alias("message"),
    )


def row_count_findings(exp: Expected, target: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Counts per entity and source system: info when equal, error when not."""
    rows = []
    for t, et in exp.tables.items():
        e = et.group_by("contributor_system_cd").len().rename({"len": "expected"})
        a = target[t].group_by("contributor_system_cd").len().rename({"len": "actual"})
        j = (
            e.join(a, on="contributor_system_cd", how="full", coalesce=True)
            .fill_null(0)
            .sort("contributor_system_cd", nulls_last=True)
        )
        for r in j.iter_rows(named=True):
            sysname = (r["contributor_system_cd"] or "unknown").lower()
            same = r["expected"] == r["actual"]
            rows.append(
                {
                    "check": f"{t}.count",
                    "category": "row_count",
                    "entity": t,
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
    hints = {}
    for t, tm in m.tables.items():
        for s in tm.sources:
            for col, cm in s.columns.items():
                if cm.code_map:
                    hints[(t, s.system, col)] = f"mappings/code_maps/{cm.code_map}.csv"
                elif cm.nomenclature:
                    hints[(t, s.system, col)] = f"the {cm.nomenclature} nomenclature"
    return hints


def suggested_action(m: Mappings):
    """An expression giving what to correct and where, by layer and category."""
    hints = _code_hints(m)
    keys = [f"{t}|{s}|{c}" for (t, s, c) in hints]
    hint = (
        pl.col("entity") + "|" + pl.col("source_system").fill_null("") + "|" + pl.col("column").fill_null("")
    ).replace_strict(dict(zip(keys, hints.values(), strict=True)), default="the code map")
    system = pl.col("source_system").fill_null("").str.to_uppercase()
    is_source = pl.col("check").str.contains(".source.", literal=True)
    cat = pl.col("category")
    return (
        pl.when(is_source & (cat == "unmapped_code"))
        .then(pl.lit("Code map owner: add this code to ") + hint + pl.lit(", or correct the code in ") + system)
        .when(is_source & (cat == "invalid_code"))
        .then(
            pl.lit("Code map owner: map the code to an active value in ")
            + hint
            + pl.lit(", or close/move the record in ")
            + system
        )
        .when(is_source & (cat == "duplicate"))
        .then(
            pl.lit("Source system: confirm the duplicate patient records are one person (merge in ")
            + system
            + pl.lit("), or correct the identity number")
        )
        .when(is_source & (cat == "implausible"))
        .then(
            pl.lit("Source system: check the dates/sex of this record in ")
            + system
            + pl.lit(" and correct them if wrong (it is loaded as it stands)")
        )
        .when(is_source & (cat == "unparseable"))
        .then(pl.lit("Extract: the line cannot be read; fix the export of this line in ") + system)
        .when(is_source)
        .then(pl.lit("Source system: correct this record in ") + system + pl.lit(" before the next extract"))
        .when(cat == "confidentiality")
        .then(pl.lit("Vendor load: mark the person PROTECTED at once and review who has seen the record"))
        .when(cat == "row_count")
        .then(pl.lit("Vendor load: see the missing/unexpected findings of this entity for the rows behind the count"))
        .when(cat == "missing_in_target")
        .then(pl.lit("Vendor load: load this record (it passes every load rule)"))
        .when(cat == "unexpected_in_target")
        .then(pl.lit("Vendor load: remove this row, or tell which legacy record it comes from"))
        .when(cat == "value_mismatch")
        .then(
            pl.lit("Vendor load: correct ")
            + pl.col("column").fill_null("the value")
            + pl.lit(" to the source value (see message for the nature of the difference)")
        )
        .when(cat == "invalid_code")
        .then(
            pl.lit("Vendor load: use an active code value of the right code set / vocabulary for ")
            + pl.col("column").fill_null("the code")
        )
        .when(cat == "orphan")
        .then(
            pl.lit(
                "Vendor load: the parent row this row refers to does not exist; load the parent or fix the reference"
            )
        )
        .when(cat == "duplicate")
        .then(pl.lit("Vendor load: keep one identity alias per identity value"))
        .when(cat == "mandatory_missing")
        .then(pl.lit("Vendor load: fill ") + pl.col("column").fill_null("the mandatory value"))
        .otherwise(pl.lit("Review"))
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


def discrepancies(parts: list[pl.DataFrame], trial_load: str, m: Mappings) -> pl.DataFrame:
    """All findings as the contract's discrepancy rows, sorted, with stable ids."""
    cols = list(FINDING_SCHEMA)
    frames = []
    for p in parts:
        p = _blank(p, cols + ["_info"])
        frames.append(p.select(*cols, pl.col("_info").cast(pl.Boolean)))
    df = pl.concat(frames, how="vertical_relaxed")
    df = df.with_columns(
        pl.when(pl.col("_info").fill_null(False))
        .then(pl.lit("info"))
        .when(pl.col("category").is_in(list(WARNING)))
        .then(pl.lit("warning"))
        .otherwise(pl.lit("error"))
        .alias("severity"),
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
            ["_o", "entity", "category", "source_ref", "target_ref", "column", "check", "discrepancy_id"],
            nulls_last=True,
            maintain_order=True,
        )
        .select(DISCREPANCY_COLUMNS)
    )


#: the record kinds whose staged rows link a legacy record to its (merged) person
PERSON_RECORDS = ("pas/patient", "pcs/patients")


def final_ledger(exp: Expected, recon: Reconciliation, disc: pl.DataFrame) -> pl.DataFrame:
    """One row per legacy record with its final disposition.

    One lazy query: a region-sized ledger (tens of millions of rows) is joined to the statuses
    without holding every intermediate frame at once.
    """
    person_of = (
        pl.concat([df.select("source_ref", "person_ref") for k, df in exp.staged.items() if k in PERSON_RECORDS])
        .lazy()
        .filter(pl.col("person_ref").is_not_null())
        .unique("source_ref", keep="first")
    )
    status = recon.status.lazy()
    pstatus = status.filter(pl.col("entity") == "person").select(
        pl.col("source_ref").alias("person_ref"), pl.col("status").alias("_pstatus")
    )
    touched = (
        disc.filter(pl.col("severity") != "info")
        .filter(~pl.col("check").str.contains(".source.", literal=True) & pl.col("source_ref").is_not_null())[
            "source_ref"
        ]
        .unique()
    )
    others = status.filter(pl.col("entity") != "person").select(
        "source_ref",
        "entity",
        pl.int_range(pl.len()).over("source_ref", "entity").alias("_k"),
        pl.col("status").alias("_ostatus"),
    )
    led = (
        exp.ledger.lazy()
        .with_row_index("_row")
        .with_columns(pl.int_range(pl.len()).over("source_ref", "entity").alias("_k"))
        .join(person_of, on="source_ref", how="left")
        .join(pstatus, on="person_ref", how="left")
        .join(others, on=["source_ref", "entity", "_k"], how="left")
    )
    st = pl.when(pl.col("entity") == "person").then(pl.col("_pstatus")).otherwise(pl.col("_ostatus"))
    st = (
        pl.when((st == "migrated") & pl.col("source_ref").is_in(touched.implode()))
        .then(pl.lit("migrated_with_differences"))
        .otherwise(st)
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
        .sort("_row")
        .select(LEDGER_COLUMNS)
        .collect()
    )


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
    exp: Expected,
    recon: Reconciliation,
    found: dict[str, int],
    ledger: pl.DataFrame,
    disc: pl.DataFrame,
    records_read: int,
    files: pl.DataFrame,
) -> RunSummary:
    """Per entity and category counts, the default gate (no error), and the ledger balance."""
    entities = []
    counts = {r["entity"]: r for r in recon.counts.iter_rows(named=True)}
    names = ENTITIES
    rej = ledger.filter(pl.col("disposition") == "rejected").with_columns(
        pl.when(pl.col("reason").str.starts_with("parent rejected"))
        .then(pl.lit("parent_rejected"))
        .otherwise(pl.col("reason").str.split(":").list.first())
        .alias("_cat")
    )
    for e in names:
        le = ledger.filter(pl.col("entity") == e)
        c = counts.get(e, {})
        by_disp = dict(le.group_by("disposition").len().iter_rows())

        def d(state: str, _counts: dict = by_disp) -> int:
            return _counts.get(state, 0)

        ent_disc = disc.filter(pl.col("entity") == e)
        entities.append(
            EntitySummary(
                entity=e,
                records_read=le.height,
                records_read_by_system=dict(le.group_by("source_system").len().sort("source_system").iter_rows()),
                out_of_scope=d("out_of_scope"),
                rejected=d("rejected"),
                rejected_by_category=dict(
                    rej.filter(pl.col("entity") == e).group_by("_cat").len().sort("_cat").iter_rows()
                ),
                merged=d("merged"),
                expected_in_target=exp.tables[e].height if e in exp.tables else 0,
                found_in_target=found.get(e, 0),
                matched=c.get("matched", 0)
                if e in counts
                else (
                    exp.tables[e].height - ent_disc.filter(pl.col("category") == "missing_in_target").height
                    if e in exp.tables
                    else 0
                ),
                missing=c.get("missing", ent_disc.filter(pl.col("category") == "missing_in_target").height),
                unexpected=c.get("unexpected", ent_disc.filter(pl.col("category") == "unexpected_in_target").height),
                with_differences=d("migrated_with_differences"),
                migrated=d("migrated"),
            )
        )
    by_cat = {}
    for r in disc.group_by("category", "severity").len().sort("category", "severity").iter_rows(named=True):
        by_cat.setdefault(r["category"], {})[r["severity"]] = r["len"]
    gates = []
    for cat in CATEGORIES:
        n = disc.filter((pl.col("category") == cat) & (pl.col("severity") == "error")).height
        gates.append({"gate": cat, "errors": n, "max_errors": 0, "passed": n == 0})
    balanced = (
        ledger.height == records_read
        and ledger["disposition"].is_in(DISPOSITIONS).all()
        and ledger["source_ref"].null_count() == 0
    )
    return RunSummary(
        trial_load=trial_load,
        entities=entities,
        by_category=by_cat,
        gates=gates,
        gate_passed=all(g["passed"] for g in gates),
        ledger_balanced=bool(balanced),
        records_read=records_read,
        ledger_rows=ledger.height,
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

    What disappeared is added back as ``resolved`` rows, as it was in the earlier report.
    """
    prev = previous.filter(pl.col("status") != "resolved")
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


OWNERS = ["source system", "code map", "vendor load"]


def owner() -> pl.Expr:
    """Who must act on a discrepancy: source system, code map or vendor load.

    Derived from the check id and category, never stored.
    """
    is_source = pl.col("check").str.contains(".source.", literal=True) | pl.col("check").str.contains(
        ".extract.", literal=True
    )
    return (
        pl.when(is_source & pl.col("category").is_in(["unmapped_code", "invalid_code"]))
        .then(pl.lit("code map"))
        .when(is_source)
        .then(pl.lit("source system"))
        .otherwise(pl.lit("vendor load"))
    )


_RECORD_TABLES = ["person", "encounter", "diagnosis", "procedure", "orders", "allergy"]
_SOURCE_CATS = {
    "person": ["mandatory_missing", "unparseable", "invalid_identifier", "unmapped_code", "duplicate", "implausible"],
    "encounter": [
        "mandatory_missing",
        "unparseable",
        "unmapped_code",
        "invalid_code",
        "orphan",
        "duplicate",
        "implausible",
    ],
    "diagnosis": ["mandatory_missing", "unparseable", "unmapped_code", "orphan"],
    "procedure": ["mandatory_missing", "unparseable", "unmapped_code", "orphan"],
    "orders": ["mandatory_missing", "unparseable", "unmapped_code", "orphan"],
    "allergy": ["mandatory_missing", "unparseable", "unmapped_code", "orphan"],
    "labresult": ["unparseable"],
}
_RECON = {
    "missing": "missing_in_target",
    "unexpected": "unexpected_in_target",
    "value": "value_mismatch",
    "confidentiality": "confidentiality",
}


def checks_catalogue(target_check_ids: list[tuple[str, str]]) -> pl.DataFrame:
    """Every check migcheck runs (``check``, ``category``), findings or not: the junit test cases."""
    rows = [(f"{e}.source.{c}", c) for e, cats in _SOURCE_CATS.items() for c in cats]
    rows += [("person.source.schema", "implausible"), ("encounter.source.schema", "implausible")]
    for t in ["person", "person_alias", "encounter", "encntr_alias", *_RECORD_TABLES[2:]]:
        rows.append((f"{t}.count", "row_count"))
    for e in [*_RECORD_TABLES, "labresult"]:
        rows.append((f"{e}.extract.file", "row_count"))
    recon = {
        "person": ["missing", "unexpected", "value", "confidentiality"],
        "person_alias": ["missing", "unexpected"],
        "encounter": ["missing", "unexpected", "value"],
        "encntr_alias": ["missing"],
    }
    recon |= {t: ["missing", "unexpected", "value"] for t in _RECORD_TABLES[2:]}
    rows += [(f"{t}.reconcile.{k}", _RECON[k]) for t, ks in recon.items() for k in ks]
    rows += list(target_check_ids)
    return pl.DataFrame(rows, schema={"check": pl.String, "category": pl.String}, orient="row").unique(
        "check", keep="first", maintain_order=True
    )
