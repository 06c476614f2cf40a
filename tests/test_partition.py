"""Partitioned by person: the report is the same, byte for byte, for any number of partitions.

The faulted sample load is validated with 1, 4 and 13 partitions; every file of the report must be
identical (the run's own clock — timings and the time a file was written — aside). The partitioned
run must also find exactly what the whole-extract library path finds (``compute_expected`` and
``reconcile`` over everything in memory), and every person's records must land in one partition.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import zipfile

import polars as pl
import pytest

from checks.discrepancies import discrepancies
from checks.expected import compute_expected, expected_parents
from checks.mapping import load_mappings
from checks.partition import parent_routes, routed_records, routed_target
from checks.reconcile import logical_target, reconcile, reconcile_encounters, reconcile_persons, resolved_parents
from pipelines.io.extract import read_extract
from pipelines.io.target_db import connect
from pipelines.io.target_read import read_target
from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load

from conftest import MAPPINGS

AS_OF = dt.date(2025, 6, 1)
COUNTS = (1, 4, 13)


@pytest.fixture(scope="module")
def faulted(tmp_path_factory, sample_extract):
    root = tmp_path_factory.mktemp("partition")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    url = f"sqlite:///{root / 't.db'}"
    simulate_trial_load(extract, url, faults="default", seed=11)
    return root, extract, url


#: the runs compared: (name, partitions, bytes of an extract file read at a time; None: the default)
RUNS = [*((str(n), n, None) for n in COUNTS), ("4, 16 KiB blocks, target batches of 300 rows", 4, 16 * 1024)]


@pytest.fixture(scope="module")
def reports(faulted):
    root, extract, url = faulted
    out = {}
    for i, (name, n, block) in enumerate(RUNS):
        report = root / f"run{i}" / "report"
        report.parent.mkdir()
        with pytest.MonkeyPatch.context() as mp:
            if block is not None:  # every file of more than 16 KiB, every table of more than 300 rows in pieces
                mp.setattr("pipelines.io.extract.CHUNK_BYTES", block)
                mp.setattr("pipelines.run.staging.BATCH_ROWS", 300)
                mp.setattr("pipelines.run.staging.BLOB_BATCH_ROWS", 100)
            result = run_validation(
                extract,
                url,
                "TL1",
                report,
                as_of=AS_OF,
                history_url=f"sqlite:///{root / f'h{i}.db'}",
                partitions=n,
            )
        assert result.exit_code == 1  # the faulted load fails its gate
        out[name] = report
    return out


def _normalised(path) -> bytes:
    data = path.read_bytes()
    if path.name == "summary.json":
        s = json.loads(data)
        s.pop("timings")
        for point in s["trend"]:
            point.pop("run_at")
        return json.dumps(s, sort_keys=True).encode()
    if path.suffix == ".xlsx":  # a zip: its entries, without the workbook's creation time
        with zipfile.ZipFile(path) as z:
            data = b"".join(n.encode() + z.read(n) for n in sorted(z.namelist()) if n != "docProps/core.xml")
    if path.suffix != ".parquet":  # when it was written
        data = re.sub(rb'timestamp="[^"]*"', b'timestamp=""', data)
        data = re.sub(rb"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?Z?", b"<time>", data)
    return data


def test_every_report_file_is_the_same_for_any_number_of_partitions_and_blocks(reports):
    first = reports["1"]
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert {"discrepancies.parquet", "ledger.parquet", "summary.json", "report.html"} <= {str(f) for f in files}
    for name, report in reports.items():
        other = sorted(p.relative_to(report) for p in report.rglob("*") if p.is_file())
        assert other == files
        for f in files:
            if f.name == ".migcheck":
                continue
            assert _normalised(report / f) == _normalised(first / f), f"{f} differs with {name} partitions"


def test_the_work_folder_is_gone_after_the_run(reports):
    for report in reports.values():
        left = sorted(p.name for p in report.parent.iterdir())
        assert left == ["report"], left


def test_partitioned_run_finds_what_the_whole_extract_gives(faulted, reports):
    root, extract, url = faulted
    m = load_mappings(MAPPINGS)
    exp = compute_expected(read_extract(extract), m, AS_OF)
    engine = connect(url)
    tgt = logical_target(read_target(engine), m)
    engine.dispose()
    whole = discrepancies([reconcile(exp, tgt, m).findings], "TL1", m)
    run = pl.read_parquet(reports["13"] / "discrepancies.parquet").filter(
        pl.col("check").is_in(whole["check"].unique().implode())
    )
    key = ["check", "source_ref", "target_ref", "column", "expected", "actual"]
    assert whole.height > 50
    assert run.select(key).sort(key, nulls_last=True).equals(whole.select(key).sort(key, nulls_last=True))
    ledger = pl.read_parquet(reports["13"] / "ledger.parquet")
    assert ledger["source_ref"].to_list()[: exp.ledger.height] == exp.ledger["source_ref"].to_list()


def test_each_persons_records_and_target_rows_share_a_partition(faulted):
    _, extract, url = faulted
    m = load_mappings(MAPPINGS)
    ex = read_extract(extract)
    par = expected_parents(ex.frames, m, AS_OF)
    n = 7
    # a diagnosis goes where its encounter's person goes
    routes = parent_routes(par.staged["pas/kontakt"])
    diag = routed_records(ex.frames["pas/diagnos"], "KONTAKTID", routes, n)
    enc = par.tables["encounter"].filter(pl.col("source_ref").str.starts_with("pas:"))
    enc = enc.with_columns(pl.col("source_ref").str.split(":").list.last().alias("KONTAKTID"))
    person_part = enc.select("KONTAKTID", (pl.col("person_ref").hash(seed=0) % n).alias("_want"))
    joined = diag.join(person_part, on="KONTAKTID", how="inner")
    assert joined.height > 100
    assert (joined["_part"] == joined["_want"]).all()
    # every partition number is used, and only those
    assert set(diag["_part"].unique().to_list()) <= set(range(n))
    # a target diagnosis goes to the same partition as the expected one it matches
    engine = connect(url)
    tgt = logical_target(read_target(engine), m)
    engine.dispose()
    _, pmap = reconcile_persons(par, tgt)
    _, emap = reconcile_encounters(par, tgt, pmap)
    key = tuple(m.tables["diagnosis"].match_key)
    resolved = resolved_parents(tgt["diagnosis"], pmap, emap, tgt["encounter"]["_id"], tgt["person"]["_id"])
    tt = routed_target(resolved, key, par.tables["encounter"], n)
    assert tt.height == tgt["diagnosis"].height
    eid_part = (
        tt.drop("encounter_ref")
        .join(emap, on="encntr_id", how="inner")
        .join(par.tables["encounter"].select("source_ref", "person_ref"), on="source_ref")
        .with_columns((pl.col("person_ref").hash(seed=0) % n).alias("_want"))
    )
    assert eid_part.height > 100 and (eid_part["_part"] == eid_part["_want"]).all()
    # a target row whose encounter was not reconciled can match nothing: partition 0
    unmatched = tt.join(emap, on="encntr_id", how="anti")
    assert (unmatched["_part"] == 0).all()


def test_too_many_partitions_is_refused_in_one_line(faulted, tmp_path):
    from checks.errors import MigcheckError

    _, extract, url = faulted
    with pytest.raises(MigcheckError, match=r"^--partitions 100000: give 1 to 256"):
        run_validation(
            extract, url, "TL1", tmp_path / "r", history_url=f"sqlite:///{tmp_path / 'h.db'}", partitions=100000
        )
    assert not (tmp_path / "r").exists()


def test_ranked_equals_the_window_it_replaces():
    """``ranked`` ranks only repeated keys by a window; the result is the window's over every row."""
    import random

    from checks.reconcile import ranked

    rng = random.Random(5)
    n = 2000
    df = pl.DataFrame(
        {
            "k": [rng.choice(["a", "b", None, *[f"u{i}" for i in range(400)]]) for _ in range(n)],
            "j": [rng.choice([1, 2, None]) for _ in range(n)],
            "o": [f"r{rng.randrange(3000):05d}" for _ in range(n)],
        }
    )
    want = df.with_columns(pl.int_range(pl.len()).over(["k", "j"], order_by="o").alias("r"))
    assert ranked(df, ["k", "j"], "o", "r").equals(want)
    unique = df.unique(["k", "j"], keep="first", maintain_order=True)
    assert ranked(unique, ["k", "j"], "o", "r")["r"].to_list() == [0] * unique.height


