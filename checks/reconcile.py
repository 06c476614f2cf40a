"""Reconcile the expected target with the actual target: who arrived, who is missing, what differs.

Pure polars. Persons are matched through their identity alias (then their MRN aliases),
encounters through their VISITID alias (then, for an encounter whose alias is missing, on
content), children on content as multisets (``mappings/<table>.yaml: match_key``). Where a
parent is missing or unexpected, its children's findings are folded into the parent's: one defect,
one finding. Codes are compared by meaning; a code that is not an active value of its set is left
to the target checks (``invalid_code``) and not compared again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from checks.catalogue import RECONCILE, Check
from checks.expected import TABLE_COLUMNS, Expected
from checks.findings import FINDING_SCHEMA
from checks.mapping import Mappings
from checks.masking import TEXT_COLUMNS, mask, nature, value_nature
from checks.note_text import classify
from checks.target_schema import CODE_SETS, NOMENCLATURE, PRIMARY_KEY, TEXT_BLOBS, TextBlobs

IDENTITY_TYPES = ["PNR", "SAMNR", "RESNR"]
#: logical column → target column, for reporting
TARGET_COLUMN = {"person_ref": "person_id", "encounter_ref": "encntr_id"}
CHILD_TABLES = ["diagnosis", "procedure", "orders", "allergy", "clinical_event"]

RECON_SCHEMA = FINDING_SCHEMA


@dataclass(frozen=True)
class Reconciliation:
    """The findings of every entity and its counts (the rows' statuses and links are each unit's, held on disk)."""

    findings: pl.DataFrame  # RECON_SCHEMA
    counts: pl.DataFrame  # entity, expected, found, matched, missing, unexpected, with_differences


def _sys_of(ref: pl.Expr) -> pl.Expr:
    return ref.str.split(":").list.first()


def logical_target(target: dict[str, pl.DataFrame], m: Mappings) -> dict[str, pl.DataFrame]:
    """Target frames with codes as meanings, an ``_id`` and an ``_invalid`` list.

    A code that is not an active value of its set becomes null and its column is named in
    ``_invalid``.
    """
    cv = m.code_value
    by_set: dict[int, dict[int, str]] = {}
    for r in cv.filter(pl.col("active_ind") == 1).iter_rows(named=True):
        by_set.setdefault(r["code_set"], {})[r["code_value"]] = r["cdf_meaning"]
    vocab = {r["code_value"]: r["cdf_meaning"] for r in cv.filter(pl.col("code_set") == 400).iter_rows(named=True)}
    noms: dict[str, dict[int, str]] = {}
    for r in m.nomenclature.filter(pl.col("active_ind") == 1).iter_rows(named=True):
        v = vocab.get(r["source_vocabulary_cd"])
        if v:
            noms.setdefault(v, {})[r["nomenclature_id"]] = f"{v}:{r['source_identifier']}"
    out = {}
    for t, df in target.items():
        if t not in TABLE_COLUMNS:
            continue
        if t in TEXT_BLOBS and TEXT_BLOBS[t].table in target:
            df = with_blob_text(df, target[TEXT_BLOBS[t].table], TEXT_BLOBS[t])
        exprs: list[pl.Expr] = []
        invalid: list[pl.Expr] = []
        for (tt, col), cs in CODE_SETS.items():
            if tt == t:
                meaning = pl.col(col).replace_strict(by_set.get(cs, {}), default=None, return_dtype=pl.String)
                exprs.append(meaning.alias(col))
                invalid.append(pl.when(pl.col(col).is_not_null() & meaning.is_null()).then(pl.lit(col)))
        for (tt, col), voc in NOMENCLATURE.items():
            if tt == t:
                meaning = pl.col(col).replace_strict(noms.get(voc, {}), default=None, return_dtype=pl.String)
                exprs.append(meaning.alias(col))
                invalid.append(pl.when(pl.col(col).is_not_null() & meaning.is_null()).then(pl.lit(col)))
        pk = PRIMARY_KEY[t]
        if "_unreadable" in df.columns:  # a code the reader could not even read as a number is invalid too
            coded = [c for (tt, c) in (*CODE_SETS, *NOMENCLATURE) if tt == t]
            invalid.append(pl.col("_unreadable").list.set_intersection(pl.lit(coded, dtype=pl.List(pl.String))))
            invalid = [pl.concat_list(invalid)]
        inv = pl.concat_list(invalid).list.drop_nulls() if invalid else pl.lit([], dtype=pl.List(pl.String))
        out[t] = df.with_columns(pl.col(pk).alias("_id"), inv.alias("_invalid")).with_columns(exprs)
    return out


def with_blob_text(df: pl.DataFrame, blobs: pl.DataFrame, spec: TextBlobs) -> pl.DataFrame:
    """Rows of ``df`` with their text: their chunks (``spec.table``) joined in chunk order.

    A row without any chunk has no text (null); chunks whose row does not exist are the target
    checks' orphans. Of chunks of equal number the first by id is the text's, the others are the
    target checks' duplicates (one defect, one finding).
    """
    pk = PRIMARY_KEY[spec.table]
    text = (
        blobs.sort([spec.parent_key, spec.seq, pk], nulls_last=True)
        .unique([spec.parent_key, spec.seq], keep="first", maintain_order=True)
        .group_by(spec.parent_key, maintain_order=True)
        .agg(pl.col(spec.contents).fill_null("").str.join("").alias(spec.column))
    )
    key = PRIMARY_KEY[next(t for t, b in TEXT_BLOBS.items() if b == spec)]
    return df.join(text, left_on=key, right_on=spec.parent_key, how="left", maintain_order="left")


def _finding(
    df: pl.DataFrame,
    check: Check,
    message: pl.Expr | str,
    source_ref: pl.Expr | None = None,
    target_ref: pl.Expr | None = None,
) -> pl.DataFrame:
    """One finding of ``check`` per row of ``df``."""
    src = source_ref if source_ref is not None else pl.lit(None, dtype=pl.String)
    tgt = target_ref if target_ref is not None else pl.lit(None, dtype=pl.String)
    msg = pl.lit(message) if isinstance(message, str) else message
    return df.select(
        pl.lit(check.id).alias("check"),
        pl.lit(check.category).alias("category"),
        pl.lit(check.entity).alias("entity"),
        pl.when(src.is_not_null()).then(_sys_of(src)).otherwise(None).alias("source_system"),
        src.alias("source_ref"),
        tgt.alias("target_ref"),
        pl.lit(None, dtype=pl.String).alias("column"),
        pl.lit(None, dtype=pl.String).alias("expected"),
        pl.lit(None, dtype=pl.String).alias("actual"),
        pl.lit(None, dtype=pl.String).alias("nature"),
        msg.alias("message"),
    )


def compare_values(matched: pl.DataFrame, check: Check, columns: list[str]) -> pl.DataFrame:
    """Value differences between ``col`` (expected) and ``col__act`` (target) of matched rows.

    Each is classified once, on the values before masking (``masking.nature``): the ``nature``
    column holds the word, the message the phrase built from it.
    """
    table = check.entity
    rows = []
    for col in columns:
        if col == "confid_level_cd":  # reported as confidentiality, see _confidentiality
            continue
        a = f"{col}__act"
        diff = matched.filter(
            ~pl.col(col).eq_missing(pl.col(a)) & ~pl.col("_invalid").list.contains(TARGET_COLUMN.get(col, col))
        )
        for r in diff.select("source_ref", "_target_ref", col, a).iter_rows():
            ref, tref, e, v = r
            tcol = TARGET_COLUMN.get(col, col)
            word, phrase = nature(table, tcol, e, v)
            rows.append(
                _difference(
                    check,
                    ref,
                    tref,
                    tcol,
                    mask(table, tcol, e),
                    mask(table, tcol, v),
                    word,
                    f"{tcol} differs: {phrase}",
                )
            )
    return pl.DataFrame(rows, schema=RECON_SCHEMA)


def _difference(
    check: Check, ref: str, tref: str, column: str, expected: str | None, actual: str | None, word: str, message: str
) -> dict[str, str | None]:
    """One finding of a matched row that differs in ``column``: values already masked, its nature word."""
    return {
        "check": check.id,
        "category": check.category,
        "entity": check.entity,
        "source_system": ref.split(":")[0],
        "source_ref": ref,
        "target_ref": tref,
        "column": column,
        "expected": expected,
        "actual": actual,
        "nature": word,
        "message": message,
    }


def compare_texts(matched: pl.DataFrame, check: Check, column: str, negations: frozenset[str]) -> pl.DataFrame:
    """Notes whose text (``column``, the chunks joined) differs from the expected text: one finding each.

    The texts are compared whole (polars); only the differing ones are classified word by word
    (``checks.note_text.classify``): the nature of the change, a message that names no word but the
    negation words, and the texts' profiles in place of the texts.
    """
    a = f"{column}__act"
    # a note without any chunk is the target check's finding (text_without_chunks), named by this note
    diff = matched.filter(pl.col(a).is_not_null() & (pl.col(column) != pl.col(a)))
    diff = diff.select("source_ref", "_target_ref", column, a)
    rows = []
    for ref, tref, e, v in diff.iter_rows():
        change = classify(e or "", v, negations)
        rows.append(
            _difference(check, ref, tref, column, change.expected, change.actual, change.nature, change.message)
        )
    return pl.DataFrame(rows, schema=RECON_SCHEMA)


def _confidentiality(matched: pl.DataFrame) -> pl.DataFrame:
    bad = matched.filter(
        (pl.col("confid_level_cd") == "PROTECTED")
        & pl.col("confid_level_cd__act").ne_missing("PROTECTED")
        & ~pl.col("_invalid").list.contains("confid_level_cd")
    )
    f = _finding(
        bad,
        RECONCILE[("person", "confidentiality")],
        "protected identity exposed: the person is protected in the source but not marked PROTECTED in the target",
        pl.col("source_ref"),
        pl.col("_target_ref"),
    )
    over = matched.filter((pl.col("confid_level_cd") == "ROUTINE") & (pl.col("confid_level_cd__act") == "PROTECTED"))
    g = _finding(
        over,
        RECONCILE[("person", "value")],
        "confid_level_cd differs: marked PROTECTED in the target, no source record is protected",
        pl.col("source_ref"),
        pl.col("_target_ref"),
    )
    # the same classification as every value difference: another code of code set 87
    over_nature = value_nature("person", "confid_level_cd", "ROUTINE", "PROTECTED")
    return pl.concat(
        [
            f.with_columns(pl.lit("confid_level_cd").alias("column")),
            g.with_columns(pl.lit("confid_level_cd").alias("column"), pl.lit(over_nature).alias("nature")),
        ]
    )


def _suffix_actual(df: pl.DataFrame, keep: list[str]) -> pl.DataFrame:
    return df.rename({c: f"{c}__act" for c in df.columns if c not in keep})


def _match_persons(exp: Expected, tgt: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """person_ref ↔ person_id (one to one)."""
    aliases = tgt["person_alias"]
    ident = aliases.filter(pl.col("person_alias_type_cd").is_in(IDENTITY_TYPES)).select(
        pl.col("alias"), "person_id", pl.col("_id").alias("_aid")
    )
    ep = exp.tables["person"].select("person_ref", "identity")
    m1 = (
        ep.join(ident, left_on="identity", right_on="alias", how="inner")
        .sort("_aid")
        .unique("person_ref", keep="first")
        .select("person_ref", "person_id")
    )
    mrn_t = aliases.filter(pl.col("person_alias_type_cd") == "MRN").select("alias_pool_cd", "alias", "person_id")
    mrn_e = (
        exp.tables["person_alias"]
        .filter(pl.col("person_alias_type_cd") == "MRN")
        .select("person_ref", "alias_pool_cd", "alias")
    )
    m2 = (
        mrn_e.join(m1.select("person_ref"), on="person_ref", how="anti")
        .join(mrn_t, on=["alias_pool_cd", "alias"], how="inner")
        .group_by("person_ref", "person_id")
        .len()
        .sort(["person_ref", "len", "person_id"], descending=[False, True, False])
        .unique("person_ref", keep="first")
        .select("person_ref", "person_id")
    )
    both = pl.concat([m1, m2]).sort("person_ref")
    # a target person claimed twice: the first claim wins
    return both.unique("person_id", keep="first", maintain_order=True)


def _visit_source_ref() -> pl.Expr:
    """The legacy encounter a VISITID encounter alias names (by its contributor system)."""
    return (
        pl.when(pl.col("contributor_system_cd") == "PAS")
        .then(pl.lit("pas:kontakt:") + pl.col("alias"))
        .when(pl.col("contributor_system_cd") == "PCS")
        .then(pl.lit("pcs:visit:") + pl.col("alias"))
        .otherwise(None)
    )


def _match_encounters(
    exp: Expected, tgt: dict[str, pl.DataFrame], pmap: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(source_ref ↔ encntr_id, encounters matched on content because their alias is missing)."""
    ea = (
        tgt["encntr_alias"]
        .filter(pl.col("encntr_alias_type_cd") == "VISITID")
        .with_columns(_visit_source_ref().alias("source_ref"))
    )
    ee = exp.tables["encounter"]
    te = tgt["encounter"]
    by_alias = (
        ee.select("source_ref")
        .join(ea.select("source_ref", "encntr_id", pl.col("_id").alias("_aid")), on="source_ref")
        .join(te.select(pl.col("_id").alias("encntr_id")), on="encntr_id", how="semi")
        .sort("_aid")
        .unique("source_ref", keep="first")
        .unique("encntr_id", keep="first")
        .select("source_ref", "encntr_id")
    )
    unaliased = te.join(tgt["encntr_alias"].select("encntr_id"), left_on="_id", right_on="encntr_id", how="anti")
    key = ["person_ref", "encntr_type_cd", "loc_nurse_unit_cd", "reg_dt_tm"]
    cand = unaliased.join(pmap.rename({"person_id": "_pid"}), left_on="person_id", right_on="_pid", how="inner")
    rest = ee.join(by_alias, on="source_ref", how="anti")
    by_content = (
        rest.select("source_ref", *key)
        .join(cand.select(*key, pl.col("_id").alias("encntr_id")), on=key)
        .unique("source_ref", keep="first")
        .unique("encntr_id", keep="first")
        .select("source_ref", "encntr_id")
    )
    return pl.concat([by_alias, by_content]), by_content


