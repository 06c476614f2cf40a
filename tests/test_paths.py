"""The hostile-path corpus: output and database paths that must be refused before any work.

Every case runs the real command line on a real trial load. A refused case exits 2 with one line
naming the option, and leaves every file it was pointed at exactly as it was: no command deletes or
overwrites a file migcheck did not write. The cases that may go ahead (an earlier report, an earlier
generated extract) do, and their folder says it is migcheck's (``.migcheck``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.synth.trial_load import simulate_trial_load

from conftest import REPO


def cli(*args: str, env: dict | None = None, umask: int | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    e.pop("MIGCHECK_DEBUG", None)
    cmd = [sys.executable, "-m", "pipelines.cli", *args]
    if umask is not None:
        cmd = ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=e, cwd=REPO, timeout=600)


def digest(path: Path) -> dict[str, str]:
    """Every file under path (or the file itself) with its content hash; folders by name."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(path.rglob("*"))
    }


def refused(r: subprocess.CompletedProcess, *words: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-1500:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("migcheck: ") and lines[0].count("migcheck:") == 1, lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def load(tmp_path_factory, sample_extract):
    root = tmp_path_factory.mktemp("paths")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    simulate_trial_load(extract, f"sqlite:///{root / 't.db'}", faults="default", seed=3)
    return root, extract, f"sqlite:///{root / 't.db'}"


def validate(load, out: Path, *extra: str, target: str | None = None, **kw) -> subprocess.CompletedProcess:
    root, extract, url = load
    args = ["validate", "--source", str(extract), "--target", target or url, "--trial-load", "TL", "--out", str(out)]
    if "--history" not in extra:
        args += ["--history", f"sqlite:///{root / 'history.db'}"]
    return cli(*args, *extra, **kw)


def _folder_of_other_files(tmp: Path) -> Path:
    d = tmp / "mine"
    (d / "photos").mkdir(parents=True)
    (d / "thesis.txt").write_text("three years of work")
    (d / "photos" / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return d


def test_out_an_existing_folder_of_other_files(load, tmp_path):
    d = _folder_of_other_files(tmp_path)
    before = digest(d)
    refused(validate(load, d), "--out", "is not a migcheck report folder", "photos")
    assert digest(d) == before


def test_out_a_file(load, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    refused(validate(load, f), "--out", "is a file")
    assert f.read_text() == "keep me"


def test_out_the_source(load):
    _, extract, _ = load
    before = digest(extract)
    refused(validate(load, extract), "--out", "--source", "is the same folder as")
    assert digest(extract) == before


def test_out_inside_the_source(load):
    _, extract, _ = load
    before = digest(extract)
    refused(validate(load, extract / "report"), "--out", "--source", "lies inside")
    assert digest(extract) == before and not (extract / "report").exists()


def test_out_containing_the_source(load):
    root, _, _ = load
    before = digest(root / "extract")
    refused(validate(load, root), "--out", "--source", "contains")
    assert digest(root / "extract") == before


def test_out_in_a_missing_folder_is_named_up_front(load, tmp_path):
    r = validate(load, tmp_path / "no" / "such" / "report")
    refused(r, "--out", "does not exist")
    assert "--history" not in r.stderr and not (tmp_path / "no").exists()


def test_history_inside_the_report_folder(load, tmp_path):
    out = tmp_path / "report"
    refused(validate(load, out, "--history", f"sqlite:///{out / 'h.db'}"), "--history", "--out")


def test_missing_mappings_folder(load, tmp_path):
    refused(validate(load, tmp_path / "r", "--mappings", str(tmp_path / "nomaps")), "--mappings")


def test_target_a_missing_sqlite_file_is_not_created(load, tmp_path):
    db = tmp_path / "typo.db"
    refused(validate(load, tmp_path / "r", target=f"sqlite:///{db}"), "--target", "no such database file")
    assert not db.exists()


def test_target_a_file_that_is_not_a_database(load, tmp_path):
    db = tmp_path / "report.pdf"
    db.write_bytes(b"%PDF-1.4 not a database")
    refused(validate(load, tmp_path / "r", target=f"sqlite:///{db}"), "--target", "not a SQLite database")
    assert db.read_bytes() == b"%PDF-1.4 not a database"


def test_target_a_directory(load, tmp_path):
    (tmp_path / "db").mkdir()
    refused(validate(load, tmp_path / "r", target=f"sqlite:///{tmp_path / 'db'}"), "--target", "is a directory")


def test_target_env_setting_not_set(load, tmp_path):
    refused(validate(load, tmp_path / "r", target="env:MIGCHECK_NO_SUCH_VARIABLE"), "--target", "not set")


def test_reports_by_env_settings_follow_the_umask_and_are_replaced_only_when_migcheck_s(load, tmp_path):
    """env:NAME for --target and --history; the umask's permissions; a report replaced, a foreign file kept."""
    root, _, url = load
    out = tmp_path / "report"
    hist = tmp_path / "history-from-env.db"
    env = {"MY_TARGET": url, "MY_HISTORY": f"sqlite:///{hist}"}
    r = validate(load, out, "--history", "env:MY_HISTORY", target="env:MY_TARGET", env=env, umask=0o002)
    assert r.returncode == 1, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert lines[-1].startswith("FAILED") and str(out / "report.html") in lines[-1]
    # not a terminal: one plain progress line per stage, then the stage times and the verdict
    started = [ln for ln in lines if ln.startswith("migcheck: ")]
    assert len(started) == len(set(started)) >= 6 and "migcheck: reading the extract …" in started
    assert lines[-2].startswith("stages: ") and "reconcile" in lines[-2]
    assert hist.exists()  # the history went where the environment variable said
    marker = json.loads((out / ".migcheck").read_text())
    assert marker["kind"] == "report" and "report.html" in marker["entries"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o775
    assert stat.S_IMODE((out / "report.html").stat().st_mode) == 0o664
    assert stat.S_IMODE((out / "worklists").stat().st_mode) == 0o775

    # an earlier migcheck report is replaced
    (out / "discrepancies.csv").write_text("stale")
    r = validate(load, out, "--history", "env:MY_HISTORY", "--quiet", target="env:MY_TARGET", env=env, umask=0o022)
    assert r.returncode == 1, r.stderr[-2000:]
    assert r.stdout.strip().splitlines() == [r.stdout.strip()] and r.stdout.startswith("FAILED")  # --quiet
    assert (out / "discrepancies.csv").read_text() != "stale"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755

    # ... but not once a steward put a file of their own into it
    (out / "my-notes.txt").write_text("decisions of Tuesday")
    before = digest(out)
    refused(validate(load, out, target=url), "--out", "my-notes.txt", "did not write")
    assert digest(out) == before


def test_generate_into_a_folder_of_other_files(tmp_path):
    d = _folder_of_other_files(tmp_path)
    before = digest(d)
    refused(cli("generate", "--out", str(d), "--patients", "5"), "--out", "not a migcheck generated extract")
    assert digest(d) == before


def test_generate_again_into_its_own_extract(tmp_path):
    x = tmp_path / "x"
    assert cli("generate", "--out", str(x), "--patients", "5").returncode == 0
    assert json.loads((x / ".migcheck").read_text())["kind"] == "extract"
    r = cli("generate", "--out", str(x), "--patients", "6", "--seed", "2")
    assert r.returncode == 0, r.stderr


def test_trial_load_keeps_a_load_faults_file_it_did_not_write(tmp_path, sample_extract):
    x = tmp_path / "x"
    shutil.copytree(sample_extract, x)
    (x / "load_faults.csv").write_text("my own list of faults\n")
    db = tmp_path / "t.db"
    refused(cli("trial-load", "--source", str(x), "--target", f"sqlite:///{db}"), "--source", "load_faults.csv")
    assert (x / "load_faults.csv").read_text() == "my own list of faults\n"


def test_demo_into_a_folder_of_other_files(tmp_path):
    d = _folder_of_other_files(tmp_path)
    before = digest(d)
    refused(cli("demo", "--out", str(d), "--patients", "5"), "--out", "not a migcheck demo folder")
    assert digest(d) == before
