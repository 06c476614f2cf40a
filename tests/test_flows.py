"""The Prefect flows under Prefect's test harness: same results as the library, cache, artifact, logs."""

from __future__ import annotations

import asyncio
import re
import shutil

import polars as pl
import pytest
from test_golden_outputs import normalised
from test_validate import _personal_values

from conftest import MAPPINGS


def _task_states(flow_run_id) -> dict[str, list[str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def go():
        async with get_client() as c:
            runs = await c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            out: dict[str, list[str]] = {}
            for r in runs:
                out.setdefault(r.name.rsplit("-", 1)[0] if r.name[-4:-3] == "-" else r.name, []).append(r.state.name)
            return out

    return asyncio.run(go())


def _logs_and_artifacts(flow_run_id) -> tuple[str, list]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    async def go():
        async with get_client() as c:
            logs = await c.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            arts = await c.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            return "\n".join(x.message for x in logs), arts

    return asyncio.run(go())


@pytest.fixture(scope="module")
def flow_run(harness, tmp_path_factory, sample_extract):
    from pipelines.run.flows import validate_trial_load
    from pipelines.synth.flows import simulate_trial_load_flow

    root = tmp_path_factory.mktemp("flows")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    url = f"sqlite:///{root / 't.db'}"
    simulate_trial_load_flow(str(extract), url, "default", 5)
    state = validate_trial_load(
        str(extract),
        "TL-flow",
        str(root / "report"),
        target=url,
        history=f"sqlite:///{root / 'h.db'}",
        return_state=True,
    )
    return root, extract, url, state


def test_generate_sample_flow(harness, tmp_path):
    from pipelines.synth.flows import generate_sample

    r = generate_sample(str(tmp_path / "x"), 40, 3, "default")
    assert (tmp_path / "x" / "pas" / "patient.csv").exists() and r["defects"] > 0


def test_validate_flow_gives_the_library_result(flow_run):
    from pipelines.run.flows import verdict_of
    from pipelines.run.validate import run_validation

    root, extract, url, state = flow_run
    result = verdict_of(state)
    assert result["exit_code"] == 1 and result["ledger_balanced"]
    lib = run_validation(extract, url, "TL-flow", root / "lib", history_url=f"sqlite:///{root / 'h2.db'}")
    a = pl.read_parquet(root / "report" / "discrepancies.parquet")
    b = pl.read_parquet(root / "lib" / "discrepancies.parquet")
    assert a.height > 0 and a.equals(b)
    # the two runners of the one step sequence write the same report, file by file
    flow_out, local_out = normalised(root / "report"), normalised(root / "lib")
    assert flow_out == local_out
    for name in ("discrepancies.csv", "discrepancies.parquet", "ledger.parquet", "unmapped_codes.csv"):
        assert (root / "report" / name).read_bytes() == (root / "lib" / name).read_bytes(), name
    assert (root / "report" / "report.html").exists() and (root / "report" / "junit.xml").exists()
    assert lib.errors == result["errors"]
    # the command line's way: the target checks in a worker process of their own, the same report
    run_validation(
        extract, url, "TL-flow", root / "proc", history_url=f"sqlite:///{root / 'h3.db'}", worker_process=True
    )
    assert normalised(root / "proc") == local_out
    for name in ("discrepancies.parquet", "ledger.parquet"):
        assert (root / "proc" / name).read_bytes() == (root / "lib" / name).read_bytes(), name


def test_a_failed_gate_ends_the_flow_run_failed_with_verdict_and_report(flow_run):
    root, _, _, state = flow_run
    assert state.is_failed(), state.type
    report = str((root / "report" / "report.html").resolve())
    assert state.message.startswith("FAILED") and report in state.message
    assert (root / "report" / "report.html").exists()  # the report is still written


def test_a_passing_gate_ends_the_flow_run_completed(harness, tmp_path, extract_copy, monkeypatch):
    from pipelines.run.flows import validate_trial_load
    from pipelines.synth.trial_load import simulate_trial_load

    url = f"sqlite:///{tmp_path / 't.db'}"
    simulate_trial_load(extract_copy, url, faults="none")
    mappings = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, mappings)
    (mappings / "gates.yaml").write_text("default: {max_count: 100000}\n")  # a gate that tolerates the defects
    monkeypatch.setenv("MIGCHECK_MAPPINGS", str(mappings))
    state = validate_trial_load(
        str(extract_copy),
        "TL-pass",
        str(tmp_path / "r"),
        target=url,
        history=f"sqlite:///{tmp_path / 'h.db'}",
        return_state=True,
    )
    assert state.is_completed() and state.result()["exit_code"] == 0
    assert state.result()["message"].startswith("PASSED")


def test_tasks_per_file_and_entity_and_artifact(flow_run):
    _, _, _, state = flow_run
    states = _task_states(state.state_details.flow_run_id)
    # every file and table staged by a task named by it: persons and encounters first, then the rest
    parents = {"stage-pas-patient", "stage-pas-kontakt", "stage-pcs-patients", "stage-pcs-visits"}
    parents |= {"stage-person", "stage-person_alias", "stage-encounter", "stage-encntr_alias"}
    assert parents <= set(states)
    assert {"stage-diagnosis", "stage-procedure", "stage-orders", "stage-allergy", "stage-clinical_event"} <= set(
        states
    )
    files = {"stage-pas-diagnos", "stage-pas-atgard", "stage-pas-anteckning", "stage-pcs-medications"}
    assert files | {"stage-pcs-allergies", "stage-pcs-labresults", "stage-pcs-notes"} <= set(states)
    # the components of persons, then each partition's persons and encounters, then its other records
    assert {"person-components", "parents-0", "merge-parents", "partition-0", "merge-partitions"} <= set(states)
    logs, arts = _logs_and_artifacts(state.state_details.flow_run_id)
    assert len(arts) == 1 and "FAILED" in arts[0].data and "report.html" in arts[0].data


def test_prefect_logs_hold_no_personal_data(flow_run):
    _, extract, _, state = flow_run
    logs, arts = _logs_and_artifacts(state.state_details.flow_run_id)
    ids, names, _ = _personal_values(extract)
    text = logs + "\n".join(a.data or "" for a in arts)
    assert not [i for i in ids if i in text]
    assert not (names & set(re.findall(r"[^\W\d_]+", text)))
