"""The steps of a validation, defined once, and the order they run in.

A step is a plain function of ``checks/`` and ``pipelines/`` with a name and a few facts a runner
may use (does it do I/O that may pass on a retry? which stage of the run is it part of? does it
want a process of its own?). ``validate`` is the one step sequence: it says which step
feeds which, and what may run at the same time (``submit``) and what must be waited for
(``call``, ``Pending.result``). A runner executes it:

* ``pipelines.run.local.LocalRunner`` — in this process, a few threads, no Prefect server: the
  command line's default;
* ``pipelines.run.prefect.PrefectRunner`` — each step a Prefect task of the flow
  ``validate-trial-load`` (deployments, and the command line when ``PREFECT_API_URL`` is set).

Both run exactly the same functions in the same dependency order, so both write the same report.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from checks.discrepancies import sum_counts, touched_refs
from checks.errors import MigcheckError
from checks.expected import CHILD_TABLES, parent_records
from checks.reconcile import combine, differing_refs
from checks.target_schema import DATA_TABLES, REFERENCE_TABLES, TEXT_BLOBS
from pipelines.io.extract import EXTRACT_FILES, check_extract_root
from pipelines.io.notify import check_setting, notify
from pipelines.io.target_db import connect
from pipelines.io.target_read import check_tables
from pipelines.run.staging import (
    MAX_PARTITIONS,
    check_work_base,
    child_files,
    choose_partitions,
    held_links,
    keyed_of,
    largest_first,
    ledger_pieces,
    make_work,
    merge_parents,
    merge_partitions,
    parent_files,
    parent_groups,
    parts_of_parents,
    remove_work,
    run_parents,
    run_partition,
    settle,
    split_parent_file,
    split_parent_table,
    stage_file,
    stage_parent_file,
    stage_parent_table,
    stage_table,
)
from pipelines.run.target_step import run_target_checks_on
from pipelines.run.validate import (
    ExpectedSide,
    HeldLedger,
    RunConfig,
    ValidationResult,
    check_archive,
    check_archive_path,
    discard_draft,
    draft_report,
    expected_rows,
    finish,
    prepare,
    publish,
    report_findings,
    source_side,
    target_side,
    unparseable_lines,
    write_report_worklists,
)

#: the target tables of persons, encounters and their aliases (staged before the rest)
PARENT_TARGET_TABLES = ("person", "person_alias", "encounter", "encntr_alias")

#: the stages of a run, in order, as progress displays and timings name them
STAGES = ("prepare", "extract", "read_target", "reconcile", "partitions", "target_checks", "archive", "report")


@dataclass(frozen=True)
class Step:
    """One step of a validation: a function and what a runner needs to know about it."""

    name: str  # stable: the Prefect task name
    fn: Callable[..., Any]
    stage: str  # one of STAGES
    io: bool = False  # reads or writes outside the process: retried when the fault may pass
    run_name: str | None = None  # a per-call name, formatted with the call's keyword arguments
    #: Python-heavy and independent of the rest: the local runner gives it its own process, so it
    #: does not hold the interpreter lock the reading and reconciling threads need
    own_process: bool = False
    #: pure Python (it holds the interpreter lock, not a core's worth of polars): the local runner
    #: runs it in a thread beside its pool, whose threads stay free for the polars steps
    beside: bool = False


@dataclass(frozen=True)
class ValidateArgs:
    """What a validation is asked to do (settings already resolved to URLs)."""

    source: Path
    target_url: str
    trial_load: str
    out: Path
    baseline: Path | None = None
    history_url: str | None = None
    migration: str | None = None
    mappings_root: Path | None = None
    as_of: dt.date | None = None
    target_checks: bool = True
    dask: str | None = None
    partitions: int = 0  # 0: chosen from the extract's size
    work: str | None = None  # where the partitions are staged: a folder or an fsspec URL (None: beside out)
    notify: str | None = None  # block:[TYPE/]NAME: a Prefect notification block told the verdict
    archive: str | None = None  # a preservation archive (migcheck archive) every record is checked against


def dask_unreachable(address: str, e: BaseException) -> MigcheckError:
    """The one line for a Dask scheduler that did not answer: a fault that may pass (retried)."""
    return MigcheckError(
        f"--dask: no Dask scheduler answered at {address} ({type(e).__name__}); start the cluster or fix the address",
        transient=True,
    )


class Pending(Protocol):
    """A step that was submitted: its result, once it is there."""

    def result(self) -> Any:  # noqa: D102
        ...


class Runner(Protocol):
    """Executes steps: ``submit`` may run them alongside others, ``call`` waits for the result."""

    def submit(self, step: Step, **kwargs: Any) -> Pending:  # noqa: D102
        ...

    def call(self, step: Step, **kwargs: Any) -> Any:  # noqa: D102
        ...

    def map_on_cluster(self, step: Step, address: str, calls: list[dict]) -> list[Any]:  # noqa: D102
        ...

    def timings(self) -> dict[str, float]:  # noqa: D102
        ...


# --------------------------------------------------------------------------------------------
# the step functions that are more than a call of one library function


def _prepare(args: ValidateArgs, root: str) -> RunConfig:
    return prepare(
        args.trial_load,
        Path(args.out),
        args.mappings_root,
        args.as_of,
        args.target_checks,
        args.history_url,
        args.migration,
        args.baseline,
        source=Path(root),
    )


def _check_tables(target_url: str) -> None:
    engine = connect(target_url, must_exist=True)
    try:
        check_tables(engine, REFERENCE_TABLES + DATA_TABLES)
    finally:
        engine.dispose()


def _stage_parent_file(root: str, system: str, name: str, cfg: RunConfig, work: str):  # noqa: ANN202
    return stage_parent_file(Path(root), system, name, cfg.mappings, work)


def _stage_parent_table(target_url: str, table: str, cfg: RunConfig, work: str):  # noqa: ANN202
    return stage_parent_table(target_url, table, cfg.mappings, work)


def _parent_parts(files, tables, cfg: RunConfig, n: int):  # noqa: ANN001, ANN202
    return parts_of_parents(files, tables, cfg.mappings, n)


def _split_parent_file(work: str, pre, cfg: RunConfig, parts, n: int):  # noqa: ANN001, ANN202
    return split_parent_file(work, pre, cfg.mappings, parts, n)


def _stage_file(root: str, system: str, name: str, cfg: RunConfig, parts, work: str, partitions: int):  # noqa: ANN001, ANN202
    return stage_file(Path(root), system, name, cfg.mappings, parts, work, partitions)


def _stage_table(
    target_url: str, table: str, cfg: RunConfig, pmap, emap, parts, ids, work: str, partitions: int, keyed=None
):  # noqa: ANN001, ANN202
    return stage_table(target_url, table, cfg.mappings, pmap, emap, parts, ids, work, partitions, keyed)


def _parents(
    work: str, group: int, numbers: list[int], records: dict[str, int], tables: dict[str, int], cfg: RunConfig
):  # noqa: ANN202 - ``group`` names the call (run_name)
    return run_parents(work, numbers, records, tables, cfg.mappings, cfg.as_of)


def _partition(work: str, number: int, records: dict[str, int], cfg: RunConfig, pmap, emap, tables):  # noqa: ANN001, ANN202
    return run_partition(work, number, records, cfg.mappings, cfg.as_of, pmap, emap, tables)


def _findings(cfg: RunConfig, src, tside, recon, target_part, work: str, units: list[str], archive=None):  # noqa: ANN001, ANN202
    links = held_links(work, units, target_part.failures["target_ref"]) if target_part.failures.height else None
    return report_findings(cfg, src, tside, recon, target_part, links, archive)


PREPARE = Step("prepare", _prepare, "prepare", io=True)
CHECK_TABLES = Step("check-target-tables", _check_tables, "prepare", io=True)
MAKE_WORK = Step("make-work-folder", lambda out, base: make_work(Path(out), base), "prepare", io=True)
STAGE_PARENT_FILE = Step("stage-parent-file", _stage_parent_file, "extract", io=True, run_name="stage-{system}-{name}")
STAGE_FILE = Step("stage-extract-file", _stage_file, "extract", io=True, run_name="stage-{system}-{name}")
STAGE_PARENT_TABLE = Step("stage-parent-table", _stage_parent_table, "read_target", io=True, run_name="stage-{table}")
PARENT_PARTS = Step("person-components", _parent_parts, "extract")
SPLIT_PARENT_FILE = Step("split-parent-file", _split_parent_file, "extract", io=True)
SPLIT_PARENT_TABLE = Step("split-parent-table", split_parent_table, "read_target", io=True)
TARGET_CHECKS = Step("target-checks", run_target_checks_on, "target_checks", io=True, own_process=True)
PARENTS = Step("reconcile-parents", _parents, "reconcile", io=True, run_name="parents-{group}")
MERGE_PARENTS = Step("merge-parents", merge_parents, "reconcile")
STAGE_TABLE = Step("stage-target-table", _stage_table, "read_target", io=True, run_name="stage-{table}")
PARTITION = Step("validate-partition", _partition, "partitions", io=True, run_name="partition-{number}")
MERGE = Step("merge-partitions", merge_partitions, "partitions")
CHECK_ARCHIVE = Step("check-archive", check_archive, "archive", io=True)
FINDINGS = Step("discrepancies", _findings, "report", io=True)
SETTLE = Step("settle-ledger", settle, "report", io=True, run_name="settle-{unit}")
DRAFT = Step("draft-report", draft_report, "report", io=True)
WORKLISTS = Step("write-worklists", write_report_worklists, "report", io=True, beside=True)
FINISH = Step("write-report", finish, "report", io=True)
PUBLISH = Step("publish-report", publish, "report", io=True)
NOTIFY = Step("notify", notify, "report")


def default_workers() -> int:
    """Threads for a run's steps: one per core, at least two (``MIGCHECK_WORKERS`` overrides).

    Each thread holds one file, table or partition at a time, so the threads also set the peak.
    The partitions are shaped for them (``choose_partitions``, ``parent_groups``).
    """
    given = os.environ.get("MIGCHECK_WORKERS", "")
    return int(given) if given.isdigit() and int(given) > 0 else max(2, os.cpu_count() or 2)


def _each(run: Runner, step: Step, calls: list[dict], dask: str | None) -> list[Any]:
    """The results of every call of ``step``, in order: each a task on the Dask cluster at ``dask``, or submitted here.

    Once returned, no future holds a result any more (only the list does).
    """
    if dask:
        return run.map_on_cluster(step, dask, calls)
    pending = [run.submit(step, **c) for c in calls]
    return [p.result() for p in pending]


def _waited(pending: Pending | None) -> None:
    """Wait for a step that may still run; its error, if any, is not this one's to raise.

    Called where a run stops (it raises its own error) or ends (the step's result was taken).
    """
    if pending is None:
        return
    try:
        pending.result()
    except Exception:  # noqa: BLE001, S110 - the run's own error is the one that propagates
        pass


def validate(run: Runner, args: ValidateArgs) -> ValidationResult:
    """Validate one trial load with ``run``: the one step sequence of every runner.

    Everything partitioned by person (``pipelines.run.staging``): the files and tables of persons
    and encounters are staged first, their connected components give every record and target row
    its partition (``checks.components``), and each partition's persons and encounters are
    computed and reconciled alone; then the other files and target tables are staged one at a time
    and each partition's other records are reconciled with its rows. Partitions run here or
    (``args.dask``) on a Dask cluster.
    """
    root = str(check_extract_root(Path(args.source)))
    # the options known up front, before any step starts (the target checks would run on meanwhile)
    if args.partitions < 0 or args.partitions > MAX_PARTITIONS:
        raise MigcheckError(f"--partitions {args.partitions}: give 1 to {MAX_PARTITIONS} (or leave it out)")
    check_setting(args.notify)
    if args.archive is not None:
        check_archive_path(args.archive, Path(args.out))
    if args.work is not None:
        check_work_base(args.work, Path(root), Path(args.out))
    cfg = run.call(PREPARE, args=args, root=root)
    draft, sheets = None, None
    run.call(CHECK_TABLES, target_url=args.target_url)
    slots = default_workers()
    n = args.partitions or choose_partitions(Path(root), slots=slots)
    # in a process of its own (on the command line), given only what it needs: the reference data
    checks = run.submit(
        TARGET_CHECKS,
        target_url=args.target_url,
        code_value=cfg.mappings.code_value,
        nomenclature=cfg.mappings.nomenclature,
        enabled=cfg.target_checks,
    )
    work = run.call(MAKE_WORK, out=str(args.out), base=args.work)
    try:
        m = cfg.mappings
        # 1. persons and encounters, legacy and target, read once and written whole, with their keys
        pre_files = [
            run.submit(STAGE_PARENT_FILE, root=root, system=s, name=f, cfg=cfg, work=work) for s, f in parent_files(m)
        ]
        pre_tables = {
            t: run.submit(STAGE_PARENT_TABLE, target_url=args.target_url, table=t, cfg=cfg, work=work)
            for t in PARENT_TARGET_TABLES
        }
        pfiles = [f.result() for f in pre_files]
        ptables = {t: f.result() for t, f in pre_tables.items()}
        del pre_files, pre_tables
        # 2. the components of persons: every record and target row gets its partition
        parts = run.call(PARENT_PARTS, files=pfiles, tables=ptables, cfg=cfg, n=n)
        split_files = [run.submit(SPLIT_PARENT_FILE, work=work, pre=f, cfg=cfg, parts=parts, n=n) for f in pfiles]
        split_tables = {
            t: run.submit(SPLIT_PARENT_TABLE, work=work, pre=p, parts=parts, n=n) for t, p in ptables.items()
        }
        # each other file read and staged a block at a time: never the whole extract in memory; the
        # largest first, so that the threads end together
        cfiles = {
            (s, f): run.submit(STAGE_FILE, root=root, system=s, name=f, cfg=cfg, parts=parts, work=work, partitions=n)
            for s, f in largest_first(Path(root), child_files(m))
        }
        ids = (ptables["encounter"].ids, ptables["person"].ids)
        actual_parents = sum_counts([p.counts for p in ptables.values()])
        del ptables
        staged = dict(zip(parent_files(m), [f.result() for f in split_files], strict=True))
        pblocks = {t: f.result() for t, f in split_tables.items()}
        kinds = set(parent_records(m))
        precords = {r: staged[f].blocks for f in parent_files(m) for r in staged[f].records if r in kinds}
        del pfiles, split_files, split_tables
        # 3. the persons and encounters of each partition, computed and reconciled alone (a few partitions a call)
        pcalls = [
            dict(work=work, group=g, numbers=ps, records=precords, tables=pblocks, cfg=cfg)
            for g, ps in enumerate(parent_groups(n, slots))
        ]
        presults = _each(run, PARENTS, pcalls, args.dask)
        parents = run.call(MERGE_PARENTS, results=presults)
        del presults
        # 4. the target's other tables, each row with its reconciled parents, to the partitions
        staged |= {k: f.result() for k, f in cfiles.items()}
        pmap, emap = parents.pmap(), parents.emap()
        # a table whose text lies in chunks (notes) reads two tables: started first, it does not
        # leave the other threads waiting for it at the end
        ttables = {
            t: run.submit(
                STAGE_TABLE,
                target_url=args.target_url,
                table=t,
                cfg=cfg,
                pmap=pmap,
                emap=emap,
                parts=parts,
                ids=ids,
                work=work,
                partitions=n,
                keyed=keyed_of(list(staged.values()), t),
            )
            for t in sorted(CHILD_TABLES, key=lambda t: t not in TEXT_BLOBS)
        }
        staged_files = [staged[f] for f in EXTRACT_FILES]
        records = {r: staged[f].blocks for f in EXTRACT_FILES for r in staged[f].records if r not in precords}
        actual = [ttables[t].result() for t in CHILD_TABLES]
        blocks = {t: b for a in actual for t, b in a.blocks.items()}
        del ttables, pmap, emap, parts, ids
        # 5. the other records of each partition, reconciled with its target rows
        calls = [
            dict(
                work=work,
                number=i,
                records=records,
                cfg=cfg,
                pmap=parents.pmaps[i],
                emap=parents.emaps[i],
                tables=blocks,
            )
            for i in range(n)
        ]
        results = _each(run, PARTITION, calls, args.dask)
        del calls
        merged = run.call(MERGE, results=results)
        del results
        recon = combine([*parents.parts, *merged.children])
        src = source_side(cfg, parents.source, merged, staged_files)
        tside = target_side(
            sum_counts([parents.expected, merged.expected]),
            sum_counts([actual_parents, *[a.counts for a in actual]]),
        )
        units = [*parents.units, *merged.units]
        ledger_kinds = [*parents.records, *merged.records]
        del merged, parents
        target_part = checks.result()
        archive = run.call(CHECK_ARCHIVE, root=root, archive=args.archive) if args.archive else None
        # 6. the discrepancies; then each unit's final ledger rows, settled where its rows are held
        disc = run.call(
            FINDINGS,
            cfg=cfg,
            src=src,
            tside=tside,
            recon=recon,
            target_part=target_part,
            work=work,
            units=units,
            archive=archive,
        )
        intact = archive.intact if archive is not None else None
        differing, touched = differing_refs(recon.findings), touched_refs(disc)
        # the report begun: its worklists (Python) written while the units settle and the ledger and
        # the other files are written (polars)
        draft = run.call(DRAFT, cfg=cfg, disc=disc, src=src)
        sheets = run.submit(WORKLISTS, draft=draft, trial_load=cfg.trial_load)
        scalls = [dict(work=work, unit=u, differing=differing, touched=touched, intact=intact) for u in units]
        settled = _each(run, SETTLE, scalls, args.dask)
        held = HeldLedger(
            work, ledger_kinds, ledger_pieces(dict(zip(units, settled, strict=True))), unparseable_lines(staged_files)
        )
        eside = ExpectedSide(ledger=held, rows=expected_rows(tside.expected))
        finished = run.call(
            FINISH,
            cfg=cfg,
            draft=draft,
            src=src,
            exp=eside,
            tside=tside,
            recon=recon,
            target_part=target_part,
            timings=run.timings(),
            archive=archive,
        )
        sheets.result()  # the worklists, written meanwhile
        result = run.call(PUBLISH, cfg=cfg, report=finished)
    finally:
        _waited(sheets)  # no thread writes into the draft while it is removed
        remove_work(work)
        discard_draft(draft)  # a run stopped before its report was moved in
    if args.notify:  # after the report is written; never fails the validation
        run.call(NOTIFY, setting=args.notify, result=result)
    return result