def test_partitions_staged_through_an_fsspec_url_give_the_same_report(faulted, reports, tmp_path):
    """``--work`` as a URL (here fsspec's ``file://``; ``s3://`` works alike where s3fs is installed)."""
    root, extract, url = faulted
    base = tmp_path / "shared"
    base.mkdir()
    (base / "someone-elses.txt").write_text("kept")
    report = tmp_path / "r" / "report"
    report.parent.mkdir()
    run_validation(
        extract,
        url,
        "TL1",
        report,
        as_of=AS_OF,
        history_url=f"sqlite:///{tmp_path / 'h.db'}",
        partitions=4,
        work=f"file://{base}",
    )
    for f in ("discrepancies.parquet", "ledger.parquet", "summary.json"):
        assert _normalised(report / f) == _normalised(reports["1"] / f)
    # the run's own work folder is gone; nothing else in the shared folder was touched
    assert sorted(p.name for p in base.iterdir()) == ["someone-elses.txt"]


@pytest.mark.parametrize(
    ("work", "message"),
    [
        ("{tmp}/absent", r"^--work .*absent: no such folder$"),
        ("{extract}", r"^--work .*: lies inside --source "),
        ("nosuchfs://bucket/x", r"^--work nosuchfs://bucket/x: no file system for this URL"),
    ],
)
def test_a_wrong_work_folder_is_refused_in_one_line(faulted, tmp_path, work, message):
    from checks.errors import MigcheckError

    _, extract, url = faulted
    with pytest.raises(MigcheckError, match=message) as e:
        run_validation(
            extract,
            url,
            "TL1",
            tmp_path / "r",
            history_url=f"sqlite:///{tmp_path / 'h.db'}",
            work=work.format(tmp=tmp_path, extract=extract),
        )
    assert "\n" not in str(e.value) and not (tmp_path / "r").exists()
    assert not [p for p in extract.iterdir() if ".work." in p.name]  # no work folder was made in the extract
