"""The local runner: one thread per core, and the target checks' process waited for outside them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipelines.run.local import LocalRunner, default_workers
from pipelines.run.sequence import Step


def _wait_for(flag: str) -> str:
    """In a worker process: wait until ``flag`` exists (another step makes it)."""
    end = time.monotonic() + 60
    while not Path(flag).exists():
        if time.monotonic() > end:
            return "never saw the flag"
        time.sleep(0.05)
    return "saw the flag"


def _make(flag: str) -> str:
    Path(flag).write_text("x")
    return "made"


def test_a_step_in_its_own_process_takes_no_thread_from_the_others(tmp_path) -> None:
    """With one thread, a step submitted after the process step still runs while that process waits for it."""
    flag = str(tmp_path / "flag")
    runner = LocalRunner(workers=1, worker_process=True)
    try:
        waiting = runner.submit(Step("waits", _wait_for, "target_checks", own_process=True), flag=flag)
        made = runner.submit(Step("makes", _make, "extract"), flag=flag)
        assert made.result(timeout=60) == "made"
        assert waiting.result(timeout=90) == "saw the flag"
    finally:
        runner.close()


def test_a_pure_python_step_runs_beside_the_pool(tmp_path) -> None:
    """A ``beside`` step (the worklists) takes no thread from the polars steps: with one thread, both run."""
    flag = str(tmp_path / "flag")
    runner = LocalRunner(workers=1)
    try:
        waiting = runner.submit(Step("waits", _wait_for, "report", beside=True), flag=flag)
        made = runner.submit(Step("makes", _make, "report"), flag=flag)
        assert made.result(timeout=60) == "made"
        assert waiting.result(timeout=90) == "saw the flag"
    finally:
        runner.close()


@pytest.mark.parametrize(("given", "want"), [("1", 1), ("6", 6), ("", None), ("0", None), ("lots", None)])
def test_the_threads_are_one_per_core_unless_set(monkeypatch, given: str, want: int | None) -> None:
    monkeypatch.setenv("MIGCHECK_WORKERS", given)
    assert default_workers() == (want if want is not None else max(2, os.cpu_count() or 2))
