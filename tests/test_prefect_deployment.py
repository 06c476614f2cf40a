"""End to end: a real temporary Prefect server, deployments from prefect.yaml, a process worker,
validate-trial-load triggered through the API on sample_data/; no mocks."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.synth.trial_load import simulate_trial_load

from conftest import REPO

PREFECT = str(Path(sys.executable).parent / "prefect")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> object:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_deploy_trigger_and_report(tmp_path, sample_extract):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    simulate_trial_load(extract, target, faults="default", seed=2)
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MIGCHECK_HOME": str(REPO),
        "MIGCHECK_TARGET_URL": target,
        "PREFECT_UI_ENABLED": "false",
    }
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    worker = None
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "Prefect server did not start"
            time.sleep(1)

        def prefect(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)

        r = prefect("work-pool", "create", "migcheck-process", "--type", "process")
        assert r.returncode == 0, r.stdout + r.stderr
        r = prefect("--no-prompt", "deploy", "--all")
        assert r.returncode == 0, r.stdout + r.stderr
        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "migcheck-process"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        out = tmp_path / "report"
        r = prefect(
            "deployment",
            "run",
            "validate-trial-load/validate-trial-load",
            "--watch",
            "--param",
            f"source={extract}",
            "--param",
            "trial_load=TL-e2e",
            "--param",
            f"out={out}",
            "--param",
            f"history=sqlite:///{tmp_path / 'history.db'}",
        )
        # the faulted load fails its gate: the run ends Failed, so --watch exits non-zero
        assert r.returncode != 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert "Failed" in r.stdout + r.stderr, r.stdout[-2000:] + r.stderr[-2000:]
        assert (out / "report.html").exists() and (out / "discrepancies.parquet").exists()
        summary = json.loads((out / "summary.json").read_text())
        assert summary["trial_load"] == "TL-e2e" and summary["ledger_balanced"] is True
        runs = _post(f"{api}/flow_runs/filter", {"flow_runs": {"name": {}}, "limit": 10})
        run = next(x for x in runs if x["parameters"].get("trial_load") == "TL-e2e")
        assert run["state"]["type"] == "FAILED"
        assert (
            run["state"]["message"].startswith("FAILED")
            and str(out.resolve() / "report.html") in run["state"]["message"]
        )
        assert run["parameters"]["target"] == "env:MIGCHECK_TARGET_URL"  # no URL stored as a parameter
        arts = _post(f"{api}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
        assert len(arts) == 1 and "FAILED" in arts[0]["data"] and str(out.resolve()) in arts[0]["data"]
    finally:
        for p in (worker, server):
            if p is not None:
                os.killpg(p.pid, 15)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)
