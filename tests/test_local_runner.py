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


@pytest.mark.parametrize(
    ("kind", "step", "runner"),
    [
        # the target checks: in a worker process, waited for outside the pool
        ("own process", {"stage": "target_checks", "own_process": True}, {"worker_process": True}),
        # the worklists: pure Python, in a thread beside the pool
        ("beside", {"stage": "report", "beside": True}, {}),
    ],
)
def test_a_step_off_the_pool_takes_no_thread_from_the_others(tmp_path, kind: str, step: dict, runner: dict) -> None:
    """With one thread, a step submitted after the one off the pool still runs while that one waits for it.

    Under a runner that gave it a thread of the pool, this deadlocks (until the wait gives up).
    """
    flag = str(tmp_path / "flag")
    local = LocalRunner(workers=1, **runner)
    try:
        waiting = local.submit(Step("waits", _wait_for, **step), flag=flag)
        made = local.submit(Step("makes", _make, "extract"), flag=flag)
        assert made.result(timeout=60) == "made", kind
        assert waiting.result(timeout=90) == "saw the flag", kind
    finally:
        local.close()


@pytest.mark.parametrize(("given", "want"), [("1", 1), ("6", 6), ("", None), ("0", None), ("lots", None)])
def test_the_threads_are_one_per_core_unless_set(monkeypatch, given: str, want: int | None) -> None:
    monkeypatch.setenv("MIGCHECK_WORKERS", given)
    assert default_workers() == (want if want is not None else max(2, os.cpu_count() or 2))
