"""Partitioned by person: every record and target row staged to the partition of its person.

A validation holds only one piece of a large load at a time:

1. **Persons and encounters** (``stage_parent_file``, ``stage_parent_table``): their files and
   target tables are read a block at a time and written unpartitioned with their 64-bit nodes;
   the connected components of those nodes (``checks.components``) give every person, encounter
   and target row its partition (``parts_of_parents``), and the staged blocks are split
   (``split_parent_file``, ``split_parent_table``). Each group of partitions computes and
   reconciles its persons and encounters alone (``run_parents``).
2. **The other files and tables** (``stage_file``, ``stage_table``): read one block at a time and
   written to ``N`` Parquet partitions. A record goes to the partition of its person — the person
   its parent belongs to (``checks.partition``); a record whose person cannot be resolved goes by
   its parent's or its own reference.
3. **Partitions** (``run_partition``): the expected rows of one partition's records and their
   reconciliation with the partition's target rows.
4. **Held on disk**: each unit (a group's persons and encounters, a partition's other records)
   returns only its findings and counts; its ledger rows, person links, statuses and links stay
   in the work folder (``held/``). Once the discrepancies are known, each unit settles its final
   ledger rows (``settle``), written in slices of extract rows (``final/``), and the report's
   ledger is streamed from them in extract order (``write_ledger``). The report is the same,
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

from checks.archive import archived_column
from checks.code_map_review import USAGE_SCHEMA, code_map_usage, merge_usage
from checks.components import encounter_keys, parent_parts, partition_by_node, person_keys, target_keys
from checks.discrepancies import (
    LEDGER_COLUMNS,
    final_ledger,
    ledger_counts,
    merge_ledger_counts,
    person_links,
    sum_counts,
    table_counts,
)
from checks.errors import MigcheckError
from checks.expected import (
    CHILD_TABLES,
    expected_children,
    expected_parents,
    parent_lookups,
    parent_records,
    unparseable_ledger,
)
from checks.frames import LedgerRow
from checks.mapping import Mappings, SourceMap
from checks.partition import (
    PARENT_REFS,
    TARGET_ROUTES,
    keyed_parts,
    merge_parts,
    record_route,
    routed_target,
)
from checks.reconcile import (
    ChildSlice,
    EntityFindings,
    EntityPart,
    logical_target,
    reconcile_child_slice,
    reconcile_encounters,
    reconcile_persons,
    resolved_parents,
    with_blob_text,
    with_differences,
)
from checks.schemas import schema_findings
from checks.suggest import unmapped_code_rows
from checks.target_schema import TEXT_BLOBS
from checks.transforms import column_exprs
from pipelines.io.extract import EXTRACT_FILES, extract_file_path, file_status, read_file_parts
from pipelines.io.outputs import write_marker
from pipelines.io.target_db import connect
from pipelines.io.target_read import read_table_batches

#: extract bytes per partition when ``--partitions`` is not given (each partition is reconciled
#: whole in memory: with one partition per core at a time, the partitions set the run's peak)
BYTES_PER_PARTITION = 24 * 2**20
MAX_PARTITIONS = 256


def choose_partitions(root: Path, per: int = BYTES_PER_PARTITION, slots: int = 1) -> int:
    """N from the extract's size: about ``per`` bytes (24 MiB) of extract files per partition, at least 1.

    ``slots``: the partitions that run at once (the runner's threads). N is rounded up to a
    multiple of it, so that the last round of partitions does not leave a thread without work.
    """
    size = sum(_file_size(root, f) for f in EXTRACT_FILES)
    n = max(1, math.ceil(size / per))
    return min(MAX_PARTITIONS, n if n <= 1 else math.ceil(n / slots) * slots)


def _file_size(root: Path, f: tuple[str, str]) -> int:
    """Bytes of the extract file ``f`` (system, name); 0 where it is missing."""
    p = extract_file_path(root, *f)
    return p.stat().st_size if p.is_file() else 0


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


def largest_first(root: Path, files: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``files`` (system, name) the largest first (a missing file last), ties in their given order.

    Work submitted in this order lets the threads end about together: the longest is not left to
    run alone at the end.
    """
    return sorted(files, key=lambda f: _file_size(root, f), reverse=True)


def _sources(m: Mappings) -> dict[str, SourceMap]:
    return {s.records: s for tm in m.tables.values() for s in tm.sources}


def _tables(m: Mappings) -> dict[str, str]:
    return {s.records: t for t, tm in m.tables.items() for s in tm.sources}


def _path(work: str, side: str, name: str, part: int, block: int = 0) -> str:
    return f"{work}/{side}/{name.replace('/', '__')}/{part:04d}-{block:04d}.parquet"


def _write_parts(df: pl.DataFrame, work: str, side: str, name: str, n: int, block: int = 0) -> None:
    """``df`` (with ``_part``) written as ``n`` Parquet files, one per partition (empty ones too).

    ``block``: the number of the file (``PartWriter``: a partition's records of a file, or rows of
    a table, are its files 0, 1, …).
    """
    parts = df.partition_by("_part", as_dict=True, include_key=False)
    empty = df.drop("_part").head(0)
    if "://" not in work:
        Path(_path(work, side, name, 0)).parent.mkdir(parents=True, exist_ok=True)
    for p in range(n):
        with _open(_path(work, side, name, p, block), "wb") as f:
            parts.get((p,), empty).write_parquet(f, compression="lz4", statistics=False)


#: in-memory bytes of rows a partition's file of a record kind or table holds, about (``PartWriter``)
PART_FILE_BYTES = 1 << 20
#: rows held before they are written, at the least: about a block of a file (``CHUNK_BYTES``); at
#: the most, whatever the partitions: what a staging thread holds beside its block
PART_HELD_MIN_BYTES = 16 << 20
PART_HELD_MAX_BYTES = 128 << 20


class PartWriter:
    """Routed rows (with ``_part``) of some record kinds or tables, written to the ``n`` partitions.

    The rows are held until they come to about ``PART_FILE_BYTES`` per partition (at least
    ``PART_HELD_MIN_BYTES``, at most ``PART_HELD_MAX_BYTES`` in all); then every kind held is
    written, one file per partition and kind (empty ones too), numbered from 0. Written a block at
    a time, a block of 16 MiB split 174 ways (1,000,000 patients) gave each partition a file of a
    few hundred rows: a partition read, and the run wrote and removed, hundreds of files per
    partition, and the run's cost grew faster than the load (D102). Rows keep their order;
    ``files`` is what a partition reads (``_read_blocks``), the same for every kind.
    """

    def __init__(self, work: str, side: str, n: int) -> None:
        self._work, self._side, self.n = work, side, n
        self._limit = min(PART_HELD_MAX_BYTES, max(PART_HELD_MIN_BYTES, n * PART_FILE_BYTES))
        self._held: dict[str, list[pl.DataFrame]] = {}
        self._empty: dict[str, pl.DataFrame] = {}  # each kind's columns, for a file of none of its rows
        self._bytes = 0
        self.files = 0

    def add(self, name: str, routed: pl.DataFrame) -> None:
        """Rows of ``name`` (a record kind or table) to be written to their partitions."""
        if name not in self._held and self.files:  # a kind first seen now: its earlier files, empty
            for f in range(self.files):
                _write_parts(routed.head(0), self._work, self._side, name, self.n, f)
        self._held.setdefault(name, []).append(routed)
        self._empty.setdefault(name, routed.head(0))
        self._bytes += int(routed.estimated_size())
        if self._bytes >= self._limit:
            self.flush()

    def flush(self) -> int:
        """Write what is held; the files written per partition and kind so far."""
        if self._bytes or not self.files:
            for name, frames in self._held.items():
                held = pl.concat(frames) if frames else self._empty[name]
                _write_parts(held, self._work, self._side, name, self.n, self.files)
                frames.clear()
            self.files += 1 if self._held else 0
            self._bytes = 0
        return self.files


def _write(df: pl.DataFrame, path: str) -> None:
    if "://" not in path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with _open(path, "wb") as f:
        df.write_parquet(f, compression="lz4", statistics=False)


def _remove(path: str) -> None:
    """A file of the work folder this run wrote, once read for the last time."""
    if "://" not in path:
        Path(path).unlink(missing_ok=True)
        return
    import fsspec

    fs, p = fsspec.core.url_to_fs(path)
    fs.rm(p)


def _read(path: str) -> pl.DataFrame:
    with _open(path, "rb") as f:
        return pl.read_parquet(f)


def _read_blocks(work: str, side: str, name: str, part: int, blocks: int) -> pl.DataFrame:
    return pl.concat([_read(_path(work, side, name, part, b)) for b in range(blocks)])


def partition_records(work: str, records: dict[str, int], part: int) -> dict[str, pl.DataFrame]:
    """The staged records of one partition, per record kind (``records``: kind → blocks staged)."""
    return {r: _read_blocks(work, "src", r, part, b) for r, b in records.items()}


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
    """What the persons and encounters of the extract give the report (merged from the partitions)."""

    findings: pl.DataFrame  # source findings of person and encounter records (their ledger rows are held on disk)
    schema: pl.DataFrame  # schema (implausible) findings of person and encounter records
    unmapped: pl.DataFrame  # unmapped_code_rows of person and encounter records
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
    #: the files a partition's records of each kind lie in (``PartWriter``); of a file of persons
    #: and encounters not yet split (``stage_parent_file``), the blocks it was read in
    blocks: int = 1


@dataclass(frozen=True)
class PreStaged:
    """A file of persons and encounters read and written whole to the work folder, and its component keys."""

    staged: StagedFile
    keys: dict[str, pl.DataFrame]  # record kind → person_keys / encounter_keys (checks.components)


def _route(records: str, m: Mappings) -> pl.Expr:
    return record_route(records, _sources(m).get(records), set(parent_records(m)))


def stage_parent_file(root: Path, system: str, name: str, m: Mappings, work: str) -> PreStaged:
    """Read a file of persons and encounters a block at a time, written unpartitioned, with the keys of its records.

    Which partition a person or encounter goes to is known only when every parent record and target
    parent row has been seen (``checks.components``): the blocks wait in the work folder
    (``split_parent_file``). Only the keys are kept in memory.
    """
    sources = _sources(m)
    persons = {s.records for s in m.tables["person"].sources}
    parents = set(parent_records(m))
    keys: dict[str, list[pl.DataFrame]] = {}

    def stage(k: str, df: pl.DataFrame, block: int) -> None:
        _write(df, _path(work, "pre", k, 0, block))
        src = sources.get(k)
        if src is not None and k in persons:
            keys.setdefault(k, []).append(person_keys(k, df, src))
        elif src is not None and k in parents:
            keys.setdefault(k, []).append(encounter_keys(k, df, src))

    staged = _stage_blocks(root, system, name, stage)
    return PreStaged(staged, {k: pl.concat(v) for k, v in keys.items()})


def split_parent_file(work: str, pre: PreStaged, m: Mappings, parts: pl.DataFrame, n: int) -> StagedFile:
    """The blocks of a file of persons and encounters written to the partitions of their components."""
    paths = [(k, _path(work, "pre", k, 0, b)) for b in range(pre.staged.blocks) for k in pre.staged.records]
    writer = PartWriter(work, "src", n)
    keyed = [_stage_records(k, _read(path), m, parts, writer) for k, path in paths]
    files = writer.flush()
    for _, path in paths:  # only once all are written: a retry of this step finds them all
        _remove(path)
    return replace(pre.staged, keyed=_by_table(keyed), blocks=files)


def _stage_records(
    records: str, df: pl.DataFrame, m: Mappings, parts: pl.DataFrame, writer: PartWriter
) -> tuple[str, pl.DataFrame] | None:
    """One record kind's records (with ``_row``) to their partitions (``writer``).

    Returns (table, keyed parts) for a table matched on an identifier key, else None.
    """
    routed = partition_by_node(df, _route(records, m), parts, writer.n)
    writer.add(records, routed)
    src = _sources(m).get(records)
    table = _tables(m).get(records)
    if src is None or table is None or records in parent_records(m):
        return None
    key = m.tables[table].match_key
    if any(r in key for r in PARENT_REFS):
        return None
    return table, keyed_parts(routed, {c: column_exprs(src.columns[c], m).value for c in key})


def stage_file(root: Path, system: str, name: str, m: Mappings, parts: pl.DataFrame, work: str, n: int) -> StagedFile:
    """Read one extract file of child records a block at a time, each written to the partitions of its persons.

    Only one block of the file is in memory at a time (``read_file_parts``); what is kept is what
    the report needs of it: its status, its unreadable lines, the keys of identifier-matched tables.
    ``parts``: the partitions of the persons' and encounters' components (``parent_parts``).
    """
    keyed: list[tuple[str, pl.DataFrame] | None] = []
    writer = PartWriter(work, "src", n)
    staged = _stage_blocks(root, system, name, lambda k, df, _: keyed.append(_stage_records(k, df, m, parts, writer)))
    return replace(staged, keyed=_by_table(keyed), blocks=writer.flush())


def _stage_blocks(root: Path, system: str, name: str, stage: Callable[[str, pl.DataFrame, int], None]) -> StagedFile:
    """Each block of a file's records given to ``stage`` (kind, records with ``_row``, block); the file's status.

    Only one block is in memory at a time (``read_file_parts``); ``_row`` is a record's position in
    the whole file.
    """
    files: list[dict] = []
    bad: list[pl.DataFrame] = []
    kinds: list[str] = []
    first: dict[str, int] = {}
    for block, part in enumerate(read_file_parts(root, system, name)):
        for k, v in part.frames.items():
            stage(k, _with_row(v, first.get(k, 0)), block)
            first[k] = first.get(k, 0) + v.height
        kinds = kinds or list(part.frames)
        files.append(part.file)
        bad.append(part.unparseable)
    return StagedFile(file_status(files), pl.concat(bad).sort("line"), kinds, sum(first.values()), blocks=len(files))


def _by_table(keyed: list[tuple[str, pl.DataFrame] | None]) -> dict[str, pl.DataFrame]:
    """The keyed parts of staged record kinds (``_stage_records``), one frame per table."""
    by_table: dict[str, list[pl.DataFrame]] = {}
    for k in keyed:
        if k is not None:
            by_table.setdefault(k[0], []).append(k[1])
    return {t: pl.concat(fs) for t, fs in by_table.items()}


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
    blocks: dict[str, int]  # the table (and its chunk table) → files written per partition (``PartWriter``)


def _stage_all(engine, table: str, rows: int, stage: Callable[[pl.DataFrame, int], None]) -> int:  # noqa: ANN001
    """Each batch of ``table`` given to ``stage`` with its number; the number of blocks written."""
    blocks = 0
    for b, batch in enumerate(read_table_batches(engine, table, rows)):
        stage(batch, b)
        blocks = b + 1
    return blocks


@dataclass(frozen=True)
class PreTable:
    """A target parent table read in batches and written whole to the work folder, and its component keys."""

    table: str
    blocks: int
    keys: pl.DataFrame | None  # checks.components.target_keys
    ids: pl.Series  # the table's primary key values (the ids a child row's parent must be one of)
    counts: pl.DataFrame  # table_counts per contributor system


def stage_parent_table(target_url: str, table: str, m: Mappings, work: str) -> PreTable:
    """Read a target table of persons, encounters or their aliases in batches, written unpartitioned, with its keys.

    Each batch is written as the partitions read it (``logical_target``: codes as meanings); it
    goes to its partition once the components are known (``split_parent_table``).
    """
    keys: list[pl.DataFrame] = []
    ids: list[pl.Series] = []
    counts: list[pl.DataFrame] = []

    def stage_rows(batch: pl.DataFrame, block: int) -> None:
        tt = logical_target({table: batch}, m)[table]
        _write(tt, _path(work, "pre-tgt", table, 0, block))
        k = target_keys(table, tt, m)
        if k is not None:
            keys.append(k)
        ids.append(tt["_id"])
        counts.append(table_counts({table: tt}, "actual"))

    engine = connect(target_url)
    try:
        blocks = _stage_all(engine, table, BATCH_ROWS, stage_rows)
    finally:
        engine.dispose()
    return PreTable(table, blocks, pl.concat(keys) if keys else None, pl.concat(ids), sum_counts(counts))


def parts_of_parents(files: list[PreStaged], tables: dict[str, PreTable], m: Mappings, n: int) -> pl.DataFrame:
    """``node → _part`` of the persons' and encounters' components (``checks.components.parent_parts``)."""
    persons = {s.records for s in m.tables["person"].sources}
    keys = [(k, v) for f in files for k, v in f.keys.items()]

    def target(t: str, schema: dict) -> pl.DataFrame:  # none where no target is given (the load simulator)
        k = tables[t].keys if t in tables else None
        return k if k is not None else pl.DataFrame(schema=schema)

    u64 = pl.UInt64
    return parent_parts(
        [v for k, v in keys if k in persons],
        [v for k, v in keys if k not in persons],
        target("person_alias", {"a": u64, "b": u64}),
        target("encounter", {"te": u64, "anchor": u64}),
        target("encntr_alias", {"key": u64, "te": u64}),
        n,
    )


def split_parent_table(work: str, pre: PreTable, parts: pl.DataFrame, n: int) -> int:
    """The batches of a target parent table written to the partitions of their components; the blocks."""
    paths = [_path(work, "pre-tgt", pre.table, 0, block) for block in range(pre.blocks)]
    writer = PartWriter(work, "tgt", n)
    for path in paths:
        writer.add(pre.table, partition_by_node(_read(path), TARGET_ROUTES[pre.table], parts, n))
    files = writer.flush()
    for path in paths:  # only once all are written: a retry of this step finds them all
        _remove(path)
    return files


def stage_table(
    target_url: str,
    table: str,
    m: Mappings,
    pmap: pl.DataFrame,
    emap: pl.DataFrame,
    parts: pl.DataFrame,
    ids: tuple[pl.Series, pl.Series],
    work: str,
    n: int,
    keyed: pl.DataFrame | None = None,
) -> StagedTable:
    """Read one child table of the target in batches, each written to the partitions of its persons.

    Each row is written with its parents' refs and whether its parent ids exist
    (``resolved_parents``, against ``pmap``/``emap``: the persons and encounters reconciled, and
    ``ids``: the target's encounter and person ids), so that a partition needs no map of the whole
    load; it goes to the partition of the parent it is matched through (``routed_target``). A
    table whose text lives in chunks (``TEXT_BLOBS``) has its chunk rows written beside it, each to
    the partition of its row (a chunk of no row is left out: the target checks' orphan); the
    partition joins them (``with_blob_text``). Returns its row counts per contributor system and the
    blocks written.
    """
    key = tuple(m.tables[table].match_key)
    counts: list[pl.DataFrame] = []
    rows_of: list[pl.DataFrame] = []  # of a table with chunks: its ids and their partition

    rows = PartWriter(work, "tgt", n)

    def stage_rows(batch: pl.DataFrame, _: int) -> None:
        tt = logical_target({table: batch}, m)[table]
        routed = routed_target(resolved_parents(tt, pmap, emap, *ids), key, parts, n, keyed)
        rows.add(table, routed)
        counts.append(table_counts({table: tt}, "actual"))
        if table in TEXT_BLOBS:
            rows_of.append(routed.select(pl.col("_id").alias(TEXT_BLOBS[table].parent_key), "_part"))

    engine = connect(target_url)
    try:
        _stage_all(engine, table, BATCH_ROWS, stage_rows)
        blocks = {table: rows.flush()}
        if table in TEXT_BLOBS:
            spec = TEXT_BLOBS[table]
            where = pl.concat(rows_of).unique(spec.parent_key, keep="first", maintain_order=True)
            chunks = PartWriter(work, "tgt", n)

            def stage_chunks(batch: pl.DataFrame, _: int) -> None:
                chunks.add(spec.table, batch.join(where, on=spec.parent_key, how="inner", maintain_order="left"))

            _stage_all(engine, spec.table, BLOB_BATCH_ROWS, stage_chunks)
            blocks[spec.table] = chunks.flush()
    finally:
        engine.dispose()
    return StagedTable(sum_counts(counts), blocks)


# --------------------------------------------------------------------------------------------
# what a unit keeps on disk until the discrepancies are known

#: extract rows of one record kind per slice of the final ledger (``settle``, ``write_ledger``)
LEDGER_SLICE = 1_000_000
#: rows per row group of ``ledger.parquet``: its bytes depend on its rows alone, not on the slices
LEDGER_ROW_GROUP = 2**18


def _held_path(work: str, what: str, unit: str) -> str:
    """A unit's held ``ledger``, ``persons``, ``status`` or ``links`` (``_hold``)."""
    return f"{work}/held/{what}/{unit}.parquet"


def _final_path(work: str, kind: str, piece: int, unit: str) -> str:
    return f"{work}/final/{kind.replace('/', '__')}/{piece:05d}/{unit}.parquet"


def _hold(
    work: str, unit: str, ledger: pl.DataFrame, persons: pl.DataFrame, parts: list[EntityPart]
) -> list[EntityFindings]:
    """A unit's ledger rows, person links, statuses and links written to the work folder.

    Returns the parts' findings and counts: what stays in memory of a unit. The statuses of each
    entity are sorted as the whole load's would be (``final_ledger`` takes a record's statuses in
    their order).
    """
    _write(ledger.select(*LEDGER_COLUMNS, "_records", "_row"), _held_path(work, "ledger", unit))
    _write(persons.select("source_ref", "person_ref"), _held_path(work, "persons", unit))
    status = [p.status.sort("source_ref", "_rank", "status", nulls_last=True) for p in parts]
    _write(pl.concat(status, how="vertical_relaxed"), _held_path(work, "status", unit))
    _write(pl.concat([p.links for p in parts], how="vertical_relaxed"), _held_path(work, "links", unit))
    return [p.kept() for p in parts]


# --------------------------------------------------------------------------------------------
# one partition: its persons and encounters, then its other records


@dataclass(frozen=True)
class ParentsResult:
    """What the persons and encounters of a group of partitions give; its rows are held on disk (``_hold``)."""

    unit: str  # the name its held files go by
    findings: pl.DataFrame  # source findings of its person and encounter records
    schema: pl.DataFrame  # schema_findings
    unmapped: pl.DataFrame  # unmapped_code_rows
    code_maps: pl.DataFrame  # code_map_usage
    parts: list[EntityFindings]  # person, person_alias, encounter, encntr_alias
    pmap: dict[int, pl.DataFrame]  # per partition: person_ref ↔ person_id of its persons
    emap: dict[int, pl.DataFrame]  # per partition: source_ref ↔ encntr_id of its encounters
    expected: pl.DataFrame  # table_counts of its expected parent tables
    actual: pl.DataFrame  # table_counts of its target parent tables
    records: list[str]  # parent record kinds in extract order


#: partitions whose persons and encounters one ``run_parents`` call computes together
PARENT_GROUP = 4


def parent_groups(n: int, slots: int = 1) -> list[list[int]]:
    """The partitions in groups of at most ``PARENT_GROUP``, whose persons and encounters are computed a group a call.

    ``slots``: the calls that run at once (the runner's threads). The number of groups is a
    multiple of it where there are partitions enough, and the groups differ in size by one at
    most, so that the calls end together rather than the last, small one alone.
    """
    groups = math.ceil(n / PARENT_GROUP)
    groups = min(n, math.ceil(groups / slots) * slots) if groups else 0
    sizes = [n // groups + (1 if g < n % groups else 0) for g in range(groups)]
    starts = [sum(sizes[:g]) for g in range(groups)]
    return [list(range(a, a + k)) for a, k in zip(starts, sizes, strict=True)]


def run_parents(
    work: str, numbers: list[int], records: dict[str, int], tables: dict[str, int], m: Mappings, as_of
) -> ParentsResult:
    """The persons and encounters of some partitions, computed and reconciled as the whole load would.

    ``records``: the parent record kinds staged, each with its blocks; ``tables``: the target
    parent tables, each with its blocks. A partition holds whole components
    (``checks.components``), so nothing that merges, folds or matches with them lies elsewhere;
    several partitions are computed together only to spare the fixed cost of a call. The lookups
    each partition's children need are written to the work folder (``run_partition`` reads them),
    and the person and encounter maps are returned per partition.
    """

    def read(side: str, name: str, blocks: int) -> pl.DataFrame:
        return pl.concat(
            [_read_blocks(work, side, name, p, blocks).with_columns(pl.lit(p, pl.UInt32).alias("_p")) for p in numbers]
        )

    frames = {r: read("src", r, b) for r, b in records.items()}
    exp = expected_parents(frames, m, as_of)
    schema = schema_findings(frames, exp.ledger)
    unmapped = unmapped_code_rows(exp.staged, m, frames)
    usage = code_map_usage(exp.staged, m, frames)
    del frames
    for kind, lookup in parent_lookups(exp.staged).items():
        of = exp.staged[kind]["_p"]
        for p in numbers:
            _write(lookup.filter(of == p), _path(work, "lookup", kind, p))
    tgt = {t: read("tgt", t, b) for t, b in tables.items()}
    people, pmap = reconcile_persons(exp, tgt)
    encounters, emap = reconcile_encounters(exp, tgt, pmap)
    unit = f"parents-{numbers[0]:04d}"
    parts = _hold(work, unit, exp.ledger, person_links(exp.staged), [*people, *encounters])
    # each partition's maps: a person by its (winning) record's partition, an encounter by its own
    part_of = pl.concat([df.select("source_ref", "_p") for df in exp.staged.values()], how="vertical_relaxed").unique(
        "source_ref", keep="first"
    )
    pm = pmap.join(part_of, left_on="person_ref", right_on="source_ref", how="left", maintain_order="left")
    em = emap.join(part_of, on="source_ref", how="left", maintain_order="left")
    return ParentsResult(
        unit,
        exp.findings,
        schema,
        unmapped,
        usage,
        parts,
        {p: pm.filter(pl.col("_p") == p).drop("_p") for p in numbers},
        {p: em.filter(pl.col("_p") == p).drop("_p") for p in numbers},
        table_counts(exp.tables, "expected"),
        table_counts(tgt, "actual"),
        list(exp.staged),
    )


@dataclass(frozen=True)
class PartitionResult:
    """What one partition gives; its rows are held on disk (``_hold``)."""

    unit: str  # the name its held files go by
    findings: pl.DataFrame  # source findings of its records
    unmapped: pl.DataFrame  # unmapped_code_rows
    parts: list[EntityFindings]  # the reconciliation of each child table, in CHILD_TABLES order
    expected: pl.DataFrame  # table_counts of its expected tables
    records: list[str]  # record kinds in extract order
    code_maps: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=USAGE_SCHEMA))  # code_map_usage


