"""Trial-load history over three successive loads: new / persisting / resolved, stable ids, trend."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load


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


def test_a_history_an_older_migcheck_created_gains_the_nature_column(tmp_path, sample_extract):
    import sqlite3

    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    db, hist = tmp_path / "t.db", tmp_path / "history.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="default", seed=1)
    run_validation(extract, f"sqlite:///{db}", "TL1", tmp_path / "TL1", history_url=f"sqlite:///{hist}")
    # the findings table as an older migcheck created it: no nature column
    with sqlite3.connect(hist) as c:
        c.execute("ALTER TABLE migcheck_finding DROP COLUMN nature")
        assert "nature" not in {r[1] for r in c.execute("PRAGMA table_info(migcheck_finding)")}
    run_validation(extract, f"sqlite:///{db}", "TL2", tmp_path / "TL2", history_url=f"sqlite:///{hist}")
    d2 = pl.read_parquet(tmp_path / "TL2" / "discrepancies.parquet")
    assert set(d2["status"]) == {"persisting"}  # TL1's findings were read from the old table
    with sqlite3.connect(hist) as c:
        rows = c.execute(
            "SELECT r.trial_load, f.category, f.nature FROM migcheck_finding f JOIN migcheck_run r USING (run_id)"
        ).fetchall()
    stored = pl.DataFrame(rows, schema={c: pl.String for c in ("trial_load", "category", "nature")}, orient="row")
    tl1 = stored.filter(pl.col("trial_load") == "TL1")
    assert tl1.height == d2.height and tl1["nature"].is_null().all()  # recorded before the column was there
    tl2 = stored.filter(pl.col("trial_load") == "TL2")
    vm = tl2.filter(pl.col("category").is_in(["value_mismatch", "text_altered"]))
    assert vm.height > 0 and vm["nature"].null_count() == 0
    assert tl2.filter(~pl.col("category").is_in(["value_mismatch", "text_altered"]))["nature"].null_count() == (
        tl2.height - vm.height
    )
