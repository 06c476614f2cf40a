"""The local runner: one thread per core, and the target checks' process waited for outside them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from checks.errors import MigcheckError
from pipelines.run.local import LocalRunner
from pipelines.run.processes import WorkerProcess
from pipelines.run.sequence import Step, default_workers


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


def _pid_and(value: str) -> tuple[int, str]:
    return os.getpid(), value


def _fails(code: int) -> None:
    raise MigcheckError("--target x: refused", exit_code=code)


def _sleep_long() -> None:
    time.sleep(60)


def test_a_worker_started_ahead_runs_the_step_and_ends() -> None:
    """The command line starts the target checks' worker before its own imports (D100)."""
    worker = WorkerProcess(warm=("json",))
    local = LocalRunner(workers=1, worker=worker)
    try:
        pid, value = local.submit(Step("own", _pid_and, "target_checks", own_process=True), value="x").result(60)
    finally:
        local.close()
    assert value == "x" and pid != os.getpid()
    assert worker._proc.exitcode == 0  # the worker ended once it sent its result


def test_a_workers_error_comes_back_whole() -> None:
    with pytest.raises(MigcheckError) as e:
        WorkerProcess().run(_fails, code=3)
    assert e.value.exit_code == 3 and str(e.value) == "--target x: refused"


def test_an_unused_worker_is_ended_at_once_even_while_it_warms_up() -> None:
    """A run that stops before its target checks (bad input) does not wait for the worker's imports."""
    worker = WorkerProcess(warm=("test_local_runner:_sleep_long",))
    time.sleep(1)  # it is importing, or sleeping
    t0 = time.monotonic()
    worker.close()
    assert time.monotonic() - t0 < 10
    assert not worker._proc.is_alive()


def test_a_warm_up_that_fails_leaves_the_call_to_report() -> None:
    worker = WorkerProcess(warm=("no_such_module_anywhere", "json:no_such_function"))
    assert worker.run(_pid_and, value="y")[1] == "y"
