"""Seconds of the target checks (Great Expectations) per table, and per check, on a target database.

    .venv/bin/python benchmarks/bench_target_checks.py sqlite:///t.db [--each]

Runs ``pipelines.io.gx_checks.run_target_checks`` on the checks of one table at a time (with
``--each``: also each check alone), as a validation runs them, and prints the wall time of each
and the failing rows found. GX is imported before the first timing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from checks.mapping import load_mappings  # noqa: E402
from checks.target_checks import build_target_checks  # noqa: E402
from pipelines.io.gx_checks import run_target_checks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", help="the target database URL")
    ap.add_argument("--each", action="store_true", help="also time each check alone")
    args = ap.parse_args()
    m = load_mappings(REPO / "mappings")
    by_table: dict[str, list] = {}
    for c in build_target_checks(m.code_value, m.nomenclature):
        by_table.setdefault(c.table, []).append(c)
    import great_expectations  # noqa: F401 - its import (seconds) out of the timings

    total = 0.0
    for table, checks in by_table.items():
        start = time.perf_counter()
        run = run_target_checks(args.target, checks)
        wall = time.perf_counter() - start
        total += wall
        print(f"{table:15s} {len(checks):3d} checks {wall:7.1f} s  {run.failures.height:6d} failing rows", flush=True)
        if args.each:
            for c in checks:
                start = time.perf_counter()
                one = run_target_checks(args.target, [c])
                wall = time.perf_counter() - start
                print(f"    {c.check_id:55s} {wall:7.2f} s  {one.failures.height:6d}", flush=True)
    print(f"total {total:.1f} s")


if __name__ == "__main__":
    main()