@dataclass(frozen=True)
class EntityFindings:
    """What is kept in memory of an entity's reconciliation: its findings and counts."""

    entity: str
    findings: pl.DataFrame
    counts: dict | None


@dataclass(frozen=True)
class EntityPart:
    """The reconciliation of one entity: its findings, target→source links, row statuses, counts."""

    entity: str
    findings: pl.DataFrame
    links: pl.DataFrame  # target_ref, source_ref, entity
    status: pl.DataFrame  # entity, source_ref, person_ref, _rank, status
    counts: dict | None

    def kept(self) -> EntityFindings:
        """Its findings and counts alone (once its links and statuses are held on disk)."""
        return EntityFindings(self.entity, self.findings, self.counts)


def _links(df: pl.DataFrame, entity: str) -> pl.DataFrame:
    return df.select(pl.col("_target_ref").alias("target_ref"), "source_ref", pl.lit(entity).alias("entity"))


def _status(expected: pl.DataFrame, missing_refs: pl.Series, entity: str, ref: str = "source_ref") -> pl.DataFrame:
    person = pl.col("person_ref") if "person_ref" in expected.columns else pl.lit(None, dtype=pl.String)
    return expected.select(
        pl.lit(entity).alias("entity"),
        pl.col(ref).alias("source_ref"),
        person.alias("person_ref"),
        pl.lit(0).alias("_rank"),
        pl.when(pl.col(ref).is_in(missing_refs.implode()))
        .then(pl.lit("missing_in_target"))
        .otherwise(pl.lit("migrated"))
        .alias("status"),
    )


