"""Time and peak memory of `generate`, `trial-load` and `validate` (issue #2's goal: generate and
trial-load each under a minute for 100,000 patients on a 2-core machine; issue #3 asks for
validate's figures).

    .venv/bin/python benchmarks/bench_foundation.py --patients 100000 [--target sqlite|postgresql]

Each stage runs in a fresh Python process, which reports its own wall time, CPU time and peak
resident memory (ru_maxrss), so one stage's memory never hides in another's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STAGE = r"""
import json, resource, sys, time
t0, c0 = time.perf_counter(), time.process_time()
kind, arg = sys.argv[1], json.loads(sys.argv[2])
if kind == "generate":
    from pipelines.synth.generator import generate
    r = generate(**arg); n = sum(r.records.values())
elif kind == "validate":
    from pipelines.run.validate import run_validation
    r = run_validation(**arg); n = r.errors; print(json.dumps(r.timings), file=sys.stderr)
else:
    from pipelines.synth.trial_load import simulate_trial_load
    r = simulate_trial_load(**arg); n = sum(r.rows.values())
print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": n}))
"""


def stage(kind: str, arg: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", STAGE, kind, json.dumps(arg)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if kind == "validate":
        print(f"validate stage timings: {out.stderr.strip().splitlines()[-1]}", file=sys.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--target", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        extract = Path(tmp) / "extract"
        url = f"sqlite:///{tmp}/t.db" if a.target == "sqlite" else a.pg_url
        g = stage("generate", {"out_dir": str(extract), "patients": a.patients, "seed": 1, "defects": "default"})
        t = stage("trial-load", {"source": str(extract), "target_url": url, "faults": "default", "seed": 1})
        v = stage(
            "validate",
            {"source": str(extract), "target_url": url, "trial_load": "BENCH", "out": str(Path(tmp) / "report")},
        )
    print("| stage | patients | target | records/rows | wall s | CPU s | peak MB |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| generate | {a.patients:,} | — | {g['rows']:,} | {g['wall_s']:.1f} | {g['cpu_s']:.1f} | {g['peak_mb']:.0f} |"
    )
    print(
        f"| trial-load | {a.patients:,} | {a.target} | {t['rows']:,} | {t['wall_s']:.1f} | {t['cpu_s']:.1f} | "
        f"{t['peak_mb']:.0f} |"
    )
    print(
        f"| validate | {a.patients:,} | {a.target} | {v['rows']:,} errors | {v['wall_s']:.1f} | {v['cpu_s']:.1f} | "
        f"{v['peak_mb']:.0f} |"
    )


if __name__ == "__main__":
    main()
