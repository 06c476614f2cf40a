"""Where a long validation is: a live display on a terminal, one line per stage in a CI log.

The runner tells its progress reporter when a step is submitted, starts and finishes; the
reporter turns that into what the reader needs: ``Rich`` (a terminal: one bar per stage, steps
done of steps known), ``Plain`` (a log: one line when a stage starts), ``Silent`` (``--quiet``,
libraries, tests). Only stage names and step names are shown — never a value of the data.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, TextIO

from pipelines.run.sequence import STAGES, Step

if TYPE_CHECKING:
    from rich.progress import TaskID

#: how each stage reads in a progress line
STAGE_TEXT = {
    "prepare": "checking arguments, settings and the target",
    "extract": "reading the extract",
    "read_target": "reading the target tables",
    "reconcile": "reconciling persons and encounters",
    "partitions": "checking and reconciling the partitions",
    "target_checks": "running the target checks in the database",
    "archive": "checking every record against the preservation archive",
    "report": "writing the report",
}


class Progress:
    """The reporter interface (and a reporter that shows nothing)."""

    def submitted(self, step: Step) -> None:
        """A step was handed to the runner."""

    def started(self, step: Step) -> None:
        """A step began."""

    def finished(self, step: Step, seconds: float) -> None:
        """A step ended (done or failed)."""

    def close(self) -> None:
        """The run is over."""


class Silent(Progress):
    """Shows nothing (``--quiet``, libraries, tests)."""


class Plain(Progress):
    """One line per stage, when it starts: for logs that are not a terminal (CI)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def started(self, step: Step) -> None:  # noqa: D102
        with self._lock:  # one whole line at a time: steps start in several threads
            if step.stage in self._seen:
                return
            self._seen.add(step.stage)
            self._stream.write(f"migcheck: {STAGE_TEXT.get(step.stage, step.stage)} …\n")
            self._stream.flush()


class Rich(Progress):
    """A live display on a terminal: one bar per stage, steps done of steps known."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description:<44}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=sys.stdout),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()
        self._progress.start()

    def _task(self, stage: str) -> TaskID:
        if stage not in self._tasks:
            # stages appear in the order they start; add the known ones in STAGES order
            self._tasks[stage] = self._progress.add_task(STAGE_TEXT.get(stage, stage), total=0)
        return self._tasks[stage]

    def submitted(self, step: Step) -> None:  # noqa: D102
        with self._lock:
            tid = self._task(step.stage)
            total = self._progress.tasks[[t.id for t in self._progress.tasks].index(tid)].total or 0
            self._progress.update(tid, total=total + 1)

    def finished(self, step: Step, seconds: float) -> None:  # noqa: D102
        with self._lock:
            self._progress.advance(self._task(step.stage))

    def close(self) -> None:  # noqa: D102
        self._progress.stop()


def for_terminal(quiet: bool) -> Progress:
    """The reporter the command line uses: nothing with --quiet, a live display on a terminal, else lines."""
    if quiet:
        return Silent()
    if sys.stdout.isatty():
        return Rich()
    return Plain()


__all__ = ["STAGES", "Plain", "Progress", "Rich", "Silent", "for_terminal"]