def _empty_status() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "entity": pl.String,
            "source_ref": pl.String,
            "person_ref": pl.String,
            "_rank": pl.Int64,
            "status": pl.String,
        }
    )


def _counts(entity: str, expected: int, found: int, matched: int, missing: int, unexpected: int) -> dict:
    return {
        "entity": entity,
        "expected": expected,
        "found": found,
        "matched": matched,
        "missing": missing,
        "unexpected": unexpected,
    }


def reconcile_persons(exp: Expected, tgt: dict[str, pl.DataFrame]) -> tuple[list[EntityPart], pl.DataFrame]:
    """Persons and their MRN aliases; returns the parts and the person_ref ↔ person_id map."""
    pmap = _match_persons(exp, tgt)
    ep = exp.tables["person"]
    tp = tgt["person"]
    pm = (
        ep.join(pmap, on="person_ref", how="inner")
        .join(_suffix_actual(tp, ["person_id", "_id", "_invalid"]).drop("_id"), on="person_id", how="inner")
        .with_columns(
            (pl.lit("person:") + pl.col("person_id").cast(pl.String)).alias("_target_ref"),
            pl.col("person_ref").alias("source_ref"),
        )
    )
    p_missing = ep.join(pmap, on="person_ref", how="anti")
    p_unexp = tp.join(pmap, left_on="_id", right_on="person_id", how="anti")
    pcols = [c for c in TABLE_COLUMNS["person"] if c not in ("person_ref", "identity")]
    finds = [
        _finding(
            p_missing,
            RECONCILE[("person", "missing")],
            "person not found in the target (no identity or MRN alias leads to it)",
            pl.col("person_ref"),
        ),
        _finding(
            p_unexp,
            RECONCILE[("person", "unexpected")],
            "person in the target that no legacy record accounts for",
            target_ref=pl.lit("person:") + pl.col("_id").cast(pl.String),
        ),
        compare_values(pm, RECONCILE[("person", "value")], pcols),
        _confidentiality(pm),
    ]
    person = EntityPart(
        "person",
        _concat(finds),
        _links(pm, "person"),
        _status(ep, p_missing["person_ref"], "person", ref="person_ref"),
        _counts("person", ep.height, tp.height, pm.height, p_missing.height, p_unexp.height),
    )
    # MRN aliases (identity aliases are the target checks' concern)
    pid_to_ref = pmap.rename({"person_id": "_pid"})
    ta = tgt["person_alias"].join(pid_to_ref, left_on="person_id", right_on="_pid", how="left")
    alias_links = ta.filter(pl.col("person_ref").is_not_null()).select(
        (pl.lit("person_alias:") + pl.col("_id").cast(pl.String)).alias("target_ref"),
        pl.col("person_ref").alias("source_ref"),
        pl.lit("person_alias").alias("entity"),
    )
    mrn_key = ["person_ref", "alias_pool_cd", "alias"]
    emrn = exp.tables["person_alias"].filter(pl.col("person_alias_type_cd") == "MRN")
    tmrn = ta.filter(pl.col("person_alias_type_cd") == "MRN")
    mrn_missing = emrn.join(tmrn.select(mrn_key), on=mrn_key, how="anti").join(pmap, on="person_ref", how="semi")
    mrn_unexp = tmrn.filter(pl.col("person_ref").is_not_null()).join(emrn.select(mrn_key), on=mrn_key, how="anti")
    alias = EntityPart(
        "person_alias",
        _concat(
            [
                _finding(
                    mrn_missing,
                    RECONCILE[("person_alias", "missing")],
                    "the record's MRN alias (legacy patient id) is missing on its person",
                    pl.col("source_ref"),
                ).with_columns(pl.lit("alias").alias("column")),
                _finding(
                    mrn_unexp,
                    RECONCILE[("person_alias", "unexpected")],
                    "an MRN alias in the target that no legacy record accounts for",
                    target_ref=pl.lit("person_alias:") + pl.col("_id").cast(pl.String),
                ),
            ]
        ),
        alias_links,
        _empty_status(),
        None,
    )
    return [person, alias], pmap