#: a partition's person links: its patient records are all with the persons (``run_parents``)
_NO_PERSONS = pl.DataFrame(schema={"source_ref": pl.String, "person_ref": pl.String})


def run_partition(
    work: str,
    number: int,
    records: dict[str, int],
    m: Mappings,
    as_of,
    pmap: pl.DataFrame,
    emap: pl.DataFrame,
    tables: dict[str, int] | None = None,
) -> PartitionResult:
    """The expected rows of one partition's records, reconciled with the partition's target rows.

    ``records``: the record kinds staged, in extract order, each with the blocks it was staged in;
    ``tables``: the target tables staged, each with its blocks (``StagedTable.blocks``; default 1);
    ``pmap`` and ``emap``: the persons and encounters of this partition (``run_parents``), whose
    lookups it reads from the work folder.
    """
    frames = partition_records(work, records, number)
    lookups = {k: _read(_path(work, "lookup", k, number)) for k in parent_records(m)}
    exp = expected_children(frames, lookups, m, as_of)
    unmapped = unmapped_code_rows(exp.staged, m, frames)
    usage = code_map_usage(exp.staged, m, frames)
    del frames, lookups
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
    unit = f"partition-{number:04d}"
    kept = _hold(work, unit, exp.ledger, _NO_PERSONS, parts)
    return PartitionResult(
        unit, exp.findings, unmapped, kept, table_counts(exp.tables, "expected"), list(exp.staged), usage
    )


