"""Running one step function in a worker process of its own (``Step.own_process``).

Great Expectations is Python-heavy: in a thread it holds the interpreter lock that the reading and
reconciling threads need. In a fresh worker process (``spawn``: never a fork of a multi-threaded
interpreter) it runs beside them on another core. Arguments and result travel pickled (a run's
settings in, the failing rows out); a ``MigcheckError`` comes back whole. The caller's main module
must be importable without side effects (a ``__main__`` guard), as ``spawn`` requires: the
command line, the Prefect engine and pytest are.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def in_worker_process(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run in a fresh worker process per call; same signature (Prefect reads it), same result."""

    @functools.wraps(fn)
    def run(**kwargs: Any) -> Any:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(fn, **kwargs).result()

    return run