def reconcile_encounters(
    exp: Expected, tgt: dict[str, pl.DataFrame], pmap: pl.DataFrame
) -> tuple[list[EntityPart], pl.DataFrame]:
    """Encounters and their aliases; returns the parts and the source_ref ↔ encntr_id map."""
    emap, by_content = _match_encounters(exp, tgt, pmap)
    pid_to_ref = pmap.rename({"person_id": "_pid"})
    ee = exp.tables["encounter"]
    te = tgt["encounter"].join(pid_to_ref, left_on="person_id", right_on="_pid", how="left")
    em = (
        ee.join(emap, on="source_ref", how="inner")
        .join(
            _suffix_actual(te, ["encntr_id", "_id", "_invalid"]).drop("encntr_id"),
            left_on="encntr_id",
            right_on="_id",
            how="inner",
        )
        .with_columns((pl.lit("encounter:") + pl.col("encntr_id").cast(pl.String)).alias("_target_ref"))
    )
    e_missing = ee.join(emap, on="source_ref", how="anti")
    e_unexp = te.join(emap, left_on="_id", right_on="encntr_id", how="anti")
    alias_of = (
        tgt["encntr_alias"]
        .with_columns(_visit_source_ref().alias("_legacy"))
        .select("encntr_id", "_legacy")
        .unique("encntr_id")
    )
    known = exp.ledger.select(
        pl.col("source_ref").alias("_legacy"), pl.col("reason").alias("_why"), pl.col("disposition").alias("_disp")
    ).unique("_legacy")
    first = emap.select(pl.col("source_ref").alias("_legacy"), pl.col("encntr_id").alias("_first"))
    e_unexp = (
        e_unexp.join(alias_of, left_on="_id", right_on="encntr_id", how="left")
        .join(known, on="_legacy", how="left")
        .join(first, on="_legacy", how="left")
    )
    # a migrated legacy record that another encounter already accounts for: this one is a second load
    twice = pl.concat_str(
        [
            pl.lit("encounter loaded twice: its VISITID alias names a legacy record that "),
            pl.coalesce(pl.lit("encounter:") + pl.col("_first").cast(pl.String), pl.lit("another encounter")),
            pl.lit(" already accounts for"),
        ]
    )
    # a record kept out of the load (out of scope, rejected, merged) that was loaded all the same
    why = pl.concat_str(
        [
            pl.lit("encounter loaded although its legacy record is "),
            pl.col("_disp").str.replace_all("_", " "),
            pl.lit(" (") + pl.col("_why") + pl.lit(")"),
        ],
        ignore_nulls=True,
    )
    ecols = [c for c in TABLE_COLUMNS["encounter"] if c != "source_ref"]
    finds = [
        _finding(
            e_missing.join(pmap, on="person_ref", how="semi"),
            RECONCILE[("encounter", "missing")],
            "encounter not found in the target",
            pl.col("source_ref"),
        ),
        _finding(
            e_unexp,
            RECONCILE[("encounter", "unexpected")],
            pl.when(pl.col("_disp") == "expected")
            .then(twice)
            .when(pl.col("_disp").is_not_null())
            .then(why)
            .otherwise(pl.lit("encounter in the target that no legacy record accounts for")),
            pl.when(pl.col("_disp").is_not_null()).then(pl.col("_legacy")).otherwise(None),
            pl.lit("encounter:") + pl.col("_id").cast(pl.String),
        ),
        compare_values(em, RECONCILE[("encounter", "value")], ecols),
    ]
    encounter = EntityPart(
        "encounter",
        _concat(finds),
        _links(em, "encounter"),
        _status(ee, e_missing["source_ref"], "encounter"),
        _counts("encounter", ee.height, te.height, em.height, e_missing.height, e_unexp.height),
    )
    alias = EntityPart(
        "encntr_alias",
        _finding(
            by_content.join(em.select("source_ref", "_target_ref"), on="source_ref"),
            RECONCILE[("encntr_alias", "missing")],
            "encounter loaded without its VISITID alias (found by its content)",
            pl.col("source_ref"),
            pl.col("_target_ref"),
        ).with_columns(pl.lit("alias").alias("column")),
        _links(em.head(0), "encntr_alias"),
        _empty_status(),
        None,
    )
    return [encounter, alias], emap


