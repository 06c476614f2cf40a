"""``migcheck validate``: read the extract and the target, compute, reconcile, check, report.

The I/O half: every computation is a pure function of ``checks/``. Outputs are written to a
temporary folder beside OUT and moved in when complete, so a crash leaves the previous report.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl
import sqlalchemy as sa

from checks.archive import archive_counts, archive_findings, compare_archive
from checks.catalogue import EXTRACT_FILE, checks_run
from checks.code_map_review import USAGE_SCHEMA, coverage, merge_usage, review_findings, review_rows
from checks.decisions import decision_counts, latest_decisions, with_decisions
from checks.discrepancies import (
    apply_baseline,
    discrepancies,
    owner,
    row_count_findings,
    source_findings,
    status_totals,
    summarise,
    target_check_findings,
)
from checks.errors import MigcheckError
from checks.expected import TABLE_ORDER, unparseable_findings
from checks.findings import FINDING_SCHEMA_INFO
from checks.frames import Discrepancy
from checks.gates import GateConfig, evaluate_gates, load_gates
from checks.mapping import Mappings, load_mappings
from checks.reconcile import Reconciliation
from checks.suggest import rank_unmapped
from checks.summary import Summary
from checks.waivers import apply_waivers, decision_waivers, load_waivers
from pipelines.io.history import decision_trail, open_history, previous_findings, record_run, trend, waiver_rows
from pipelines.io.outputs import claim_folder, open_up, write_marker
from pipelines.io.settings import default_mappings_root
from pipelines.io.target_db import connect, safe_url
from pipelines.run.processes import WorkerProcess
from pipelines.run.staging import write_ledger
from pipelines.run.target_step import TargetCheckPart


@dataclass(frozen=True)
class ValidationResult:
    """What a validation wrote and its verdict."""

    out: Path
    exit_code: int
    errors: int
    warnings: int
    ledger_balanced: bool
    timings: dict  # stage → seconds (the local runner's)
    summary: dict = field(default_factory=dict)

    def verdict(self) -> dict:
        """The verdict as flows return it and the command line prints it (``message``: one line)."""
        report = str(self.out.resolve() / "report.html")
        word = "PASSED" if self.exit_code == 0 else "FAILED (a gate failed)"
        return {
            "exit_code": self.exit_code,
            "errors": self.errors,
            "warnings": self.warnings,
            "ledger_balanced": self.ledger_balanced,
            "records_read": self.summary.get("records_read"),
            "report": report,
            "message": f"{word}: {self.errors} errors, {self.warnings} warnings; "
            f"ledger balanced: {self.ledger_balanced}; report: {report}",
        }


def _file_findings(files: pl.DataFrame) -> pl.DataFrame:
    from checks.records import FILE_ENTITY

    rows = []
    for r in files.filter(pl.col("status") != "ok").iter_rows(named=True):
        sysname = r["file"].split("/")[0]
        chk = EXTRACT_FILE[FILE_ENTITY[r["file"]]]
        rows.append(
            {
                "check": chk.id,
                "category": chk.category,
                "entity": chk.entity,
                "source_system": sysname,
                "source_ref": None,
                "target_ref": None,
                "column": None,
                "expected": None,
                "actual": "0",
                "message": f"{r['file']} is {r['status']}: 0 records read from it",
                "_info": r["status"] == "empty",
            }
        )
    return pl.DataFrame(rows, schema=FINDING_SCHEMA_INFO)


@dataclass(frozen=True)
class RunConfig:
    """Everything a validation run is configured with, checked before any data is read."""

    trial_load: str
    out: Path
    migration: str
    mappings: Mappings
    gates: GateConfig
    waivers: list
    as_of: dt.date
    history_url: str
    baseline: Path | None
    target_checks: bool


def prepare(
    trial_load: str,
    out: Path,
    mappings_root: Path | None = None,
    as_of: dt.date | None = None,
    target_checks: bool = True,
    history_url: str | None = None,
    migration: str | None = None,
    baseline: Path | None = None,
    source: Path | None = None,
) -> RunConfig:
    """Check every argument and path, and load the configuration (mappings, gates, waivers).

    Everything that can be known before reading data is checked here, so that a wrong option stops
    the run at once with one line naming it: the report folder (``claim_folder``: never one that is
    not migcheck's, nor the extract), the history database, the baseline, the mappings.
    """
    if not trial_load.strip():
        raise MigcheckError("--trial-load: give the trial load a name, e.g. TL3")
    mroot = Path(mappings_root or default_mappings_root())
    if not mroot.is_dir():
        raise MigcheckError(f"--mappings {mroot}: no such folder")
    out = Path(out)
    claim_folder(out, "report", "--out", reads={"--source": source, "--mappings": mroot})
    if baseline is not None and not (Path(baseline) / "discrepancies.parquet").exists():
        raise MigcheckError(f"--baseline {baseline}: no discrepancies.parquet there (not a migcheck report)")
    history = history_url or os.environ.get("MIGCHECK_HISTORY_URL") or _default_history(out)
    _check_history(history, out)
    return RunConfig(
        trial_load=trial_load,
        out=out,
        migration=migration or os.environ.get("MIGCHECK_MIGRATION") or "default",
        mappings=load_mappings(mroot),
        gates=load_gates(mroot / "gates.yaml"),
        waivers=load_waivers(mroot / "waivers.yaml"),
        as_of=as_of or dt.date.today(),
        history_url=history,
        baseline=Path(baseline) if baseline is not None else None,
        target_checks=target_checks,
    )


def _check_history(url: str, out: Path) -> None:
    """The history database answers, and (SQLite) does not live inside the report folder it outlives."""
    u = sa.engine.make_url(url) if "://" in url else None
    if u is not None and u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        db = Path(u.database).expanduser().resolve()
        report = out.expanduser().resolve()
        if report == db or report in db.parents:
            raise MigcheckError(f"--history {safe_url(u)}: lies inside --out {out}, which each run replaces")
    connect(url, setting="--history").dispose()


@dataclass(frozen=True)
class SourceSide:
    """What the report needs of the extract: taken as it is read, so the extract itself can go."""

    findings: list[pl.DataFrame]  # source findings, schema (implausible) findings, file findings
    unmapped: pl.DataFrame  # unmapped codes with suggested mappings
    records_read: int
    files: pl.DataFrame
    #: per code map entry, the records relying on it (``checks.code_map_review.code_map_usage``)
    code_maps: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=USAGE_SCHEMA))


@dataclass(frozen=True)
class TargetSide:
    """What the report needs of the row counts of the expected and the target tables."""

    findings: pl.DataFrame  # row_count per entity and system
    found: dict[str, int]  # rows per target table
    expected: pl.DataFrame  # table_counts of the expected tables


@dataclass(frozen=True)
class HeldLedger:
    """Where the final ledger's rows wait to be written: slices in the work folder, and the unreadable lines.

    ``pipelines.run.staging.settle`` wrote the slices, ``write_ledger`` streams them in extract order.
    """

    work: str
    kinds: list[str]  # the record kinds in ledger order
    pieces: dict[str, dict[int, list[str]]]  # per kind and slice, the units that wrote it (``ledger_pieces``)
    unparseable: pl.DataFrame  # the lines no reader could read (their ledger rows come last)


@dataclass(frozen=True)
class ExpectedSide:
    """What the report needs of the expected target: the ledger's held rows, rows per table."""

    ledger: HeldLedger
    rows: dict[str, int]


def source_side(cfg: RunConfig, parents, merged, staged_files: list) -> SourceSide:  # noqa: ANN001
    """The report's part of the extract.

    From the parents (``SourceParents``), the merged partitions (``Merged``) and the staged files
    (``StagedFile``, in extract order).
    """
    unp = unparseable_lines(staged_files)
    findings = pl.concat([parents.findings, merged.findings, unparseable_findings(unp)], how="vertical_relaxed")
    files = pl.DataFrame(
        [f.file for f in staged_files], schema={"file": pl.String, "status": pl.String, "records": pl.Int64}
    )
    usage = merge_usage([parents.code_maps, merged.code_maps])
    return SourceSide(
        findings=[
            source_findings(findings),
            parents.schema,
            _file_findings(files),
            review_findings(usage, cfg.mappings),
        ],
        unmapped=rank_unmapped(pl.concat([parents.unmapped, merged.unmapped]), cfg.mappings),
        records_read=sum(f.rows for f in staged_files) + unp.height,
        files=files,
        code_maps=usage,
    )


def unparseable_lines(staged_files: list) -> pl.DataFrame:
    """The lines no reader could read, of every staged file (``StagedFile.unparseable``), in extract order."""
    return pl.concat([f.unparseable for f in staged_files])


def target_side(expected: pl.DataFrame, actual: pl.DataFrame) -> TargetSide:
    """The report's part of the row counts (``table_counts`` of the expected and the target tables)."""
    found = {t: int(n) for t, n in actual.group_by("table").agg(pl.col("actual").sum()).iter_rows()}
    return TargetSide(row_count_findings(expected, actual, TABLE_ORDER), found, expected)


def expected_rows(expected: pl.DataFrame) -> dict[str, int]:
    """Expected rows per table, from its ``table_counts``."""
    got = {t: int(n) for t, n in expected.group_by("table").agg(pl.col("expected").sum()).iter_rows()}
    return {t: got.get(t, 0) for t in TABLE_ORDER}


def report_findings(
    cfg: RunConfig,
    src: SourceSide,
    tside: TargetSide,
    recon: Reconciliation,
    target_part: TargetCheckPart,
    links: pl.DataFrame | None,
    archive: ArchiveCheck | None = None,
) -> pl.DataFrame:
    """Every finding of the run as the report's discrepancies (before the baseline is applied).

    ``links``: the reconciliation's links of the target rows a target check failed
    (``pipelines.run.staging.held_links``; None where none failed), so each such finding names
    its legacy record.
    """
    parts = [*src.findings, tside.findings, recon.findings]
    if links is not None:
        parts.append(target_check_findings(target_part.failures, links))
    if archive is not None:
        parts.append(archive.findings)
    return discrepancies(parts, cfg.trial_load, cfg.mappings)


@dataclass(frozen=True)
class ReportDraft:
    """The report begun: its temporary folder, the findings as the report shows them, the code-map review.

    ``draft_report`` makes it as soon as the discrepancies are known, so that the worklists
    (``write_report_worklists``) are written while the units settle and ``finish`` writes the
    other files; ``publish`` moves the folder in. ``discard_draft`` removes the folder of a run
    that stopped before.
    """

    tmp: Path  # beside --out, moved in when complete
    disc: pl.DataFrame  # with the baseline's status, validated (``Discrepancy``)
    view: pl.DataFrame  # with owner, waivers and stewards' decisions
    waivers: dict
    decisions: int  # rows of the decision trail
    review: pl.DataFrame  # the code-map review rows


def draft_report(cfg: RunConfig, disc: pl.DataFrame, src: SourceSide) -> ReportDraft:
    """Discrepancies (``report_findings``) → baseline, waivers and decisions; the report's folder made.

    The previous findings come from ``--baseline`` or the history; the waivers from
    ``mappings/waivers.yaml`` and then the stewards' decisions (D58).
    """
    history = open_history(cfg.history_url)
    try:
        previous = (
            _read_baseline(cfg.baseline)
            if cfg.baseline is not None
            else previous_findings(history, cfg.migration, cfg.trial_load)
        )
        if previous is not None:
            disc = apply_baseline(disc, previous)
        # the boundary into the writers and the history: the contract's rows, validated (the
        # ledger's where each unit is settled)
        disc = Discrepancy.validate(disc)
        trail = decision_trail(history, cfg.migration)
        waivers = [*cfg.waivers, *decision_waivers(waiver_rows(history, cfg.migration))]
    finally:
        history.dispose()
    view, waiver_report = apply_waivers(disc.with_columns(owner().alias("owner")), waivers, cfg.as_of)
    view = with_decisions(view, latest_decisions(trail), cfg.trial_load)
    review = review_rows(src.unmapped, src.code_maps, cfg.mappings)
    return ReportDraft(_prepare(cfg.out), disc, view, waiver_report, trail.height, review)


def write_report_worklists(draft: ReportDraft, trial_load: str) -> None:
    """The owners' worklists and the code-map review (``worklists/``), into the draft's folder.

    Python, cell by cell: a step of its own, written while the units settle and ``finish`` writes
    the ledger (polars).
    """
    from pipelines.report.excel import write_code_map_review, write_worklists

    try:
        write_worklists(draft.tmp, draft.view)
        write_code_map_review(draft.tmp, draft.review, trial_load)
    except OSError as e:
        raise MigcheckError(f"--out: cannot write the report ({e.strerror})") from e


def discard_draft(draft: ReportDraft | None) -> None:
    """The draft's folder removed, if it is still there (it is not once ``publish`` moved it in)."""
    if draft is not None:
        shutil.rmtree(draft.tmp, ignore_errors=True)


@dataclass(frozen=True)
class FinishedReport:
    """A report folder complete but for the worklists, not yet moved in (``finish``)."""

    draft: ReportDraft
    totals: dict
    summary: dict


def finish(
    cfg: RunConfig,
    draft: ReportDraft,
    src: SourceSide,
    exp: ExpectedSide,
    tside: TargetSide,
    recon: Reconciliation,
    target_part: TargetCheckPart,
    timings: dict[str, float] | None = None,
    archive: ArchiveCheck | None = None,
) -> FinishedReport:
    """The report's files but the worklists: the ledger, gates, summary, page, CSV, JUnit.

    ``draft``: ``draft_report``'s; its worklists (``write_report_worklists``) may still be written
    meanwhile: ``publish`` waits for them. The ledger is streamed from the work folder into the
    report (``write_ledger``) and the summary counts what it wrote. ``timings``: seconds per stage
    of the run so far, for the summary; ``archive``: the check against the preservation archive
    (``--archive``), whose findings are among the discrepancies and whose pairs gave the ledger's
    ``archived`` column.

    The folder is left where it is, incomplete: ``publish`` moves it in.
    """
    m = cfg.mappings
    tmp, disc, view = draft.tmp, draft.disc, draft.view
    history = open_history(cfg.history_url)
    try:
        held = exp.ledger
        try:
            counts = write_ledger(
                tmp / "ledger.parquet",
                held.work,
                held.kinds,
                held.pieces,
                held.unparseable,
                archive.intact if archive is not None else None,
            )
        except OSError as e:
            raise MigcheckError(f"--out: cannot write the report ({e.strerror})") from e
        denominators = {e: int(n) for e, n in counts.group_by("entity").agg(pl.col("len").sum()).iter_rows()}
        denominators |= {t: exp.rows[t] for t in ("person_alias", "encntr_alias")}
        gates = evaluate_gates(view, checks_run(m, [c for c, _ in target_part.check_ids]), denominators, cfg.gates)
        open_disc = disc.filter(pl.col("status") != "resolved")
        summary = summarise(
            cfg.trial_load, exp.rows, recon, tside.found, counts, open_disc, src.records_read, src.files
        ).to_dict()
        totals = {
            **status_totals(view),
            "gate_passed": bool(gates["passed"].all()),
            "ledger_balanced": summary["ledger_balanced"],
        }
        summary.update(
            migration=cfg.migration,
            gates=gates.to_dicts(),
            gate_passed=totals["gate_passed"],
            waivers=draft.waivers,
            totals=totals,
            trend=_dedupe_trend([*trend(history, cfg.migration), _trend_point(cfg.trial_load, totals)]),
            timings=timings or {},
            decisions=decision_counts(view, draft.decisions),
            code_maps=coverage(src.code_maps, m),
            archive=_archive_summary(archive, counts),
        )
        # one typed model (checks.summary): a field missing, unknown or of the wrong type stops here
        model = Summary.model_validate(summary)
        summary = model.model_dump(mode="json")
        _write_outputs(tmp, disc, view, model, gates, src.unmapped)
    finally:
        history.dispose()
    return FinishedReport(draft, totals, summary)


def publish(cfg: RunConfig, report: FinishedReport) -> ValidationResult:
    """The run recorded in the history and the report moved in; its worklists written (``write_report_worklists``).

    The folder is moved in only when complete, and the run recorded in the same step.
    """
    tmp, totals, summary = report.draft.tmp, report.totals, report.summary
    history = open_history(cfg.history_url)
    try:
        try:
            record_run(history, cfg.migration, cfg.trial_load, report.draft.disc, totals)
            _move_in(tmp, cfg.out, cfg.trial_load)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        history.dispose()
    code = 0 if totals["gate_passed"] else 1
    return ValidationResult(
        cfg.out, code, totals["errors"], totals["warnings"], summary["ledger_balanced"], {}, summary
    )


def run_validation(
    source: Path,
    target_url: str,
    trial_load: str,
    out: Path,
    baseline: Path | None = None,
    mappings_root: Path | None = None,
    as_of: dt.date | None = None,
    target_checks: bool = True,
    history_url: str | None = None,
    migration: str | None = None,
    *,
    dask: str | None = None,
    partitions: int = 0,
    work: str | None = None,
    progress=None,  # noqa: ANN001 - a pipelines.run.progress.Progress
    worker_process: bool = False,
    notify: str | None = None,
    archive: str | None = None,
    worker: WorkerProcess | None = None,
) -> ValidationResult:
    """Validate one trial load and write its report to ``out``, in this process (no Prefect).

    The step sequence of ``pipelines.run.sequence`` with the local runner: the same steps, in the
    same order, as the Prefect flow ``validate-trial-load``. The target checks run in the database
    while this process reads and reconciles. ``timings``: seconds per stage.

    ``worker_process``: run the target checks in a worker process of their own rather than a
    thread (faster: Great Expectations holds the interpreter lock). The command line does; a
    script that asks for it must guard its own code with ``if __name__ == "__main__":``, as
    Python's ``spawn`` start method requires. ``worker``: such a process started ahead
    (``pipelines.run.processes.WorkerProcess``), as the command line does before it imports this
    module; it is closed with the run.

    ``notify``: ``block:[TYPE/]NAME``, a Prefect notification block told the verdict once the
    report is written (``pipelines.io.notify``; a failure to notify is a warning, never an error).
    ``archive``: a preservation archive (``migcheck archive``) every legacy record is checked against.
    """
    from pipelines.run.local import LocalRunner
    from pipelines.run.sequence import ValidateArgs, validate

    args = ValidateArgs(
        source=Path(source),
        target_url=target_url,
        trial_load=trial_load,
        out=Path(out),
        baseline=Path(baseline) if baseline is not None else None,
        history_url=history_url,
        migration=migration,
        mappings_root=Path(mappings_root) if mappings_root is not None else None,
        as_of=as_of,
        target_checks=target_checks,
        dask=dask,
        partitions=partitions,
        work=work,
        notify=notify,
        archive=archive,
    )
    runner = LocalRunner(progress=progress, worker_process=worker_process, worker=worker)
    try:
        result = validate(runner, args)
    finally:
        runner.close()
        if progress is not None:
            progress.close()
    return replace(result, timings=runner.timings())


@dataclass(frozen=True)
class ArchiveCheck:
    """The extract checked against the preservation archive (``check_archive``)."""

    archive: str
    findings: pl.DataFrame  # FINDING_SCHEMA: records missing or altered, fixity problems
    intact: pl.DataFrame  # source_ref, intact: records of each ref the archive holds unchanged
    fixity_ok: bool


def check_archive_path(archive: str, out: Path) -> None:
    """``--archive`` names a migcheck archive (a bag with its access copy) outside ``--out``, or one line."""
    path = Path(archive)
    if not path.is_dir():
        raise MigcheckError(f"--archive {archive}: no such archive folder")
    if not (path / "bagit.txt").is_file() or not (path / "data" / "records").is_dir():
        raise MigcheckError(f"--archive {archive}: is not a migcheck archive (no bagit.txt or data/records/)")
    if path.resolve() == Path(out).resolve() or Path(out).resolve() in path.resolve().parents:
        raise MigcheckError(f"--archive {archive}: lies inside --out {out}; an archive is never in a report folder")


def check_archive(root: str, archive: str) -> ArchiveCheck:
    """Every legacy record of the extract against the archive's access copy, and the bag's fixity.

    Both sides are named and hashed by the same code (``pipelines.io.archive``); the comparison
    is ``checks.archive``. Nothing of the archive's content leaves this function but refs.
    """
    from pipelines.io.archive import archive_records, record_hashes, verify_archive

    fixity = verify_archive(Path(archive))
    cmp = compare_archive(record_hashes(Path(root)), archive_records(Path(archive)).collect())
    return ArchiveCheck(archive, archive_findings(cmp, fixity), cmp.intact, not fixity)


def _archive_summary(archive: ArchiveCheck | None, counts: pl.DataFrame) -> dict | None:
    if archive is None:
        return None
    per = archive_counts(counts)
    return {
        "archive": archive.archive,
        "intact": archive.fixity_ok,
        "lost": sum(c["neither"] for c in per.values()),
        "entities": per,
    }


def _default_history(out: Path) -> str:
    return f"sqlite:///{out.resolve().parent / 'migcheck-history.db'}"


def _trend_point(trial_load: str, totals: dict) -> dict:
    """The run as a trend point, the same fields as a run stored in the history."""
    point = dict(totals)
    return {"trial_load": trial_load, "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **point}


def _dedupe_trend(points: list[dict]) -> list[dict]:
    latest: dict[str, dict] = {}
    for p in points:
        latest[p["trial_load"]] = p
    return list(latest.values())


def _read_baseline(prev: Path) -> pl.DataFrame:
    path = prev / "discrepancies.parquet"
    try:
        return pl.read_parquet(path)
    except FileNotFoundError as e:
        raise MigcheckError(f"--baseline {prev}: no discrepancies.parquet there (not a migcheck report)") from e
    except Exception as e:  # noqa: BLE001 - a damaged file
        raise MigcheckError(f"--baseline {path}: cannot be read as Parquet") from e


def _prepare(out: Path) -> Path:
    """A temporary folder beside ``out`` to write the report into (moved in when complete)."""
    parent = out.resolve().parent
    try:
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as e:
        raise MigcheckError(f"--out {out}: cannot create the report folder ({e.strerror})") from e


def _write_outputs(tmp: Path, disc, view, summary: Summary, gates, unmapped) -> None:
    from pipelines.report.csv import write_csv
    from pipelines.report.html import write_report_html
    from pipelines.report.junit import write_junit

    try:
        disc.write_parquet(tmp / "discrepancies.parquet")
        write_csv(disc, tmp / "discrepancies.csv")  # for spreadsheets: formulas neutralised
        (tmp / "summary.json").write_text(
            json.dumps(summary.model_dump(mode="json"), indent=2, ensure_ascii=False), encoding="utf-8"
        )
        write_csv(unmapped.with_columns(pl.col(pl.List(pl.String)).list.join(" | ")), tmp / "unmapped_codes.csv")
        write_junit(tmp / "junit.xml", gates, summary.trial_load)
        write_report_html(tmp, view, summary, unmapped)
    except OSError as e:
        raise MigcheckError(f"--out: cannot write the report ({e.strerror})") from e


def _move_in(tmp: Path, out: Path, trial_load: str) -> None:
    """Mark the finished report, then replace ``out`` by it.

    ``out`` is checked again first (someone may have put a file into it while the run went on); the
    old report is removed only once the new one is in. The folder gets the umask's permissions
    (``mkdtemp`` made it owner-only).
    """
    write_marker(tmp, "report", trial_load=trial_load)
    open_up(tmp)
    claim_folder(out, "report", "--out")
    parent = out.resolve().parent
    old = None
    try:
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=parent))
            out.rename(old / "report")
        tmp.rename(out)
    except OSError as e:
        if old is not None and not out.exists():
            (old / "report").rename(out)
        raise MigcheckError(f"--out {out}: cannot move the report in ({e.strerror})") from e
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
