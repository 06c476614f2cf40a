"""Notifications (issue 15 item 3): the verdict to a Prefect notification block, received by a real webhook.

The receiver is a real HTTP server on 127.0.0.1 (``http.server`` in a thread); the blocks are saved on
the session's Prefect test server; the validations are real runs of a faulted copy of sample_data.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_cli import assert_one_line_exit_2
from test_cli import run as run_cli
from test_validate import _personal_values

from conftest import REPO


class Receiver:
    """A webhook receiver: records every POST body, answers ``status``."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                receiver.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/migcheck-team-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def messages(self) -> list[dict]:
        return [json.loads(b) for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def _save_webhook(name: str, url: str) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(
        name="migcheck",
        url=url,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    ).save(name, overwrite=True)


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def api_url(harness) -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


@pytest.fixture(scope="module")
def faulted(tmp_path_factory, sample_extract) -> tuple[Path, str]:
    """A copy of sample_data and its trial load with the default load faults (its gate fails)."""
    import shutil

    from pipelines.synth.trial_load import simulate_trial_load

    root = tmp_path_factory.mktemp("notify")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    url = f"sqlite:///{root / 'target.db'}"
    simulate_trial_load(extract, url, faults="default")
    return extract, url


def _validate(extract: Path, url: str, out: Path, api: str, *extra: str, env: dict | None = None):
    environ = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": api, **(env or {})}
    environ.pop("MIGCHECK_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", "--source", str(extract), "--target", url]
        + ["--trial-load", "TL-notify", "--out", str(out), "--history", f"sqlite:///{out.parent / 'h.db'}"]
        + ["--quiet", *extra],
        capture_output=True,
        text=True,
        env=environ,
        cwd=REPO,
        timeout=600,
    )


def test_the_team_receives_the_verdict_without_personal_data(faulted, receiver, api_url, tmp_path):
    extract, url = faulted
    _save_webhook("team-hook", receiver.url)
    before = len(receiver.bodies)
    out = tmp_path / "report"
    r = _validate(extract, url, out, api_url, "--notify", "block:team-hook")
    assert r.returncode == 1, r.stderr  # the faulted load fails its gate, as without --notify
    assert "warning" not in r.stderr, r.stderr
    got = receiver.messages()[before:]
    assert len(got) == 1, got
    subject, body = got[0]["subject"], got[0]["body"]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    t = summary["totals"]
    assert subject == "migcheck: trial load TL-notify FAILED"
    assert body.splitlines()[0] == "Trial load TL-notify of migration default: FAILED"
    assert f"errors: {t['errors']}, warnings: {t['warnings']}, waived: {t['waived']}" in body
    assert f"findings new: {t['new']}, persisting: {t['persisting']}, resolved: {t['resolved']}" in body
    assert "ledger balanced: yes" in body and summary["ledger_balanced"]
    assert f"failed gates: {sum(not g['passed'] for g in summary['gates'])} of {len(summary['gates'])}" in body
    assert f"report: {out.resolve() / 'report.html'}" in body
    # only figures the summary gives: every number outside the report's path is one of them
    figures = {str(v) for v in (*t.values(), summary["records_read"], len(summary["gates"]))}
    failed = sum(not g["passed"] for g in summary["gates"])
    figures |= {str(failed), str(failed - 5)}  # failed gates: N of M (five named, +N-5 more)
    text = "\n".join([subject, body]).replace(str(out.resolve() / "report.html"), "")
    assert set(re.findall(r"\d+", text)) <= figures, set(re.findall(r"\d+", text)) - figures
    ids, names, postal = _personal_values(extract)
    tokens = set(re.findall(r"[^\W\d_]+", text))
    assert not [i for i in ids if i in text], "identity number in the notification"
    assert not (names & tokens), sorted(names & tokens)[:10]
    assert not [p for p in postal if re.search(rf"\b{p}\b", text) and p not in figures], "postal code"


def test_a_notification_that_cannot_be_sent_never_fails_the_validation(faulted, api_url, tmp_path):
    extract, url = faulted
    # an unknown block, named by the environment's default: exit as usual, one warning line
    r = _validate(extract, url, tmp_path / "r1", api_url, env={"MIGCHECK_NOTIFY": "block:no-such-hook"})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("migcheck: warning: "), r.stderr
    assert "block:no-such-hook" in lines[0] and "no notification block" in lines[0], lines[0]
    assert r.stdout.startswith("FAILED") and (tmp_path / "r1" / "report.html").exists()