@dataclass(frozen=True)
class ChildSlice:
    """What reconciling a child table (or one partition of it) needs, and nothing more.

    ``expected`` and ``target`` are rows of the table; ``encounter_ids`` and ``person_ids`` the
    target's parent ids (a row whose parent is not there is an orphan, the target checks'
    finding); ``pmap`` and ``emap`` the person_ref ↔ person_id and source_ref ↔ encntr_id maps of
    the reconciled parents.
    """

    table: str
    key: tuple[str, ...]
    expected: pl.DataFrame
    target: pl.DataFrame
    encounter_ids: pl.Series
    person_ids: pl.Series
    pmap: pl.DataFrame
    emap: pl.DataFrame
    #: the target rows already carry their parents' refs and ``_parent_ok`` (``resolved_parents``,
    #: done once for a whole table when it is staged to partitions); the ids above are then unused
    resolved: bool = False
    #: the negation words whose loss from a note is named first (``mappings/note_text.yaml``)
    negations: frozenset[str] = frozenset()


def child_slice(
    table: str, exp: Expected, tgt: dict[str, pl.DataFrame], m: Mappings, pmap: pl.DataFrame, emap: pl.DataFrame
) -> ChildSlice:
    """The whole of one child table as a slice."""
    return ChildSlice(
        table,
        tuple(m.tables[table].match_key),
        exp.tables[table],
        tgt[table],
        tgt["encounter"]["_id"],
        tgt["person"]["_id"],
        pmap,
        emap,
        negations=m.negation_words,
    )


def with_parent_refs(tt: pl.DataFrame, pmap: pl.DataFrame, emap: pl.DataFrame) -> pl.DataFrame:
    """Target child rows with the source refs of their reconciled parents (``person_ref``, ``encounter_ref``)."""
    if "person_id" in tt.columns:
        tt = tt.join(
            pmap.rename({"person_id": "_pid"}), left_on="person_id", right_on="_pid", how="left", maintain_order="left"
        )
    if "encntr_id" in tt.columns:
        eid_to_ref = emap.rename({"source_ref": "encounter_ref", "encntr_id": "_eid"})
        tt = tt.join(eid_to_ref, left_on="encntr_id", right_on="_eid", how="left", maintain_order="left")
    return tt


def resolved_parents(
    tt: pl.DataFrame, pmap: pl.DataFrame, emap: pl.DataFrame, encounter_ids: pl.Series, person_ids: pl.Series
) -> pl.DataFrame:
    """Target child rows with their parents' source refs and ``_parent_ok`` (their parent ids exist).

    A row whose parent is not in the target is an orphan (the target checks' finding), never
    matched here. Row order is kept.
    """
    ok = pl.lit(True)
    if "encntr_id" in tt.columns:
        ok = ok & pl.col("encntr_id").is_in(encounter_ids.implode())
    if "person_id" in tt.columns:
        ok = ok & pl.col("person_id").is_in(person_ids.implode())
    return with_parent_refs(tt, pmap, emap).with_columns(ok.alias("_parent_ok"))


