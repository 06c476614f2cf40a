"""Partitioned by person: the report is the same, byte for byte, for any number of partitions.

The faulted sample load is validated with 1, 4 and 13 partitions; every file of the report must be
identical (the run's own clock — timings and the time a file was written — aside). The partitioned
run must also find exactly what the whole-extract library path finds (``compute_expected`` and
``reconcile`` over everything in memory), and every person's records must land in one partition.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import zipfile

import polars as pl
import pyarrow.parquet as pq
import pytest

from checks.components import partition_by_node
from checks.discrepancies import discrepancies
from checks.expected import compute_expected, expected_parents
from checks.mapping import load_mappings
from checks.partition import routed_target
from checks.reconcile import logical_target, reconcile, reconcile_encounters, reconcile_persons, resolved_parents
from pipelines.io.extract import read_extract
from pipelines.io.target_db import connect
from pipelines.io.target_read import read_target
from pipelines.run.staging import PARENT_GROUP, choose_partitions, largest_first, parent_groups
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
RUNS = [
    *((str(n), n, None) for n in COUNTS),
    ("4, 16 KiB blocks, target batches of 300 rows, ledger slices of 50 rows", 4, 16 * 1024),
]


@pytest.fixture(scope="module")
def reports(faulted):
    root, extract, url = faulted
    out = {}
    for i, (name, n, block) in enumerate(RUNS):
        report = root / f"run{i}" / "report"
        report.parent.mkdir()
        with pytest.MonkeyPatch.context() as mp:
            # ledger.parquet in row groups of 1,000 rows: its bytes must not depend on how it was sliced
            mp.setattr("pipelines.run.staging.LEDGER_ROW_GROUP", 1000)
            if block is not None:  # every file of more than 16 KiB, every table of more than 300 rows in pieces
                mp.setattr("pipelines.io.extract.CHUNK_BYTES", block)
                mp.setattr("pipelines.run.staging.BATCH_ROWS", 300)
                mp.setattr("pipelines.run.staging.BLOB_BATCH_ROWS", 100)
                mp.setattr("pipelines.run.staging.LEDGER_SLICE", 50)  # the final ledger settled 50 rows a slice
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


def _tangle(db) -> int:
    """Tie persons together only through the target: an encounter loaded on another person, an
    identity alias on a second person, an MRN alias on another person. Returns the moved encounter."""
    import sqlite3

    con = sqlite3.connect(db)

    def one(sql, *args):
        return con.execute(sql, args).fetchone()

    def typed(meaning: str) -> str:
        return f"JOIN code_value cv ON cv.code_value = a.{{col}} AND cv.cdf_meaning = '{meaning}'"

    persons = [r[0] for r in con.execute("SELECT person_id FROM person ORDER BY person_id").fetchall()]
    eid, pid = one(
        "SELECT e.encntr_id, e.person_id FROM encounter e JOIN encntr_alias a ON a.encntr_id = e.encntr_id "
        + typed("VISITID").format(col="encntr_alias_type_cd")
        + " ORDER BY e.encntr_id LIMIT 1 OFFSET 7"
    )
    other = next(p for p in persons[len(persons) // 2 :] if p != pid)
    con.execute("UPDATE encounter SET person_id = ? WHERE encntr_id = ?", (other, eid))
    # an identity alias of one person also on another (a second claim on the same identity)
    alias_cols = [r[1] for r in con.execute("PRAGMA table_info(person_alias)").fetchall()]
    row = one(
        "SELECT a.* FROM person_alias a "
        + typed("PNR").format(col="person_alias_type_cd")
        + " ORDER BY a.person_alias_id LIMIT 1 OFFSET 11"
    )
    new = dict(zip(alias_cols, row, strict=True))
    new["person_alias_id"] = one("SELECT max(person_alias_id) + 1 FROM person_alias")[0]
    new["person_id"] = next(p for p in reversed(persons) if p != new["person_id"])
    marks = ", ".join("?" * len(new))
    con.execute(f"INSERT INTO person_alias ({', '.join(new)}) VALUES ({marks})", list(new.values()))
    # an MRN alias moved to another person
    aid, owner = one(
        "SELECT a.person_alias_id, a.person_id FROM person_alias a "
        + typed("MRN").format(col="person_alias_type_cd")
        + " ORDER BY a.person_alias_id LIMIT 1 OFFSET 23"
    )
    con.execute(
        "UPDATE person_alias SET person_id = ? WHERE person_alias_id = ?",
        (persons[3] if owner != persons[3] else persons[4], aid),
    )
    con.commit()
    con.close()
    return eid


def test_persons_tied_together_only_by_the_target_give_the_same_report_in_any_partitions(faulted, tmp_path):
    """The components follow the target's aliases and encounters too, not only the extract's identities."""
    root, extract, url = faulted
    db = tmp_path / "t.db"
    shutil.copy(url.removeprefix("sqlite:///"), db)
    eid = _tangle(db)
    reports = {}
    for n in (1, 13):
        reports[n] = tmp_path / f"r{n}"
        run_validation(
            extract,
            f"sqlite:///{db}",
            "TL1",
            reports[n],
            as_of=AS_OF,
            history_url=f"sqlite:///{tmp_path / f'h{n}.db'}",
            partitions=n,
        )
    disc = pl.read_parquet(reports[1] / "discrepancies.parquet")
    assert disc.filter(pl.col("target_ref") == f"encounter:{eid}").height >= 1  # the moved encounter is found
    for f in ("discrepancies.parquet", "ledger.parquet", "summary.json"):
        assert _normalised(reports[13] / f) == _normalised(reports[1] / f), f


def test_every_report_file_is_the_same_for_any_number_of_partitions_and_blocks(reports):
    first = reports["1"]
    rows = pl.read_parquet(first / "ledger.parquet").height
    assert rows > 2000  # several row groups, each a fixed 1,000 rows
    assert pq.ParquetFile(first / "ledger.parquet").metadata.num_row_groups == math.ceil(rows / 1000)
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


def _parts(extract, url, m, n, work):
    """The partitions of the components of persons, computed by the run's own staging steps."""
    from pipelines.run.sequence import PARENT_TARGET_TABLES
    from pipelines.run.staging import parent_files, parts_of_parents, stage_parent_file, stage_parent_table

    files = [stage_parent_file(extract, system, name, m, str(work)) for system, name in parent_files(m)]
    tables = {t: stage_parent_table(url, t, m, str(work)) for t in PARENT_TARGET_TABLES}
    return parts_of_parents(files, tables, m, n)


