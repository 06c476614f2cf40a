"""The ``migcheck`` command line (``shared/spec/README.md``): the one place that prints and exits.

Every ``MigcheckError`` raised anywhere becomes one line on stderr and its exit code (2 for a run
that cannot be done). An unexpected error is reported in one line too, without a traceback and
without values from the data; ``MIGCHECK_DEBUG=1`` shows the traceback for developers.
"""

from __future__ import annotations

import argparse
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

    d = sub.add_parser("demo", help="generate, trial-load into SQLite, and report where the results are")
    d.add_argument("--out", type=Path, default=Path("demo"), help="working directory (default ./demo)")
    d.add_argument("--patients", type=_positive_int, default=300)
    d.add_argument("--seed", type=_nonneg_int, default=1)
    return p


def _cmd_generate(a: argparse.Namespace) -> int:
    from pipelines.synth.generator import generate

    r = generate(a.out, patients=a.patients, seed=a.seed, defects=a.defects)
    total = sum(r.records.values())
    print(
        f"wrote {total} legacy records in {len(r.records)} files to {r.out_dir}; {r.defects} defects listed in "
        f"{r.out_dir / 'defects.csv'}"
    )
    return 0


def _cmd_trial_load(a: argparse.Namespace) -> int:
    from pipelines.synth.trial_load import simulate_trial_load

    r = simulate_trial_load(a.source, a.target, faults=a.faults, seed=a.seed, mappings_root=a.mappings)
    rows = ", ".join(f"{t} {n}" for t, n in r.rows.items())
    print(f"loaded {r.target}: {rows}; {r.faults} load faults listed in {r.load_faults}")
    return 0


def _cmd_validate(a: argparse.Namespace) -> int:
    from pipelines.validate import run_validation

    r = run_validation(
        a.source,
        a.target,
        a.trial_load,
        a.out,
        baseline=a.baseline,
        mappings_root=a.mappings,
        history_url=a.history,
        migration=a.migration,
    )
    _print_verdict(r)
    return r.exit_code


def _print_verdict(r) -> None:
    verdict = "PASSED" if r.exit_code == 0 else "FAILED"
    print(
        f"{verdict}: {r.errors} errors, {r.warnings} warnings; ledger balanced: {r.ledger_balanced}; report in {r.out}"
    )


def _cmd_demo(a: argparse.Namespace) -> int:
    from pipelines.synth.generator import generate
    from pipelines.synth.trial_load import simulate_trial_load
    from pipelines.validate import run_validation

    out = a.out.resolve()
    extract = out / "extract"
    db = out / "target.db"
    _ensure_dir(out, "--out")
    g = generate(extract, patients=a.patients, seed=a.seed, defects="default")
    r = simulate_trial_load(extract, f"sqlite:///{db}", faults="default", seed=a.seed)
    print(f"extract: {extract} ({sum(g.records.values())} records, {g.defects} source defects in defects.csv)")
    print(f"target:  {db} ({sum(r.rows.values())} rows, {r.faults} load faults in load_faults.csv)")
    v = run_validation(extract, f"sqlite:///{db}", "DEMO", out / "report")
    _print_verdict(v)
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
        print(
            f"migcheck: internal error ({type(e).__name__}); rerun with MIGCHECK_DEBUG=1 for details", file=sys.stderr
        )
        code = 2
    return code


if __name__ == "__main__":
    sys.exit(main())