def reconcile_child(
    table: str, exp: Expected, tgt: dict[str, pl.DataFrame], m: Mappings, pmap: pl.DataFrame, emap: pl.DataFrame
) -> EntityPart:
    """One child table, matched on content as a multiset (``match_key`` of its mapping file)."""
    return reconcile_child_slice(child_slice(table, exp, tgt, m, pmap, emap))


def ranked(df: pl.DataFrame, key: list[str], order: str, name: str) -> pl.DataFrame:
    """``df`` with ``name``: each row's position among the rows of equal ``key`` (by ``order``), from 0.

    Most keys occur once: only the rows of repeated keys are ranked by a window (a window over
    millions of one-row groups costs seconds); the others get 0. Nulls in a key are equal. Row
    order is kept.
    """
    if not key:
        return df.with_columns((pl.col(order).rank("ordinal") - 1).cast(pl.Int64).alias(name))
    repeated = pl.col(key[0]).is_duplicated() if len(key) == 1 else pl.struct(key).is_duplicated()
    idx = df.with_row_index("_ri")
    dup = idx.filter(repeated)
    if dup.height == 0:
        return df.with_columns(pl.lit(0, dtype=pl.Int64).alias(name))
    r = dup.select("_ri", pl.int_range(pl.len(), dtype=pl.Int64).over(key, order_by=order).alias(name))
    # only the one column is joined back: joining the whole frame would copy every column
    rank = idx.select("_ri").join(r, on="_ri", how="left", maintain_order="left")[name].fill_null(0)
    return df.with_columns(rank)


@dataclass(frozen=True)
class Matching:
    """Expected and target rows matched as multisets on a key (``match_on_key``)."""

    expected_rows: int
    pairs: pl.DataFrame  # one per matched pair, in expected row order: _e, source_ref, _rank, _id, _target_ref
    differing: pl.DataFrame  # the matched pairs whose values differ, in full: expected columns and <col>__act
    missing: pl.DataFrame  # expected rows no target row matched (with _rank), in expected row order
    unexpected: pl.DataFrame  # target rows no expected row matched (with _rank)


def key_hash(key: list[str]) -> pl.Expr:
    """A 64-bit hash of a row's ``key`` (nulls hash alike, as the match treats them as equal)."""
    if not key:
        return pl.lit(0, dtype=pl.UInt64)
    return (pl.col(key[0]) if len(key) == 1 else pl.struct(key)).hash(seed=1)


def match_on_key(
    et: pl.DataFrame | pl.LazyFrame,
    tt: pl.DataFrame | pl.LazyFrame,
    key: list[str],
    vcols: list[str],
    table: str,
    hash_key=key_hash,  # noqa: ANN001 - the key's hash; a test passes a weak one to force collisions
) -> Matching:
    """Match expected rows (``source_ref``) and target rows (``_id``, ``_invalid``) on ``key`` as multisets.

    Rows with equal keys pair up in order (expected by source_ref, target by id), as if the two
    sides were joined on (key, rank among equal keys). It is done in two passes so that no key text
    is joined and only the rows that need it are read in full:

    1. Each row is reduced to two 64-bit numbers: a hash of its key and a hash of its key and
       values (``vcols``). Both sides are sorted on the key hash; a key hash found once on each
       side, with equal row hashes, settles a pair: the row hash covers the key, so the two rows
       have one key and equal values. That is nearly every row, found by a join of two sorted
       64-bit columns.
    2. Every other row (on one side only, its values differ, its key repeated on either side, or
       two keys sharing a hash) is read in full and matched exactly on the key and rank; the pairs
       whose values differ are kept in full for the column-by-column comparison
       (``compare_values``).

    Every row of a key hash that is not settled goes to pass 2, on both sides, so pass 2 matches
    whole groups exactly. Equal values always hash alike, so no difference is lost; two keys
    sharing a hash only cost a re-read. Either side may be a ``LazyFrame`` (a Parquet scan): then
    only hashes, ids and references are held, and full rows only for pass 2. Pure: the first pass
    of every child table's reconciliation.
    """
    el = et.lazy().with_row_index("_e").with_columns(pl.col("_e").cast(pl.Int64))
    tl = tt.lazy()
    row_hash = pl.struct([*key, *vcols]).hash(seed=0) if key or vcols else pl.lit(0, dtype=pl.UInt64)
    e_h, t_h = pl.collect_all(
        [
            el.select("source_ref", hash_key(key).alias("_kh"), row_hash.alias("_h")),
            tl.select("_id", hash_key(key).alias("_kh"), row_hash.alias("_h_act")),
        ]
    )
    n_e, n_t = e_h.height, t_h.height
    # pass 1: key hashes found once on each side, paired by a join of the two sorted columns
    once = ~(pl.col("_kh").eq_missing(pl.col("_kh").shift(1)) | pl.col("_kh").eq_missing(pl.col("_kh").shift(-1)))
    es = e_h.select("_kh", "_h").with_row_index("_e").sort("_kh").filter(once)
    ts = t_h.select("_kh", "_h_act").with_row_index("_t").sort("_kh").filter(once)
    settled = es.join(ts, on="_kh", how="inner").filter(pl.col("_h") == pl.col("_h_act")).select("_e", "_t")
    del es, ts
    e_done = pl.repeat(False, n_e, eager=True).scatter(settled["_e"], True)
    t_done = pl.repeat(False, n_t, eager=True).scatter(settled["_t"], True)
    # pass 2: every other row in full, matched exactly on key and rank
    e_rows = _rows_of(el, "_e", pl.int_range(n_e, dtype=pl.Int64, eager=True).filter(~e_done))
    t_rows = _rows_of(tl, "_id", t_h["_id"].filter(~t_done))
    values_hash = pl.struct(vcols).hash(seed=0) if vcols else pl.lit(0, dtype=pl.UInt64)
    e_r = ranked(e_rows.select(*key, "_e", "source_ref", values_hash.alias("_h")), key, "source_ref", "_rank")
    t_r = ranked(t_rows.select(*key, "_id", values_hash.alias("_h_act")), key, "_id", "_rank")
    exact = e_r.join(t_r, on=[*key, "_rank"], how="inner", nulls_equal=True).select(
        "_e", "_rank", "_id", "_h", "_h_act"
    )
    # the pairs in expected row order: each expected row's partner and rank set at its position
    partner = (
        pl.repeat(None, n_e, dtype=t_h["_id"].dtype, eager=True)
        .scatter(settled["_e"], t_h["_id"].gather(settled["_t"]))
        .scatter(exact["_e"], exact["_id"])
    )
    rank = pl.repeat(0, n_e, dtype=pl.Int64, eager=True).scatter(exact["_e"], exact["_rank"])
    del settled, t_h
    pairs = (
        e_h.select(
            pl.int_range(n_e, dtype=pl.Int64).alias("_e"),
            "source_ref",
            rank.alias("_rank"),
            partner.alias("_id"),
        )
        .filter(pl.col("_id").is_not_null())
        .with_columns((pl.lit(f"{table}:") + pl.col("_id").cast(pl.String)).alias("_target_ref"))
    )
    del e_h
    differ = exact.filter(pl.col("_h") != pl.col("_h_act")).select(
        "_e", "_id", (pl.lit(f"{table}:") + pl.col("_id").cast(pl.String)).alias("_target_ref")
    )
    cm = (
        differ.join(e_rows.drop("_invalid", strict=False), on="_e", how="inner")
        .join(_suffix_actual(t_rows.select(*vcols, "_id", "_invalid"), ["_id", "_invalid"]), on="_id")
        .sort("_e")
    )
    missing = (
        e_rows.join(e_r.select("_e", "_rank").join(exact.select("_e"), on="_e", how="anti"), on="_e")
        .sort("_e")
        .drop("_e")
    )
    unexpected = t_rows.join(t_r.select("_id", "_rank").join(exact.select("_id"), on="_id", how="anti"), on="_id")
    return Matching(n_e, pairs, cm, missing, unexpected)