def test_each_persons_records_and_target_rows_share_a_partition(faulted, tmp_path):
    """What merges, folds or is matched together lands in one partition (``checks.components``)."""
    from checks.partition import TARGET_ROUTES, record_route

    _, extract, url = faulted
    m = load_mappings(MAPPINGS)
    ex = read_extract(extract)
    engine = connect(url)
    tgt = logical_target(read_target(engine), m)
    engine.dispose()
    n = 7
    parts = _parts(extract, url, m, n, tmp_path)
    srcs = {s.records: s for tm in m.tables.values() for s in tm.sources}
    kinds = set(srcs) & {s.records for t in ("person", "encounter") for s in m.tables[t].sources}

    def routed(kind):
        return partition_by_node(ex.frames[kind], record_route(kind, srcs[kind], kinds), parts, n)

    par = expected_parents(ex.frames, m, AS_OF)
    # every legacy person record with its merged person, every encounter with its person
    by_ref = pl.concat([routed(k).select("source_ref", "_part") for k in kinds]).unique("source_ref")
    person = pl.concat([par.staged[k].select("source_ref", "person_ref") for k in ("pas/patient", "pcs/patients")])
    enc = pl.concat([par.staged[k].select("source_ref", "person_ref") for k in ("pas/kontakt", "pcs/visits")])
    for recs in (person, enc):
        j = (
            recs.filter(pl.col("person_ref").is_not_null())
            .join(by_ref, on="source_ref")
            .join(by_ref.rename({"source_ref": "person_ref", "_part": "_want"}), on="person_ref")
        )
        assert j.height > 100 and (j["_part"] == j["_want"]).all()
    assert set(by_ref["_part"].unique().to_list()) <= set(range(n)) and by_ref["_part"].n_unique() > 1
    # a target person and encounter with the legacy one they are matched to
    _, pmap = reconcile_persons(par, tgt)
    _, emap = reconcile_encounters(par, tgt, pmap)
    tp = partition_by_node(tgt["person"], TARGET_ROUTES["person"], parts, n).select("_id", "_part")
    j = pmap.join(tp, left_on="person_id", right_on="_id").join(
        by_ref.rename({"source_ref": "person_ref", "_part": "_want"}), on="person_ref"
    )
    assert j.height > 100 and (j["_part"] == j["_want"]).all()
    te = partition_by_node(tgt["encounter"], TARGET_ROUTES["encounter"], parts, n).select("_id", "_part")
    j = emap.join(te, left_on="encntr_id", right_on="_id").join(by_ref.rename({"_part": "_want"}), on="source_ref")
    assert j.height > 100 and (j["_part"] == j["_want"]).all()
    # a diagnosis goes where its encounter goes; a target diagnosis where the expected one it matches
    diag = routed("pas/diagnos").with_columns(pl.format("pas:kontakt:{}", "KONTAKTID").alias("_enc"))
    j = diag.join(by_ref.rename({"source_ref": "_enc", "_part": "_want"}), on="_enc")
    assert j.height > 100 and (j["_part"] == j["_want"]).all()
    key = tuple(m.tables["diagnosis"].match_key)
    resolved = resolved_parents(tgt["diagnosis"], pmap, emap, tgt["encounter"]["_id"], tgt["person"]["_id"])
    tt = routed_target(resolved, key, parts, n)
    assert tt.height == tgt["diagnosis"].height
    j = tt.filter(pl.col("encounter_ref").is_not_null()).join(
        by_ref.rename({"source_ref": "encounter_ref", "_part": "_want"}), on="encounter_ref"
    )
    assert j.height > 100 and (j["_part"] == j["_want"]).all()


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


