"""Partitioned reconciliation (the Dask path's core) gives exactly what reconciling whole gives."""

from __future__ import annotations

import datetime as dt
import shutil

import polars as pl
import pytest

from checks.expected import compute_expected
from checks.mapping import load_mappings
from checks.partition import merge_parts, parent_ref, split_child
from checks.reconcile import (
    CHILD_TABLES,
    child_slice,
    logical_target,
    reconcile_child,
    reconcile_child_slice,
    reconcile_encounters,
    reconcile_persons,
)
from pipelines.io.extract import read_extract
from pipelines.io.target_db import connect
from pipelines.io.target_read import read_target
from pipelines.synth.trial_load import simulate_trial_load

from conftest import MAPPINGS


@pytest.fixture(scope="module")
def reconciled_parents(tmp_path_factory, sample_extract):
    root = tmp_path_factory.mktemp("partition")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    url = f"sqlite:///{root / 't.db'}"
    simulate_trial_load(extract, url, faults="default", seed=11)
    m = load_mappings(MAPPINGS)
    exp = compute_expected(read_extract(extract), m, dt.date.today())
    engine = connect(url)
    tgt = logical_target(read_target(engine), m)
    engine.dispose()
    persons, pmap = reconcile_persons(exp, tgt)
    encounters, emap = reconcile_encounters(exp, tgt, pmap)
    return exp, tgt, m, pmap, emap


def _sorted(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(df.columns, nulls_last=True)


@pytest.mark.parametrize("table", CHILD_TABLES)
@pytest.mark.parametrize("n", [2, 5, 13])
def test_partitions_reconcile_to_the_same_result(reconciled_parents, table, n):
    exp, tgt, m, pmap, emap = reconciled_parents
    whole = reconcile_child(table, exp, tgt, m, pmap, emap)
    parts = split_child(child_slice(table, exp, tgt, m, pmap, emap), n)
    assert 1 < len(parts) <= n
    # every row on either side is in exactly one partition
    assert sum(p.expected.height for p in parts) == exp.tables[table].height
    assert sum(p.target.height for p in parts) == tgt[table].height
    ids = pl.concat([p.target["_id"] for p in parts])
    assert ids.n_unique() == ids.len()
    merged = merge_parts([reconcile_child_slice(p) for p in parts])
    assert whole.findings.height > 0, "the faulted load should give findings in every child table"
    assert _sorted(merged.findings).equals(_sorted(whole.findings))
    assert _sorted(merged.links).equals(_sorted(whole.links))
    assert _sorted(merged.status).equals(_sorted(whole.status))
    assert merged.counts == whole.counts


def test_partitions_keep_each_parent_together(reconciled_parents):
    exp, tgt, m, pmap, emap = reconciled_parents
    s = child_slice("diagnosis", exp, tgt, m, pmap, emap)
    ref = parent_ref(s.key)
    assert ref == "encounter_ref"
    seen: dict[str, int] = {}
    for i, p in enumerate(split_child(s, 7)):
        for r in p.expected[ref].unique().drop_nulls():
            assert seen.setdefault(r, i) == i
        # a partition carries only the map entries its rows refer to
        assert p.emap.height <= p.expected[ref].n_unique() + p.target["encntr_id"].n_unique()


def test_one_partition_is_the_slice_itself(reconciled_parents):
    exp, tgt, m, pmap, emap = reconciled_parents
    s = child_slice("allergy", exp, tgt, m, pmap, emap)
    assert split_child(s, 1) == [s]
    with pytest.raises(ValueError):
        split_child(s, 0)
