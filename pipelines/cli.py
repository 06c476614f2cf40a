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

from checks.errors import MigcheckError


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and a MigcheckError (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise MigcheckError(f"{self.prog}: {message} (see {self.prog} --help)")


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    p = _Parser(prog="migcheck", description="Validate trial loads of legacy PAS/PCS data into the target.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    g = sub.add_parser("generate", help="write a synthetic legacy extract and its defects.csv")
    g.add_argument("--out", required=True, type=Path, help="extract directory to write")
    g.add_argument("--patients", type=_positive_int, default=500, help="number of persons (default 500)")
    g.add_argument("--seed", type=_nonneg_int, default=1, help="random seed (default 1)")
    g.add_argument("--defects", choices=["none", "default"], default="default", help="inject source defects")

    t = sub.add_parser("trial-load", help="simulate the vendor's trial load into a target database")
    t.add_argument("--source", required=True, type=Path, help="extract directory")
    t.add_argument("--target", required=True, help="SQLAlchemy URL, e.g. sqlite:///target.db")
    t.add_argument("--faults", choices=["none", "default"], default="none", help="inject load faults")
    t.add_argument("--seed", type=_nonneg_int, default=1, help="random seed of the faults (default 1)")
    t.add_argument("--mappings", type=Path, default=None, help="mappings directory (default: the project's)")

    v = sub.add_parser("validate", help="validate a trial load and write the report")
    v.add_argument("--source", required=True, type=Path, help="extract directory")
    v.add_argument("--target", required=True, help="SQLAlchemy URL of the target database")
    v.add_argument("--trial-load", required=True, help="name of the trial load, e.g. TL3")
    v.add_argument("--out", required=True, type=Path, help="report folder to write")
    v.add_argument("--baseline", type=Path, default=None, help="an earlier report folder to compare with")
    v.add_argument("--mappings", type=Path, default=None, help="mappings directory (default: the project's)")
    v.add_argument(
        "--history",
        default=None,
        help="run-history database URL (default: $MIGCHECK_HISTORY_URL, else "
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
        default=16,
        help="with --dask: partitions per child entity (default 16; 2-4x the cluster's worker threads)",
    )

    d = sub.add_parser("demo", help="generate, trial-load into SQLite, and report where the results are")
    d.add_argument("--out", type=Path, default=Path("demo"), help="working directory (default ./demo)")
    d.add_argument("--patients", type=_positive_int, default=300)
    d.add_argument("--seed", type=_nonneg_int, default=1)
    return p


def _flows():
    """Import the Prefect flows with a console that shows one line per problem, no tracebacks."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # the first run in a fresh PREFECT_HOME migrates Prefect's database: give the temporary server time
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    import logging

    from pipelines import flows

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


def _cmd_generate(a: argparse.Namespace) -> int:
    _ensure_dir(a.out, "--out")
    r = _flows().generate_sample(str(a.out), a.patients, a.seed, a.defects)
    total = sum(r["records"].values())
    print(
        f"wrote {total} legacy records in {len(r['records'])} files to {r['out']}; {r['defects']} defects "
        f"listed in {Path(r['out']) / 'defects.csv'}"
    )
    return 0


def _cmd_trial_load(a: argparse.Namespace) -> int:
    from pipelines.extract import check_extract_root
    from pipelines.target_db import connect

    connect(a.target).dispose()
    check_extract_root(a.source)
    with _settings_env(MIGCHECK_MAPPINGS=a.mappings, MIGCHECK_TARGET_URL=a.target):
        r = _flows().simulate_trial_load_flow(str(a.source), TARGET, a.faults, a.seed)
    rows = ", ".join(f"{t} {n}" for t, n in r["rows"].items())
    print(f"loaded {r['target']}: {rows}; {r['faults']} load faults listed in {a.source / 'load_faults.csv'}")
    return 0


def _cmd_validate(a: argparse.Namespace) -> int:
    from pipelines.extract import check_extract_root
    from pipelines.target_db import connect
    from pipelines.validate import prepare

    with _settings_env(MIGCHECK_MAPPINGS=a.mappings, MIGCHECK_HISTORY_URL=a.history, MIGCHECK_TARGET_URL=a.target):
        prepare(a.trial_load, a.out, history_url=a.history, migration=a.migration, baseline=a.baseline)
        connect(a.target).dispose()
        check_extract_root(a.source)
        r = _flows().validate_trial_load(
            str(a.source),
            a.trial_load,
            str(a.out),
            target=TARGET,
            baseline=str(a.baseline) if a.baseline else None,
            migration=a.migration,
            dask=a.dask,
            partitions=a.partitions,
        )
    _print_verdict(r["exit_code"], r["errors"], r["warnings"], r["ledger_balanced"], r["report"])
    return r["exit_code"]


def _print_verdict(code: int, errors: int, warnings: int, balanced: bool, report: str) -> None:
    verdict = "PASSED" if code == 0 else "FAILED"
    print(f"{verdict}: {errors} errors, {warnings} warnings; ledger balanced: {balanced}; report: {report}")


def _cmd_demo(a: argparse.Namespace) -> int:
    _ensure_dir(a.out, "--out")
    r = _flows().demo(str(a.out), a.patients, a.seed)
    g, load, v = r["extract"], r["load"], r["validation"]
    print(f"extract: {g['out']} ({sum(g['records'].values())} records, {g['defects']} source defects in defects.csv)")
    print(f"target:  {load['target']} ({sum(load['rows'].values())} rows, {load['faults']} load faults)")
    _print_verdict(v["exit_code"], v["errors"], v["warnings"], v["ledger_balanced"], v["report"])
    print("(the demo load carries injected defects and faults, so its gate fails by design)")
    return 0


def _ensure_dir(path: Path, setting: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MigcheckError(f"{setting} {path}: cannot create folder ({e.strerror})") from e


COMMANDS = {"generate": _cmd_generate, "trial-load": _cmd_trial_load, "validate": _cmd_validate, "demo": _cmd_demo}


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
