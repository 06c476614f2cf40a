"""Atomic, repeatable output; concurrent validations; a full run's outputs and logs hold no personal data."""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys

import polars as pl
import pytest
import sqlalchemy as sa
from test_validate import _all_text, _personal_values, leaked_note_words, note_texts

from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load

from conftest import REPO


@pytest.fixture()
def load(tmp_path, sample_extract):
    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    db = tmp_path / "t.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="default", seed=6)
    return extract, f"sqlite:///{db}"


def _digest(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("pipelines.report.html", "write_report_html"),  # while the report's files are written
        # while the units settle, the worklists being written into the report begun meanwhile
        ("pipelines.run.staging", "final_ledger"),
    ],
)
def test_a_crash_while_writing_leaves_the_previous_report(load, tmp_path, monkeypatch, module, name):
    extract, url = load
    out, hist = tmp_path / "report", f"sqlite:///{tmp_path / 'h.db'}"
    run_validation(extract, url, "TL1", out, history_url=hist)
    before = _digest(out)

    def crash(*a, **k):
        raise RuntimeError("disk pulled out")

    monkeypatch.setattr(importlib.import_module(module), name, crash)
    with pytest.raises(RuntimeError):
        run_validation(extract, url, "TL2", out, history_url=hist)
    assert _digest(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []  # no half-written folder
    eng = sa.create_engine(hist)
    with eng.connect() as c:
        assert c.execute(sa.text("select count(*) from migcheck_run")).scalar_one() == 1  # the crash left no run
    eng.dispose()


def test_the_same_validation_gives_identical_findings(load, tmp_path):
    extract, url = load
    run_validation(extract, url, "TL", tmp_path / "a", history_url=f"sqlite:///{tmp_path / 'h.db'}")
    run_validation(extract, url, "TL", tmp_path / "b", history_url=f"sqlite:///{tmp_path / 'h.db'}")
    a = pl.read_parquet(tmp_path / "a" / "discrepancies.parquet")
    b = pl.read_parquet(tmp_path / "b" / "discrepancies.parquet")
    assert a.height > 0 and a.equals(b)
    assert pl.read_parquet(tmp_path / "a" / "ledger.parquet").equals(pl.read_parquet(tmp_path / "b" / "ledger.parquet"))


def test_two_validations_at_the_same_time(tmp_path, sample_extract):
    hist = f"sqlite:///{tmp_path / 'history.db'}"
    jobs = []
    for i, seed in ((1, 1), (2, 2)):
        extract = tmp_path / f"x{i}"
        shutil.copytree(sample_extract, extract)
        simulate_trial_load(extract, f"sqlite:///{tmp_path / f't{i}.db'}", faults="default", seed=seed)
        code = (
            f"from pipelines.run.validate import run_validation; run_validation({str(extract)!r}, "
            f"'sqlite:///{tmp_path / f't{i}.db'}', 'TL{i}', {str(tmp_path / f'r{i}')!r}, history_url={hist!r}, "
            "migration='m')"
        )
        jobs.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=REPO,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        )
    for j in jobs:
        _, err = j.communicate(timeout=300)
        assert j.returncode == 0, err[-2000:]
    for i in (1, 2):
        d = pl.read_parquet(tmp_path / f"r{i}" / "discrepancies.parquet")
        assert set(d["trial_load"]) == {f"TL{i}"} and (tmp_path / f"r{i}" / "report.html").exists()
    eng = sa.create_engine(hist)
    with eng.connect() as c:
        runs = c.execute(sa.text("select trial_load from migcheck_run order by trial_load")).scalars().all()
    eng.dispose()
    assert runs == ["TL1", "TL2"]


@pytest.mark.slow
def test_a_full_command_line_run_leaks_nothing(tmp_path, sample_extract, harness):
    from prefect.settings import PREFECT_API_URL

    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MIGCHECK_VERBOSE": "1", "PREFECT_LOGGING_LEVEL": "DEBUG"}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())  # validate records its run there, with its log
    mc = [sys.executable, "-m", "pipelines.cli"]
    logs = []
    for args in (
        ["trial-load", "--source", str(extract), "--target", f"sqlite:///{tmp_path / 't.db'}", "--faults", "default"],
        [
            "validate",
            "--source",
            str(extract),
            "--target",
            f"sqlite:///{tmp_path / 't.db'}",
            "--trial-load",
            "TL",
            "--out",
            str(tmp_path / "report"),
        ],
    ):
        r = subprocess.run(mc + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode in (0, 1), r.stderr[-2000:]
        logs.append(r.stdout + r.stderr)
    ids, names, postal = _personal_values(extract)
    text = "\n".join(logs) + _all_text(tmp_path / "report")
    assert not [i for i in ids if i in text]
    assert not (names & set(re.findall(r"[^\W\d_]+", text))), sorted(names & set(re.findall(r"[^\W\d_]+", text)))
    shown = "\n".join(logs)
    # a postal code standing as a value; not a port of a URL, the decimals of a timing or a run of
    # digits inside one of Prefect's hexadecimal event ids that happen to be the same five digits
    # (the test harness's API server listens on a random port; the DEBUG log names every event)
    assert not [p for p in postal if re.search(rf"(?<![\w.:-]){p}(?![\w.])", shown)]
    assert "Beginning flow run" in shown  # the Prefect run log really was captured
    # no four consecutive words of any note, in any output or log (the notes hold names and text)
    assert note_texts(extract)
    assert not leaked_note_words(extract, text), leaked_note_words(extract, text)[:5]
