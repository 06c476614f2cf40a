"""The reconciliation on a Dask cluster (Prefect's Dask task runner) gives the single-process result.

A local Dask cluster of three worker processes stands in for the team's cluster: the flow is given
its scheduler address, exactly as it would be given a remote one.
"""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest


@pytest.fixture(scope="module")
def dask_address():
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def _executed_per_worker(address: str) -> dict[str, int]:
    from distributed import Client

    with Client(address, set_as_default=False) as c:
        return c.run(lambda dask_worker: dask_worker.state.executed_count)


def test_dask_run_gives_the_same_discrepancies_ledger_and_summary(harness, dask_address, tmp_path, sample_extract):
    from pipelines.run.flows import validate_trial_load, verdict_of
    from pipelines.synth.trial_load import simulate_trial_load

    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    url = f"sqlite:///{tmp_path / 't.db'}"
    simulate_trial_load(extract, url, faults="default", seed=7)
    before = _executed_per_worker(dask_address)

    runs = {}
    for name, dask in (("local", None), ("dask", dask_address)):
        out = tmp_path / name / "report"
        out.parent.mkdir()
        state = validate_trial_load(
            str(extract),
            "TL-dask",
            str(out),
            target=url,
            history=f"sqlite:///{tmp_path / name}.db",
            dask=dask,
            partitions=7,
            return_state=True,
        )
        assert state.is_failed()  # the faulted load fails its gate
        runs[name] = (verdict_of(state), out)

    (r1, local), (r2, dask) = runs["local"], runs["dask"]
    assert r1["errors"] > 0 and {k: v for k, v in r1.items() if k not in ("report", "message")} == {
        k: v for k, v in r2.items() if k not in ("report", "message")
    }
    # byte-identical discrepancy list; the same ledger and summary
    assert (local / "discrepancies.csv").read_bytes() == (dask / "discrepancies.csv").read_bytes()
    assert pl.read_parquet(local / "ledger.parquet").equals(pl.read_parquet(dask / "ledger.parquet"))
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (local, dask))
    for s in (s1, s2):  # the run's own time is the one thing that differs
        for point in s["trend"]:
            point.pop("run_at")
    assert s1 == s2

    # the partitions really ran on the cluster, spread over several worker processes
    after = _executed_per_worker(dask_address)
    ran = {w: after[w] - before.get(w, 0) for w in after}
    assert sum(ran.values()) >= 7, ran  # one task per partition
    assert sum(1 for n in ran.values() if n > 0) >= 2, ran


def test_unreachable_scheduler_is_a_one_line_exit_2(harness, tmp_path, sample_extract):
    from checks.errors import MigcheckError
    from pipelines.run.flows import validate_trial_load
    from pipelines.synth.trial_load import simulate_trial_load

    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    url = f"sqlite:///{tmp_path / 't.db'}"
    simulate_trial_load(extract, url, faults="none", seed=1)
    with pytest.raises(MigcheckError) as e:
        validate_trial_load(str(extract), "TL-x", str(tmp_path / "r"), target=url, dask="tcp://127.0.0.1:1")
    assert e.value.exit_code == 2 and "--dask" in str(e.value) and "\n" not in str(e.value)


def test_cli_takes_a_dask_address_and_a_positive_partition_count():
    from checks.errors import MigcheckError
    from pipelines.cli import build_parser

    base = ["validate", "--source", "x", "--target", "sqlite:///t.db", "--trial-load", "TL1", "--out", "o"]
    a = build_parser().parse_args([*base, "--dask", "tcp://10.0.0.5:8786", "--partitions", "48"])
    assert (a.dask, a.partitions) == ("tcp://10.0.0.5:8786", 48)
    assert build_parser().parse_args(base).dask is None
    with pytest.raises(MigcheckError, match="--partitions"):
        build_parser().parse_args([*base, "--partitions", "0"])
