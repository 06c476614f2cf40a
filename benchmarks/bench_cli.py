"""The command line as a user runs it, next to the same steps as a library and the read lower bound.

    .venv/bin/python benchmarks/bench_cli.py                      # sample_data/ and 100,000 patients
    .venv/bin/python benchmarks/bench_cli.py --patients 100000 1000000 --work /tmp/bcli

Every figure is one fresh process under ``/usr/bin/time -v`` (wall time, peak resident memory):

- **cli**: ``migcheck validate …`` with a fresh, empty ``PREFECT_HOME`` and no ``PREFECT_API_URL``
  (what a new user and CI get), the report and history written as usual;
- **cli --prefect**: the same through the Prefect runner (Prefect's temporary server starts);
- **library**: ``pipelines.run.validate.run_validation`` called from Python, the same steps;
- **lower bound**: merely reading the extract (migcheck's readers) and every target table
  (connectorx) into memory.

For a size other than ``sample_data`` the extract is generated and loaded (default defects and
faults) first, in a work folder that is removed afterwards unless ``--work`` is given. Results are
printed as Markdown for ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
MIGCHECK = str(Path(PY).parent / "migcheck")

LIBRARY = """
import sys
from pathlib import Path
from pipelines.run.validate import run_validation
r = run_validation(Path(sys.argv[1]), sys.argv[2], "BENCH", Path(sys.argv[3]), history_url=sys.argv[4])
print(r.exit_code)
"""
LOWER_BOUND = """
import sys
from pathlib import Path
from pipelines.io.extract import read_extract
from pipelines.io.target_db import connect
from pipelines.io.target_read import read_target
x = read_extract(Path(sys.argv[1]))
t = read_target(connect(sys.argv[2]))
print(sum(f.height for f in x.frames.values()), sum(f.height for f in t.values()))
"""


def timed(cmd: list[str], env: dict | None = None, ok: tuple[int, ...] = (0, 1)) -> dict:
    """Run ``cmd`` under /usr/bin/time -v in a fresh process: wall seconds, peak MB, exit code.

    An exit code not in ``ok`` stops the benchmark (validate exits 1 when a gate fails, by design).
    """
    e = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(env or {})}
    e.pop("PREFECT_API_URL", None)
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=e, cwd=REPO)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", p.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    if wall is None or rss is None or p.returncode not in ok:
        sys.exit(f"{cmd[:3]} failed ({p.returncode}): {p.stderr.strip().splitlines()[-3:]}")
    parts = [float(x) for x in wall.group(1).split(":")]
    secs = sum(v * 60 ** (len(parts) - 1 - i) for i, v in enumerate(parts))
    return {"wall_s": round(secs, 2), "peak_mb": round(int(rss.group(1)) / 1024), "exit": p.returncode}


def prepare_load(patients: int, work: Path) -> tuple[Path, str]:
    """An extract of ``patients`` persons and its faulted SQLite trial load."""
    extract, db = work / f"extract-{patients}", work / f"target-{patients}.db"
    code = (
        "from pathlib import Path; from pipelines.synth.generator import generate; "
        "from pipelines.synth.trial_load import simulate_trial_load; "
        f"generate(Path({str(extract)!r}), patients={patients}, seed=1, defects='default'); "
        f"simulate_trial_load(Path({str(extract)!r}), 'sqlite:///{db}', faults='default', seed=1)"
    )
    subprocess.run([PY, "-c", code], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return extract, f"sqlite:///{db}"


def timed_cli(extract: Path, url: str, out: Path, history: Path, *options: str) -> dict:
    """``migcheck validate`` as a new user runs it: a fresh process, a fresh empty PREFECT_HOME."""
    with tempfile.TemporaryDirectory(prefix="prefect-home-") as home:
        return timed(
            [
                MIGCHECK,
                "validate",
                "--source",
                str(extract),
                "--target",
                url,
                "--trial-load",
                "BENCH",
                "--out",
                str(out),
                "--history",
                f"sqlite:///{history}",
                "--quiet",
                *options,
            ],
            env={"PREFECT_HOME": home},
        )


def measure(name: str, extract: Path, url: str, work: Path) -> dict:
    """cli, library and lower bound on one load."""
    res: dict = {"load": name}
    res["cli"] = timed_cli(extract, url, work / f"cli-{name}", work / "cli-history.db")
    res["cli_prefect"] = timed_cli(
        extract, url, work / f"cli-prefect-{name}", work / "cli-prefect-history.db", "--prefect"
    )
    res["library"] = timed(
        [PY, "-c", LIBRARY, str(extract), url, str(work / f"lib-{name}"), f"sqlite:///{work / 'lib-history.db'}"]
    )
    res["lower_bound"] = timed([PY, "-c", LOWER_BOUND, str(extract), url])
    print(f"  {name}: {json.dumps(res)}", file=sys.stderr, flush=True)
    return res


def markdown(rows: list[dict]) -> str:
    """The measurements as a Markdown table with the ratios the issue sets goals on."""
    out = [
        "| load | `migcheck validate` (fresh PREFECT_HOME) | `… --prefect` (fresh PREFECT_HOME) "
        "| library `run_validation` | read lower bound | cli / library | cli / lower bound |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c, cp, lib, lb = r["cli"], r["cli_prefect"], r["library"], r["lower_bound"]
        out.append(
            f"| {r['load']} | {c['wall_s']:.1f} s, {c['peak_mb']} MB | {cp['wall_s']:.1f} s, {cp['peak_mb']} MB "
            f"| {lib['wall_s']:.1f} s, {lib['peak_mb']} MB "
            f"| {lb['wall_s']:.1f} s, {lb['peak_mb']} MB | {c['wall_s'] / lib['wall_s']:.2f}× "
            f"| {c['wall_s'] / lb['wall_s']:.2f}× |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, nargs="*", default=[100_000], help="generated sizes (after sample_data)")
    ap.add_argument("--no-sample", action="store_true", help="skip sample_data/")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one, removed)")
    ap.add_argument("--json", help="write the raw measurements here")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="migcheck-bench-cli-") as tmp:
        work = Path(a.work) if a.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not a.no_sample:
            extract = work / "sample"
            shutil.copytree(REPO / "sample_data", extract, dirs_exist_ok=True)
            db = work / "sample.db"
            code = (
                "from pathlib import Path; from pipelines.synth.trial_load import simulate_trial_load; "
                f"simulate_trial_load(Path({str(extract)!r}), 'sqlite:///{db}', faults='default', seed=1)"
            )
            subprocess.run([PY, "-c", code], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
            rows.append(measure("sample_data", extract, f"sqlite:///{db}", work))
        for n in a.patients:
            extract, url = prepare_load(n, work)
            rows.append(measure(f"{n:,} patients", extract, url, work))
            shutil.rmtree(extract, ignore_errors=True)  # mind the disk before the next size
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    print(markdown(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
