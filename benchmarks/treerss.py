"""Run a command and sample the summed resident memory of its whole process tree.

``python benchmarks/treerss.py [--trace FILE] [--every SECONDS] -- COMMAND ...`` runs COMMAND (a
fresh process; its environment is this one's), samples the RSS of COMMAND and every descendant
(the target checks' worker, Dask workers) every 0.5 s, and prints the wall time, the tree's peak
and when it was reached. ``--trace`` writes every sample (seconds since start, MB) as CSV, to see
which stage holds the peak. Exits with COMMAND's exit code.

``/usr/bin/time -v`` reports one process's peak; a validation also runs Great Expectations in a
child process, so the machine needs their sum at the moment both are large: what this samples.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import psutil


def tree_rss(proc: psutil.Process) -> int:
    """Bytes resident in ``proc`` and all its descendants (processes that end while read count 0)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, help="write every sample (seconds, MB) to this CSV file")
    ap.add_argument("--every", type=float, default=0.5, help="seconds between samples (default 0.5)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command given")
    start = time.monotonic()
    child = subprocess.Popen(cmd)
    proc = psutil.Process(child.pid)
    peak, at, samples = 0, 0.0, []
    while child.poll() is None:
        rss = tree_rss(proc)
        t = time.monotonic() - start
        samples.append((t, rss))
        if rss > peak:
            peak, at = rss, t
        time.sleep(args.every)
    wall = time.monotonic() - start
    if args.trace:
        args.trace.write_text("seconds,mb\n" + "".join(f"{t:.1f},{r / 2**20:.0f}\n" for t, r in samples))
    print(
        f"treerss: exit {child.returncode}, wall {wall:.1f} s, tree peak {peak / 2**20:,.0f} MB at {at:.0f} s",
        file=sys.stderr,
    )
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
