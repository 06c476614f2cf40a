"""The Prefect flow ``archive-extract``: the preservation archive of an extract (``archive.md``).

The same ``write_archive`` the command line runs in-process; the flow logs counts and the
archive's path only, never a value of the archive.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from checks.errors import MigcheckError
from pipelines.io.archive import verify_archive, write_archive


@flow(name="archive-extract", log_prints=False)
def archive_extract(source: str, out: str, report: str | None = None, verify: bool = False) -> dict:
    """Write the preservation archive (a BagIt bag) of the extract at ``source`` to ``out``.

    Args:
        source: extract directory (``pas/``, ``pcs/``).
        out: archive folder to write: new or empty, outside ``source`` and any report folder.
        report: a validation report folder of this extract; its ``ledger.parquet`` joins the archive.
        verify: verify the bag once written (fixity and record counts); a problem fails the run.

    Returns what was written: path, records per file, payload size, whether the ledger is in.
    """
    log = get_run_logger()
    result = write_archive(Path(source), Path(out), Path(report) if report else None)
    log.info(
        "archived %d files, %d legacy records, to %s",
        len(result.records),
        sum(result.records.values()),
        result.path,
    )
    if verify:
        problems = verify_archive(result.path)
        if problems:
            raise MigcheckError(
                f"{result.path}: does not verify ({len(problems)} problems; see migcheck archive verify)", exit_code=1
            )
        log.info("the archive verifies: every checksum and record count")
    return result.to_dict()
