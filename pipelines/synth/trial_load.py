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
from checks.expected import TABLE_ORDER, Expected, expected_children, expected_parents, parent_lookups
from checks.mapping import Mappings, load_mappings
from checks.note_text import chunked
from checks.records import PAS_TEXT_COLUMNS, PCS_TEXT_FIELDS
from checks.target_schema import CODE_SETS, DATA_TABLES, NOMENCLATURE, PRIMARY_KEY, TEXT_BLOBS, columns_of
from pipelines.io.extract import EXTRACT_FILES, check_extract_root, read_extract_file, read_file_parts
from pipelines.io.settings import default_mappings_root
from pipelines.io.target_db import connect, create_target, load_reference, safe_url, write_frame
from pipelines.synth.faults import inject_faults
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


def assign_ids(exp: Expected, m: Mappings, load_time: dt.datetime) -> dict[str, pl.DataFrame]:
    """Target rows with surrogate ids and code ids; ``_ref``/``_person_ref`` keep the source link."""
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
            .with_row_index(PRIMARY_KEY[table], offset=1)
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
    out["ce_blob"] = blob_rows(out["clinical_event"])
    return out


#: bytes of a notes file computed at a time: larger than validation's blocks (each block looks
#: its parents up in the whole extract's, not in a partition's)
TEXT_BLOCK = 256 * 2**20
#: the files of free text (the notes): most of a load's bytes, read a block at a time
TEXT_FILES = [(s, n) for s, n in EXTRACT_FILES if n in (PAS_TEXT_COLUMNS if s == "pas" else PCS_TEXT_FIELDS)]


def expected_load(source: Path, m: Mappings, as_of: dt.date) -> Expected:
    """The expected target tables of an extract, and the staged persons and encounters (what a load needs).

    The same rows as ``compute_expected`` of the whole extract, computed as validation's partitions
    compute them: persons and encounters first, then the other records given their parents. The
    notes' files are read and computed a block at a time, so only their expected rows are kept —
    never their raw records, staged frames, ledger or findings, which a load does not need.
    """
    root = check_extract_root(source)
    frames: dict[str, pl.DataFrame] = {}
    for s, n in EXTRACT_FILES:
        if (s, n) not in TEXT_FILES:
            frames.update(read_extract_file(root, s, n).frames)
    par = expected_parents(frames, m, as_of)
    lookups = parent_lookups(par.staged)
    blocks = [read_file_parts(root, s, n, TEXT_BLOCK) for s, n in TEXT_FILES]
    firsts = [next(b) for b in blocks]  # every file gives at least one part, if only an empty one
    children = {k: v for k, v in frames.items() if k not in par.staged}
    del frames
    # every child kind, without a record: what a block of notes is given beside its own records
    empty = {k: v.head(0) for k, v in children.items()} | {k: v.head(0) for p in firsts for k, v in p.frames.items()}
    ch = expected_children(children | {k: v for k, v in empty.items() if k not in children}, lookups, m, as_of)
    del children
    texts = [ch.tables["clinical_event"]]
    for first, rest in zip(firsts, blocks, strict=True):
        for part in (first, *rest):
            block = expected_children({**empty, **part.frames}, lookups, m, as_of)
            texts.append(block.tables["clinical_event"])
    tables = {**par.tables, **ch.tables, "clinical_event": pl.concat(texts)}
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
) -> TrialLoadResult:
    """Create the target, load the extract by the rules, inject faults, write ``load_faults.csv``."""
    if faults not in ("none", "default"):
        raise MigcheckError("--faults must be none or default")
    source = Path(source)
    truth_path = source / "load_faults.csv"
    check_truth_file(truth_path)
    mappings_root = mappings_root or default_mappings_root()
    m = load_mappings(mappings_root)
    as_of = as_of or dt.date.today()
    engine = connect(target_url)
    exp = expected_load(source, m, as_of)  # the parsed extract is not kept
    load_time = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    rows = assign_ids(exp, m, load_time)
    # what the faults need of the expected side: the persons and the staged parents (not the notes' text)
    exp = Expected({"person": exp.tables["person"]}, exp.ledger, exp.findings, exp.staged)
    truth = pl.DataFrame(schema={c: pl.String for c in TRUTH_COLUMNS})
    if faults == "default":
        rows, truth = inject_faults(rows, exp, m, seed)
    out = target_rows(rows)
    del rows, exp
    try:
        truth.write_csv(truth_path)
    except OSError as e:
        raise MigcheckError(f"--source {source}: cannot write load_faults.csv ({e.strerror})") from e
    create_target(engine)
    load_reference(engine, mappings_root)
    counts = {t: out[t].height for t in DATA_TABLES}
    for t in DATA_TABLES:
        write_frame(engine, t, out.pop(t))
    engine.dispose()
    return TrialLoadResult(safe_url(target_url), counts, truth.height, truth_path)
