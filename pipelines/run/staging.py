"""Partitioned by person: the parents whole, every other record and target row staged to one partition.

A validation holds only one piece of a large load at a time:

1. **Parents, whole** (``source_parents``, ``target_parents``): persons and encounters are read and
   computed over the whole extract and target, because persons merge across systems by identity
   and repeated encounter keys fold; they are a small part of a load. Their reconciliation gives
   the person and encounter maps every child is matched through.
2. **Staging** (``stage_file``, ``stage_table``): every other extract file and target table is
   read one at a time and written to ``N`` Parquet partitions in a work folder. A record goes to
   the partition of its person — the person its parent belongs to (``checks.partition``) — so
   all of a person's records and target rows land together; a record whose person cannot be
   resolved goes by its parent's or its own reference, a target row whose parent was not
   reconciled to partition 0 (it can match nothing).
3. **Partitions** (``run_partition``): the expected rows of one partition's records and their
   reconciliation with the partition's target rows; only findings, ledger rows, links, statuses
   and counts are kept.
4. **Merge** (``merge_partitions``): the parts put back in extract order. The report is the same,
   byte for byte, for any ``N``.

The work folder lies beside the report folder (or inside ``--work``: a folder, or an fsspec URL
such as ``s3://bucket/prefix`` that the workers of a Dask cluster all reach), is migcheck's own
(``.migcheck`` marker where local), and is removed when the run ends.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import polars as pl

from checks.code_map_review import USAGE_SCHEMA, code_map_usage, merge_usage
from checks.discrepancies import person_links, sum_counts, table_counts
from checks.errors import MigcheckError
from checks.expected import (
    CHILD_TABLES,
    Expected,
    expected_children,
    expected_parents,
    parent_lookups,
    parent_records,
)
from checks.mapping import Mappings, SourceMap
from checks.partition import (
    PARENT_REFS,
    keyed_parts,
    merge_parts,
    parent_routes,
    routed_records,
    routed_target,
    split_by_person,
    split_lookup,
)
from checks.reconcile import (
    ChildSlice,
    EntityPart,
    logical_target,
    reconcile_child_slice,
    resolved_parents,
    with_blob_text,
)
from checks.schemas import schema_findings
from checks.suggest import unmapped_code_rows
from checks.target_schema import TEXT_BLOBS
from checks.transforms import column_exprs
from pipelines.io.extract import EXTRACT_FILES, FilePart, extract_file_path, file_status, read_file_parts
from pipelines.io.outputs import write_marker
from pipelines.io.target_db import connect
from pipelines.io.target_read import read_table_batches

#: extract bytes per partition when ``--partitions`` is not given
BYTES_PER_PARTITION = 48 * 2**20
MAX_PARTITIONS = 256


def choose_partitions(root: Path) -> int:
    """N from the extract's size: about 48 MiB of extract files per partition, at least 1."""
    size = sum(p.stat().st_size for s, n in EXTRACT_FILES if (p := extract_file_path(root, s, n)).is_file())
    return max(1, min(MAX_PARTITIONS, math.ceil(size / BYTES_PER_PARTITION)))


def check_work_base(base: str, source: Path, out: Path) -> None:
    """``--work``: an existing folder (not in the extract or the report), or a URL of a file system fsspec knows."""
    if "://" in base:
        import fsspec

        try:
            fsspec.get_filesystem_class(base.split("://", 1)[0])
        except (ImportError, ValueError) as e:
            raise MigcheckError(f"--work {base}: no file system for this URL ({e})") from None
        return
    if not Path(base).is_dir():
        raise MigcheckError(f"--work {base}: no such folder")
    here = Path(base).resolve()
    for option, other in (("--source", Path(source)), ("--out", Path(out))):
        o = other.resolve()
        if here == o or o in here.parents:
            raise MigcheckError(f"--work {base}: lies inside {option} {other}; give a folder of its own")


