"""The ``migcheck`` command line (``shared/spec/README.md``): the one place that prints and exits.

Every ``MigcheckError`` raised anywhere becomes one line on stderr and its exit code (2 for a run
that cannot be done). An unexpected error is reported in one line too, without a traceback and
without values from the data; ``MIGCHECK_DEBUG=1`` shows the traceback for developers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

# Before polars is loaded: its allocator (jemalloc) keeps freed pages for reuse for 2 s, in one
# arena per core, and then hands them back to the system at once. A partition's frames are freed
# and allocated again step after step; pages handed back sooner were faulted in again, which cost
# a fifth of the run's CPU (D99, replacing D82's 0.1 s; measured in benchmarks/RESULTS.md). A
# setting of the user's own is kept.
os.environ.setdefault(
    "_RJEM_MALLOC_CONF",
    f"background_thread:true,dirty_decay_ms:2000,muzzy_decay_ms:0,narenas:{max(1, os.cpu_count() or 1)}",
)

from checks.errors import MigcheckError
from pipelines.io.outputs import version


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and a MigcheckError (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise MigcheckError(f"{message} (see {self.prog} --help)")


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from e
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {v}")
    return v


def _positive_int(text: str) -> int:
    v = _nonneg_int(text)
    if v == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


EXIT_CODES = """exit codes:
  0  done (validate: validation ran and no gate failed)
  1  validate: validation ran and a gate failed (the report is written)
  2  the run could not be done: bad arguments, unreadable input, unreachable database;
     one line on stderr names the file or option to fix"""

SETTINGS = """database settings (--target, --history) take one of:
  sqlite:///PATH or postgresql+psycopg://USER@HOST/DB   a SQLAlchemy URL (no password in it, please)
  env:NAME                                               the URL is in environment variable NAME
  block:NAME                                             the URL is in the Prefect Secret block NAME"""

EXAMPLES = {
    "generate": "example:\n  migcheck generate --out work/extract --patients 2000 --seed 1",
    "trial-load": "example:\n"
    "  migcheck trial-load --source work/extract --target sqlite:///work/target.db --faults default",
    "validate": "examples:\n"
    "  migcheck validate --source work/extract --target sqlite:///work/target.db --trial-load TL1 --out work/tl1\n"
    "  # ~/.migcheck-target (chmod 600) holds the URL with its password: kept out of ps and shell history\n"
    '  MIGCHECK_TARGET_URL="$(cat ~/.migcheck-target)" \\\n'
    "  migcheck validate --source /data/tl2 --target env:MIGCHECK_TARGET_URL --trial-load TL2 \\\n"
    "      --out /data/reports/tl2 --baseline /data/reports/tl1",
    "demo": "example:\n  migcheck demo --out demo",
    "archive": "examples:\n"
    "  migcheck archive --source /data/extracts/tl3 --out /archive/tl3 --report /data/reports/tl3\n"
    "  migcheck archive verify /archive/tl3\n\n"
    "archive verify exits 0 when the archive is intact, 1 with one line per problem (a file altered,\n"
    "missing or added; record counts that differ), 2 when it cannot be read at all",
    "decisions": "examples:\n"
    "  migcheck decisions import work/tl1/worklists/*.xlsx\n"
    "  migcheck decisions import /data/reports/tl2/worklists/*.xlsx --history env:MIGCHECK_HISTORY_URL \\\n"
    "      --mappings /data/mappings",
}


def _epilog(command: str | None) -> str:
    parts = [EXAMPLES[command]] if command else []
    if command in ("trial-load", "validate", "decisions"):
        parts.append(SETTINGS)
    parts.append(EXIT_CODES)
    return "\n\n".join(parts)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="migcheck",
        description="Validate trial loads of legacy PAS/PCS data into the Millennium-like target.",
        epilog="run 'migcheck COMMAND --help' for a command's options and an example\n\n" + _epilog(None),
        formatter_class=fmt,
    )
    p.add_argument("--version", action="version", version=f"migcheck {version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text, description=help_text, epilog=_epilog(name), formatter_class=fmt)
        c.add_argument(
            "--prefect",
            action="store_true",
            help="run as a Prefect flow, recorded by the Prefect server (default when PREFECT_API_URL is set; "
            "else the command runs in this process, no server needed)",
        )
        if name in ("validate", "demo"):
            c.add_argument("--quiet", action="store_true", help="no progress display, only the verdict")
        return c

    g = command("generate", "write a synthetic legacy extract and its defects.csv")
    g.add_argument("--out", required=True, type=Path, help="extract folder to write (new, empty or generated before)")
    g.add_argument("--patients", type=_positive_int, default=500, help="number of persons (default 500)")
    g.add_argument("--seed", type=_nonneg_int, default=1, help="random seed (default 1)")
    g.add_argument("--defects", choices=["none", "default"], default="default", help="inject source defects")

    t = command("trial-load", "simulate the vendor's trial load into a target database")
    t.add_argument("--source", required=True, type=Path, help="extract folder (load_faults.csv is written there)")
    t.add_argument("--target", required=True, help="target database: URL, env:NAME or block:NAME (see below)")
    t.add_argument("--faults", choices=["none", "default"], default="none", help="inject load faults")
    t.add_argument("--seed", type=_nonneg_int, default=1, help="random seed of the faults (default 1)")
    t.add_argument("--mappings", type=Path, default=None, help="mappings folder (default: the project's)")

    v = command("validate", "validate a trial load and write the report")
    v.add_argument("--source", required=True, type=Path, help="extract folder")
    v.add_argument("--target", required=True, help="target database: URL, env:NAME or block:NAME (see below)")
    v.add_argument("--trial-load", required=True, help="name of the trial load, e.g. TL3")
    v.add_argument(
        "--out",
        required=True,
        type=Path,
        help="report folder: new, empty, or an earlier migcheck report (replaced); its parent must exist",
    )
    v.add_argument("--baseline", type=Path, default=None, help="an earlier report folder to compare with")
    v.add_argument("--mappings", type=Path, default=None, help="mappings folder (default: the project's)")
    v.add_argument(
        "--history",
        default=None,
        help="run-history database: URL, env:NAME or block:NAME (default: $MIGCHECK_HISTORY_URL, else "
        "sqlite:///<folder of OUT>/migcheck-history.db)",
    )
    v.add_argument(
        "--migration",
        default=None,
        help="migration the trial load belongs to, for the trend (default: $MIGCHECK_MIGRATION or 'default')",
    )
    v.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="reconcile on the Dask cluster whose scheduler is at ADDRESS, e.g. tcp://host:8786 "
        "(default: $MIGCHECK_DASK_ADDRESS; none: in this process)",
    )
    v.add_argument(
        "--partitions",
        type=_positive_int,
        default=0,
        help="partitions by person the load is cut into "
        "(default: about one per 48 MiB of extract; the report is the same for any N)",
    )
    v.add_argument(
        "--work",
        metavar="DIR_OR_URL",
        default=None,
        help="where the partitions are staged during the run (default: beside --out); with --dask on "
        "several machines a folder they all mount, or an fsspec URL such as s3://bucket/prefix",
    )
    v.add_argument(
        "--notify",
        metavar="block:NAME",
        default=None,
        help="once the report is written, send the verdict, counts and report path to this Prefect "
        "notification block (Teams, Slack, e-mail, webhook; block:TYPE/NAME names its type too; default: "
        "$MIGCHECK_NOTIFY; none: no message); a failure to notify is a warning, never a failed run",
    )
    v.add_argument(
        "--archive",
        metavar="ARCHIVE",
        default=None,
        help="also check that every legacy record of the extract is in this preservation archive "
        "(migcheck archive), unchanged, and that the bag is intact; the ledger gains archived",
    )

    d = command("demo", "generate, trial-load into SQLite, validate, and say where the report is")
    d.add_argument("--out", type=Path, default=Path("demo"), help="working folder (default ./demo)")
    d.add_argument("--patients", type=_positive_int, default=300, help="number of persons (default 300)")
    d.add_argument("--seed", type=_nonneg_int, default=1, help="random seed (default 1)")

    what = "bring the stewards' decisions back from the worklists"
    dec = sub.add_parser("decisions", help=what, description=what, epilog=_epilog("decisions"), formatter_class=fmt)
    actions = dec.add_subparsers(dest="decisions_command", required=True, parser_class=_Parser, metavar="ACTION")
    what = (
        "import the decisions typed into worklists (fix / waive: into the history database as an audit trail, "
        "waive as a waiver) and the code-map review (into mappings/code_maps/*.csv, the diff printed); "
        "any problem: every one listed, nothing imported (exit 2)"
    )
    di = actions.add_parser("import", help=what, description=what, epilog=_epilog("decisions"), formatter_class=fmt)
    di.add_argument(
        "worklists", nargs="+", type=Path, metavar="WORKLIST", help="OUT/worklists/*.xlsx of validation reports"
    )
    di.add_argument("--mappings", type=Path, default=None, help="mappings folder (default: the project's)")
    di.add_argument(
        "--history",
        default=None,
        help="run-history database: URL, env:NAME or block:NAME (default: $MIGCHECK_HISTORY_URL, else "
        "sqlite:///<folder of OUT>/migcheck-history.db of the worklists' report)",
    )
    di.add_argument(
        "--prefect",
        action="store_true",
        help="run as the Prefect flow import-decisions (default when PREFECT_API_URL is set)",
    )

    what = "write the preservation archive of an extract (a BagIt bag), or verify one"
    ar = sub.add_parser(
        "archive",
        help=what,
        description=what + ":\n  migcheck archive --source DIR --out ARCHIVE [--report OUT]   write it\n"
        "  migcheck archive verify ARCHIVE                               check its fixity and record counts\n\n"
        "The archive holds the extract's files byte for byte, a Parquet access copy of every legacy record\n"
        "(partitioned by system, record kind and year), a codebook and, with --report, the ledger; it holds\n"
        "personal data in clear and is written for its owner only (folders 0700, files 0600).",
        epilog=_epilog("archive"),
        formatter_class=fmt,
        usage="migcheck archive --source DIR --out ARCHIVE [--report OUT] [--prefect]\n"
        "       migcheck archive verify ARCHIVE",
    )
    ar.add_argument("--source", type=Path, help="extract folder to archive")
    ar.add_argument(
        "--out",
        type=Path,
        help="archive folder to write: new or empty (its parent must exist), outside --source and any report folder",
    )
    ar.add_argument(
        "--report",
        type=Path,
        default=None,
        help="a validation report folder of this extract: its ledger.parquet joins the archive",
    )
    ar.add_argument(
        "--prefect",
        action="store_true",
        help="run as the Prefect flow archive-extract (default when PREFECT_API_URL is set)",
    )
    verbs = ar.add_subparsers(
        dest="archive_command", required=False, parser_class=_Parser, title="or", metavar="verify ARCHIVE"
    )
    what = "verify an archive: every checksum, no file missing or added, record counts of the access copy"
    av = verbs.add_parser(
        "verify",
        help=what,
        description=what,
        epilog=_epilog("archive"),
        formatter_class=fmt,
        prog="migcheck archive verify",
        usage="migcheck archive verify ARCHIVE",
    )
    av.add_argument("archive", type=Path, metavar="ARCHIVE", help="the archive folder (a BagIt bag)")
    return p


def _flows(module: str = "pipelines.run.flows"):
    """Import Prefect flows (the validation's, or ``pipelines.synth.flows``).

    Their console shows one line per problem, no tracebacks.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # the first run in a fresh PREFECT_HOME migrates Prefect's database: give the temporary server time
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    import importlib
    import logging

    flows = importlib.import_module(module)

    class _OneLine(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
            msg = record.getMessage().strip().splitlines()
            record.msg, record.args = (msg[0] if msg else ""), ()
            return True

    verbose = bool(os.environ.get("MIGCHECK_VERBOSE"))
    from prefect.logging.configuration import setup_logging

    setup_logging()  # Prefect's handlers exist from here on; the console one sits on the root logger
    names = ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.engine", "prefect.server")
    for name in names:
        for h in logging.getLogger(name).handlers:
            h.addFilter(_OneLine())
            if not verbose and not getattr(h, "baseFilename", None):
                # the run's log goes to the Prefect API (and UI); the console shows only our lines
                h.setLevel(logging.CRITICAL + 10)
    return flows


@contextlib.contextmanager
def _settings_env(**values: str | None):
    """Hand settings to the flows through the environment for one command, then restore it.

    The target URL travels as ``env:MIGCHECK_TARGET_URL``, never as a stored flow parameter.
    """
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is not None:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


TARGET = "env:MIGCHECK_TARGET_URL"


def _use_prefect(a: argparse.Namespace) -> bool:
    """Run as Prefect flows: asked for, or a Prefect server is configured (the run is recorded there)."""
    return bool(getattr(a, "prefect", False) or os.environ.get("PREFECT_API_URL"))


def _mappings(path: Path | None) -> Path | None:
    if path is not None and not path.is_dir():
        raise MigcheckError(f"--mappings {path}: no such folder")
    return path


def _target_url(value: str) -> str:
    """The ``--target`` setting resolved to a URL; an empty one is a one-line error."""
    from pipelines.io.settings import resolve_url

    url = resolve_url(value, "--target")
    if url is None:
        raise MigcheckError("--target: empty (give a URL, env:NAME or block:NAME)")
    return url


def _progress(a: argparse.Namespace):  # noqa: ANN202 - a pipelines.run.progress.Progress
    from pipelines.run.progress import for_terminal

    return for_terminal(a.quiet)


def _cmd_generate(a: argparse.Namespace) -> int:
    from pipelines.synth.commands import claim_extract, write_extract

    claim_extract(a.out)
    if _use_prefect(a):
        r = _flows("pipelines.synth.flows").generate_sample(str(a.out), a.patients, a.seed, a.defects)
    else:
        r = write_extract(a.out, a.patients, a.seed, a.defects)
    lines = sum(r["records"].values())
    print(
        f"wrote {len(r['records'])} files ({lines} data lines) to {r['out']}; {r['defects']} defects "
        f"listed in {Path(r['out']) / 'defects.csv'}"
    )
    return 0


def _cmd_trial_load(a: argparse.Namespace) -> int:
    from pipelines.io.extract import check_extract_root
    from pipelines.io.target_db import connect
    from pipelines.synth.commands import load_target
    from pipelines.synth.trial_load import check_truth_file

    target = _target_url(a.target)
    _mappings(a.mappings)
    check_extract_root(a.source)
    check_truth_file(a.source / "load_faults.csv")
    connect(target).dispose()
    with _settings_env(MIGCHECK_MAPPINGS=a.mappings, MIGCHECK_TARGET_URL=target):
        if _use_prefect(a):
            r = _flows("pipelines.synth.flows").simulate_trial_load_flow(str(a.source), TARGET, a.faults, a.seed)
        else:
            r = load_target(a.source, target, a.faults, a.seed)
    rows = ", ".join(f"{t} {n}" for t, n in r["rows"].items())
    print(f"loaded {r['target']}: {rows}; {r['faults']} load faults listed in {a.source / 'load_faults.csv'}")
    return 0


def _warnings_to_stderr() -> None:
    """Warnings of the ``migcheck`` logger (a notification not sent) as one line each on stderr."""
    import logging

    logger = logging.getLogger("migcheck")
    if not any(getattr(h, "migcheck_stderr", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("migcheck: warning: %(message)s"))
        handler.migcheck_stderr = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def _cmd_validate(a: argparse.Namespace) -> int:
    # without Prefect, the target checks' worker process is started first: it imports Great
    # Expectations (seconds) while this process imports and checks its own (D100)
    worker = None if _use_prefect(a) else _target_checks_worker()
    try:
        return _validate(a, worker)
    finally:
        if worker is not None:
            worker.close()  # at once where the run stopped before the target checks


def _target_checks_worker():  # noqa: ANN202 - a pipelines.run.processes.WorkerProcess
    from pipelines.run.processes import WorkerProcess

    return WorkerProcess(warm=("pipelines.run.target_step", "checks.target_checks", "pipelines.io.gx_checks:import_gx"))


def _validate(a: argparse.Namespace, worker) -> int:  # noqa: ANN001 - a WorkerProcess or None
    from pipelines.io.extract import check_extract_root
    from pipelines.io.notify import notify_setting
    from pipelines.io.settings import resolve_url
    from pipelines.io.target_db import connect
    from pipelines.run.validate import prepare, run_validation

    notify = notify_setting(a.notify)  # before any work: a wrong value stops the run at once
    _warnings_to_stderr()
    target = _target_url(a.target)
    history = resolve_url(a.history, "--history")
    _mappings(a.mappings)
    check_extract_root(a.source)
    with _settings_env(MIGCHECK_MAPPINGS=a.mappings, MIGCHECK_HISTORY_URL=history, MIGCHECK_TARGET_URL=target):
        prepare(a.trial_load, a.out, history_url=history, migration=a.migration, baseline=a.baseline, source=a.source)
        connect(target, must_exist=True).dispose()
        dask = a.dask or os.environ.get("MIGCHECK_DASK_ADDRESS") or None
        if _use_prefect(a):
            flows = _flows()
            state = flows.validate_trial_load(
                str(a.source),
                a.trial_load,
                str(a.out),
                target=TARGET,
                baseline=str(a.baseline) if a.baseline else None,
                migration=a.migration,
                dask=dask,
                partitions=a.partitions,
                work=a.work,
                notify=notify,
                archive=a.archive,
                return_state=True,
            )
            r = flows.verdict_of(state)
        else:
            result = run_validation(
                a.source,
                target,
                a.trial_load,
                a.out,
                baseline=a.baseline,
                history_url=history,
                migration=a.migration,
                dask=dask,
                partitions=a.partitions,
                work=a.work,
                progress=_progress(a),
                worker_process=True,
                notify=notify,
                archive=a.archive,
                worker=worker,
            )
            r = result.verdict()
            if not a.quiet:
                print("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    print(r["message"])
    return r["exit_code"]


def _cmd_demo(a: argparse.Namespace) -> int:
    from pipelines.run.validate import run_validation
    from pipelines.synth.commands import claim_demo, lay_out_demo, load_target, write_extract

    claim_demo(a.out)
    if _use_prefect(a):
        r = _flows("pipelines.synth.flows").demo(str(a.out), a.patients, a.seed)
        g, load, v = r["extract"], r["load"], r["validation"]
    else:
        root = lay_out_demo(a.out)
        g = write_extract(root / "extract", a.patients, a.seed, "default")
        url = f"sqlite:///{root / 'target.db'}"
        load = load_target(root / "extract", url, "default", a.seed)
        v = run_validation(
            root / "extract", url, "DEMO", root / "report", progress=_progress(a), worker_process=True
        ).verdict()
    print(f"extract: {g['out']} ({v['records_read']} legacy records, {g['defects']} source defects in defects.csv)")
    print(f"target:  {load['target']} ({sum(load['rows'].values())} rows, {load['faults']} load faults)")
    print(v["message"])
    print("(the demo load carries injected defects and faults, so its gate fails by design)")
    return 0


def _cmd_decisions(a: argparse.Namespace) -> int:
    from pipelines.io.settings import resolve_url

    history = resolve_url(a.history, "--history")
    _mappings(a.mappings)
    if _use_prefect(a):
        flows = _flows()
        with _settings_env(MIGCHECK_HISTORY_URL=history):
            state = flows.import_decisions_flow(
                [str(p) for p in a.worklists],
                mappings=str(a.mappings) if a.mappings else None,
                return_state=True,
            )
        r = flows.verdict_of(state)
    else:
        from pipelines.io.decisions import import_decisions

        r = import_decisions(a.worklists, a.mappings, history).to_dict()
    if r["problems"]:
        for line in r["problems"]:
            print(line, file=sys.stderr)
        n = len(r["problems"])
        print(f"migcheck: {n} problem{'s' if n != 1 else ''} in the worklists: nothing imported", file=sys.stderr)
        return 2
    for line in r["lines"]:
        print(line)
    for diff in r["diffs"]:
        print(diff, end="" if diff.endswith("\n") else "\n")
    return 0


def _cmd_archive(a: argparse.Namespace) -> int:
    from pipelines.io.archive import check_archive_args, verify_archive, write_archive

    if a.archive_command == "verify":
        problems = verify_archive(a.archive)
        for line in problems:
            print(line)
        if problems:
            return 1
        print(f"{a.archive}: intact (every checksum and record count verified)")
        return 0
    if a.source is None or a.out is None:
        raise MigcheckError("archive: give --source DIR and --out ARCHIVE, or: archive verify ARCHIVE")
    check_archive_args(a.source, a.out, a.report)
    if _use_prefect(a):
        report = str(a.report) if a.report else None
        r = _flows("pipelines.run.archive_flow").archive_extract(str(a.source), str(a.out), report)
    else:
        r = write_archive(a.source, a.out, a.report).to_dict()
    mb = r["payload_bytes"] / 1e6
    print(
        f"archived {len(r['records'])} files ({r['total_records']} legacy records, {mb:,.1f} MB) to {r['path']}"
        f"{' with the ledger' if r['ledger'] else ''}; check it with: migcheck archive verify {r['path']}"
    )
    if r["not_archived"]:
        n = len(r["not_archived"])
        print(
            f"migcheck: note: {n} file{'s' if n != 1 else ''} in pas/ or pcs/ of no legacy layout not archived: "
            + ", ".join(r["not_archived"][:5])
            + (" …" if n > 5 else ""),
            file=sys.stderr,
        )
    return 0


COMMANDS = {
    "generate": _cmd_generate,
    "trial-load": _cmd_trial_load,
    "validate": _cmd_validate,
    "demo": _cmd_demo,
    "archive": _cmd_archive,
    "decisions": _cmd_decisions,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console command; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        code = COMMANDS[args.command](args)
    except MigcheckError as e:
        print(f"migcheck: {e.reason}", file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:
        print("migcheck: interrupted", file=sys.stderr)
        code = 130
    except Exception as e:  # noqa: BLE001 - the one place that turns surprises into a line
        if os.environ.get("MIGCHECK_DEBUG"):
            raise
        if "Prefect" in str(e):  # Prefect's own faults (its server did not start, ...) say what to do
            first = str(e).strip().splitlines()[0][:200]
            print(f"migcheck: Prefect: {first} (set PREFECT_API_URL to a running server, or retry)", file=sys.stderr)
        else:
            print(
                f"migcheck: internal error ({type(e).__name__}); rerun with MIGCHECK_DEBUG=1 for details",
                file=sys.stderr,
            )
        code = 2
    return code


if __name__ == "__main__":
    sys.exit(main())