def test_receiver_down_is_a_warning_in_process(harness, faulted, tmp_path, caplog):
    from pipelines.run.validate import run_validation

    extract, url = faulted
    _save_webhook("down-hook", f"http://127.0.0.1:{_closed_port()}/hooks/secret-token")
    with caplog.at_level(logging.WARNING, logger="migcheck"):
        result = run_validation(
            extract,
            url,
            "TL-down",
            tmp_path / "r",
            history_url=f"sqlite:///{tmp_path / 'h.db'}",
            notify="block:custom-webhook/down-hook",
        )
    assert result.exit_code == 1 and (tmp_path / "r" / "report.html").exists()
    warned = [r for r in caplog.records if r.name == "migcheck" and r.levelno >= logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    line = warned[0].getMessage()
    assert "block:custom-webhook/down-hook" in line and "ConnectError" in line, line
    assert "secret-token" not in line and not warned[0].exc_info


def test_an_http_error_is_a_warning_without_the_webhook_url(harness, receiver, caplog):
    from pipelines.io.notify import notify

    _save_webhook("refusing-hook", receiver.url)
    receiver.status = 500
    try:
        with caplog.at_level(logging.WARNING, logger="migcheck"):
            assert notify("block:refusing-hook", _result(exit_code=0)) is False
    finally:
        receiver.status = 200
    (line,) = [r.getMessage() for r in caplog.records if r.name == "migcheck"]
    assert "block:refusing-hook" in line and "HTTP 500" in line and "token" not in line, line


def test_a_block_that_is_no_notification_block_is_named(harness, caplog):
    from prefect.blocks.system import Secret

    from pipelines.io.notify import notify

    Secret(value="not for messages").save("a-secret", overwrite=True)
    with caplog.at_level(logging.WARNING, logger="migcheck"):
        assert notify("block:secret/a-secret", _result(exit_code=0)) is False
    (line,) = [r.getMessage() for r in caplog.records if r.name == "migcheck"]
    assert "block:secret/a-secret" in line and "not a notification block" in line, line
    assert "not for messages" not in line


def _result(exit_code: int):
    from pipelines.run.validate import ValidationResult

    summary = {
        "trial_load": "TL9",
        "migration": "region-west",
        "records_read": 120,
        "totals": {"errors": 0, "warnings": 2, "waived": 1, "new": 2, "persisting": 1, "resolved": 4},
        "gates": [{"check": "person.count", "passed": True}],
    }
    return ValidationResult(Path("/reports/tl9"), exit_code, 0, 2, True, {}, summary)


def test_the_message_of_a_passing_load():
    from pipelines.io.notify import message

    subject, body = message(_result(exit_code=0))
    assert subject == "migcheck: trial load TL9 PASSED"
    assert body.splitlines() == [
        "Trial load TL9 of migration region-west: PASSED",
        "errors: 0, warnings: 2, waived: 1",
        "findings new: 2, persisting: 1, resolved: 4",
        "failed gates: 0 of 1",
        "ledger balanced: yes",
        "legacy records read: 120",
        f"report: {Path('/reports/tl9').resolve() / 'report.html'}",
    ]


@pytest.mark.parametrize(
    "args, env",
    [
        (["--notify", "foo"], {}),
        (["--notify", "block:a/b/c"], {}),
        (["--notify", "block:"], {}),
        ([], {"MIGCHECK_NOTIFY": "teams"}),
    ],
)
def test_a_wrong_notify_setting_stops_at_once(args, env, tmp_path, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    t0 = time.perf_counter()
    # the extract does not exist either: --notify is checked first, before any work
    r = run_cli(
        "validate", "--source", str(tmp_path / "nope"), "--target", "sqlite:///x.db", "--trial-load", "T",
        "--out", str(tmp_path / "r"), *args,
    )  # fmt: skip
    assert_one_line_exit_2(r, "--notify", "block:NAME")
    assert "--source" not in r.stderr and time.perf_counter() - t0 < 30
    if env:
        assert "MIGCHECK_NOTIFY" in r.stderr


@pytest.mark.parametrize("value", ["block:team", "block:ms-teams-webhook/team", " block:team ", None, ""])
def test_setting_forms(value):
    from pipelines.io.notify import check_setting

    assert check_setting(value) == (value.strip() if value and value.strip() else None)