def make_work(out: Path, base: str | None = None) -> str:
    """A new work folder of this run: beside ``out``, or inside ``base`` (a folder or an fsspec URL).

    Migcheck's own (a local one carries the ``.migcheck`` marker); removed at the end of the run.
    """
    if base is None or "://" not in base:
        parent = Path(base) if base is not None else Path(out).resolve().parent
        try:
            work = Path(tempfile.mkdtemp(prefix=f".{Path(out).name}.work.", dir=parent))
        except OSError as e:
            raise MigcheckError(f"--work {parent}: cannot create the work folder ({e.strerror})") from e
        write_marker(work, "work")
        return str(work)
    import fsspec

    fs, root = fsspec.core.url_to_fs(base)
    folder = f"{root.rstrip('/')}/.{Path(out).name}.work.{uuid.uuid4().hex[:12]}"
    fs.makedirs(folder, exist_ok=False)
    return f"{base.split('://', 1)[0]}://{folder}"


def remove_work(work: str) -> None:
    """Remove the work folder of this run (only it: never its parent)."""
    if "://" not in work:
        shutil.rmtree(work, ignore_errors=True)
        return
    import fsspec

    fs, root = fsspec.core.url_to_fs(work)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def parent_files(m: Mappings) -> list[tuple[str, str]]:
    """The extract files that hold person and encounter records."""
    parents = set(parent_records(m))
    return [(s, n) for s, n in EXTRACT_FILES if f"{s}/{n}" in parents]


def child_files(m: Mappings) -> list[tuple[str, str]]:
    """Every other extract file."""
    parents = set(parent_files(m))
    return [f for f in EXTRACT_FILES if f not in parents]


def _sources(m: Mappings) -> dict[str, SourceMap]:
    return {s.records: s for tm in m.tables.values() for s in tm.sources}


def _tables(m: Mappings) -> dict[str, str]:
    return {s.records: t for t, tm in m.tables.items() for s in tm.sources}


def _path(work: str, side: str, name: str, part: int, block: int = 0) -> str:
    return f"{work}/{side}/{name.replace('/', '__')}/{part:04d}-{block:04d}.parquet"


def _write_parts(df: pl.DataFrame, work: str, side: str, name: str, n: int, block: int = 0) -> None:
    """``df`` (with ``_part``) written as ``n`` Parquet files, one per partition (empty ones too).

    ``block``: the block of the extract file the records come from (a partition's records of a
    file are the files of all its blocks).
    """
    parts = df.partition_by("_part", as_dict=True, include_key=False)
    empty = df.drop("_part").head(0)
    if "://" not in work:
        Path(_path(work, side, name, 0)).parent.mkdir(parents=True, exist_ok=True)
    for p in range(n):
        with _open(_path(work, side, name, p, block), "wb") as f:
            parts.get((p,), empty).write_parquet(f, compression="lz4", statistics=False)


def _read(path: str) -> pl.DataFrame:
    with _open(path, "rb") as f:
        return pl.read_parquet(f)


def _read_blocks(work: str, side: str, name: str, part: int, blocks: int) -> pl.DataFrame:
    return pl.concat([_read(_path(work, side, name, part, b)) for b in range(blocks)])


def _open(path: str, mode: str) -> IO[bytes]:
    """A file of the work folder: a local path, or through fsspec for a URL (made on write)."""
    if "://" not in path:
        return open(path, mode)  # noqa: SIM115 - returned to a with block
    import fsspec

    return fsspec.open(path, mode, auto_mkdir=True).open()


def _with_row(df: pl.DataFrame, first: int = 0) -> pl.DataFrame:
    """``_row``: the record's position in its whole extract file (``first``: of the block's first record)."""
    return df.with_row_index("_row").with_columns((pl.col("_row").cast(pl.Int64) + first).alias("_row"))


# --------------------------------------------------------------------------------------------
# the source side


@dataclass(frozen=True)
class SourceParents:
    """What the persons and encounters of the extract give a run (their raw frames are gone)."""

    exp: Expected  # tables, ledger and findings of persons and encounters; staged: the lookups
    schema: pl.DataFrame  # schema (implausible) findings of person and encounter records
    unmapped: pl.DataFrame  # unmapped_code_rows of person and encounter records
    routes: dict[str, pl.DataFrame]  # parent records → (_pkey, _route): the partition a child goes to
    #: code_map_usage of person and encounter records (``checks.code_map_review``)
    code_maps: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=USAGE_SCHEMA))


@dataclass(frozen=True)
class StagedFile:
    """What staging one extract file leaves in memory: its status row, unreadable lines, counts."""

    file: dict
    unparseable: pl.DataFrame
    records: list[str]  # the record kinds it held, in reading order
    rows: int  # records read (parsed)
    #: table → its key columns and ``_part``, for a table matched on an identifier (``keyed_parts``)
    keyed: dict[str, pl.DataFrame] = field(default_factory=dict)
    blocks: int = 1  # the blocks it was read and staged in (a partition's records: one file per block)


