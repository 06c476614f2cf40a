"""Issue #6: region-sized trial loads: time, CPU and peak memory per stage, next to a lower bound.

    .venv/bin/python benchmarks/bench_scale.py --patients 100000 1000000 [--target sqlite|postgresql]
    .venv/bin/python benchmarks/bench_scale.py --patients 100000 --peer-rows 10000000

For each size: generate an extract (default defects), load it with the default faults, then in
fresh processes

- **lower bound**: merely read the extract files and every target table into memory (the same
  readers validate uses: the extract parsed to frames, the target through connectorx);
- **validate**: ``run_validation`` with every report file, measured stage by stage (extract,
  expected target, read target, reconcile, target checks, reports): wall, CPU, peak resident memory
  of the stage (the high-water mark is reset at each stage's start, ``pipelines/run/metering.py``);
- **read target**: every target table read by migcheck's reader (connectorx, Arrow-native) and by
  ``pl.read_database`` over a SQLAlchemy connection, same query, same casts.

``--peer-rows N`` also runs the peer comparison of the reconciliation core against datacompy on an
N-row encounter-like pair (``benchmarks/peer_compare.py``; datacompy in its own venv made by
``benchmarks/peer_env.sh``). Results are printed as Markdown (paste into ``RESULTS.md``) and,
with ``--json``, written raw.
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
import json, sys
from pipelines.run.metering import StageMeter
meter = StageMeter()
kind, arg = sys.argv[1], json.loads(sys.argv[2])
out = {}
if kind == "generate":
    from pathlib import Path
    from pipelines.synth.generator import generate
    r = generate(Path(arg["out_dir"]), patients=arg["patients"], seed=1, defects="default")
    out["rows"] = sum(r.records.values())
elif kind == "trial-load":
    from pathlib import Path
    from pipelines.synth.trial_load import simulate_trial_load
    r = simulate_trial_load(Path(arg["source"]), arg["target_url"], faults="default", seed=1)
    out["rows"] = sum(r.rows.values())
elif kind == "lower-bound":
    from pathlib import Path
    from pipelines.io.extract import read_extract
    from pipelines.io.target_db import connect
    from pipelines.io.target_read import read_target
    meter = StageMeter()  # imports are not reading
    x = read_extract(Path(arg["source"]))
    meter.lap("read extract")
    eng = connect(arg["target_url"])
    t = read_target(eng)
    meter.lap("read target")
    out["rows"] = sum(f.height for f in t.values())
    out["stages"] = dict(meter.stages)
elif kind == "validate":
    from pathlib import Path
    from pipelines.run.validate import run_validation
    r = run_validation(Path(arg["source"]), arg["target_url"], "BENCH", Path(arg["out"]))
    meter.lap("validate")
    out["rows"] = r.errors
    # the stages overlap (the local runner's threads): their wall times; CPU and peak for the whole run
    whole = meter.stages["validate"]
    out["stages"] = {k: {"wall_s": v, "cpu_s": 0.0, "peak_mb": 0.0} for k, v in r.timings.items()}
    out["total"] = whole
elif kind in ("read-connectorx", "read-sqlalchemy"):
    import polars as pl
    from checks.target_schema import DATA_TABLES, REFERENCE_TABLES
    from pipelines.io.target_db import connect
    from pipelines.io.target_read import _cast, _query, read_table
    eng = connect(arg["target_url"])
    meter = StageMeter()
    n = 0
    for t in REFERENCE_TABLES + DATA_TABLES:
        if kind == "read-connectorx":
            df = read_table(eng, t)
        else:
            with eng.connect() as conn:
                df = pl.read_database(_query(eng, t), conn, infer_schema_length=None)
            df = _cast(df.rename({c: c.lower() for c in df.columns}), t)
        n += df.height
        del df
    meter.lap("read")
    out["rows"] = n
if "total" in out:
    pass
elif "stages" in out:
    st = out["stages"]
    out["total"] = {"wall_s": sum(v["wall_s"] for v in st.values()), "cpu_s": sum(v["cpu_s"] for v in st.values()),
                    "peak_mb": max(v["peak_mb"] for v in st.values())}
elif kind.startswith("read-"):
    out["total"] = meter.stages["read"]
else:
    meter.lap("total")
    out["total"] = meter.stages["total"]
print(json.dumps(out))
"""


