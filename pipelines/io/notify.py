"""Notifications: a validation's verdict to a Prefect notification block (Teams, Slack, e-mail, a webhook).

``--notify block:NAME`` (or ``$MIGCHECK_NOTIFY``, or the ``notify`` parameter of the flow
``validate-trial-load``) names a saved block of any notification type (``prefect.blocks.notifications``:
``ms-teams-webhook``, ``slack-webhook``, ``sendgrid-email``, ``apprise-notification-block``,
``custom-webhook``, …). ``block:TYPE/NAME`` names its type too (``block:slack-webhook/data-team``);
``block:NAME`` finds the one notification block of that name. The message holds only figures the
summary gives (verdict, counts, ledger balance) and the report's path: never a value from the data.

Notifying is best effort, after the report is written: any failure is one warning line on the
``migcheck`` logger naming the block and the cause, and the validation's verdict stands.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Protocol

from checks.errors import MigcheckError

log = logging.getLogger("migcheck")

PREFIX = "block:"
#: a block's (or a block type's) name: Prefect allows no slash or whitespace in either
_NAME = re.compile(r"[^/\s]+")
#: how many failed gates the message names
GATES_NAMED = 5


class _Result(Protocol):
    """What the message is made of (``pipelines.run.validate.ValidationResult``, read only)."""

    @property
    def out(self) -> Path: ...  # noqa: D102
    @property
    def exit_code(self) -> int: ...  # noqa: D102
    @property
    def errors(self) -> int: ...  # noqa: D102
    @property
    def warnings(self) -> int: ...  # noqa: D102
    @property
    def ledger_balanced(self) -> bool: ...  # noqa: D102
    @property
    def summary(self) -> dict: ...  # noqa: D102


class NotNotified(Exception):
    """Why the notification was not sent, in one line without secrets."""


def check_setting(setting: str | None, option: str = "--notify") -> str | None:
    """The notification setting checked before any work: ``None`` (none asked) or ``block:[TYPE/]NAME``.

    Raises ``MigcheckError`` (exit 2) naming ``option`` for any other form.
    """
    if setting is None or not setting.strip():
        return None
    value = setting.strip()
    parts = value[len(PREFIX) :].split("/") if value.startswith(PREFIX) else []
    if not 1 <= len(parts) <= 2 or not all(_NAME.fullmatch(p) for p in parts):
        raise MigcheckError(
            f"{option} {setting!r}: give block:NAME or block:TYPE/NAME, a saved Prefect notification block "
            "(e.g. block:data-team or block:ms-teams-webhook/data-team)"
        )
    return value


def notify_setting(value: str | None) -> str | None:
    """``--notify`` (or the flow's ``notify``), else ``$MIGCHECK_NOTIFY``, checked by ``check_setting``."""
    if value:
        return check_setting(value)
    return check_setting(os.environ.get("MIGCHECK_NOTIFY"), "--notify (default $MIGCHECK_NOTIFY)")


def message(result: _Result) -> tuple[str, str]:
    """Subject and body of the notification: the verdict, the summary's figures and the report's path."""
    s = result.summary
    t = s.get("totals", {})
    verdict = "PASSED" if result.exit_code == 0 else "FAILED"
    trial = s.get("trial_load", "?")
    # the failed gates with the most errors first (the report lists them all)
    failing = sorted((g for g in s.get("gates", []) if not g.get("passed", True)), key=lambda g: -g.get("errors", 0))
    failed = [str(g.get("check")) for g in failing]
    gates = f"failed gates: {len(failed)} of {len(s.get('gates', []))}"
    if failed:
        more = f", … (+{len(failed) - GATES_NAMED} more)" if len(failed) > GATES_NAMED else ""
        gates += f" ({', '.join(failed[:GATES_NAMED])}{more})"
    lines = [
        f"Trial load {trial} of migration {s.get('migration', 'default')}: {verdict}",
        f"errors: {result.errors}, warnings: {result.warnings}, waived: {t.get('waived', 0)}",
        f"findings new: {t.get('new', 0)}, persisting: {t.get('persisting', 0)}, resolved: {t.get('resolved', 0)}",
        gates,
        f"ledger balanced: {'yes' if result.ledger_balanced else 'NO'}",
        f"legacy records read: {s.get('records_read', '?')}",
        f"report: {Path(result.out).resolve() / 'report.html'}",
    ]
    return f"migcheck: trial load {trial} {verdict}", "\n".join(lines)


def _one_line(e: object) -> str:
    """An exception (or text) as one short line, any URL in it masked (a webhook's URL holds its token)."""
    text = " ".join(str(e).split()) or type(e).__name__
    text = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", "<url>", text)
    return text[:200]


def _find_by_name(name: str) -> str:
    """``TYPE/NAME`` of the one notification block named ``name`` on the Prefect server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        response = client.request(
            "POST",
            "/block_documents/filter",
            json={
                "block_documents": {"name": {"any_": [name]}, "is_anonymous": {"eq_": False}},
                "block_schemas": {"block_capabilities": {"all_": ["notify"]}},
                "include_secrets": False,
                "limit": 20,
            },
        )
    slugs = sorted({d["block_type"]["slug"] for d in response.json() if d.get("block_type")})
    if not slugs:
        raise NotNotified("no notification block of that name on the Prefect server")
    if len(slugs) > 1:
        raise NotNotified(f"several notification blocks of that name ({', '.join(slugs)}): give block:TYPE/NAME")
    return f"{slugs[0]}/{name}"


def load_block(setting: str) -> Any:
    """The notification block a checked ``block:[TYPE/]NAME`` setting names (``NotNotified`` if none)."""
    import prefect.blocks.notifications  # noqa: F401 - registers Prefect's notification block types
    from prefect.blocks.abstract import NotificationBlock
    from prefect.blocks.core import Block

    ref = setting[len(PREFIX) :]
    try:
        if "/" not in ref:
            ref = _find_by_name(ref)
        block = Block.load(ref)
    except NotNotified:
        raise
    except Exception as e:  # noqa: BLE001 - no such block, the Prefect API did not answer or is not configured, …
        if isinstance(e, ValueError) and str(e).startswith("Unable to find block document"):
            raise NotNotified(f"no such block on the Prefect server ({_one_line(e)})") from None
        raise NotNotified(f"the Prefect API could not be asked ({type(e).__name__}: {_one_line(e)})") from None
    if inspect.isawaitable(block):  # Prefect hands back a coroutine inside async code
        block.close()  # type: ignore[attr-defined]
        raise NotNotified("a block cannot be loaded from async code")
    if not isinstance(block, NotificationBlock):
        raise NotNotified(f"{ref} is a {type(block).__name__} block, not a notification block")
    return block


def _send(block: Any, subject: str, body: str) -> None:
    import httpx

    try:
        with block.raise_on_failure():  # the Apprise-based blocks (Teams, Slack, …) otherwise fail silently
            sent = block.notify(body, subject=subject)
            if inspect.isawaitable(sent):
                sent.close()  # type: ignore[attr-defined]
                raise NotNotified("a block cannot notify from async code")
    except NotNotified:
        raise
    except httpx.HTTPStatusError as e:
        raise NotNotified(f"the receiver answered HTTP {e.response.status_code}") from None
    except Exception as e:  # noqa: BLE001 - network errors, Apprise's NotificationError, …
        said = getattr(e, "log", None) or e  # Apprise's NotificationError carries its log lines
        raise NotNotified(f"the receiver did not take it ({type(e).__name__}: {_one_line(said)})") from None


def _warn(text: str) -> None:
    """One warning on the ``migcheck`` logger; inside a Prefect run also in the run's log (the UI)."""
    log.warning(text)
    if "prefect" not in sys.modules:
        return
    try:
        from prefect.context import FlowRunContext, TaskRunContext

        if FlowRunContext.get() or TaskRunContext.get():
            from prefect import get_run_logger

            get_run_logger().warning(text)
    except Exception:  # noqa: BLE001, S110 - the run's log is a courtesy; the migcheck line is out
        pass


def notify(setting: str | None, result: _Result) -> bool:
    """Send the verdict of ``result`` to the notification block ``setting`` names; True when sent.

    Never raises: a failure (no Prefect API, an unknown block, a network or HTTP error) is one
    warning line on the ``migcheck`` logger naming the block and the cause, and False.
    """
    try:
        checked = check_setting(setting)
        if checked is None:
            return False
        subject, body = message(result)
        _send(load_block(checked), subject, body)
    except Exception as e:  # noqa: BLE001 - notifying never fails a validation
        cause = e.reason if isinstance(e, MigcheckError) else _one_line(e)
        _warn(f"notification to {setting} not sent: {cause}")
        return False
    log.info("notification sent to %s", setting)
    return True