def source_parents(
    parts: list[FilePart], m: Mappings, as_of, work: str, n: int
) -> tuple[SourceParents, list[StagedFile]]:
    """Persons and encounters computed whole; child records read from the same files staged."""
    frames: dict[str, pl.DataFrame] = {}
    for p in parts:
        frames.update(p.frames)
    parents = parent_records(m)
    pframes = {k: v for k, v in frames.items() if k in parents}
    exp = expected_parents(pframes, m, as_of)
    schema = schema_findings(pframes, exp.ledger)
    unmapped = unmapped_code_rows(exp.staged, m, pframes)
    usage = code_map_usage(exp.staged, m, pframes)
    routes = {k: parent_routes(v) for k, v in exp.staged.items()}
    lookups = parent_lookups(exp.staged)
    staged = []
    for p in parts:
        children = {k: v for k, v in p.frames.items() if k not in parents}
        keyed = [_stage_records(k, v, m, routes, work, n) for k, v in children.items()]
        staged.append(_staged(p, keyed, list(p.frames), sum(v.height for v in p.frames.values())))
    parents_ = SourceParents(Expected(exp.tables, exp.ledger, exp.findings, lookups), schema, unmapped, routes, usage)
    return parents_, staged


def _stage_records(
    records: str,
    df: pl.DataFrame,
    m: Mappings,
    routes: dict[str, pl.DataFrame],
    work: str,
    n: int,
    block: int = 0,
    first: int = 0,
) -> tuple[str, pl.DataFrame] | None:
    """Write one record kind's records to their partitions; (table, keyed parts) for an identifier key.

    ``block``, ``first``: the block of the file the records are, and the position in the file of its first record.
    """
    src = _sources(m).get(records)
    parent = src.parent if src is not None else None
    column = parent.column if parent is not None else None
    lookup = routes.get(parent.records) if parent is not None else None
    routed = routed_records(_with_row(df, first), column, lookup, n)
    _write_parts(routed, work, "src", records, n, block)
    table = _tables(m).get(records)
    if src is None or table is None:
        return None
    key = m.tables[table].match_key
    if any(r in key for r in PARENT_REFS):
        return None
    return table, keyed_parts(routed, {c: column_exprs(src.columns[c], m).value for c in key})


def stage_file(
    root: Path, system: str, name: str, m: Mappings, routes: dict[str, pl.DataFrame], work: str, n: int
) -> StagedFile:
    """Read one extract file of child records a block at a time, each written to the partitions of its persons.

    Only one block of the file is in memory at a time (``read_file_parts``); what is kept is what
    the report needs of it: its status, its unreadable lines, the keys of identifier-matched tables.
    """
    files: list[dict] = []
    bad: list[pl.DataFrame] = []
    keyed: list[tuple[str, pl.DataFrame] | None] = []
    kinds: list[str] = []
    first: dict[str, int] = {}
    for block, part in enumerate(read_file_parts(root, system, name)):
        for k, v in part.frames.items():
            keyed.append(_stage_records(k, v, m, routes, work, n, block, first.get(k, 0)))
            first[k] = first.get(k, 0) + v.height
        kinds = kinds or list(part.frames)
        files.append(part.file)
        bad.append(part.unparseable)
    whole = FilePart({}, pl.concat(bad).sort("line"), file_status(files))
    return replace(_staged(whole, keyed, kinds, sum(first.values())), blocks=len(files))


def _staged(part: FilePart, keyed: list[tuple[str, pl.DataFrame] | None], kinds: list[str], rows: int) -> StagedFile:
    by_table: dict[str, list[pl.DataFrame]] = {}
    for k in keyed:
        if k is not None:
            by_table.setdefault(k[0], []).append(k[1])
    return StagedFile(part.file, part.unparseable, kinds, rows, {t: pl.concat(fs) for t, fs in by_table.items()})


def keyed_of(files: list[StagedFile], table: str) -> pl.DataFrame | None:
    """The keyed parts of ``table`` over all staged files (None: the table is matched on content)."""
    frames = [f.keyed[table] for f in files if table in f.keyed]
    return pl.concat(frames).unique(keep="first", maintain_order=True) if frames else None


