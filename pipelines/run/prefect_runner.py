"""The Prefect runner: each step of the sequence a Prefect task of the running flow.

Used inside the flows of ``pipelines/run/flows.py`` (deployments, and the command line when a Prefect
server is configured). A step becomes a task once, with what its declaration asks for: retries with
back-off for I/O that may pass (``MigcheckError.transient`` or ``OSError``, never a wrong argument),
a run name per call; no task result is cached (every file is staged into this run's work folder,
which is gone when the run ends: ``docs/decisions.md`` D84). With ``--dask`` the
partitions run as tasks on that cluster through Prefect's Dask task runner.
"""

from __future__ import annotations

from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from checks.errors import MigcheckError
from pipelines.run.processes import in_worker_process
from pipelines.run.sequence import Step, dask_unreachable


def _transient(task, task_run, state) -> bool:  # noqa: ANN001 - Prefect's retry_condition_fn signature
    """Retry only faults that may pass: I/O errors, databases or files that did not answer."""
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, MigcheckError):
        return exc.transient
    return isinstance(exc, OSError)


IO_RETRY: dict[str, Any] = dict(retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=_transient)


_TASKS: dict[str, Task] = {}


def task_of(step: Step) -> Task:
    """The Prefect task of a step (made once per process)."""
    if step.name not in _TASKS:
        options: dict[str, Any] = {"name": step.name, "cache_policy": NO_CACHE}
        if step.io:
            options |= IO_RETRY
        if step.run_name:
            options["task_run_name"] = step.run_name
        # a step that wants its own process gets one here too (the flow's tasks are threads)
        fn = in_worker_process(step.fn) if step.own_process else step.fn
        _TASKS[step.name] = task(**options)(fn)
    return _TASKS[step.name]


class PrefectRunner:
    """Runs steps as tasks of the current flow run."""

    def submit(self, step: Step, **kwargs: Any):  # noqa: ANN201 - a PrefectFuture
        """Submit the step's task to the flow's task runner."""
        return task_of(step).submit(**kwargs)

    def call(self, step: Step, **kwargs: Any) -> Any:
        """Run the step's task and wait for its result."""
        return task_of(step)(**kwargs)

    def map_on_cluster(self, step: Step, address: str, calls: list[dict]) -> list[Any]:
        """One task per call, on the Dask cluster at ``address`` (Prefect's Dask task runner)."""
        from prefect_dask import DaskTaskRunner  # imported only when a cluster is asked for

        runner = DaskTaskRunner(address=address, client_kwargs={"timeout": "20s"})
        try:
            with runner:
                futures = [runner.submit(task_of(step), c) for c in calls]
                return [f.result() for f in futures]
        except (OSError, TimeoutError) as e:
            raise dask_unreachable(address, e) from None

    def timings(self) -> dict[str, float]:
        """Stage times are in the Prefect UI (each task's duration), not kept here."""
        return {}
