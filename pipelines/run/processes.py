"""Running one step function in a worker process of its own (``Step.own_process``).

Great Expectations is Python-heavy: in a thread it holds the interpreter lock that the reading and
reconciling threads need. In a fresh worker process (``spawn``: never a fork of a multi-threaded
interpreter) it runs beside them on another core. Arguments and result travel pickled (a run's
settings in, the failing rows out); an error, a ``MigcheckError`` among them, comes back whole.
The caller's main module must be importable without side effects (a ``__main__`` guard), as
``spawn`` requires: the command line, the Prefect engine and pytest are.

A worker may be started before its step is due (``WorkerProcess(warm=…)``): it imports the
step's modules (Great Expectations takes seconds) while the caller still imports and checks its
own, on a core that would otherwise wait. This module imports nothing heavy, so that the command
line can start the worker first.
"""

from __future__ import annotations

import functools
import importlib
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


def _warm_up(warm: tuple[str, ...]) -> None:
    """Import each ``module`` or ``module:function`` of ``warm`` and call the function.

    Only a head start: what fails here fails again, and is reported, when the call itself needs it.
    """
    for entry in warm:
        module, _, function = entry.partition(":")
        try:
            loaded = importlib.import_module(module)
            if function:
                getattr(loaded, function)()
        except Exception:  # noqa: BLE001, S112 - the call reports it in its own words
            continue


def _serve(conn: Connection, warm: tuple[str, ...]) -> None:
    """In the worker: warm up (``_warm_up``), then run the one call the caller sends and send back its outcome."""
    _warm_up(warm)
    try:
        fn, kwargs = conn.recv()
    except EOFError:  # the caller closed the worker unused
        return
    try:
        outcome: tuple[bool, Any] = (True, fn(**kwargs))
    except BaseException as e:  # noqa: BLE001 - every error goes back to the caller, which raises it
        outcome = (False, e)
    try:
        conn.send(outcome)
    except Exception as e:  # noqa: BLE001 - an error that does not pickle goes back by its name
        conn.send((False, RuntimeError(f"{type(outcome[1]).__name__} in the worker process ({type(e).__name__})")))


class WorkerProcess:
    """One spawned worker process for one step's call, started at once.

    ``warm``: modules (``module`` or ``module:function``, the function called) it imports while
    it waits for the call. ``close`` ends a worker that was never given its call at once (a run
    that stopped early does not wait for its imports).
    """

    def __init__(self, warm: tuple[str, ...] = ()) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, warm), daemon=True, name="migcheck-worker")
        self._proc.start()
        child.close()
        self._used = False

    def run(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """``fn(**kwargs)`` in the worker; its result, or its error raised here. A worker runs one call."""
        if self._used:
            raise RuntimeError("a worker process runs one call")
        self._used = True
        try:
            self._conn.send((fn, kwargs))
            ok, value = self._conn.recv()
        except (EOFError, OSError):
            raise RuntimeError(f"the worker process ended without a result (exit code {self._exit()})") from None
        finally:
            self.close()
        if ok:
            return value
        raise value

    def _exit(self) -> int | None:
        self._proc.join(timeout=5)
        return self._proc.exitcode

    def close(self) -> None:
        """End the worker: at once if it was never given its call, else once it has sent its result."""
        if not self._used and self._proc.is_alive():
            self._proc.terminate()
        self._proc.join()
        self._conn.close()


def in_worker_process(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run in a fresh worker process per call; same signature (Prefect reads it), same result."""

    @functools.wraps(fn)
    def run(**kwargs: Any) -> Any:
        return WorkerProcess().run(fn, **kwargs)

    return run
