"""The expected target: what a correct trial load makes of an extract (``load-rules.md``).

``compute_expected`` interprets the mapping files over the extract's frames and returns the
logical target (``docs/expected-target.md``), a ledger row per legacy record and the
source-layer findings. Pure polars: frames in, frames out.

Per record, in this order (``docs/decisions.md`` D5): scope, parent (orphan / rejected with it),
mandatory values, unreadable values, identity, code mapping, code activity. Then persons are
merged, repeated keys folded, and the warnings (implausible, duplicate) checked on what loads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from checks import implausible
from checks.catalogue import CATEGORY_SEVERITY, entity_of_records
from checks.identity import with_identity
from checks.mapping import PARENT_TABLES, ColumnMap, Mappings, SourceMap
from checks.masking import PERSONAL
from checks.transforms import column_exprs

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

_TS = pl.Datetime("us")
SYSTEM_RANK = {"pas": 0, "pcs": 1}

SOURCE_FINDING_SCHEMA = {
    "category": pl.String,
    "severity": pl.String,
    "entity": pl.String,
    "source_system": pl.String,
    "source_ref": pl.String,
    "column": pl.String,
    "expected": pl.String,
    "actual": pl.String,
    "message": pl.String,
}
LEDGER_SCHEMA = {
    "source_ref": pl.String,
    "source_system": pl.String,
    "entity": pl.String,
    "disposition": pl.String,
    "reason": pl.String,
}
TABLE_COLUMNS: dict[str, list[str]] = {
    "person": [
        "person_ref",
        "identity",
        "name_last",
        "name_first",
        "sex_cd",
        "birth_dt_tm",
        "deceased_dt_tm",
        "confid_level_cd",
        "postal_code",
        "municipality_code",
        "contributor_system_cd",
    ],
    "person_alias": [
        "person_ref",
        "source_ref",
        "person_alias_type_cd",
        "alias_pool_cd",
        "alias",
        "contributor_system_cd",
    ],
    "encounter": [
        "source_ref",
        "person_ref",
        "encntr_type_cd",
        "loc_nurse_unit_cd",
        "reg_dt_tm",
        "disch_dt_tm",
        "contributor_system_cd",
    ],
    "encntr_alias": ["source_ref", "encntr_alias_type_cd", "alias", "contributor_system_cd"],
    "diagnosis": [
        "source_ref",
        "person_ref",
        "encounter_ref",
        "nomenclature_id",
        "diag_type_cd",
        "diag_dt_tm",
        "contributor_system_cd",
    ],
    "procedure": ["source_ref", "encounter_ref", "nomenclature_id", "proc_dt_tm", "contributor_system_cd"],
    "orders": [
        "source_ref",
        "person_ref",
        "atc_nomenclature_id",
        "order_mnemonic",
        "simplified_display_line",
        "orig_order_dt_tm",
        "discontinue_dt_tm",
        "order_status_cd",
        "contributor_system_cd",
    ],
    "allergy": [
        "source_ref",
        "person_ref",
        "substance_nom_id",
        "substance_ftdesc",
        "severity_cd",
        "onset_dt_tm",
        "contributor_system_cd",
    ],
    "clinical_event": [
        "source_ref",
        "person_ref",
        "encounter_ref",
        "event_cd",
        "result_status_cd",
        "event_end_dt_tm",
        "reference_nbr",
        "contributor_system_cd",
        "note_text",
    ],
}
#: target columns whose source value identifies a person: a finding never shows it
PERSONAL_COLUMNS = {c for _, c in PERSONAL} | {"identity", "alias"}
#: what a steward calls the code of a column, in a finding's message
CODE_LABELS = {
    ("diagnosis", "nomenclature_id"): "diagnosis",
    ("procedure", "nomenclature_id"): "procedure",
    ("orders", "atc_nomenclature_id"): "medication (ATC)",
    ("allergy", "substance_nom_id"): "substance (ATC)",
    ("person", "sex_cd"): "sex",
    ("encounter", "encntr_type_cd"): "contact type",
    ("encounter", "loc_nurse_unit_cd"): "unit",
    ("diagnosis", "diag_type_cd"): "diagnosis type",
    ("allergy", "severity_cd"): "severity",
    ("clinical_event", "event_cd"): "note type",
}


@dataclass(frozen=True)
class Expected:
    """The logical expected target, the ledger of every legacy record, the source findings."""

    tables: dict[str, pl.DataFrame]
    ledger: pl.DataFrame
    findings: pl.DataFrame
    staged: dict[str, pl.DataFrame]  # per record kind, every record with its disposition


def _when_chain(conds: Sequence[tuple[pl.Expr, str | pl.Expr | None]], name: str) -> pl.Expr:
    if not conds:
        return pl.lit(None, dtype=pl.String).alias(name)

    def lit(v: str | pl.Expr | None) -> pl.Expr:
        return v if isinstance(v, pl.Expr) else pl.lit(v, dtype=pl.String)

    expr: Then | ChainedThen = pl.when(conds[0][0]).then(lit(conds[0][1]))
    for c, v in conds[1:]:
        expr = expr.when(c).then(lit(v))
    return expr.otherwise(pl.lit(None, dtype=pl.String)).alias(name)


def _quoted(e: pl.Expr) -> pl.Expr:
    return pl.lit("'") + e + pl.lit("'")


def _code_blocks(
    table: str, name: str, cm: ColumnMap, src: SourceMap, raw: str | None, value: str
) -> tuple[tuple[str | None, pl.Expr | None, pl.Expr], tuple[str | None, pl.Expr | None, pl.Expr]]:
    """(expected, actual, message) of an unmapped and of an inactive code of column ``name``.

    ``raw``: the column holding the legacy code as found (trimmed), None where the column has no
    legacy code (a constant, a presence flag); ``value``: the column holding the target value (a
    code map's cdf_meaning, or ``VOCAB:identifier``). A code is no personal data and is shown as
    found; a column that identifies a person never is (D41).
    """
    label = CODE_LABELS.get((table, name), name)
    personal = name in PERSONAL_COLUMNS or (src.identity is not None and cm.source == src.identity.value)
    cs = f" of code set {cm.code_set}" if cm.code_set is not None else ""
    generic = (None, None, pl.lit(f"the code for {name} has no mapping"))
    if personal:
        return generic, (None, None, pl.lit(f"the code for {name} maps to an inactive code value"))
    if raw is None:  # a value the mapping makes itself: only ever inactive
        meaning = pl.col(value).cast(pl.String)
        inactive = (
            f"an active code value{cs}",
            meaning,
            pl.lit(f"{name} ") + meaning + pl.lit(f" is an inactive code value{cs}; correct mappings/{table}.yaml"),
        )
        return generic, inactive
    code = pl.col(raw)
    if cm.nomenclature is not None:
        vocab = cm.nomenclature
        compared = pl.col(value).str.strip_prefix(f"{vocab}:")
        read_as = (
            pl.when(compared != code).then(pl.lit(" (read as ") + _quoted(compared) + pl.lit(")")).otherwise(pl.lit(""))
        )
        expected = f"an active {vocab} nomenclature code"
        head = pl.lit(f"{label} code ") + _quoted(code) + read_as
        unmapped = (expected, code, head + pl.lit(f" is not in the {vocab} nomenclature"))
        inactive = (
            expected,
            code,
            head + pl.lit(f" is an inactive row of the {vocab} nomenclature; use an active code"),
        )
        return unmapped, inactive
    path = f"mappings/code_maps/{cm.code_map}.csv" if cm.code_map else "the code map"
    unmapped = (
        f"a source_code of {path}",
        code,
        pl.lit(f"{label} code ") + _quoted(code) + pl.lit(f" has no mapping in {path}"),
    )
    inactive = (
        f"a source_code of {path} mapped to an active code value{cs}",
        code + pl.lit(" → ") + pl.col(value) + pl.lit(" (inactive)"),
        pl.lit(f"{label} code ")
        + _quoted(code)
        + pl.lit(" maps to ")
        + pl.col(value)
        + pl.lit(f", an inactive code value{cs} ({path})"),
    )
    return unmapped, inactive


def _stage(frame: pl.DataFrame, src: SourceMap, table: str, m: Mappings, as_of: dt.date) -> pl.DataFrame:
    """Target values and the first blocking rule of every record of one kind."""
    df = frame
    if src.identity is not None:
        declared = pl.col(src.identity.declared_type) if src.identity.declared_type else None
        df = with_identity(
            df.with_columns(pl.col(src.identity.value).alias("identity")), pl.col("identity"), as_of, declared
        )
    exprs = {name: column_exprs(cm, m) for name, cm in src.columns.items()}
    # cond, category, column, message, expected, actual (D41: a code is shown, a person's value never)
    blocks: list[tuple[pl.Expr, str, str, str | pl.Expr, str | None, pl.Expr | None]] = []
    for name, e in exprs.items():
        blocks.append((e.missing, "mandatory_missing", name, f"{name} is missing", None, None))
    if src.identity is not None:
        blocks.append(
            (pl.col("identity").is_null(), "mandatory_missing", "alias", "identity number is missing", None, None)
        )
    if src.require_one_of:
        none = pl.all_horizontal([exprs[c].value.is_null() for c in src.require_one_of])
        col = src.require_one_of_column or src.require_one_of[0]
        blocks.append((none, "mandatory_missing", col, f"{col} is missing (neither coded nor free text)", None, None))
    for name, e in exprs.items():
        blocks.append((e.unreadable, "unparseable", name, f"{name} cannot be read as a date or time", None, None))
    if src.identity is not None:
        blocks.append((~pl.col("id_valid"), "invalid_identifier", "alias", "identity number is invalid", None, None))
    # the legacy code of every coded column as found (trimmed), kept beside the target value
    raw_sources = {
        name: cm.source
        for name, cm in src.columns.items()
        if cm.source is not None and (cm.code_map is not None or cm.nomenclature is not None)
    }
    raw_codes = {name: f"_raw_{name}" for name in raw_sources}
    code_blocks = {name: _code_blocks(table, name, src.columns[name], src, raw_codes.get(name), name) for name in exprs}
    for name, e in exprs.items():
        exp_, act, msg = code_blocks[name][0]
        blocks.append((e.unmapped, "unmapped_code", name, msg, exp_, act))
    for name, e in exprs.items():
        exp_, act, msg = code_blocks[name][1]
        blocks.append((e.inactive, "invalid_code", name, msg, exp_, act))
    nonexistent = [pl.when(e.nonexistent).then(pl.lit(name)) for name, e in exprs.items()]
    # values and conditions first, as columns, so each expression is computed once; lazily, so
    # that polars computes a part the expressions share (a parsed date, a code lookup) once too
    # (an eager ``with_columns`` does not look for common parts)
    conds = [f"_c{i}" for i in range(len(blocks))]
    values = df.lazy().with_columns(
        *[e.value.alias(name) for name, e in exprs.items()],
        *[pl.col(raw_sources[n]).cast(pl.String).str.strip_chars().alias(r) for n, r in raw_codes.items()],
        *[b[0].fill_null(False).alias(n) for b, n in zip(blocks, conds, strict=True)],
        pl.concat_list(nonexistent).list.drop_nulls().alias("_nonexistent") if nonexistent else pl.lit(None),
    )
    out = (
        values.with_columns(
            _when_chain([(pl.col(n), b[1]) for n, b in zip(conds, blocks, strict=True)], "_block_cat"),
            _when_chain([(pl.col(n), b[2]) for n, b in zip(conds, blocks, strict=True)], "_block_col"),
            _when_chain([(pl.col(n), b[3]) for n, b in zip(conds, blocks, strict=True)], "_block_msg"),
            _when_chain([(pl.col(n), b[4]) for n, b in zip(conds, blocks, strict=True)], "_block_exp"),
            _when_chain([(pl.col(n), b[5]) for n, b in zip(conds, blocks, strict=True)], "_block_act"),
            pl.lit(src.system).alias("source_system"),
            pl.lit(table).alias("entity"),
            (pl.col(src.key).cast(pl.String) if src.key else pl.lit(None, dtype=pl.String)).alias("_key"),
        )
        .drop(*conds, *raw_codes.values())
        .collect(engine="in-memory")  # small frames: the streaming engine costs more
    )
    if src.identity is not None:
        out = out.with_columns(
            pl.when(pl.col("_block_cat") == "invalid_identifier")
            .then(pl.lit("identity number is invalid: ") + pl.col("id_reason"))
            .otherwise(pl.col("_block_msg"))
            .alias("_block_msg")
        )
    if src.protected is not None:
        out = out.with_columns(column_exprs(src.protected, m).value.alias("_protected"))
    return out


def _scope(df: pl.DataFrame, records: str, m: Mappings) -> pl.DataFrame:
    rules = [r for r in m.scope.out_of_scope if r.records == records]
    conds = []
    for r in rules:
        if r.column is None:
            cond = pl.lit(True)
        elif r.empty:
            cond = pl.col(r.column).is_null()
        else:
            cond = pl.col(r.column).is_in(r.values)
        conds.append((cond, r.reason))
    return df.with_columns(_when_chain(conds, "_scope"))


def _with_parent(df: pl.DataFrame, src: SourceMap, parents: dict[str, pl.DataFrame]) -> pl.DataFrame:
    if src.parent is None:
        return df.with_columns(
            pl.lit(None, dtype=pl.String).alias("_parent_disp"),
            pl.lit(None, dtype=pl.String).alias("_parent_ref"),
            pl.lit(True).alias("_parent_found"),
        )
    p = parents[src.parent.records]
    keep = ["_key", "disposition", "source_ref", "person_ref"] + [
        c for c in ("encounter_ref", "reg_dt_tm") if c in p.columns
    ]
    first = (
        p.filter(pl.col("_key").is_not_null())
        .sort("_line")
        .unique("_key", keep="first", maintain_order=True)
        .select(keep)
        .rename({c: f"_parent_{c}" for c in keep if c != "_key"} | {"_key": "_pkey"})
        .rename({"_parent_disposition": "_parent_disp", "_parent_source_ref": "_parent_ref"})
    )
    joined = df.with_columns(pl.col(src.parent.column).cast(pl.String).alias("_pkey")).join(
        first, on="_pkey", how="left", maintain_order="left"
    )
    return joined.with_columns(pl.col("_parent_ref").is_not_null().alias("_parent_found")).drop("_pkey")


def _dispose(df: pl.DataFrame, src: SourceMap) -> pl.DataFrame:
    pdesc = f"{src.parent.records}" if src.parent is not None else ""
    disp = (
        pl.when(pl.col("_scope").is_not_null())
        .then(pl.lit("out_of_scope"))
        .when(pl.col("_parent_disp") == "out_of_scope")
        .then(pl.lit("out_of_scope"))
        .when(~pl.col("_parent_found"))
        .then(pl.lit("rejected"))
        .when(pl.col("_parent_disp") == "rejected")
        .then(pl.lit("rejected"))
        .when(pl.col("_block_cat").is_not_null())
        .then(pl.lit("rejected"))
        .otherwise(pl.lit("expected"))
    )
    reason = (
        pl.when(pl.col("_scope").is_not_null())
        .then(pl.lit("out of scope: ") + pl.col("_scope"))
        .when(pl.col("_parent_disp") == "out_of_scope")
        .then(pl.lit("out of scope with its parent ") + pl.col("_parent_ref"))
        .when(~pl.col("_parent_found"))
        .then(pl.lit(f"orphan: its parent ({pdesc}) is not in the extract"))
        .when(pl.col("_parent_disp") == "rejected")
        .then(pl.lit("parent rejected: ") + pl.col("_parent_ref"))
        .when(pl.col("_block_cat").is_not_null())
        .then(pl.col("_block_cat") + pl.lit(": ") + pl.col("_block_msg"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    finding = (
        pl.when(pl.col("_scope").is_not_null() | (pl.col("_parent_disp") == "out_of_scope"))
        .then(pl.lit(None, dtype=pl.String))
        .when(~pl.col("_parent_found"))
        .then(pl.lit("orphan"))
        .when(pl.col("_parent_disp") == "rejected")
        .then(pl.lit(None, dtype=pl.String))
        .otherwise(pl.col("_block_cat"))
    )
    fcol = (
        pl.when(finding == "orphan")
        .then(pl.lit(src.parent.column if src.parent is not None else None))
        .otherwise(pl.col("_block_col"))
    )
    fmsg = (
        pl.when(finding == "orphan")
        .then(pl.lit(f"orphan: the parent record ({pdesc}) it refers to is not in the extract"))
        .otherwise(pl.col("_block_msg"))
    )
    own = finding == pl.col("_block_cat")  # the finding is the record's own blocking rule
    return df.with_columns(
        disp.alias("disposition"),
        reason.alias("reason"),
        finding.alias("_finding"),
        fcol.alias("_fcol"),
        fmsg.alias("_fmsg"),
        pl.when(own).then(pl.col("_block_exp")).otherwise(pl.lit(None, dtype=pl.String)).alias("_fexp"),
        pl.when(own).then(pl.col("_block_act")).otherwise(pl.lit(None, dtype=pl.String)).alias("_fact"),
    )


def _stage_kind(
    extract_frames: dict[str, pl.DataFrame],
    src: SourceMap,
    table: str,
    m: Mappings,
    as_of: dt.date,
    parents: dict[str, pl.DataFrame],
) -> pl.DataFrame:
    df = extract_frames[src.records]
    df = _scope(df, src.records, m)
    df = _with_parent(df, src, parents)
    df = _stage(df, src, table, m, as_of)
    return _dispose(df, src)


def _merge_persons(staged: list[pl.DataFrame], src_by_sys: dict[str, SourceMap]) -> pl.DataFrame:
    """Rank accepted patient records, fold duplicates, give each record its person_ref."""
    frames = []
    for df in staged:
        sysname = df["source_system"][0] if df.height else None
        order = src_by_sys[sysname].key_order if sysname else "text"
        frames.append(
            df.with_columns(
                pl.lit(SYSTEM_RANK.get(sysname, 9) if sysname else 9).alias("_sys_rank"),
                (
                    pl.col("_key").cast(pl.Int64, strict=False) if order == "numeric" else pl.lit(None, dtype=pl.Int64)
                ).alias("_key_num"),
            )
        )
    cols = sorted(set.intersection(*[set(f.columns) for f in frames]))
    allp = pl.concat([f.select(cols) for f in frames], how="vertical_relaxed")
    acc = allp.filter(pl.col("disposition") == "expected").sort(
        ["identity", "_sys_rank", "_key_num", "_key", "_line"], nulls_last=True
    )
    acc = acc.with_columns(
        pl.col("source_ref").first().over("identity").alias("person_ref"),
        pl.col("source_ref").first().over(["identity", "source_system"]).alias("_sys_winner"),
        pl.int_range(pl.len()).over(["identity", "source_system"]).alias("_sys_pos"),
        pl.len().over(["identity", "source_system"]).alias("_sys_n"),
    ).with_columns(
        pl.when(pl.col("_sys_pos") > 0).then(pl.lit("merged")).otherwise(pl.lit("expected")).alias("disposition"),
        pl.when(pl.col("_sys_pos") > 0)
        .then(pl.lit("merged into ") + pl.col("_sys_winner"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
        pl.when(pl.col("_sys_n") > 1).then(pl.lit("duplicate")).otherwise(pl.col("_finding")).alias("_finding"),
        pl.when(pl.col("_sys_n") > 1)
        .then(pl.lit("duplicate patient record: same identity number as another record of this system; merged"))
        .otherwise(pl.col("_fmsg"))
        .alias("_fmsg"),
        pl.when(pl.col("_sys_n") > 1).then(pl.lit("alias")).otherwise(pl.col("_fcol")).alias("_fcol"),
        pl.when(pl.col("_sys_n") > 1).then(pl.lit(None, dtype=pl.String)).otherwise(pl.col("_fexp")).alias("_fexp"),
        pl.when(pl.col("_sys_n") > 1).then(pl.lit(None, dtype=pl.String)).otherwise(pl.col("_fact")).alias("_fact"),
    )
    rest = allp.filter(pl.col("disposition") != "expected").with_columns(
        pl.lit(None, dtype=pl.String).alias("person_ref"),
        pl.lit(None, dtype=pl.String).alias("_sys_winner"),
        pl.lit(None, dtype=pl.UInt32).alias("_sys_pos"),
        pl.lit(None, dtype=pl.UInt32).alias("_sys_n"),
    )
    return pl.concat([acc, rest], how="vertical_relaxed").sort(["_sys_rank", "_line"])


def _person_table(persons: pl.DataFrame) -> pl.DataFrame:
    acc = persons.filter(pl.col("disposition").is_in(["expected", "merged"])).sort(
        ["identity", "_sys_rank", "_key_num", "_key", "_line"], nulls_last=True
    )

    def first(c: str) -> pl.Expr:
        return pl.col(c).drop_nulls().first().alias(c)

    return acc.group_by("identity", maintain_order=True).agg(
        pl.col("person_ref").first(),
        first("name_last"),
        first("name_first"),
        pl.col("sex_cd").filter(pl.col("sex_cd") != "UNKNOWN").first().fill_null("UNKNOWN").alias("sex_cd"),
        pl.col("id_birth").first().cast(_TS).alias("birth_dt_tm"),
        first("deceased_dt_tm"),
        pl.when(pl.col("_protected").any())
        .then(pl.lit("PROTECTED"))
        .otherwise(pl.lit("ROUTINE"))
        .alias("confid_level_cd"),
        first("postal_code"),
        first("municipality_code"),
        pl.when((pl.col("source_system") == "pas").any())
        .then(pl.lit("PAS"))
        .otherwise(pl.lit("PCS"))
        .alias("contributor_system_cd"),
        pl.col("id_kind").first().alias("_id_kind"),
    )


def _person_alias_table(persons: pl.DataFrame, person: pl.DataFrame) -> pl.DataFrame:
    ident = person.select(
        "person_ref",
        pl.col("person_ref").alias("source_ref"),
        pl.col("_id_kind").alias("person_alias_type_cd"),
        pl.lit(None, dtype=pl.String).alias("alias_pool_cd"),
        pl.col("identity").alias("alias"),
        "contributor_system_cd",
    )
    mrn = persons.filter(pl.col("disposition").is_in(["expected", "merged"])).select(
        "person_ref",
        "source_ref",
        pl.lit("MRN").alias("person_alias_type_cd"),
        (pl.col("source_system").str.to_uppercase() + "_MRN").alias("alias_pool_cd"),
        pl.col("_key").alias("alias"),
        pl.col("source_system").str.to_uppercase().alias("contributor_system_cd"),
    )
    return pl.concat([ident, mrn])


def _fold_repeated_keys(df: pl.DataFrame) -> pl.DataFrame:
    """D15: repeated legacy keys among loaded records: the first row loads, the rest are merged."""
    acc = df.filter(pl.col("disposition") == "expected")
    if acc.height == acc["_key"].n_unique():
        return df
    acc = acc.sort("_line").with_columns(
        pl.int_range(pl.len()).over("_key").alias("_pos"), pl.len().over("_key").alias("_n")
    )
    acc = acc.with_columns(
        pl.when(pl.col("_pos") > 0).then(pl.lit("merged")).otherwise(pl.col("disposition")).alias("disposition"),
        pl.when(pl.col("_pos") > 0)
        .then(pl.lit("merged into the first row of ") + pl.col("source_ref"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
        pl.when(pl.col("_n") > 1).then(pl.lit("duplicate")).otherwise(pl.col("_finding")).alias("_finding"),
        pl.when(pl.col("_n") > 1)
        .then(pl.lit("the same record id occurs more than once; the first row loads"))
        .otherwise(pl.col("_fmsg"))
        .alias("_fmsg"),
        pl.when(pl.col("_n") > 1).then(pl.lit(None, dtype=pl.String)).otherwise(pl.col("_fexp")).alias("_fexp"),
        pl.when(pl.col("_n") > 1).then(pl.lit(None, dtype=pl.String)).otherwise(pl.col("_fact")).alias("_fact"),
    ).drop("_pos", "_n")
    return pl.concat([acc, df.filter(pl.col("disposition") != "expected")], how="vertical_relaxed").sort("_line")


def _implausible_persons(persons: pl.DataFrame, rules: list[str], as_of: dt.date) -> pl.DataFrame:
    acc = persons.lazy().filter(pl.col("disposition").is_in(["expected", "merged"]))
    return implausible.flag(acc, rules, "person", as_of)


def _implausible_encounters(enc: pl.DataFrame, person: pl.DataFrame, rules: list[str], as_of: dt.date) -> pl.DataFrame:
    acc = (
        enc.lazy()
        .filter(pl.col("disposition") == "expected")
        .join(
            person.lazy().select(
                "person_ref", pl.col("birth_dt_tm").alias("_birth"), pl.col("deceased_dt_tm").alias("_death")
            ),
            on="person_ref",
            how="left",
            maintain_order="left",
        )
    )
    return implausible.flag(acc, rules, "encounter", as_of)


def _findings_of(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("_finding").is_not_null()).select(
        pl.col("_finding").alias("category"),
        "entity",
        "source_system",
        "source_ref",
        pl.col("_fcol").alias("column"),
        (pl.col("_fexp") if "_fexp" in df.columns else pl.lit(None, dtype=pl.String)).alias("expected"),
        (pl.col("_fact") if "_fact" in df.columns else pl.lit(None, dtype=pl.String)).alias("actual"),
        pl.col("_fmsg").alias("message"),
    )


#: the child tables, in the order their rows take in the ledger
CHILD_TABLES = ("diagnosis", "procedure", "orders", "allergy", "clinical_event")
#: every expected table, in the order the report counts them
TABLE_ORDER = ("person", "encounter", *CHILD_TABLES, "person_alias", "encntr_alias")


def expected_parents(frames: dict[str, pl.DataFrame], m: Mappings, as_of: dt.date) -> Expected:
    """Persons and encounters: the records every other record hangs on, computed over the whole extract.

    Persons are merged across systems by identity and repeated encounter keys are folded, so
    these are never split. ``staged`` holds the person and encounter records the children look
    their parents up in (``expected_children``).
    """
    staged: dict[str, pl.DataFrame] = {}
    warnings: list[pl.DataFrame] = []
    ptm = m.tables["person"]
    pstaged = [_stage_kind(frames, s, "person", m, as_of, {}) for s in ptm.sources]
    persons = _merge_persons(pstaged, {s.system: s for s in ptm.sources})
    person = _person_table(persons)
    for s in ptm.sources:
        staged[s.records] = persons.filter(pl.col("source_system") == s.system)
    warnings.append(_implausible_persons(persons, ptm.implausible, as_of))

    tm = m.tables["encounter"]
    parts = []
    for s in tm.sources:
        df = _stage_kind(frames, s, "encounter", m, as_of, staged)
        df = df.with_columns(
            pl.col("_parent_person_ref").alias("person_ref"), pl.col("source_ref").alias("encounter_ref")
        )
        df = _fold_repeated_keys(df)
        staged[s.records] = df
        parts.append(df)
    enc_all = pl.concat(parts, how="diagonal_relaxed")
    warnings.append(_implausible_encounters(enc_all, person, tm.implausible, as_of))
    enc = _table_of("encounter", parts)
    tables = {
        "person": person.select(TABLE_COLUMNS["person"]),
        "encounter": enc,
        "person_alias": _person_alias_table(persons, person),
        "encntr_alias": enc.select(
            "source_ref",
            pl.lit("VISITID").alias("encntr_alias_type_cd"),
            pl.col("source_ref").str.split(":").list.last().alias("alias"),
            "contributor_system_cd",
        ),
    }
    return _assembled(tables, staged, warnings)


#: the staged parent columns a child looks its parent up by (``_with_parent``)
LOOKUP_COLUMNS = ("_key", "_line", "disposition", "source_ref", "person_ref", "encounter_ref", "reg_dt_tm")


def parent_lookups(staged: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The staged parent records with only the columns children look them up by: what ``expected_children`` needs."""
    return {k: v.select([c for c in LOOKUP_COLUMNS if c in v.columns]) for k, v in staged.items()}


def parent_records(m: Mappings) -> list[str]:
    """The record kinds of the parent tables (persons, encounters)."""
    return [s.records for t in PARENT_TABLES for s in m.tables[t].sources]


def expected_children(
    frames: dict[str, pl.DataFrame], parents: dict[str, pl.DataFrame], m: Mappings, as_of: dt.date
) -> Expected:
    """Every record that is neither a person nor an encounter, given its parents' staged records.

    ``parents``: the staged person and encounter records (``expected_parents(...).staged``), or
    any subset of them that holds every record the children in ``frames`` refer to: a child finds
    its parent by the parent's legacy key, the first record by line holding it. The records of a
    partition and the parents they name give exactly what the whole extract gives them.
    """
    staged: dict[str, pl.DataFrame] = {}
    tables: dict[str, pl.DataFrame] = {}
    for t in CHILD_TABLES:
        tm = m.tables[t]
        parts = []
        for s in tm.sources:
            df = _stage_kind(frames, s, t, m, as_of, parents).with_columns(
                pl.col("_parent_person_ref").alias("person_ref")
            )
            if "_parent_encounter_ref" in df.columns:
                df = df.with_columns(pl.col("_parent_encounter_ref").alias("encounter_ref"))
            staged[s.records] = df
            parts.append(df)
        tables[t] = _table_of(t, parts)

    # records with no target table: lab results, by scope
    for records in frames:
        if records in staged or records in parents:
            continue
        df = _scope(frames[records], records, m)
        staged[records] = df.with_columns(
            pl.lit(records.split("/")[0]).alias("source_system"),
            pl.lit(entity_of_records(records)).alias("entity"),
            pl.when(pl.col("_scope").is_not_null())
            .then(pl.lit("out_of_scope"))
            .otherwise(pl.lit("rejected"))
            .alias("disposition"),
            pl.when(pl.col("_scope").is_not_null())
            .then(pl.lit("out of scope: ") + pl.col("_scope"))
            .otherwise(pl.lit("no target table for these records"))
            .alias("reason"),
            pl.when(pl.col("_scope").is_null()).then(pl.lit("unmapped_code")).otherwise(None).alias("_finding"),
            pl.lit(None, dtype=pl.String).alias("_fcol"),
            pl.lit(f"no target table is mapped for {records} records (mappings/*.yaml)").alias("_fmsg"),
            pl.lit(f"a target table mapped for {records} in mappings/, or a rule in mappings/scope.yaml").alias(
                "_fexp"
            ),
            pl.lit(records).alias("_fact"),
        )
    return _assembled(tables, staged, [])


def _table_of(t: str, parts: list[pl.DataFrame]) -> pl.DataFrame:
    """The expected rows of table ``t`` from its staged source records."""
    allt = pl.concat(
        [p.select([c for c in TABLE_COLUMNS[t] if c in p.columns] + ["disposition"]) for p in parts],
        how="diagonal_relaxed",
    )
    return allt.filter(pl.col("disposition") == "expected").select(TABLE_COLUMNS[t])


def ledger_of(staged: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The ledger rows of staged records, in the order of ``staged`` and of each frame.

    Where the frames carry ``_row`` (their position in the whole extract file, which partitioned
    runs keep), the rows carry ``_records`` and ``_row`` too, so that the parts of partitions can
    be put back in extract order.
    """
    parts = []
    for records, df in staged.items():
        extra = [pl.lit(records).alias("_records"), pl.col("_row").cast(pl.Int64)] if "_row" in df.columns else []
        parts.append(df.select(*list(LEDGER_SCHEMA), *extra))
    if not parts:
        return pl.DataFrame(schema=LEDGER_SCHEMA)
    return pl.concat(parts, how="diagonal_relaxed")


def _assembled(
    tables: dict[str, pl.DataFrame], staged: dict[str, pl.DataFrame], warnings: list[pl.DataFrame]
) -> Expected:
    findings = pl.concat(
        [_findings_of(df) for df in staged.values()]
        + [
            w.select("source_ref", "source_system", "entity", "column", "message").with_columns(
                pl.lit("implausible").alias("category")
            )
            for w in warnings
            if w.height
        ],
        how="diagonal_relaxed",
    )
    return Expected(tables=tables, ledger=ledger_of(staged), findings=_with_severity(findings), staged=staged)


def _with_severity(findings: pl.DataFrame) -> pl.DataFrame:
    if findings.width == 0:
        return pl.DataFrame(schema=SOURCE_FINDING_SCHEMA)
    return findings.with_columns(
        pl.col("category").replace_strict(CATEGORY_SEVERITY, default="error").alias("severity")
    ).select(list(SOURCE_FINDING_SCHEMA))


def unparseable_ledger(unp: pl.DataFrame) -> pl.DataFrame:
    """Ledger rows of the lines the readers could not read: rejected."""
    return unp.select(
        "source_ref",
        "source_system",
        "entity",
        pl.lit("rejected").alias("disposition"),
        (pl.lit("unparseable: ") + pl.col("reason")).alias("reason"),
    )


def unparseable_findings(unp: pl.DataFrame) -> pl.DataFrame:
    """Source findings of the lines the readers could not read."""
    return _with_severity(
        unp.select(
            pl.lit("unparseable").alias("category"),
            "entity",
            "source_system",
            "source_ref",
            pl.lit(None, dtype=pl.String).alias("column"),
            pl.lit(None, dtype=pl.String).alias("expected"),
            pl.lit(None, dtype=pl.String).alias("actual"),
            (pl.lit("line cannot be read: ") + pl.col("reason")).alias("message"),
        )
    )


def compute_expected(extract, mappings: Mappings, as_of: dt.date) -> Expected:
    """Expected target, ledger and source findings of an extract under the mappings (whole, in memory)."""
    par = expected_parents(extract.frames, mappings, as_of)
    ch = expected_children(extract.frames, par.staged, mappings, as_of)
    tables = {**par.tables, **ch.tables}
    unp = extract.unparseable
    return Expected(
        tables={t: tables[t] for t in TABLE_ORDER},
        ledger=pl.concat([par.ledger, ch.ledger, unparseable_ledger(unp)], how="diagonal_relaxed"),
        findings=pl.concat([par.findings, ch.findings, unparseable_findings(unp)]),
        staged={**par.staged, **ch.staged},
    )