def _rows_of(lf: pl.LazyFrame, col: str, values: pl.Series) -> pl.DataFrame:
    """The rows of ``lf`` whose ``col`` is one of ``values`` (one pass; in ``lf``'s order)."""
    return lf.filter(pl.col(col).is_in(values.implode())).collect(engine="in-memory")


def reconcile_child_slice(s: ChildSlice) -> EntityPart:
    """Reconcile the rows of a child slice (a whole table or one partition of it)."""
    t = s.table
    key = list(s.key)
    et = s.expected
    pmap, emap = s.pmap, s.emap
    tt = s.target if s.resolved else resolved_parents(s.target, pmap, emap, s.encounter_ids, s.person_ids)
    tt = tt.filter(pl.col("_parent_ok")).drop("_parent_ok")  # orphans are the target checks' finding
    vcols = [c for c in TABLE_COLUMNS[t] if c not in (*key, "source_ref") and c in tt.columns and c in et.columns]
    texts = [c for c in vcols if (t, c) in TEXT_COLUMNS]
    values = [c for c in vcols if c not in texts]
    mt = match_on_key(et, tt, key, vcols, t)
    pairs, cm, c_missing, c_unexp = mt.pairs, mt.differing, mt.missing, mt.unexpected
    parent_matched = pl.lit(True)
    if "encounter_ref" in key:
        parent_matched = parent_matched & pl.col("encounter_ref").is_not_null()
    if "person_ref" in key:
        parent_matched = parent_matched & pl.col("person_ref").is_not_null()
    # second pass: a row whose key differs in one column only (a code swapped, a time shifted) is
    # the same record with a wrong value, not one missing and one unexpected row
    c_missing, _still_unexpected, relaxed = _relaxed_pairs(t, key, c_missing, c_unexp.filter(parent_matched))
    c_unexp = c_unexp.join(
        pl.concat([r.select("_id") for r in relaxed]) if relaxed else tt.head(0).select("_id"), on="_id", how="anti"
    )
    finds = [
        _finding(
            c_missing.filter(_parent_present(c_missing, t, emap, pmap)),
            RECONCILE[(t, "missing")],
            f"{_row_word(t)} not found in the target (matched on {_key_words(t, key)})",
            pl.col("source_ref"),
        ),
        _finding(
            c_unexp.filter(parent_matched),
            RECONCILE[(t, "unexpected")],
            f"{_row_word(t)} in the target that no legacy record accounts for (or loaded twice)",
            target_ref=pl.lit(f"{t}:") + pl.col("_id").cast(pl.String),
        ),
        compare_values(cm, RECONCILE[(t, "value")], values),
        *[compare_texts(cm, RECONCILE[(t, "text")], c, s.negations) for c in texts],
        *[compare_values(r, RECONCILE[(t, "value")], [r["_relaxed"][0], *values]) for r in relaxed],
        *[compare_texts(r, RECONCILE[(t, "text")], c, s.negations) for r in relaxed for c in texts],
    ]
    cm = pl.concat(
        [
            pairs.select("source_ref", "_rank", "_target_ref"),
            *[r.select("source_ref", "_rank", "_target_ref") for r in relaxed],
        ]
    )
    status = pl.concat(
        [
            cm.select("source_ref", "_rank").with_columns(pl.lit("migrated").alias("status")),
            c_missing.select("source_ref", "_rank").with_columns(pl.lit("missing_in_target").alias("status")),
        ]
    ).select(
        pl.lit(t).alias("entity"),
        "source_ref",
        pl.lit(None, dtype=pl.String).alias("person_ref"),
        pl.col("_rank").cast(pl.Int64),
        "status",
    )
    return EntityPart(
        t,
        _concat(finds),
        _links(cm, t),
        status,
        _counts(t, mt.expected_rows, s.target.height, cm.height, c_missing.height, c_unexp.height),
    )


