"""Trial-load history over three successive loads: new / persisting / resolved, stable ids, trend."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from pipelines.synth.trial_load import simulate_trial_load
from pipelines.run.validate import run_validation


@pytest.fixture(scope="module")
def three_loads(tmp_path_factory, sample_extract):
    root = tmp_path_factory.mktemp("history")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    hist = f"sqlite:///{root / 'history.db'}"
    outs = []
    for name, faults, seed in (("TL1", "default", 1), ("TL2", "default", 2), ("TL3", "none", 1)):
        db = root / f"{name}.db"
        simulate_trial_load(extract, f"sqlite:///{db}", faults=faults, seed=seed)
        out = root / name
        run_validation(extract, f"sqlite:///{db}", name, out, history_url=hist, migration="region-west")
        outs.append(out)
    return outs


def _ids(out, statuses=("new", "persisting")):
    d = pl.read_parquet(out / "discrepancies.parquet")
    return set(d.filter(pl.col("status").is_in(list(statuses)))["discrepancy_id"])


def test_statuses_follow_the_previous_load(three_loads):
    r1, r2, r3 = three_loads
    open1, open2, open3 = _ids(r1), _ids(r2), _ids(r3)
    assert _ids(r1, ("new",)) == open1  # first load: all new
    assert _ids(r2, ("persisting",)) == open1 & open2
    assert _ids(r2, ("new",)) == open2 - open1
    assert _ids(r2, ("resolved",)) == open1 - open2
    assert _ids(r3, ("persisting",)) == open2 & open3
    assert _ids(r3, ("resolved",)) == open2 - open3
    # the clean third load resolves every load fault of the second; source defects persist
    d3 = pl.read_parquet(r3 / "discrepancies.parquet")
    assert d3.filter(pl.col("status") != "resolved")["check"].str.contains(r"\.source\.|\.count$|\.extract\.").all()
    assert d3.filter(pl.col("status") == "resolved").height > 0


def test_ids_are_stable_for_the_same_defect(three_loads):
    r1, r2, r3 = three_loads
    src = [
        pl.read_parquet(r / "discrepancies.parquet")
        .filter(pl.col("check").str.contains(".source.", literal=True))
        .filter(pl.col("status") != "resolved")
        .select("discrepancy_id", "source_ref", "check")
        .sort("discrepancy_id")
        for r in (r1, r2, r3)
    ]
    assert src[0].height > 100 and src[0].equals(src[1]) and src[1].equals(src[2])


def test_trend_covers_every_load_of_the_migration(three_loads):
    r1, r2, r3 = three_loads
    s = json.loads((r3 / "summary.json").read_text())
    assert [p["trial_load"] for p in s["trend"]] == ["TL1", "TL2", "TL3"]
    for p, r in zip(s["trend"], three_loads, strict=True):
        errors = json.loads((r / "summary.json").read_text())["totals"]["errors"]
        assert p["errors"] == errors
    assert (
        s["trend"][2]["resolved"]
        == pl.read_parquet(r3 / "discrepancies.parquet").filter(pl.col("status") == "resolved").height
    )
