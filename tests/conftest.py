"""Shared fixtures: the committed sample extract, a PostgreSQL database if one answers."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]

# Prefect: a private home for the whole test session (subprocesses inherit it), no telemetry;
# removed when the session ends (only if this session made it)
_OWN_PREFECT_HOME = None if "PREFECT_HOME" in os.environ else tempfile.mkdtemp(prefix="migcheck-prefect-")
if _OWN_PREFECT_HOME:
    os.environ["PREFECT_HOME"] = _OWN_PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
SAMPLE = REPO / "sample_data"
MAPPINGS = REPO / "mappings"
PG_URL = os.environ.get("MIGCHECK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def sample_extract() -> Path:
    """The committed synthetic extract (default defects) with its ground truth."""
    assert (SAMPLE / "pas" / "patient.csv").exists(), "sample_data/ is missing: see README"
    return SAMPLE


@pytest.fixture()
def extract_copy(tmp_path: Path, sample_extract: Path) -> Path:
    """A writable copy of the sample extract (trial-load writes load_faults.csv beside it)."""
    dst = tmp_path / "extract"
    shutil.copytree(sample_extract, dst)
    return dst


def _pg_engine() -> sa.Engine | None:
    try:
        eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(sa.text("select 1"))
        return eng
    except Exception:  # noqa: BLE001 - any failure means: no server here
        return None


@pytest.fixture()
def pg_url() -> str:
    """A fresh, empty PostgreSQL schema on the test server; skips visibly where none answers."""
    eng = _pg_engine()
    if eng is None:
        pytest.skip(f"no PostgreSQL server answers at {PG_URL.split('@')[-1]} (set MIGCHECK_TEST_PG_URL)")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with eng.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with eng.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    eng.dispose()


@pytest.fixture(scope="session")
def harness():
    """One Prefect test harness (temporary database and API server) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# ---------------------------------------------------------------------------------------------
# The suite leaves the working tree as it found it: tests and the tools they run write only to
# temporary folders. Compared at the end of the session with `git status`; a difference fails the run.


def _git_status() -> str | None:
    import subprocess

    try:
        r = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


#: environment variables that ask tests to rewrite committed files (golden outputs, screenshots)
UPDATING = ("MIGCHECK_UPDATE_GOLDEN", "MIGCHECK_UPDATE_SCREENSHOTS")


def pytest_sessionstart(session):
    updating = any(os.environ.get(v) == "1" for v in UPDATING)
    session.config._migcheck_git_status = None if updating else _git_status()


def pytest_unconfigure(config):
    if _OWN_PREFECT_HOME and not hasattr(config, "workerinput"):
        shutil.rmtree(_OWN_PREFECT_HOME, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_migcheck_git_status", None)
    if before is None or hasattr(session.config, "workerinput"):
        return
    after = _git_status()
    if after is not None and after != before:
        changed = sorted(set(after.splitlines()) ^ set(before.splitlines()))
        print("\nThe test run changed the working tree (tests must write only to temporary folders):")
        for line in changed[:20]:
            print(f"  {line}")
        session.exitstatus = 1