#: what a steward calls a row of a table, and its match key, where the table's name says too little
_ROW_WORDS = {"clinical_event": ("note", "its system and legacy note id")}


def _row_word(t: str) -> str:
    return _ROW_WORDS[t][0] if t in _ROW_WORDS else f"{t} row"


def _key_words(t: str, key: list[str]) -> str:
    return _ROW_WORDS[t][1] if t in _ROW_WORDS else ", ".join(key)


def _relaxed_pairs(
    t: str, key: list[str], missing: pl.DataFrame, unexpected: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, list[pl.DataFrame]]:
    """Pair leftover expected and target rows that agree on every key column but one.

    The parent reference is never relaxed, and a key without one (a note's system and legacy id)
    is an identifier: nothing is paired on part of it. Each pass pairs as a multiset (by source_ref
    and id order); returns what is still missing, still unexpected, and the pairs (with ``_relaxed``).
    """
    pairs: list[pl.DataFrame] = []
    if not {"encounter_ref", "person_ref"} & set(key):
        return missing, unexpected, pairs
    for col in [c for c in key if c not in ("encounter_ref", "person_ref")]:
        if missing.height == 0 or unexpected.height == 0:
            break
        rk = [k for k in key if k != col]
        e2 = ranked(missing, rk, "source_ref", "_r2")
        t2 = ranked(unexpected, rk, "_id", "_r2")
        cols = [c for c in TABLE_COLUMNS[t] if c in t2.columns and c != "source_ref"]
        tsel = _suffix_actual(t2.select([*cols, "_id", "_invalid", "_r2"]), [*rk, "_r2", "_id", "_invalid"])
        j = e2.join(tsel, on=[*rk, "_r2"], how="inner", nulls_equal=True)
        if j.height == 0:
            continue
        pairs.append(
            j.with_columns(
                (pl.lit(f"{t}:") + pl.col("_id").cast(pl.String)).alias("_target_ref"), pl.lit(col).alias("_relaxed")
            ).drop("_r2")
        )
        missing = missing.join(j.select("source_ref", "_rank"), on=["source_ref", "_rank"], how="anti")
        unexpected = unexpected.join(j.select("_id"), on="_id", how="anti")
    return missing, unexpected, pairs


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat([f.select(list(RECON_SCHEMA)) for f in frames], how="vertical_relaxed")


def differing_refs(findings: pl.DataFrame) -> pl.Series:
    """The source_refs a reconciliation finding names (``with_differences``)."""
    return findings.filter(pl.col("source_ref").is_not_null())["source_ref"].unique().sort()


def with_differences(status: pl.DataFrame, differing: pl.Series) -> pl.DataFrame:
    """Statuses (``EntityPart.status``): ``migrated`` becomes ``migrated_with_differences`` where a finding names it."""
    return status.with_columns(
        pl.when((pl.col("status") == "migrated") & pl.col("source_ref").is_in(differing.implode()))
        .then(pl.lit("migrated_with_differences"))
        .otherwise(pl.col("status"))
        .alias("status")
    ).drop("_rank")


def combine(parts: Sequence[EntityFindings]) -> Reconciliation:
    """One reconciliation from the findings and counts of every entity."""
    findings = _concat([p.findings for p in parts])
    counts = pl.DataFrame([p.counts for p in parts if p.counts is not None])
    wd = (
        findings.filter(pl.col("category").is_in(["value_mismatch", "text_altered", "confidentiality"]))
        .group_by("entity")
        .agg(pl.col("source_ref").n_unique().alias("with_differences"))
    )
    counts = counts.join(wd, on="entity", how="left").with_columns(pl.col("with_differences").fill_null(0))
    return Reconciliation(findings=findings, counts=counts)


def reconcile(exp: Expected, tgt: dict[str, pl.DataFrame], m: Mappings) -> Reconciliation:
    """Every expected row found or missing, every target row matched or unexpected, values compared.

    ``tgt`` is the output of ``logical_target``. Persons first, then encounters, then each child
    table (the children are independent of each other: a runner may reconcile them in parallel).
    """
    persons, pmap = reconcile_persons(exp, tgt)
    encounters, emap = reconcile_encounters(exp, tgt, pmap)
    children = [reconcile_child(t, exp, tgt, m, pmap, emap) for t in CHILD_TABLES]
    return combine([p.kept() for p in (*persons, *encounters, *children)])


def _parent_present(missing: pl.DataFrame, table: str, emap: pl.DataFrame, pmap: pl.DataFrame) -> pl.Expr:
    """Children whose parent is itself missing are covered by the parent's finding."""
    cond = pl.lit(True)
    if "encounter_ref" in missing.columns:
        cond = cond & pl.col("encounter_ref").is_in(emap["source_ref"].implode())
    if "person_ref" in missing.columns:
        cond = cond & pl.col("person_ref").is_in(pmap["person_ref"].implode())
    return cond
