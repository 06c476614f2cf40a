"""Prefect flows: the way the migration team (and the command line) runs migcheck.

Flows only call tasks; tasks wire the pure functions of ``checks/`` to I/O. Extract files are
read one task per file, cached on their content (a re-run where only a code map or a waiver
changed does not read and parse them again); target tables are read one task per table; child
entities are reconciled concurrently. Retries with back-off are only on I/O, and only for faults
that may pass (``MigcheckError.transient``), never for a wrong argument.

Database settings arrive as ``env:NAME``, ``block:NAME`` or a URL without password
(``pipelines/settings.py``), so no secret is stored as a flow-run parameter or logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from checks.errors import MigcheckError
from checks.expected import compute_expected
from checks.partition import merge_parts, split_child
from checks.reconcile import (
    CHILD_TABLES,
    ChildSlice,
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
from pipelines.extract import (
    EXTRACT_FILES,
    FilePart,
    assemble_extract,
    check_extract_root,
    extract_file_path,
    read_extract_file,
)
from pipelines.outputs import claim_folder, write_marker
from pipelines.settings import resolve_url
from pipelines.synth.generator import generate
from pipelines.synth.trial_load import simulate_trial_load
from pipelines.target_db import connect, safe_url
from pipelines.target_read import check_tables, read_table
from pipelines.validate import (
    RunConfig,
    TargetCheckPart,
    TargetSide,
    ValidationResult,
    finish,
    prepare,
    run_target_checks_on,
    source_side,
    target_side,
)

#: bump when the extract reader changes what it makes of a file (invalidates the file cache)
READER_VERSION = "1"


def _transient(task, task_run, state) -> bool:  # noqa: ANN001 - Prefect's retry_condition_fn signature
    """Retry only faults that may pass: I/O errors, databases or files that did not answer."""
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, MigcheckError):
        return exc.transient
    return isinstance(exc, OSError)


IO_RETRY = dict(retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=_transient)


def file_content_key(context, parameters: dict) -> str:  # noqa: ANN001 - Prefect's cache_key_fn signature
    """Cache key of an extract file: its path, its content and the reader version."""
    path = extract_file_path(Path(parameters["root"]), parameters["system"], parameters["name"])
    h = hashlib.sha256(f"{READER_VERSION}|{path.resolve()}|".encode())
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        h.update(b"<missing>")
    return f"extract-file-{h.hexdigest()}"


@task(
    name="read-extract-file",
    cache_key_fn=file_content_key,
    persist_result=True,
    cache_expiration=dt.timedelta(days=30),
    **IO_RETRY,
)
def read_file_task(root: str, system: str, name: str) -> FilePart:
    """Read and parse one extract file (cached on its content)."""
    return read_extract_file(Path(root), system, name)


@task(name="read-target-table", cache_policy=NO_CACHE, **IO_RETRY)
def read_table_task(target_url: str, table: str) -> pl.DataFrame:
    """Read one target table (spec columns only)."""
    engine = connect(target_url)
    try:
        return read_table(engine, table)
    finally:
        engine.dispose()


@task(name="check-target-tables", cache_policy=NO_CACHE, **IO_RETRY)
def check_tables_task(target_url: str) -> None:
    """The target database exists and has every table and column of the spec."""
    engine = connect(target_url, must_exist=True)
    try:
        check_tables(engine, REFERENCE_TABLES + DATA_TABLES)
    finally:
        engine.dispose()


@task(name="prepare", cache_policy=NO_CACHE)
def prepare_task(
    trial_load: str, out: str, history_url: str | None, migration: str | None, baseline: str | None, source: str
) -> RunConfig:
    """Check the arguments and paths, load mappings, gates and waivers."""
    return prepare(
        trial_load,
        Path(out),
        history_url=history_url,
        migration=migration,
        baseline=Path(baseline) if baseline else None,
        source=Path(source),
    )


@task(name="expected-target", cache_policy=NO_CACHE)
def expected_task(parts: list[FilePart], root: str, cfg: RunConfig):
    """What a correct load makes of the extract, and the report's part of the extract."""
    extract = assemble_extract(Path(root), parts)
    return source_side(cfg, extract, compute_expected(extract, cfg.mappings, cfg.as_of))