@dataclass(frozen=True)
class MergedParents:
    """The persons and encounters of every partition as one."""

    source: SourceParents
    parts: list[EntityFindings]  # person, person_alias, encounter, encntr_alias
    pmaps: list[pl.DataFrame]  # per partition (its children need them)
    emaps: list[pl.DataFrame]
    expected: pl.DataFrame  # table_counts of the expected parent tables
    actual: pl.DataFrame  # table_counts of the target parent tables
    units: list[str]  # the units whose rows are held on disk
    records: list[str]  # parent record kinds in extract order

    def pmap(self) -> pl.DataFrame:
        """person_ref ↔ person_id of the whole load."""
        return pl.concat(self.pmaps)

    def emap(self) -> pl.DataFrame:
        """source_ref ↔ encntr_id of the whole load."""
        return pl.concat(self.emaps)


def merge_parents(results: list[ParentsResult]) -> MergedParents:
    """One result from every partition's persons and encounters, independent of how they were partitioned."""
    source = SourceParents(
        pl.concat([r.findings for r in results], how="vertical_relaxed"),
        pl.concat([r.schema for r in results], how="vertical_relaxed"),
        pl.concat([r.unmapped for r in results], how="vertical_relaxed"),
        merge_usage([r.code_maps for r in results]),
    )
    return MergedParents(
        source,
        [merge_parts([r.parts[i] for r in results]) for i in range(len(results[0].parts))],
        [m for r in results for _, m in sorted(r.pmap.items())],
        [m for r in results for _, m in sorted(r.emap.items())],
        sum_counts([r.expected for r in results]),
        sum_counts([r.actual for r in results]),
        [r.unit for r in results],
        results[0].records,
    )


