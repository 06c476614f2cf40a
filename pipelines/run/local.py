"""The local runner: a validation's steps in this process, one thread per core, no Prefect server.

The command line's default. Steps that ``submit`` runs (the extract files, the target tables, the
partitions) share a thread pool of one thread per core (``default_workers``): polars and the
database drivers release the GIL, so the cores are kept busy. Each thread holds one file block,
table batch or partition at a time, so the pool's size also bounds the run's memory. The target
checks (Great Expectations: Python-heavy, holding the GIL) run in one worker process of their own
when the caller asks for it (the command line does, with a worker it started before its own
imports; a library caller's script would need a ``__main__`` guard for Python's ``spawn``); that
step is waited for outside the pool, so it takes no thread from the others. With ``--dask`` the
partitions go to that Dask cluster through a plain ``distributed`` client.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pipelines.run.processes import WorkerProcess, in_worker_process
from pipelines.run.progress import Progress, Silent
from pipelines.run.sequence import Step, dask_unreachable, default_workers


class LocalRunner:
    """Runs steps in this process; keeps the wall time of each stage."""

    def __init__(
        self,
        workers: int | None = None,
        progress: Progress | None = None,
        worker_process: bool = False,
        worker: WorkerProcess | None = None,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers or default_workers(), thread_name_prefix="migcheck")
        #: a step in a process of its own is waited for here, not in a thread of the pool, and a
        #: pure-Python step (``Step.beside``) runs here: the pool's threads are the run's share of
        #: the cores
        self._waiting = ThreadPoolExecutor(max_workers=2, thread_name_prefix="migcheck-wait")
        #: steps that want their own process (``Step.own_process``) get one when ``worker_process``
        #: is asked for (the command line); otherwise they run in a thread
        self._worker_process = worker_process or worker is not None
        #: a worker started ahead (its imports done while this process did its own): the first
        #: such step runs in it; closed with the runner, at once if no step took it
        self._worker = worker
        self._lock = threading.Lock()
        self.progress = progress or Silent()
        #: stage → seconds from its first step's start to its last step's end
        self._spans: dict[str, list[float]] = defaultdict(lambda: [float("inf"), 0.0])

    def _run(self, step: Step, kwargs: dict[str, Any]) -> Any:
        t0 = time.perf_counter()
        with self._lock:
            span = self._spans[step.stage]
            span[0] = min(span[0], t0)
        self.progress.started(step)
        try:
            if step.own_process and self._worker_process:
                with self._lock:
                    worker, self._worker = self._worker, None
                return worker.run(step.fn, **kwargs) if worker is not None else in_worker_process(step.fn)(**kwargs)
            return step.fn(**kwargs)
        finally:
            t1 = time.perf_counter()
            with self._lock:
                self._spans[step.stage][1] = max(self._spans[step.stage][1], t1)
            self.progress.finished(step, t1 - t0)

    def submit(self, step: Step, **kwargs: Any) -> Future:
        """Run the step in the pool; its result later."""
        self.progress.submitted(step)
        pool = self._waiting if (step.own_process and self._worker_process) or step.beside else self._pool
        return pool.submit(self._run, step, kwargs)

    def call(self, step: Step, **kwargs: Any) -> Any:
        """Run the step now, in this thread."""
        self.progress.submitted(step)
        return self._run(step, kwargs)

    def map_on_cluster(self, step: Step, address: str, calls: list[dict]) -> list[Any]:
        """Run one call of ``step`` per item of ``calls`` on the Dask cluster at ``address``."""
        from distributed import Client  # imported only when a cluster is asked for

        try:
            client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise dask_unreachable(address, e) from None
        try:
            for _ in calls:
                self.progress.submitted(step)
            futures = [client.submit(step.fn, pure=False, **c) for c in calls]
            out = []
            for f in futures:
                t0 = time.perf_counter()
                out.append(f.result())
                self.progress.finished(step, time.perf_counter() - t0)
            return out
        finally:
            client.close()

    def timings(self) -> dict[str, float]:
        """Seconds per stage so far (stages overlap: a stage runs while another waits)."""
        with self._lock:
            return {s: round(max(0.0, b - a), 3) for s, (a, b) in self._spans.items() if b >= a}

    def close(self) -> None:
        """Wait for running steps; drop the ones not started (after a failure)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._waiting.shutdown(wait=True, cancel_futures=True)
        if self._worker is not None:
            self._worker.close()