@task(name="logical-target", cache_policy=NO_CACHE)
def logical_target_task(tables: dict[str, pl.DataFrame], cfg: RunConfig) -> dict[str, pl.DataFrame]:
    """Target rows with codes as meanings."""
    return logical_target(tables, cfg.mappings)


@task(name="target-counts", cache_policy=NO_CACHE)
def target_side_task(exp, tgt) -> TargetSide:
    """Row counts of the target tables, for the report."""
    return target_side(exp, tgt)


@task(name="reconcile-persons", cache_policy=NO_CACHE)
def persons_task(exp, tgt):
    """Persons and their aliases."""
    return reconcile_persons(exp, tgt)


@task(name="reconcile-encounters", cache_policy=NO_CACHE)
def encounters_task(exp, tgt, pmap):
    """Encounters and their aliases."""
    return reconcile_encounters(exp, tgt, pmap)


@task(name="reconcile-entity", cache_policy=NO_CACHE, task_run_name="reconcile-{table}")
def child_task(table: str, exp, tgt, cfg: RunConfig, pmap, emap) -> EntityPart:
    """One child entity (diagnosis, procedure, orders, allergy)."""
    return reconcile_child(table, exp, tgt, cfg.mappings, pmap, emap)


@task(name="partition-entity", cache_policy=NO_CACHE, task_run_name="partition-{table}")
def partition_task(table: str, exp, tgt, cfg: RunConfig, pmap, emap, partitions: int) -> list[ChildSlice]:
    """One child entity cut into partitions by a hash of its parent ref."""
    return split_child(child_slice(table, exp, tgt, cfg.mappings, pmap, emap), partitions)


@task(name="reconcile-partition", cache_policy=NO_CACHE, task_run_name="reconcile-{part.table}-{number}")
def reconcile_partition_task(part: ChildSlice, number: int) -> EntityPart:
    """One partition of a child entity (runs on a Dask worker)."""
    return reconcile_child_slice(part)


def _children_on_dask(exp, tgt, cfg: RunConfig, pmap, emap, address: str, partitions: int) -> list[EntityPart]:
    """The child entities reconciled partition by partition on the Dask cluster at ``address``."""
    from prefect_dask import DaskTaskRunner  # imported only when a cluster is asked for

    slices = {t: partition_task(t, exp, tgt, cfg, pmap, emap, partitions) for t in CHILD_TABLES}
    runner = DaskTaskRunner(address=address, client_kwargs={"timeout": "20s"})
    try:
        with runner:
            futures = {
                t: [runner.submit(reconcile_partition_task, {"part": p, "number": i}) for i, p in enumerate(parts)]
                for t, parts in slices.items()
            }
            return [merge_parts([f.result() for f in fs]) for fs in futures.values()]
    except (OSError, TimeoutError) as e:
        raise MigcheckError(
            f"--dask: no Dask scheduler answered at {address} ({type(e).__name__}); "
            "start the cluster or fix the address",
            transient=True,
        ) from None


@task(name="target-checks", cache_policy=NO_CACHE, **IO_RETRY)
def target_checks_task(target_url: str, cfg: RunConfig) -> TargetCheckPart:
    """The target checks, pushed down to the database."""
    return run_target_checks_on(target_url, cfg)