@dataclass(frozen=True)
class Merged:
    """The partitions' findings and counts as one (their rows are held on disk)."""

    findings: pl.DataFrame
    unmapped: pl.DataFrame
    children: list[EntityFindings]
    expected: pl.DataFrame
    units: list[str]
    records: list[str]  # record kinds in extract order
    code_maps: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=USAGE_SCHEMA))  # code_map_usage


def merge_partitions(results: list[PartitionResult]) -> Merged:
    """One result from every partition's, independent of how the records were partitioned."""
    return Merged(
        findings=pl.concat([r.findings for r in results], how="vertical_relaxed"),
        unmapped=pl.concat([r.unmapped for r in results], how="vertical_relaxed"),
        children=[merge_parts([r.parts[i] for r in results]) for i in range(len(CHILD_TABLES))],
        expected=sum_counts([r.expected for r in results]),
        units=[r.unit for r in results],
        records=results[0].records,
        code_maps=merge_usage([r.code_maps for r in results]),
    )


# --------------------------------------------------------------------------------------------
# once the discrepancies are known: the final ledger, a unit at a time, then in extract order


def held_links(work: str, units: list[str], target_refs: pl.Series) -> pl.DataFrame:
    """The held links (target_ref, source_ref, entity) of the given target rows, from every unit.

    Read one unit at a time: only the links of ``target_refs`` (the rows a target check failed)
    are kept, in (target_ref, source_ref) order.
    """
    wanted = pl.DataFrame({"target_ref": target_refs.cast(pl.String).unique()})
    out = [_read(_held_path(work, "links", u)).join(wanted, on="target_ref", how="semi") for u in units]
    links = (
        pl.concat(out, how="vertical_relaxed")
        if out
        else pl.DataFrame(schema={"target_ref": pl.String, "source_ref": pl.String, "entity": pl.String})
    )
    return links.sort("target_ref", "source_ref")


