"""Prefect flows: the way the migration team runs migcheck (and the command line, with a server).

``validate-trial-load`` runs the one step sequence of ``pipelines.run.sequence`` with the Prefect
runner: each step a task (one per extract file, cached on its content; one per target table; the
child entities concurrently; retries only for I/O faults that may pass). The command line runs the
same sequence in-process with the local runner unless a Prefect server is configured.
``import-decisions`` brings the stewards' decisions back from the worklists
(``pipelines.io.decisions``, ``migcheck decisions import``).

Database settings arrive as ``env:NAME``, ``block:NAME`` or a URL without password
(``pipelines/io/settings.py``), so no secret is stored as a flow-run parameter or logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from prefect import State, flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture
from prefect.states import Failed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from checks.errors import MigcheckError
from pipelines.io.extract import check_extract_root
from pipelines.io.notify import notify_setting
from pipelines.io.settings import resolve_url
from pipelines.io.target_db import safe_url
from pipelines.run.prefect_runner import PrefectRunner
from pipelines.run.sequence import ValidateArgs, default_workers, validate
from pipelines.run.validate import ValidationResult


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


#: as many task threads as the local runner has, and one that waits for the target checks' process
#: (D91): each thread holds one file block, table batch or partition, so they set the peak. (The
#: cast: ``TaskRunner`` is invariant in its future type, which ``flow`` declares as the base one.)
_TASK_THREADS = cast("TaskRunner[PrefectFuture[Any]]", ThreadPoolTaskRunner(max_workers=default_workers() + 1))


@flow(name="validate-trial-load", log_prints=False, task_runner=_TASK_THREADS)
def validate_trial_load(
    source: str,
    trial_load: str,
    out: str,
    target: str = "env:MIGCHECK_TARGET_URL",
    baseline: str | None = None,
    history: str | None = None,
    migration: str | None = None,
    dask: str | None = None,
    partitions: int = 0,
    work: str | None = None,
    notify: str | None = None,
    archive: str | None = None,
) -> dict | State:
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
            ``$MIGCHECK_DASK_ADDRESS``); the partitions are then computed and reconciled on that
            cluster, each a task (the work folder beside ``out`` must be readable by its workers).
        partitions: how many partitions by person the records other than persons and encounters
            are cut into (0: about one per 48 MiB of extract; the report is the same for any number).
        work: where the partitions are staged during the run: a folder or an fsspec URL that every
            Dask worker reaches (default: beside ``out``); removed when the run ends.
        notify: ``block:NAME`` or ``block:TYPE/NAME``, a Prefect notification block (Teams, Slack,
            e-mail, a webhook) told the verdict, the counts and the report's path once the report is
            written (default ``$MIGCHECK_NOTIFY``; none: no message). A failure to notify is a
            warning in the run's log, never a failed run.
        archive: a preservation archive (``migcheck archive``): every legacy record of the extract
            is checked against it, and the bag's fixity too; the ledger gains ``archived``.

    Returns the verdict: exit_code, errors, warnings, ledger_balanced, the report path and a
    one-line message. When a gate fails, the report is still written and the run ends Failed with
    that message (its data is the verdict), so automations and ``--watch`` can act on it.
    """
    log = get_run_logger()
    notify = notify_setting(notify)  # checked before any work
    target_url = resolve_url(target, "--target", "MIGCHECK_TARGET_URL")
    if not target_url:
        raise MigcheckError("--target: no target database given (set MIGCHECK_TARGET_URL)")
    history_url = resolve_url(history, "--history", "MIGCHECK_HISTORY_URL")
    check_extract_root(Path(source))
    log.info("validating %s against %s", trial_load, safe_url(target_url))
    dask = dask or os.environ.get("MIGCHECK_DASK_ADDRESS") or None
    if dask:
        log.info("computing the partitions on the Dask cluster at %s", dask)
    args = ValidateArgs(
        source=Path(source),
        target_url=target_url,
        trial_load=trial_load,
        out=Path(out),
        baseline=Path(baseline) if baseline else None,
        history_url=history_url,
        migration=migration,
        dask=dask,
        partitions=partitions,
        work=work,
        notify=notify,
        archive=archive,
    )
    result = validate(PrefectRunner(), args)
    _artifact(result, trial_load)
    verdict = result.verdict()
    log.info("%s: %s", trial_load, verdict["message"])
    if result.exit_code != 0:
        # the run's state carries the verdict: automations and `prefect deployment run --watch` see it
        return Failed(message=verdict["message"], data=verdict)
    return verdict


def verdict_of(state) -> dict:  # noqa: ANN001 - a Prefect State
    """The verdict dict of a validate-trial-load run, also when its gate failed (a Failed state).

    A run that failed for another reason re-raises its error (a ``MigcheckError`` stays one).
    """
    value = state.result(raise_on_failure=False)
    if isinstance(value, BaseException):
        raise value
    return value


@flow(name="import-decisions", log_prints=False)
def import_decisions_flow(
    worklists: list[str],
    mappings: str | None = None,
    history: str | None = None,
) -> dict | State:
    """Import the stewards' decisions and code-map review from worklists (``migcheck decisions import``).

    Args:
        worklists: the workbooks, ``OUT/worklists/*.xlsx`` of validation reports (the findings
            worklists and ``code-map-review.xlsx``), as the stewards saved them.
        mappings: the mappings folder whose code maps a code-map review updates (default: the
            project's, or ``$MIGCHECK_MAPPINGS``).
        history: run-history database: ``env:NAME``, ``block:NAME`` or a URL without a password
            (default ``$MIGCHECK_HISTORY_URL``, else the ``migcheck-history.db`` beside the report).

    Returns what was imported: ``lines`` (decisions per word and owner, code map entries added and
    updated), ``diffs`` (the unified diff of every code map file changed) and empty ``problems``.
    With any problem nothing is imported and the run ends Failed, its data listing every problem
    (file, sheet, row).
    """
    from pipelines.io.decisions import import_decisions

    log = get_run_logger()
    history_url = resolve_url(history, "--history", "MIGCHECK_HISTORY_URL")
    paths = [Path(p) for p in worklists]
    result = import_decisions(paths, Path(mappings) if mappings else None, history_url).to_dict()
    for line in result["problems"]:
        log.error("%s", line)
    if result["problems"]:
        n = len(result["problems"])
        return Failed(message=f"{n} problem(s) in the worklists: nothing imported", data=result)
    for line in result["lines"]:
        log.info("%s", line)
    return result