@task(name="write-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=_transient)
def finish_task(cfg, src, exp, tside, recon, target_part) -> ValidationResult:
    """Discrepancies, ledger, gates, report files, history."""
    return finish(cfg, src, exp, tside, recon, target_part)


def _artifact(result: ValidationResult, trial_load: str) -> None:
    s = result.summary
    verdict = "PASSED" if result.exit_code == 0 else "FAILED"
    rows = "\n".join(
        f"| {e} | {v['records_read']} | {v['migrated']} | {v['with_differences']} | {v['missing']} | "
        f"{v['unexpected']} | {v['rejected']} | {v['out_of_scope']} |"
        for e, v in s.get("entities", {}).items()
    )
    md = (
        f"# Trial load {trial_load}: {verdict}\n\n"
        f"errors **{result.errors}**, warnings **{result.warnings}**, ledger balanced: "
        f"**{result.ledger_balanced}**\n\nReport: `{result.out.resolve() / 'report.html'}`\n\n"
        "| entity | read | migrated | with differences | missing | unexpected | rejected | out of scope |\n"
        "|---|---|---|---|---|---|---|---|\n" + rows + "\n"
    )
    key = "validation-" + "".join(ch if ch.isalnum() else "-" for ch in trial_load.lower())
    create_markdown_artifact(markdown=md, key=key[:100], description=f"migcheck verdict for {trial_load}")


@flow(name="validate-trial-load", log_prints=False)
def validate_trial_load(
    source: str,
    trial_load: str,
    out: str,
    target: str = "env:MIGCHECK_TARGET_URL",
    baseline: str | None = None,
    history: str | None = None,
    migration: str | None = None,
    dask: str | None = None,
    partitions: int = 16,
) -> dict:
    """Validate one trial load and write its report.

    Reads the extract at ``source`` and the target database, reconciles, runs the target checks,
    and writes the report to ``out``.

    Args:
        source: extract directory (``pas/``, ``pcs/``).
        trial_load: the trial load's name, e.g. ``TL3``.
        out: report folder to write (replaced atomically).
        target: target database: ``env:NAME``, ``block:NAME`` (a Prefect Secret) or a URL without
            a password (default: the URL in ``$MIGCHECK_TARGET_URL``).
        baseline: an earlier report folder to mark findings new/persisting/resolved against.
        history: run-history database (same forms as target; default ``$MIGCHECK_HISTORY_URL`` or
            a SQLite file beside ``out``).
        migration: the migration the load belongs to (the trend groups by it).
        dask: address of a running Dask scheduler (``tcp://host:8786``; default
            ``$MIGCHECK_DASK_ADDRESS``); the child entities are then reconciled on that cluster,
            each cut into ``partitions`` parts by a hash of its parent ref.
        partitions: partitions per child entity on a Dask cluster (2–4× the cluster's worker threads).

    Returns the verdict: exit_code, errors, warnings, ledger_balanced, the report path and a
    one-line message. When a gate fails, the report is still written and the run ends Failed with
    that message (its data is the verdict), so automations and ``--watch`` can act on it.
    """
    log = get_run_logger()
    target_url = resolve_url(target, "--target", "MIGCHECK_TARGET_URL")
    if not target_url:
        raise MigcheckError("--target: no target database given (set MIGCHECK_TARGET_URL)")
    history_url = resolve_url(history, "--history", "MIGCHECK_HISTORY_URL")
    root = str(check_extract_root(Path(source)))
    cfg = prepare_task(trial_load, out, history_url, migration, baseline, root)
    log.info("validating %s against %s", trial_load, safe_url(target_url))
    check_tables_task(target_url)
    file_futures = [read_file_task.submit(root, s, n) for s, n in EXTRACT_FILES]
    table_futures = {t: read_table_task.submit(target_url, t) for t in REFERENCE_TABLES + DATA_TABLES}
    checks_future = target_checks_task.submit(target_url, cfg)
    src, exp = expected_task([f.result() for f in file_futures], root, cfg)
    del file_futures  # the parsed files: the largest thing a run holds
    tgt = logical_target_task({t: f.result() for t, f in table_futures.items()}, cfg)
    del table_futures
    persons, pmap = persons_task(exp, tgt)
    encounters, emap = encounters_task(exp, tgt, pmap)
    dask = dask or os.environ.get("MIGCHECK_DASK_ADDRESS") or None
    if dask:
        log.info("reconciling the child entities on the Dask cluster at %s, %s partitions each", dask, partitions)
        children = _children_on_dask(exp, tgt, cfg, pmap, emap, dask, partitions)
    else:
        child_futures = [child_task.submit(t, exp, tgt, cfg, pmap, emap) for t in CHILD_TABLES]
        children = [f.result() for f in child_futures]
    recon = combine([*persons, *encounters, *children])
    tside = target_side_task(exp, tgt)
    del tgt
    result = finish_task(cfg, src, exp, tside, recon, checks_future.result())
    _artifact(result, trial_load)
    verdict = _verdict(result)
    log.info("%s: %s", trial_load, verdict["message"])
    if result.exit_code != 0:
        # the run's state carries the verdict: automations and `prefect deployment run --watch` see it
        return Failed(message=verdict["message"], data=verdict)
    return verdict


def _verdict(result: ValidationResult) -> dict:
    """The verdict of a validation as the flow returns it (and the command line prints it)."""
    report = str(result.out.resolve() / "report.html")
    word = "PASSED" if result.exit_code == 0 else "FAILED (a gate failed)"
    return {
        "exit_code": result.exit_code,
        "errors": result.errors,
        "warnings": result.warnings,
        "ledger_balanced": result.ledger_balanced,
        "report": report,
        "message": f"{word}: {result.errors} errors, {result.warnings} warnings; "
        f"ledger balanced: {result.ledger_balanced}; report: {report}",
    }


def verdict_of(state) -> dict:  # noqa: ANN001 - a Prefect State
    """The verdict dict of a validate-trial-load run, also when its gate failed (a Failed state).

    A run that failed for another reason re-raises its error (a ``MigcheckError`` stays one).
    """
    value = state.result(raise_on_failure=False)
    if isinstance(value, BaseException):
        raise value
    return value


@task(name="write-extract", cache_policy=NO_CACHE, **IO_RETRY)
def write_extract(out: str, patients: int, seed: int, defects: str) -> dict:
    """Generate the synthetic extract files (into a new, empty or earlier generated folder only)."""
    folder = Path(out)
    claim_folder(folder, "extract", "--out", may_also_hold=EXTRACT_EXTRAS, create_parents=True)
    r = generate(folder, patients=patients, seed=seed, defects=defects)
    write_marker(folder, "extract", entries=["pas", "pcs", "defects.csv", *EXTRACT_EXTRAS])
    return {"out": str(r.out_dir), "records": r.records, "defects": r.defects}


#: what other commands write into a generated extract: the simulated load's ground truth
EXTRACT_EXTRAS = ("load_faults.csv",)
#: what the demo writes into its folder
DEMO_ENTRIES = ("extract", "target.db", "report", "migcheck-history.db", ".gitignore")


@task(name="load-target", cache_policy=NO_CACHE, **IO_RETRY)
def load_target(source: str, target_url: str, faults: str, seed: int) -> dict:
    """Create the target and load the extract into it."""
    r = simulate_trial_load(Path(source), target_url, faults=faults, seed=seed)
    return {"target": r.target, "rows": r.rows, "faults": r.faults}


@flow(name="generate-sample")
def generate_sample(out: str, patients: int = 500, seed: int = 1, defects: str = "default") -> dict:
    """Write a synthetic legacy extract (PAS + PCS) and its ground truth ``defects.csv`` to ``out``.

    Args:
        out: extract directory to write.
        patients: number of persons.
        seed: random seed (the same seed gives the same files).
        defects: ``default`` injects every source defect category; ``none`` writes a clean extract.
    """
    return write_extract(out, patients, seed, defects)


@flow(name="simulate-trial-load")
def simulate_trial_load_flow(
    source: str, target: str = "env:MIGCHECK_TARGET_URL", faults: str = "none", seed: int = 1
) -> dict:
    """Simulate the vendor's trial load of the extract at ``source`` into the ``target`` database.

    Args:
        source: extract directory; ``load_faults.csv`` is written there.
        target: ``env:NAME``, ``block:NAME`` or a URL without a password.
        faults: ``default`` injects load faults of every kind; ``none`` loads by the rules.
        seed: random seed of the faults.
    """
    url = resolve_url(target, "--target", "MIGCHECK_TARGET_URL")
    if not url:
        raise MigcheckError("--target: no target database given (set MIGCHECK_TARGET_URL)")
    return load_target(source, url, faults, seed)


@flow(name="demo")
def demo(out: str = "demo", patients: int = 300, seed: int = 1) -> dict:
    """Generate an extract, load it into an embedded SQLite target with faults, validate it.

    Args:
        out: working folder (extract/, target.db, report/).
        patients: number of persons.
        seed: random seed.
    """
    root = Path(out).resolve()
    claim_folder(root, "demo", "--out", create_parents=True)
    root.mkdir(exist_ok=True)
    # everything the demo writes is throw-away: keep it out of any git repository it lands in
    (root / ".gitignore").write_text("# written by migcheck demo\n*\n", encoding="utf-8")
    write_marker(root, "demo", entries=list(DEMO_ENTRIES))
    g = generate_sample(str(root / "extract"), patients, seed, "default")
    url = f"sqlite:///{root / 'target.db'}"
    load = simulate_trial_load_flow(str(root / "extract"), url, "default", seed)
    v = verdict_of(
        validate_trial_load(str(root / "extract"), "DEMO", str(root / "report"), target=url, return_state=True)
    )
    return {"extract": g, "load": load, "validation": v}
