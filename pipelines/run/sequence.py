"""The steps of a validation, defined once, and the order they run in.

A step is a plain function of ``checks/`` and ``pipelines/`` with a name and a few facts a runner
may use (does it do I/O that may pass on a retry? is its result worth caching on a file's content?
which stage of the run is it part of?). ``validate`` is the one step sequence: it says which step
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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from checks.discrepancies import person_links, sum_counts, table_counts
from checks.errors import MigcheckError
from checks.expected import CHILD_TABLES, Expected
from checks.reconcile import combine, logical_target, reconcile_encounters, reconcile_persons
from checks.target_schema import DATA_TABLES, REFERENCE_TABLES
from pipelines.io.extract import EXTRACT_FILES, FilePart, check_extract_root, read_extract_file
from pipelines.io.notify import check_setting, notify
from pipelines.io.target_db import connect
from pipelines.io.target_read import check_tables, read_table
from pipelines.run.staging import (
    MAX_PARTITIONS,
    check_work_base,
    child_files,
    choose_partitions,
    keyed_of,
    make_work,
    merge_partitions,
    parent_files,
    remove_work,
    run_partition,
    source_parents,
    split_parents,
    stage_file,
    stage_table,
)
from pipelines.run.validate import (
    ExpectedSide,
    RunConfig,
    ValidationResult,
    check_archive,
    check_archive_path,
    expected_rows,
    finish,
    full_ledger,
    prepare,
    run_target_checks_on,
    source_side,
    target_side,
)

#: the target tables reconciled whole (persons, encounters and their aliases)
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
    cached_on_file: bool = False  # its result depends only on one extract file's content
    run_name: str | None = None  # a per-call name, formatted with the call's keyword arguments
    #: Python-heavy and independent of the rest: the local runner gives it its own process, so it
    #: does not hold the interpreter lock the reading and reconciling threads need
    own_process: bool = False


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


def _read_table(target_url: str, table: str):  # noqa: ANN202 - a polars DataFrame
    engine = connect(target_url)
    try:
        return read_table(engine, table)
    finally:
        engine.dispose()


def _read_file(root: str, system: str, name: str) -> FilePart:
    return read_extract_file(Path(root), system, name)


def _source_parents(parts: list[FilePart], cfg: RunConfig, work: str, partitions: int):  # noqa: ANN202
    return source_parents(parts, cfg.mappings, cfg.as_of, work, partitions)


def _stage_file(root: str, system: str, name: str, cfg: RunConfig, routes, work: str, partitions: int):  # noqa: ANN001, ANN202
    return stage_file(Path(root), system, name, cfg.mappings, routes, work, partitions)


def _stage_table(
    target_url: str, table: str, cfg: RunConfig, pmap, emap, enc_person, ids, work: str, partitions: int, keyed=None
):  # noqa: ANN001, ANN202
    return stage_table(target_url, table, cfg.mappings, pmap, emap, enc_person, ids, work, partitions, keyed)


def _partition(work: str, number: int, records: dict[str, int], cfg: RunConfig, lookups, pmap, emap, tables):  # noqa: ANN001, ANN202
    return run_partition(work, number, records, cfg.mappings, cfg.as_of, lookups, pmap, emap, tables)


PREPARE = Step("prepare", _prepare, "prepare", io=True)
CHECK_TABLES = Step("check-target-tables", _check_tables, "prepare", io=True)
MAKE_WORK = Step("make-work-folder", lambda out, base: make_work(Path(out), base), "prepare", io=True)
READ_FILE = Step("read-extract-file", _read_file, "extract", io=True, cached_on_file=True)
SOURCE_PARENTS = Step("expected-parents", _source_parents, "extract", io=True)
STAGE_FILE = Step("stage-extract-file", _stage_file, "extract", io=True, run_name="stage-{system}-{name}")
READ_TABLE = Step("read-target-table", _read_table, "read_target", io=True)
TARGET_CHECKS = Step("target-checks", run_target_checks_on, "target_checks", io=True, own_process=True)
LOGICAL_TARGET = Step("logical-target", lambda tables, cfg: logical_target(tables, cfg.mappings), "read_target")
PERSONS = Step("reconcile-persons", reconcile_persons, "reconcile")
ENCOUNTERS = Step("reconcile-encounters", reconcile_encounters, "reconcile")
STAGE_TABLE = Step("stage-target-table", _stage_table, "read_target", io=True, run_name="stage-{table}")
PARTITION = Step("validate-partition", _partition, "partitions", io=True, run_name="partition-{number}")
SPLIT_PARENTS = Step("split-parents", split_parents, "partitions")
MERGE = Step("merge-partitions", merge_partitions, "partitions")
CHECK_ARCHIVE = Step("check-archive", check_archive, "archive", io=True)
FINISH = Step("write-report", finish, "report", io=True)
NOTIFY = Step("notify", notify, "report")


def validate(run: Runner, args: ValidateArgs) -> ValidationResult:
    """Validate one trial load with ``run``: the one step sequence of every runner.

    Persons and encounters whole, everything else partitioned by person
    (``pipelines.run.staging``): the extract's other files and the target's child tables are
    staged one at a time to Parquet partitions in a work folder, then each partition is computed
    and reconciled on its own, here or (``args.dask``) on a Dask cluster.
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
    run.call(CHECK_TABLES, target_url=args.target_url)
    n = args.partitions or choose_partitions(Path(root))
    checks = run.submit(TARGET_CHECKS, target_url=args.target_url, cfg=cfg)  # waits on the database meanwhile
    work = run.call(MAKE_WORK, out=str(args.out), base=args.work)
    try:
        m = cfg.mappings
        pfiles = [run.submit(READ_FILE, root=root, system=s, name=f) for s, f in parent_files(m)]
        src_parents, staged_parents = run.call(
            SOURCE_PARENTS, parts=[f.result() for f in pfiles], cfg=cfg, work=work, partitions=n
        )
        del pfiles
        # each file read and staged a block at a time: never the whole extract in memory
        cfiles = {
            (s, f): run.submit(
                STAGE_FILE, root=root, system=s, name=f, cfg=cfg, routes=src_parents.routes, work=work, partitions=n
            )
            for s, f in child_files(m)
        }
        tables = {t: run.submit(READ_TABLE, target_url=args.target_url, table=t) for t in PARENT_TARGET_TABLES}
        tgt = run.call(LOGICAL_TARGET, tables={t: f.result() for t, f in tables.items()}, cfg=cfg)
        del tables
        exp = src_parents.exp
        persons, pmap = run.call(PERSONS, exp=exp, tgt=tgt)
        encounters, emap = run.call(ENCOUNTERS, exp=exp, tgt=tgt, pmap=pmap)
        # one row per encounter (the routing joins on it): made so once, not per table or batch
        enc_person = (
            exp.tables["encounter"]
            .select("source_ref", "person_ref")
            .unique("source_ref", keep="first", maintain_order=True)
        )
        staged = {
            **dict(zip(parent_files(m), staged_parents, strict=True)),
            **{k: f.result() for k, f in cfiles.items()},
        }
        ttables = {
            t: run.submit(
                STAGE_TABLE,
                target_url=args.target_url,
                table=t,
                cfg=cfg,
                pmap=pmap,
                emap=emap,
                enc_person=enc_person,
                ids=(tgt["encounter"]["_id"], tgt["person"]["_id"]),
                work=work,
                partitions=n,
                keyed=keyed_of(list(staged.values()), t),
            )
            for t in CHILD_TABLES
        }
        staged_files = [staged[f] for f in EXTRACT_FILES]
        records = {r: staged[f].blocks for f in EXTRACT_FILES for r in staged[f].records if r not in exp.staged}
        actual = [f.result() for f in ttables.values()]
        blocks = {t: b for a in actual for t, b in a.blocks.items()}
        # what the report needs of the parents, taken now: the parents' frames go before the partitions run
        parent_counts = (table_counts(exp.tables, "expected"), table_counts(tgt, "actual"))
        persons_of = person_links(exp.staged)
        slices = run.call(SPLIT_PARENTS, parents=src_parents, pmap=pmap, emap=emap, enc_person=enc_person, n=n)
        calls = [
            dict(
                work=work,
                number=i,
                records=records,
                cfg=cfg,
                lookups=slices.lookups[i],
                pmap=slices.pmap[i],
                emap=slices.emap[i],
                tables=blocks,
            )
            for i in range(n)
        ]
        # the parents' tables, lookups and maps live on only in the partitions' slices
        del tgt, ttables, enc_person, slices, pmap, emap
        exp = Expected({}, exp.ledger, exp.findings, {})
        src_parents = replace(src_parents, exp=exp, routes={})
        if args.dask:
            results = run.map_on_cluster(PARTITION, args.dask, calls)
        else:
            pending = [run.submit(PARTITION, **c) for c in calls]
            results = [p.result() for p in pending]
            del pending  # the futures would keep every partition's result alive
        del calls
        merged = run.call(MERGE, results=results)
        del results
        recon = combine([*persons, *encounters, *merged.children])
        del persons, encounters
        src = source_side(cfg, src_parents, merged, staged_files)
        tside = target_side(
            sum_counts([parent_counts[0], merged.expected]), sum_counts([parent_counts[1], *[a.counts for a in actual]])
        )
        eside = ExpectedSide(
            ledger=full_ledger(src_parents.exp.ledger, merged.ledger, staged_files),
            persons=persons_of,
            rows=expected_rows(tside.expected),
        )
        del merged, src_parents, exp
        target_part = checks.result()
        result = run.call(
            FINISH,
            cfg=cfg,
            src=src,
            exp=eside,
            tside=tside,
            recon=recon,
            target_part=target_part,
            timings=run.timings(),
            archive=run.call(CHECK_ARCHIVE, root=root, archive=args.archive) if args.archive else None,
        )
    finally:
        remove_work(work)
    if args.notify:  # after the report is written; never fails the validation
        run.call(NOTIFY, setting=args.notify, result=result)
    return result