def stage(kind: str, arg: dict) -> dict:
    """Run one stage in a fresh Python process; its own measurements come back as JSON."""
    p = subprocess.run(
        [sys.executable, "-c", STAGE, kind, json.dumps(arg)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
    )
    if p.returncode != 0:
        sys.exit(f"stage {kind} failed ({p.returncode}): {p.stderr.strip().splitlines()[-1:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"  {kind}: {json.dumps(r)}", file=sys.stderr, flush=True)
    return r


def _pg_reset(url: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(sa.text("DROP SCHEMA IF EXISTS migcheck_bench CASCADE"))
        c.execute(sa.text("CREATE SCHEMA migcheck_bench"))
    eng.dispose()


def run_size(patients: int, target: str, pg_url: str, work: Path, skip_sqlalchemy: bool) -> dict:
    extract = work / f"extract-{patients}"
    if target == "sqlite":
        url = f"sqlite:///{work}/target-{patients}.db"
    else:
        import sqlalchemy as sa

        _pg_reset(pg_url)
        url = sa.make_url(pg_url).update_query_dict({"options": "-csearch_path=migcheck_bench"})
        url = url.render_as_string(hide_password=False)
    print(f"{patients:,} patients, {target}", file=sys.stderr, flush=True)
    res = {"patients": patients, "target": target}
    res["generate"] = stage("generate", {"out_dir": str(extract), "patients": patients})
    res["trial-load"] = stage("trial-load", {"source": str(extract), "target_url": url})
    res["lower-bound"] = stage("lower-bound", {"source": str(extract), "target_url": url})
    res["validate"] = stage(
        "validate", {"source": str(extract), "target_url": url, "out": str(work / f"report-{patients}")}
    )
    res["read-connectorx"] = stage("read-connectorx", {"target_url": url})
    if not skip_sqlalchemy:
        res["read-sqlalchemy"] = stage("read-sqlalchemy", {"target_url": url})
    return res


def _row(name: str, m: dict, rows: str = "") -> str:
    return f"| {name} | {rows} | {m['wall_s']:.1f} | {m['cpu_s']:.1f} | {m['peak_mb']:.0f} |"


def _concurrent(m: dict) -> str:
    if "concurrent_wall_s" in m:
        return f" (wait after reconcile; the checks ran {m['concurrent_wall_s']:.1f} s alongside the stages above)"
    return ""


def markdown(res: dict) -> str:
    """One size's results as a Markdown table and the verdicts on the issue's targets."""
    n, t = res["patients"], res["target"]
    v, lb = res["validate"], res["lower-bound"]
    lines = [
        f"### {n:,} patients, {t} target",
        "",
        "| stage | rows | wall s | CPU s | peak MB |",
        "|---|---|---|---|---|",
        _row("generate", res["generate"]["total"], f"{res['generate']['rows']:,} records"),
        _row("trial-load (default faults)", res["trial-load"]["total"], f"{res['trial-load']['rows']:,} rows"),
        _row("**lower bound**: read extract + target", lb["total"], f"{lb['rows']:,} target rows"),
        *[_row(f"  lower bound: {k}", m) for k, m in lb["stages"].items()],
        _row("**validate** (all report files)", v["total"], f"{v['rows']:,} errors"),
        *[_row(f"  validate: {k}{_concurrent(m)}", m) for k, m in v["stages"].items()],
        _row(
            "read target: connectorx (migcheck)", res["read-connectorx"]["total"], f"{res['read-connectorx']['rows']:,}"
        ),
    ]
    if "read-sqlalchemy" in res:
        lines.append(
            _row(
                "read target: pl.read_database over SQLAlchemy",
                res["read-sqlalchemy"]["total"],
                f"{res['read-sqlalchemy']['rows']:,}",
            )
        )
    ratio = v["total"]["wall_s"] / lb["total"]["wall_s"]
    lines += ["", f"- validate / lower bound (wall): **{ratio:.2f}×** (target ≤ 3× at 100,000 patients)"]
    peak = max(r["total"]["peak_mb"] for r in res.values() if isinstance(r, dict) and "total" in r)
    lines.append(f"- peak memory of any stage: **{peak / 1024:.2f} GB** (target ≤ 8 GB at 1,000,000 patients)")
    if "read-sqlalchemy" in res:
        sp = res["read-sqlalchemy"]["total"]["wall_s"] / res["read-connectorx"]["total"]["wall_s"]
        lines.append(
            f"- target read, connectorx vs `pl.read_database` over SQLAlchemy: **{sp:.1f}× faster** (target ≥ 3×)"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, nargs="+", default=[100_000])
    ap.add_argument("--target", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one, removed)")
    ap.add_argument("--skip-sqlalchemy-read", action="store_true", help="skip the slow pl.read_database read")
    ap.add_argument("--peer-rows", type=int, default=0, help="also run the peer comparison on N rows")
    ap.add_argument("--json", help="write the raw measurements here")
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="migcheck-bench-") as tmp:
        work = Path(a.work) if a.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for n in a.patients:
            results.append(run_size(n, a.target, a.pg_url, work, a.skip_sqlalchemy_read))
            print(markdown(results[-1]), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    if a.peer_rows:
        subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "peer_compare.py"), "--rows", str(a.peer_rows), "--repeat", "3"],
            check=True,
        )


if __name__ == "__main__":
    main()
