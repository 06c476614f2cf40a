"""The one error type of migcheck: it carries the exit code and a one-line reason."""

from __future__ import annotations


class MigcheckError(Exception):
    """A run that cannot be done: bad arguments, unreadable input, unreachable database.

    The message is one line naming the file or setting to fix; it never holds personal data.
    The CLI turns it into that line on stderr and ``exit_code``.
    """

    def __init__(self, message: str, exit_code: int = 2, transient: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        #: a fault that may pass (a database that does not answer, a file share that hiccups):
        #: worth a retry, unlike a wrong argument
        self.transient = transient

    def __reduce__(self):  # noqa: ANN204 - pickling protocol
        """Pickled whole (from a worker process or a cluster): exit code and transient flag kept."""
        return (type(self), (str(self), self.exit_code, self.transient))

    @property
    def reason(self) -> str:
        """The message on one line."""
        return " ".join(str(self).split())
