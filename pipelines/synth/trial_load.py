"""The simulated vendor trial load: the expected target, given ids, optionally faulted, written.

The vendor's load is simulated by the same mapping engine validation uses (``checks.expected``);
``tests/golden`` pins that engine to ``load-rules.md`` independently, so the simulator cannot
silently agree with a wrong engine.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from checks.errors import MigcheckError
from checks.expected import (
    TABLE_ORDER,
    Expected,
    expected_children,
    expected_parents,
    parent_lookups,
    parent_records,
)
from checks.mapping import Mappings, load_mappings
from checks.note_text import chunked
from checks.target_schema import CODE_SETS, DATA_TABLES, NOMENCLATURE, PRIMARY_KEY, TEXT_BLOBS, columns_of
from pipelines.io.extract import check_extract_root
from pipelines.io.settings import default_mappings_root
from pipelines.io.target_db import connect, create_target, load_reference, safe_url, write_frame
from pipelines.run.staging import (
    child_files,
    choose_partitions,
    make_work,
    parent_files,
    partition_records,
    parts_of_parents,
    remove_work,
    split_parent_file,
    stage_file,
    stage_parent_file,
)
from pipelines.synth.faults import inject_faults, numbered, row_count_truth, sum_system_counts, system_counts
from pipelines.synth.scoring import TRUTH_COLUMNS

_TS = pl.Datetime("us")


@dataclass(frozen=True)
class TrialLoadResult:
    """What the simulated load wrote."""

    target: str  # the URL, password hidden
    rows: dict[str, int]
    faults: int
    load_faults: Path


def _code_ids(m: Mappings) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for r in m.code_value.iter_rows(named=True):
        out.setdefault(r["code_set"], {})[r["cdf_meaning"]] = r["code_value"]
    return out


def _nomenclature_ids(m: Mappings) -> dict[str, int]:
    vocab = {
        r["code_value"]: r["cdf_meaning"] for r in m.code_value.filter(pl.col("code_set") == 400).iter_rows(named=True)
    }
    return {
        f"{vocab[r['source_vocabulary_cd']]}:{r['source_identifier']}": r["nomenclature_id"]
        for r in m.nomenclature.iter_rows(named=True)
    }


def assign_ids(
    exp: Expected, m: Mappings, load_time: dt.datetime, after: dict[str, int] | None = None
) -> dict[str, pl.DataFrame]:
    """Target rows with surrogate ids and code ids; ``_ref``/``_person_ref`` keep the source link.

    ``after``: per table, the last id already given (a load written a partition at a time); ids
    start after it (default: at 1).
    """
    after = after or {}
    codes = _code_ids(m)
    noms = _nomenclature_ids(m)

    def coded(table: str, df: pl.DataFrame) -> pl.DataFrame:
        exprs = []
        for (t, col), cs in CODE_SETS.items():
            if t == table and col in df.columns:
                exprs.append(pl.col(col).replace_strict(codes[cs], default=None, return_dtype=pl.Int64))
        for (t, col), _voc in NOMENCLATURE.items():
            if t == table and col in df.columns:
                exprs.append(pl.col(col).replace_strict(noms, default=None, return_dtype=pl.Int64))
        return df.with_columns(exprs)

    def with_id(table: str, df: pl.DataFrame, sort: list[str]) -> pl.DataFrame:
        return (
            df.sort(sort, nulls_last=True)
            .with_row_index(PRIMARY_KEY[table], offset=1 + after.get(table, 0))
            .with_columns(pl.col(PRIMARY_KEY[table]).cast(pl.Int64))
        )

    t = exp.tables
    person = with_id("person", t["person"], ["person_ref"])
    pid = person.select("person_ref", "person_id")
    enc = with_id("encounter", t["encounter"], ["source_ref"]).join(pid, on="person_ref", how="left")
    eid = enc.select(pl.col("source_ref").alias("encounter_ref"), "encntr_id")
    out = {
        "person": person.with_columns(
            pl.lit(load_time).cast(_TS).alias("updt_dt_tm"), pl.col("person_ref").alias("_ref")
        ),
        "person_alias": with_id("person_alias", t["person_alias"], ["person_ref", "person_alias_type_cd", "source_ref"])
        .join(pid, on="person_ref", how="left")
        .with_columns(pl.col("source_ref").alias("_ref")),
        "encounter": enc.with_columns(pl.col("source_ref").alias("_ref")),
        "encntr_alias": with_id("encntr_alias", t["encntr_alias"], ["source_ref"])
        .join(eid.rename({"encounter_ref": "source_ref"}), on="source_ref", how="left")
        .with_columns(pl.col("source_ref").alias("_ref")),
        "diagnosis": with_id("diagnosis", t["diagnosis"], ["source_ref"])
        .join(pid, on="person_ref", how="left")
        .join(eid, on="encounter_ref", how="left")
        .with_columns(pl.col("source_ref").alias("_ref")),
        "procedure": with_id("procedure", t["procedure"], ["source_ref"])
        .join(eid, on="encounter_ref", how="left")
        .join(
            t["encounter"].select(pl.col("source_ref").alias("encounter_ref"), "person_ref"),
            on="encounter_ref",
            how="left",
        )
        .with_columns(pl.col("source_ref").alias("_ref")),
        "orders": with_id("orders", t["orders"], ["source_ref"])
        .join(pid, on="person_ref", how="left")
        .with_columns(pl.col("source_ref").alias("_ref")),
        "allergy": with_id("allergy", t["allergy"], ["source_ref"])
        .join(pid, on="person_ref", how="left")
        .with_columns(pl.col("source_ref").alias("_ref")),
        "clinical_event": with_id("clinical_event", t["clinical_event"], ["source_ref"])
        .join(pid, on="person_ref", how="left")
        .join(eid, on="encounter_ref", how="left")
        .with_columns(pl.col("source_ref").alias("_ref")),
    }
    out = {k: coded(k, v).with_columns(pl.lit(1, dtype=pl.Int16).alias("active_ind")) for k, v in out.items()}
    out["ce_blob"] = blob_rows(out["clinical_event"], 1 + after.get("ce_blob", 0))
    return out


#: extract bytes per partition of a simulated load: beyond that, the load is computed, faulted
#: and written a partition of whole persons at a time (about 4 GB of memory per GiB of extract)
LOAD_BYTES_PER_PARTITION = 2**30


@dataclass(frozen=True)
class StagedExtract:
    """An extract staged to the partitions of its persons (``stage_extract``)."""

    work: str
    parents: dict[str, int]  # record kinds of persons and encounters → blocks staged
    children: dict[str, int]  # the other record kinds → blocks staged
    known: pl.Series  # sorted identity nodes of every patient record (``checks.components``)


def stage_extract(root: Path, m: Mappings, work: str, n: int) -> StagedExtract:
    """The extract staged to ``n`` partitions by person, as validation stages it (no target)."""
    pre = [stage_parent_file(root, s, f, m, work) for s, f in parent_files(m)]
    persons = {s.records for s in m.tables["person"].sources}
    known = pl.concat([v["identity"] for f in pre for k, v in f.keys.items() if k in persons])
    parts = parts_of_parents(pre, {}, m, n)
    staged = [split_parent_file(work, f, m, parts, n) for f in pre]
    del pre
    staged += [stage_file(root, s, f, m, parts, work, n) for s, f in child_files(m)]
    kinds = set(parent_records(m))
    return StagedExtract(
        work,
        {r: f.blocks for f in staged for r in f.records if r in kinds},
        {r: f.blocks for f in staged for r in f.records if r not in kinds},
        known.drop_nulls().unique().sort(),
    )


def expected_load(staged: StagedExtract, part: int, m: Mappings, as_of: dt.date) -> Expected:
    """The expected target tables of one partition of a staged extract, and its staged persons and encounters.

    The same rows as ``compute_expected`` gives those persons in the whole extract: a partition
    holds whole components of persons (``checks.components``). Only what a load needs is kept —
    never the records' ledger or findings.
    """
    frames = partition_records(staged.work, staged.parents, part)
    par = expected_parents(frames, m, as_of)
    del frames
    children = partition_records(staged.work, staged.children, part)
    ch = expected_children(children, parent_lookups(par.staged), m, as_of)
    del children
    tables = {**par.tables, **ch.tables}
    return Expected(
        tables={t: tables[t] for t in TABLE_ORDER},
        ledger=par.ledger.head(0),
        findings=par.findings.head(0),
        staged=par.staged,
    )


def blob_rows(events: pl.DataFrame, first_id: int = 1) -> pl.DataFrame:
    """The ce_blob rows of clinical events' texts: chunks of 4,000 characters, ids from ``first_id``."""
    spec = TEXT_BLOBS["clinical_event"]
    chunks = chunked(events.select("clinical_event_id", spec.column), "clinical_event_id", spec.column)
    return (
        chunks.sort("clinical_event_id", spec.seq)
        .with_row_index(PRIMARY_KEY[spec.table], offset=first_id)
        .with_columns(pl.col(PRIMARY_KEY[spec.table]).cast(pl.Int64), pl.col(spec.seq).cast(pl.Int32))
    )


