"""``migcheck validate``: read the extract and the target, compute, reconcile, check, report.

The I/O half: every computation is a pure function of ``checks/``. Outputs are written to a
temporary folder beside OUT and moved in when complete, so a crash leaves the previous report.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from checks.discrepancies import (
    apply_baseline,
    discrepancies,
    final_ledger,
    row_count_findings,
    source_findings,
    summarise,
    target_check_findings,
)
from checks.errors import MigcheckError
from checks.expected import compute_expected
from checks.mapping import load_mappings
from checks.reconcile import logical_target, reconcile
from checks.schemas import schema_findings
from pipelines.extract import read_extract
from pipelines.target_db import connect
from pipelines.target_read import read_target

log = logging.getLogger("migcheck.validate")


@dataclass(frozen=True)
class ValidationResult:
    """What a validation wrote and its verdict."""

    out: Path
    exit_code: int
    errors: int
    warnings: int
    ledger_balanced: bool
    timings: dict


def default_mappings_root() -> Path:
    """``mappings/`` of this checkout (or ``$MIGCHECK_MAPPINGS``)."""
    env = os.environ.get("MIGCHECK_MAPPINGS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "mappings"


def _file_findings(files: pl.DataFrame) -> pl.DataFrame:
    from checks.records import FILE_ENTITY

    rows = []
    for r in files.filter(pl.col("status") != "ok").iter_rows(named=True):
        sysname = r["file"].split("/")[0]
        rows.append(
            {
                "check": f"{FILE_ENTITY[r['file']]}.extract.file",
                "category": "row_count",
                "entity": FILE_ENTITY[r["file"]],
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
    return pl.DataFrame(
        rows,
        schema={
            "check": pl.String,
            "category": pl.String,
            "entity": pl.String,
            "source_system": pl.String,
            "source_ref": pl.String,
            "target_ref": pl.String,
            "column": pl.String,
            "expected": pl.String,
            "actual": pl.String,
            "message": pl.String,
            "_info": pl.Boolean,
        },
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
) -> ValidationResult:
    """Validate one trial load and write its report to ``out``."""
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = round(now - t, 3)
        t = now

    if not trial_load.strip():
        raise MigcheckError("--trial-load: give the trial load a name, e.g. TL3")
    m = load_mappings(mappings_root or default_mappings_root())
    as_of = as_of or dt.date.today()
    engine = connect(target_url)
    extract = read_extract(Path(source))
    lap("extract")
    exp = compute_expected(extract, m, as_of)
    lap("expected")
    raw_target = read_target(engine)
    lap("read_target")
    tgt = logical_target(raw_target, m)
    recon = reconcile(exp, tgt, m)
    lap("reconcile")
    parts = [
        source_findings(exp),
        schema_findings(extract.frames, exp.ledger),
        _file_findings(extract.files),
        row_count_findings(exp, tgt),
        recon.findings,
    ]
    gx_docs = None
    if target_checks:
        from checks.target_checks import build_target_checks
        from pipelines.gx_checks import run_target_checks

        checks = build_target_checks(m.code_value, m.nomenclature, engine.dialect.name)
        docs_dir = Path(tempfile.mkdtemp(prefix="migcheck-gx-"))
        run = run_target_checks(engine, checks, data_docs_dir=docs_dir)
        parts.append(target_check_findings(run.failures, recon.links))
        gx_docs = (docs_dir, run)
    lap("target_checks")
    disc = discrepancies(parts, trial_load, m)
    ledger = final_ledger(exp, recon, disc)
    if baseline is not None:
        disc = apply_baseline(disc, _read_baseline(Path(baseline)))
    records_read = sum(df.height for df in extract.frames.values()) + extract.unparseable.height
    summary = summarise(trial_load, exp, recon, tgt, ledger, disc, records_read, extract.files)
    lap("summarise")
    _write_outputs(Path(out), disc, ledger, summary.to_dict(), gx_docs)
    lap("write")
    engine.dispose()
    errors = disc.filter(pl.col("severity") == "error").height
    warnings = disc.filter(pl.col("severity") == "warning").height
    code = 0 if summary.gate_passed else 1
    return ValidationResult(Path(out), code, errors, warnings, summary.ledger_balanced, timings)


def _read_baseline(prev: Path) -> pl.DataFrame:
    path = prev / "discrepancies.parquet"
    try:
        return pl.read_parquet(path)
    except FileNotFoundError as e:
        raise MigcheckError(f"--baseline {prev}: no discrepancies.parquet there (not a migcheck report)") from e
    except Exception as e:  # noqa: BLE001 - a damaged file
        raise MigcheckError(f"--baseline {path}: cannot be read as Parquet") from e


def _write_outputs(out: Path, disc: pl.DataFrame, ledger: pl.DataFrame, summary: dict, gx_docs) -> None:
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as e:
        raise MigcheckError(f"--out {out}: cannot create the report folder ({e.strerror})") from e
    try:
        disc.write_parquet(tmp / "discrepancies.parquet")
        disc.write_csv(tmp / "discrepancies.csv")
        ledger.write_parquet(tmp / "ledger.parquet")
        (tmp / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
        )
        if gx_docs is not None:
            docs_dir, _run = gx_docs
            if docs_dir.exists():
                shutil.copytree(docs_dir, tmp / "gx_data_docs", dirs_exist_ok=True)
                shutil.rmtree(docs_dir, ignore_errors=True)
        old = None
        if out.exists():
            old = parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MigcheckError(f"--out {out}: cannot write the report ({e.strerror})") from e