def test_partitions_staged_through_an_fsspec_url_give_the_same_report(faulted, reports, tmp_path, monkeypatch):
    """``--work`` as a URL (here fsspec's ``file://``; ``s3://`` works alike where s3fs is installed)."""
    root, extract, url = faulted
    monkeypatch.setattr("pipelines.run.staging.LEDGER_ROW_GROUP", 1000)  # as the runs it is compared with
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


def test_files_are_staged_largest_first_missing_last_ties_in_order(tmp_path):
    files = [("pas", "atgard"), ("pas", "anteckning"), ("pcs", "notes"), ("pcs", "allergies"), ("pas", "diagnos")]
    sizes = {"atgard.csv": 10, "anteckning.csv": 300, "notes.jsonl": 300, "diagnos.csv": 20}
    for name, size in sizes.items():
        folder = tmp_path / ("pas" if name.endswith(".csv") else "pcs")
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"x" * size)
    assert largest_first(tmp_path, files) == [
        ("pas", "anteckning"),
        ("pcs", "notes"),
        ("pas", "diagnos"),
        ("pas", "atgard"),
        ("pcs", "allergies"),  # missing: last
    ]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 16, 17, 18, 170])
@pytest.mark.parametrize("slots", [1, 2, 3])
def test_parent_groups_cover_each_partition_once_in_even_rounds(n, slots):
    groups = parent_groups(n, slots)
    assert [p for g in groups for p in g] == list(range(n))  # each once, in order
    assert all(0 < len(g) <= PARENT_GROUP for g in groups)
    assert max(map(len, groups), default=0) - min(map(len, groups), default=0) <= 1  # no small last call
    if n >= slots * PARENT_GROUP:  # partitions enough: every round of calls keeps every thread busy
        assert len(groups) % slots == 0


def test_partitions_are_a_multiple_of_the_threads(tmp_path):
    (tmp_path / "pas").mkdir()
    (tmp_path / "pas" / "patient.csv").write_bytes(b"x" * 17_000)
    assert choose_partitions(tmp_path, per=1_000) == 17
    assert choose_partitions(tmp_path, per=1_000, slots=2) == 18
    assert choose_partitions(tmp_path, per=1_000, slots=4) == 20
    assert choose_partitions(tmp_path, per=100_000, slots=2) == 1  # one partition stays one


@pytest.mark.parametrize("held", [1, 10**9])  # bytes held before writing: every block at once, or all at the end
def test_part_writer_gives_each_partition_its_rows_in_order_whatever_it_holds(tmp_path, monkeypatch, held):
    from pipelines.run import staging

    monkeypatch.setattr(staging, "PART_HELD_MIN_BYTES", held)
    monkeypatch.setattr(staging, "PART_FILE_BYTES", 1)
    blocks = [
        pl.DataFrame(
            {"v": [f"b{b}r{r}" for r in range(7)], "_part": [r % 3 for r in range(7)]},
            schema_overrides={"_part": pl.UInt32},
        )
        for b in range(4)
    ]
    writer = staging.PartWriter(str(tmp_path), "src", 3)
    for b, df in enumerate(blocks):
        writer.add("a", df)
        if b >= 2:  # a kind first seen late: its earlier files are there, empty
            writer.add("late", df.with_columns(pl.col("v") + "-late"))
    files = writer.flush()
    assert files == (6 if held == 1 else 1)  # held=1: a file per add (two adds in each of the last two blocks)
    for p in range(3):
        want = pl.concat(blocks).filter(pl.col("_part") == p)["v"].to_list()
        assert staging._read_blocks(str(tmp_path), "src", "a", p, files)["v"].to_list() == want
        late = staging._read_blocks(str(tmp_path), "src", "late", p, files)["v"].to_list()
        assert late == [v + "-late" for v in pl.concat(blocks[2:]).filter(pl.col("_part") == p)["v"].to_list()]
    assert writer.flush() == files  # nothing held: nothing more written


def test_part_writer_of_nothing_writes_one_empty_file_per_partition(tmp_path):
    from pipelines.run import staging

    writer = staging.PartWriter(str(tmp_path), "tgt", 2)
    writer.add("t", pl.DataFrame({"v": [], "_part": []}, schema={"v": pl.String, "_part": pl.UInt32}))
    assert writer.flush() == 1
    assert staging._read_blocks(str(tmp_path), "tgt", "t", 1, 1).columns == ["v"]