# --------------------------------------------------------------------------------------------
# the target side


#: target rows read and staged at a time (a chunk table's: ``BLOB_BATCH_ROWS``, each up to 4,000 characters)
BATCH_ROWS = 250_000
BLOB_BATCH_ROWS = 50_000


@dataclass(frozen=True)
class StagedTable:
    """What staging one target child table leaves in memory: its row counts and the blocks written."""

    counts: pl.DataFrame  # table_counts per contributor system
    blocks: dict[str, int]  # the table (and its chunk table) → blocks written per partition


def _stage_all(engine, table: str, rows: int, stage: Callable[[pl.DataFrame, int], None]) -> int:  # noqa: ANN001
    """Each batch of ``table`` given to ``stage`` with its number; the number of blocks written."""
    blocks = 0
    for b, batch in enumerate(read_table_batches(engine, table, rows)):
        stage(batch, b)
        blocks = b + 1
    return blocks


def stage_table(
    target_url: str,
    table: str,
    m: Mappings,
    pmap: pl.DataFrame,
    emap: pl.DataFrame,
    enc_person: pl.DataFrame,
    ids: tuple[pl.Series, pl.Series],
    work: str,
    n: int,
    keyed: pl.DataFrame | None = None,
) -> StagedTable:
    """Read one child table of the target in batches, each written to the partitions of its persons.

    Each row is written with its parents' refs and whether its parent ids exist
    (``resolved_parents``, against ``ids``: the target's encounter and person ids), so that a
    partition needs no map of the whole load. A table whose text lives in chunks (``TEXT_BLOBS``)
    has its chunk rows written beside it, each to the partition of its row (a chunk of no row is
    left out: the target checks' orphan); the partition joins them (``with_blob_text``). Returns
    its row counts per contributor system and the blocks written.
    """
    key = tuple(m.tables[table].match_key)
    counts: list[pl.DataFrame] = []
    parts: list[pl.DataFrame] = []  # of a table with chunks: its ids and their partition

    def stage_rows(batch: pl.DataFrame, block: int) -> None:
        tt = logical_target({table: batch}, m)[table]
        routed = routed_target(resolved_parents(tt, pmap, emap, *ids), key, enc_person, n, keyed)
        _write_parts(routed, work, "tgt", table, n, block)
        counts.append(table_counts({table: tt}, "actual"))
        if table in TEXT_BLOBS:
            parts.append(routed.select(pl.col("_id").alias(TEXT_BLOBS[table].parent_key), "_part"))

    engine = connect(target_url)
    try:
        blocks = {table: _stage_all(engine, table, BATCH_ROWS, stage_rows)}
        if table in TEXT_BLOBS:
            spec = TEXT_BLOBS[table]
            where = pl.concat(parts).unique(spec.parent_key, keep="first", maintain_order=True)

            def stage_chunks(batch: pl.DataFrame, block: int) -> None:
                routed = batch.join(where, on=spec.parent_key, how="inner", maintain_order="left")
                _write_parts(routed, work, "tgt", spec.table, n, block)

            blocks[spec.table] = _stage_all(engine, spec.table, BLOB_BATCH_ROWS, stage_chunks)
    finally:
        engine.dispose()
    return StagedTable(sum_counts(counts), blocks)


# --------------------------------------------------------------------------------------------
# one partition


@dataclass(frozen=True)
class PartitionResult:
    """What one partition gives: all that is kept of it."""

    ledger: pl.DataFrame  # with _records and _row
    findings: pl.DataFrame  # source findings of its records
    unmapped: pl.DataFrame  # unmapped_code_rows
    parts: list[EntityPart]  # the reconciliation of each child table, in CHILD_TABLES order
    expected: pl.DataFrame  # table_counts of its expected tables
    records: list[str]  # record kinds in ledger order
    code_maps: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=USAGE_SCHEMA))  # code_map_usage