def target_rows(rows: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Only the schema's columns, in DDL order."""
    return {t: rows[t].select(columns_of(t)) for t in DATA_TABLES}


def check_truth_file(path: Path) -> None:
    """``load_faults.csv`` is rewritten on every load: only when it is migcheck's own (by its header)."""
    if not path.exists():
        return
    try:
        with path.open("rb") as f:
            head = f.readline(200)
    except OSError as e:
        raise MigcheckError(f"--source {path.parent}: cannot read load_faults.csv ({e.strerror})") from e
    if not head.startswith(",".join(TRUTH_COLUMNS[:3]).encode()):
        raise MigcheckError(
            f"--source {path.parent}: load_faults.csv there was not written by migcheck; move it away first"
        )


def simulate_trial_load(
    source: Path,
    target_url: str,
    faults: str = "none",
    seed: int = 1,
    mappings_root: Path | None = None,
    as_of: dt.date | None = None,
    partitions: int = 0,
) -> TrialLoadResult:
    """Create the target, load the extract by the rules, inject faults, write ``load_faults.csv``.

    A partition of whole persons at a time (``partitions``; 0: one per GiB of extract), so a
    region's load fits in memory: the extract is staged by person as validation stages it, and
    each partition's rows are computed, given ids after the previous partition's, faulted (a
    sample of each fault kind per partition) and written. The row_count faults are those of the
    whole load. One partition gives exactly the rows of a load computed whole.
    """
    if faults not in ("none", "default"):
        raise MigcheckError("--faults must be none or default")
    source = Path(source)
    truth_path = source / "load_faults.csv"
    check_truth_file(truth_path)
    root = check_extract_root(source)
    mappings_root = mappings_root or default_mappings_root()
    m = load_mappings(mappings_root)
    as_of = as_of or dt.date.today()
    n = partitions or choose_partitions(root, LOAD_BYTES_PER_PARTITION)
    engine = connect(target_url)
    load_time = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    work = make_work(root)
    try:
        staged = stage_extract(root, m, work, n)
        create_target(engine)
        load_reference(engine, mappings_root)
        last: dict[str, int] = {}  # per table, the last id written
        truths, before, after = [], [], []
        counts = dict.fromkeys(DATA_TABLES, 0)
        for p in range(n):
            exp = expected_load(staged, p, m, as_of)
            rows = assign_ids(exp, m, load_time, last)
            if faults == "default":
                # what the faults need of the expected side: the persons and the staged parents
                exp = Expected({"person": exp.tables["person"]}, exp.ledger, exp.findings, exp.staged)
                before.append(system_counts(rows))
                rows, truth = inject_faults(rows, exp, m, _seed(seed, p), known=staged.known if n > 1 else None)
                after.append(system_counts(rows))
                truths.append(truth)
            del exp
            out = target_rows(rows)
            del rows
            for t in DATA_TABLES:
                ids = out[t][PRIMARY_KEY[t]]
                last[t] = max(last.get(t, 0), int(ids.max() or 0))  # type: ignore[arg-type]
                counts[t] += out[t].height
                write_frame(engine, t, out.pop(t))
    finally:
        remove_work(work)
        engine.dispose()
    truth = pl.concat(truths) if truths else pl.DataFrame(schema={c: pl.String for c in TRUTH_COLUMNS})
    if faults == "default":
        truth = pl.concat([truth, row_count_truth(sum_system_counts(before), sum_system_counts(after), m)])
    truth = numbered(truth)
    try:
        truth.write_csv(truth_path)
    except OSError as e:
        raise MigcheckError(f"--source {source}: cannot write load_faults.csv ({e.strerror})") from e
    return TrialLoadResult(safe_url(target_url), counts, truth.height, truth_path)


def _seed(seed: int, part: int) -> int:
    """The faults' seed of a partition (the load's own for the first)."""
    return seed if part == 0 else seed * 1_000_003 + part
