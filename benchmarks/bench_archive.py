"""The preservation archive at scale: ``migcheck archive`` and ``archive verify`` against two yardsticks.

    .venv/bin/python benchmarks/bench_archive.py                          # 100,000 patients
    .venv/bin/python benchmarks/bench_archive.py --patients 1000000 --work /tmp/barch

Every figure is one fresh process under ``/usr/bin/time -v`` (wall time, peak resident memory),
as in ``bench_cli.py``:

- **archive**: ``migcheck archive --source X --out A`` (no report);
- **verify**: ``migcheck archive verify A``;
- **copy ×2**: the extract's files read and written twice, byte for byte (the I/O floor);
- **read+write ×2**: the extract read twice with migcheck's readers (``read_extract``), each time
  every frame written to Parquet (zstd): the issue's yardstick, "the time to read and write the
  extract twice".

The extract is generated first (``--defects default``) in a work folder that is removed
afterwards unless ``--work`` is given. Results are printed as Markdown for ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_cli
from bench_cli import MIGCHECK, PY, REPO

COPY_TWICE = """
import shutil, sys
from pathlib import Path
src, out = Path(sys.argv[1]), Path(sys.argv[2])
for i in range(2):
    for f in sorted(src.glob("p*/*")):
        d = out / str(i) / f.parent.name
        d.mkdir(parents=True, exist_ok=True)
        (d / f.name).write_bytes(f.read_bytes())
"""
READ_WRITE_TWICE = """
import sys
from pathlib import Path
from pipelines.io.extract import read_extract
src, out = Path(sys.argv[1]), Path(sys.argv[2])
for i in range(2):
    x = read_extract(src)
    d = out / str(i)
    d.mkdir(parents=True, exist_ok=True)
    for name, f in x.frames.items():
        f.write_parquet(d / (name.replace("/", "-") + ".parquet"), compression="zstd")
    x.unparseable.write_parquet(d / "unparseable.parquet", compression="zstd")
"""


def timed(cmd: list[str]) -> dict:
    """``bench_cli.timed`` of a command that must exit 0 (archive, verify of an intact bag, the yardsticks)."""
    return bench_cli.timed(cmd, ok=(0,))


def generate(patients: int, work: Path) -> Path:
    """An extract of ``patients`` persons with the default source defects."""
    extract = work / f"extract-{patients}"
    if not (extract / "pcs").is_dir():
        code = (
            "from pathlib import Path; from pipelines.synth.generator import generate; "
            f"generate(Path({str(extract)!r}), patients={patients}, seed=1, defects='default')"
        )
        subprocess.run([PY, "-c", code], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return extract


def measure(patients: int, work: Path, yardsticks: tuple[str, ...] = ("copy_twice", "read_write_twice")) -> dict:
    """Archive, verify and the yardsticks on one generated extract."""
    extract = generate(patients, work)
    size = sum(p.stat().st_size for p in extract.glob("p*/*"))
    archive = work / f"archive-{patients}"
    shutil.rmtree(archive, ignore_errors=True)
    res: dict = {"patients": patients, "extract_mb": round(size / 1e6)}
    res["archive"] = timed([MIGCHECK, "archive", "--source", str(extract), "--out", str(archive)])
    res["archive_mb"] = round(sum(p.stat().st_size for p in archive.rglob("*") if p.is_file()) / 1e6)
    res["verify"] = timed([MIGCHECK, "archive", "verify", str(archive)])
    for key, code in (("copy_twice", COPY_TWICE), ("read_write_twice", READ_WRITE_TWICE)):
        if key not in yardsticks:
            continue
        scratch = work / f"{key}-{patients}"
        res[key] = timed([PY, "-c", code, str(extract), str(scratch)])
        shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(archive, ignore_errors=True)
    print(f"  {patients}: {json.dumps(res)}", file=sys.stderr, flush=True)
    return res


def markdown(rows: list[dict]) -> str:
    """The measurements as a Markdown table with the ratio the issue sets its goal on."""
    out = [
        "| patients | extract | `migcheck archive` | archive size | `archive verify` | copy ×2 | read+write ×2 "
        "| archive / read+write ×2 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, v, c, rw = r["archive"], r["verify"], r.get("copy_twice"), r.get("read_write_twice")
        copy = f"{c['wall_s']:.1f} s" if c else "not run"
        readers = f"{rw['wall_s']:.1f} s, {rw['peak_mb']} MB" if rw else "not run"
        ratio = f"{a['wall_s'] / rw['wall_s']:.2f}×" if rw else "–"
        out.append(
            f"| {r['patients']:,} | {r['extract_mb']} MB | {a['wall_s']:.1f} s, {a['peak_mb']} MB "
            f"| {r['archive_mb']} MB | {v['wall_s']:.1f} s, {v['peak_mb']} MB | {copy} | {readers} | {ratio} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, nargs="*", default=[100_000], help="generated sizes")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one, removed)")
    ap.add_argument("--json", help="write the raw measurements here")
    ap.add_argument(
        "--no-readers",
        action="store_true",
        help="skip the readers' read+write ×2 (the readers hold a whole file: about 25 GB at 1,000,000 patients)",
    )
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="migcheck-bench-archive-") as tmp:
        work = Path(a.work) if a.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        sticks = ("copy_twice",) if a.no_readers else ("copy_twice", "read_write_twice")
        rows = [measure(n, work, sticks) for n in a.patients]
    print(markdown(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