def run_partition(
    work: str,
    number: int,
    records: dict[str, int],
    m: Mappings,
    as_of,
    lookups: dict[str, pl.DataFrame],
    pmap: pl.DataFrame,
    emap: pl.DataFrame,
    tables: dict[str, int] | None = None,
) -> PartitionResult:
    """The expected rows of one partition's records, reconciled with the partition's target rows.

    ``records``: the record kinds staged, in extract order, each with the blocks it was staged in;
    ``tables``: the target tables staged, each with its blocks (``StagedTable.blocks``; default 1);
    ``lookups``, ``pmap`` and ``emap``: this partition's slices (``split_parents``): the parent
    records its children name, and the persons and encounters its rows belong to.
    """
    frames = {r: _read_blocks(work, "src", r, number, b) for r, b in records.items()}
    exp = expected_children(frames, lookups, m, as_of)
    unmapped = unmapped_code_rows(exp.staged, m, frames)
    usage = code_map_usage(exp.staged, m, frames)
    del frames
    parts = []
    none = pl.Series(dtype=pl.Int64)
    for t in CHILD_TABLES:
        tt = _read_blocks(work, "tgt", t, number, (tables or {}).get(t, 1))
        if t in TEXT_BLOBS:  # its text: the chunks staged beside it
            spec = TEXT_BLOBS[t]
            tt = with_blob_text(
                tt, _read_blocks(work, "tgt", spec.table, number, (tables or {}).get(spec.table, 1)), spec
            )
        key = tuple(m.tables[t].match_key)
        s = ChildSlice(t, key, exp.tables[t], tt, none, none, pmap, emap, resolved=True, negations=m.negation_words)
        parts.append(reconcile_child_slice(s))
    return PartitionResult(
        exp.ledger, exp.findings, unmapped, parts, table_counts(exp.tables, "expected"), list(exp.staged), usage
    )


@dataclass(frozen=True)
class ParentSlices:
    """Per partition: the staged parent records, the person map and the encounter map it needs."""

    lookups: list[dict[str, pl.DataFrame]]
    pmap: list[pl.DataFrame]
    emap: list[pl.DataFrame]


def split_parents(
    parents: SourceParents, pmap: pl.DataFrame, emap: pl.DataFrame, enc_person: pl.DataFrame, n: int
) -> ParentSlices:
    """Cut the parents' lookups and maps once, so that each partition gets only its own slice."""
    lookups = {k: split_lookup(v, parents.routes[k], n) for k, v in parents.exp.staged.items()}
    pparts = split_by_person(pmap, pl.col("person_ref"), n)
    e = emap.join(enc_person, on="source_ref", how="left", maintain_order="left")
    eparts = [p.drop("person_ref") for p in split_by_person(e, pl.col("person_ref"), n)]
    return ParentSlices([{k: v[i] for k, v in lookups.items()} for i in range(n)], pparts, eparts)


@dataclass(frozen=True)
class Merged:
    """The partitions' parts as one: children's ledger rows in extract order, parts per table."""

    ledger: pl.DataFrame
    findings: pl.DataFrame
    unmapped: pl.DataFrame
    children: list[EntityPart]
    expected: pl.DataFrame
    code_maps: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=USAGE_SCHEMA))  # code_map_usage


def merge_partitions(results: list[PartitionResult]) -> Merged:
    """One result from every partition's, independent of how the records were partitioned."""
    rank = {r: i for i, r in enumerate(results[0].records)}
    ledger = (
        pl.concat([r.ledger for r in results], how="vertical_relaxed")
        .with_columns(pl.col("_records").replace_strict(rank, return_dtype=pl.Int32).alias("_rank"))
        .sort("_rank", "_row")
        .drop("_rank", "_records", "_row")
    )
    children = []
    for i in range(len(CHILD_TABLES)):
        part = merge_parts([r.parts[i] for r in results])
        children.append(
            EntityPart(
                part.entity,
                part.findings,
                part.links.sort("target_ref", "source_ref"),
                part.status.sort("source_ref", "_rank", "status", nulls_last=True),
                part.counts,
            )
        )
    return Merged(
        ledger=ledger,
        findings=pl.concat([r.findings for r in results], how="vertical_relaxed"),
        unmapped=pl.concat([r.unmapped for r in results], how="vertical_relaxed"),
        children=children,
        expected=sum_counts([r.expected for r in results]),
        code_maps=merge_usage([r.code_maps for r in results]),
    )


__all__ = [
    "PartitionResult",
    "SourceParents",
    "StagedFile",
    "child_files",
    "choose_partitions",
    "make_work",
    "merge_partitions",
    "parent_files",
    "person_links",
    "remove_work",
    "run_partition",
    "source_parents",
    "stage_file",
    "stage_table",
]
