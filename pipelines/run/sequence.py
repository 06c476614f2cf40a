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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from checks.errors import MigcheckError
from checks.expected import compute_expected
from checks.partition import split_child
from checks.reconcile import (
    CHILD_TABLES,
    EntityPart,
    child_slice,
    combine,
    logical_target,
    reconcile_child,
    reconcile_child_slice,
    reconcile_encounters,
    reconcile_persons,
)
from checks.target_schema import DATA_TABLES, REFERENCE_TABLES
from pipelines.io.extract import EXTRACT_FILES, FilePart, assemble_extract, check_extract_root, read_extract_file
from pipelines.io.target_db import connect
from pipelines.io.target_read import check_tables, read_table
from pipelines.run.validate import (
    RunConfig,
    ValidationResult,
    finish,
    prepare,
    run_target_checks_on,
    source_side,
    target_side,
)

#: the stages of a run, in order, as progress displays and timings name them
STAGES = ("prepare", "extract", "read_target", "expected", "reconcile", "target_checks", "report")


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
    partitions: int = 16


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


def _expected(parts: list[FilePart], root: str, cfg: RunConfig):  # noqa: ANN202 - (SourceSide, Expected)
    extract = assemble_extract(Path(root), parts)
    return source_side(cfg, extract, compute_expected(extract, cfg.mappings, cfg.as_of))


def _partition(table: str, exp, tgt, cfg: RunConfig, pmap, emap, partitions: int):  # noqa: ANN001, ANN202
    return split_child(child_slice(table, exp, tgt, cfg.mappings, pmap, emap), partitions)


def _child(table: str, exp, tgt, cfg: RunConfig, pmap, emap) -> EntityPart:  # noqa: ANN001
    return reconcile_child(table, exp, tgt, cfg.mappings, pmap, emap)


PREPARE = Step("prepare", _prepare, "prepare", io=True)
CHECK_TABLES = Step("check-target-tables", _check_tables, "prepare", io=True)
READ_FILE = Step("read-extract-file", _read_file, "extract", io=True, cached_on_file=True)
READ_TABLE = Step("read-target-table", _read_table, "read_target", io=True)
TARGET_CHECKS = Step("target-checks", run_target_checks_on, "target_checks", io=True, own_process=True)
EXPECTED = Step("expected-target", _expected, "expected")
LOGICAL_TARGET = Step("logical-target", lambda tables, cfg: logical_target(tables, cfg.mappings), "reconcile")
PERSONS = Step("reconcile-persons", reconcile_persons, "reconcile")
ENCOUNTERS = Step("reconcile-encounters", reconcile_encounters, "reconcile")
CHILD = Step("reconcile-entity", _child, "reconcile", run_name="reconcile-{table}")
PARTITION = Step("partition-entity", _partition, "reconcile", run_name="partition-{table}")
RECONCILE_PART = Step(
    "reconcile-partition",
    lambda part, number: reconcile_child_slice(part),
    "reconcile",
    run_name="reconcile-{part.table}-{number}",
)
TARGET_SIDE = Step("target-counts", target_side, "reconcile")
FINISH = Step("write-report", finish, "report", io=True)


def validate(run: Runner, args: ValidateArgs) -> ValidationResult:
    """Validate one trial load with ``run``: the one step sequence of every runner."""
    root = str(check_extract_root(Path(args.source)))
    cfg = run.call(PREPARE, args=args, root=root)
    run.call(CHECK_TABLES, target_url=args.target_url)
    checks = run.submit(TARGET_CHECKS, target_url=args.target_url, cfg=cfg)  # waits on the database meanwhile
    files = [run.submit(READ_FILE, root=root, system=s, name=n) for s, n in EXTRACT_FILES]
    src, exp = run.call(EXPECTED, parts=[f.result() for f in files], root=root, cfg=cfg)
    del files  # the parsed files, the largest thing a run holds, go before the target is read
    tables = {t: run.submit(READ_TABLE, target_url=args.target_url, table=t) for t in REFERENCE_TABLES + DATA_TABLES}
    tgt = run.call(LOGICAL_TARGET, tables={t: f.result() for t, f in tables.items()}, cfg=cfg)
    del tables
    persons, pmap = run.call(PERSONS, exp=exp, tgt=tgt)
    encounters, emap = run.call(ENCOUNTERS, exp=exp, tgt=tgt, pmap=pmap)
    common = dict(exp=exp, tgt=tgt, cfg=cfg, pmap=pmap, emap=emap)
    if args.dask:
        from checks.partition import merge_parts

        children = []
        for t in CHILD_TABLES:
            parts = run.call(PARTITION, table=t, partitions=args.partitions, **common)
            calls = [{"part": p, "number": i} for i, p in enumerate(parts)]
            children.append(merge_parts(run.map_on_cluster(RECONCILE_PART, args.dask, calls)))
    else:
        pending = [run.submit(CHILD, table=t, **common) for t in CHILD_TABLES]
        children = [p.result() for p in pending]
    recon = combine([*persons, *encounters, *children])
    tside = run.call(TARGET_SIDE, exp=exp, tgt=tgt)
    del tgt, common
    target_part = checks.result()
    return run.call(
        FINISH, cfg=cfg, src=src, exp=exp, tside=tside, recon=recon, target_part=target_part, timings=run.timings()
    )