def _archived(ledger: pl.DataFrame, intact: pl.DataFrame | None) -> pl.Series | pl.Expr:
    """The ledger's ``archived`` column: from the archive check, or null where none was asked for."""
    return archived_column(ledger, intact) if intact is not None else pl.lit(None, dtype=pl.Boolean).alias("archived")


def settle(
    work: str, unit: str, differing: pl.Series, touched: pl.Series, intact: pl.DataFrame | None = None
) -> dict[str, list[int]]:
    """A unit's final ledger rows (``final_ledger``), written in slices of ``LEDGER_SLICE`` extract rows.

    ``differing``: ``differing_refs`` of the reconciliation's findings (``with_differences``);
    ``touched``: ``touched_refs`` of the discrepancies; ``intact``: with ``--archive``, the
    records the archive holds unchanged (the ``archived`` column). Returns per record kind the
    slices written. A record's duplicates lie in its unit, in extract order, so ``archived`` is
    the whole ledger's.
    """
    ledger = _read(_held_path(work, "ledger", unit))
    final = final_ledger(
        ledger,
        _read(_held_path(work, "persons", unit)),
        with_differences(_read(_held_path(work, "status", unit)), differing),
        touched,
        keep=("_records", "_row"),
    )
    del ledger
    final = final.with_columns(_archived(final, intact), (pl.col("_row") // LEDGER_SLICE).alias("_piece"))
    # held to the contract here, where the units are settled side by side, not as the one ledger is
    # written; that a ref is given once in the whole ledger is write_ledger's to check
    _LEDGER_ROWS.validate(final.select(*LEDGER_COLUMNS, "archived"))
    written: dict[str, list[int]] = {}
    for (kind, piece), df in final.partition_by("_records", "_piece", as_dict=True).items():
        _write(df.drop("_records", "_piece"), _final_path(work, kind, piece, unit))
        written.setdefault(kind, []).append(piece)
    return written


def ledger_pieces(settled: dict[str, dict[str, list[int]]]) -> dict[str, dict[int, list[str]]]:
    """Per record kind and slice, the units that wrote it (from each unit's ``settle``)."""
    pieces: dict[str, dict[int, list[str]]] = {}
    for unit, written in settled.items():
        for kind, ps in written.items():
            for piece in ps:
                pieces.setdefault(kind, {}).setdefault(piece, []).append(unit)
    return pieces


#: buckets the ledger's ref hashes are checked for repeats in (``_repeated``): one at a time in memory
HASH_BUCKETS = 16
#: the ledger's row contract but for a ref's being given once, which only the whole ledger can show
_LEDGER_ROWS = LedgerRow.to_schema().update_column("source_ref", unique=False)


def _repeated(hashes: list[pl.Series]) -> bool:
    """Whether a value occurs twice among ``hashes`` (u64), looked for a bucket of values at a time.

    A repeat lies within one bucket (``hash % HASH_BUCKETS``), so the hash table of a bucket's
    values is all that is built at once: a sixteenth of the one for 52 million refs (3,000,000
    patients), which took 2.4 GB.
    """
    for b in range(HASH_BUCKETS):
        bucket = pl.concat([h.filter(h % HASH_BUCKETS == b) for h in hashes])
        if bucket.is_duplicated().any():
            return True
    return False


def write_ledger(
    path: Path,
    work: str,
    kinds: list[str],
    pieces: dict[str, dict[int, list[str]]],
    unparseable: pl.DataFrame,
    intact: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``ledger.parquet`` streamed a slice at a time in extract order; its ``ledger_counts``.

    ``kinds``: the record kinds in ledger order (persons and encounters, then the others);
    ``pieces``: ``ledger_pieces``; ``unparseable``: the lines no reader could read (last, each
    rejected). Every row is held to the contract (``LedgerRow``): a unit's rows where ``settle``
    wrote them, the unreadable lines' here, and a ``source_ref`` given twice anywhere in the
    ledger fails here as it would in one frame. The file's row groups are of
    ``LEDGER_ROW_GROUP`` rows whatever the slices, so the same rows give the same bytes. Only
    one slice (and less than a row group) is in memory at a time.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    pending: list[pa.Table] = []  # rows not yet written: row groups of LEDGER_ROW_GROUP rows, however sliced
    counts: list[pl.DataFrame] = []
    hashes: list[pl.Series] = []

    def flush(final: bool = False) -> None:
        nonlocal pending
        if writer is None or not pending:
            return
        rows = pa.concat_tables(pending)
        full = rows.num_rows if final else rows.num_rows - rows.num_rows % LEDGER_ROW_GROUP
        for start in range(0, full, LEDGER_ROW_GROUP):
            writer.write_table(rows.slice(start, min(LEDGER_ROW_GROUP, full - start)))
        pending = [rows.slice(full)] if full < rows.num_rows else []

    def put(df: pl.DataFrame) -> None:
        nonlocal writer
        df = df.select(*LEDGER_COLUMNS, "archived")
        table = df.to_arrow(compat_level=pl.CompatLevel.oldest())
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        pending.append(table)
        if sum(t.num_rows for t in pending) >= LEDGER_ROW_GROUP:
            flush()
        counts.append(ledger_counts(df))
        hashes.append(df["source_ref"].hash(seed=0))

    try:
        for kind in kinds:
            for piece in sorted(pieces.get(kind, {})):
                units = sorted(pieces[kind][piece])
                put(pl.concat([_read(_final_path(work, kind, piece, u)) for u in units]).sort("_row"))
        rest = unparseable_ledger(unparseable)
        put(_LEDGER_ROWS.validate(rest.with_columns(_archived(rest, intact))))
        flush(final=True)
    finally:
        if writer is not None:
            writer.close()
    if _repeated(hashes):  # a hash given twice: look at the refs themselves
        refs = pl.scan_parquet(path).select("source_ref").filter(pl.col("source_ref").is_duplicated()).collect()
        if refs.height:
            LedgerRow.validate(pl.read_parquet(path))  # fails, naming the column and its check
    return merge_ledger_counts(counts)


__all__ = [
    "LEDGER_SLICE",
    "Merged",
    "MergedParents",
    "ParentsResult",
    "PartitionResult",
    "SourceParents",
    "StagedFile",
    "child_files",
    "choose_partitions",
    "make_work",
    "merge_parents",
    "merge_partitions",
    "held_links",
    "ledger_pieces",
    "largest_first",
    "parent_files",
    "partition_records",
    "parts_of_parents",
    "remove_work",
    "run_parents",
    "run_partition",
    "settle",
    "split_parent_file",
    "split_parent_table",
    "stage_file",
    "stage_parent_file",
    "stage_parent_table",
    "stage_table",
    "write_ledger",
]
