"""The simulated trial load: schema, reference data and rows in SQLite and PostgreSQL; faults."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import polars as pl
import pytest
import sqlalchemy as sa

from checks.expected import compute_expected
from checks.mapping import load_mappings
from checks.target_schema import CODE_SETS, DATA_TABLES, PRIMARY_KEY
from pipelines.io.extract import read_extract
from pipelines.synth.trial_load import simulate_trial_load

from conftest import MAPPINGS, REPO

SPEC_TOOL = REPO.parent / "shared" / "tools" / "spec_conformance.py"
#: load_faults.csv as shared/spec/README.md lays it out
TRUTH_LAYOUT = "defect_id layer category entity source_ref target_ref column nature description".split()


def _counts(url: str) -> dict[str, int]:
    eng = sa.create_engine(url)
    with eng.connect() as c:
        out = {t: c.execute(sa.text(f'select count(*) from "{t}"')).scalar_one() for t in DATA_TABLES}
    eng.dispose()
    return out


def _expected(extract):
    return compute_expected(read_extract(extract), load_mappings(MAPPINGS), dt.date.today())


def _expected_rows(exp) -> dict[str, int]:
    """Rows per target table: the expected tables, and a 4,000-character chunk per part of each note's text."""
    chunks = ((exp.tables["clinical_event"]["note_text"].str.len_chars() + 3999) // 4000).sum()
    return {t: (int(chunks) if t == "ce_blob" else exp.tables[t].height) for t in DATA_TABLES}


def test_clean_load_into_sqlite_writes_every_expected_row(extract_copy, tmp_path):
    db = tmp_path / "t.db"
    r = simulate_trial_load(extract_copy, f"sqlite:///{db}", faults="none")
    exp = _expected(extract_copy)
    want = _expected_rows(exp)
    assert want["clinical_event"] > 0 and want["ce_blob"] > want["clinical_event"]  # some notes span chunks
    assert r.rows == want
    assert _counts(f"sqlite:///{db}") == want
    assert r.faults == 0
    assert pl.read_csv(extract_copy / "load_faults.csv").height == 0
    # protected persons keep their mark, timestamps are stored as text YYYY-MM-DD HH:MM:SS
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.connect() as c:
        prot = c.execute(
            sa.text(
                "select count(*) from person p join code_value c on c.code_value = p.confid_level_cd "
                "where c.cdf_meaning = 'PROTECTED'"
            )
        ).scalar_one()
        ts = c.execute(sa.text("select reg_dt_tm from encounter limit 1")).scalar_one()
    assert prot == exp.tables["person"].filter(pl.col("confid_level_cd") == "PROTECTED").height > 0
    assert len(ts) == 19 and ts[10] == " "
    if SPEC_TOOL.exists():
        res = subprocess.run(
            [sys.executable, SPEC_TOOL, "--extract", extract_copy, "--target-db", db], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stdout


@pytest.mark.postgres
def test_load_into_postgresql_matches_sqlite(extract_copy, tmp_path, pg_url):
    simulate_trial_load(extract_copy, pg_url, faults="default", seed=3)
    truth_pg = pl.read_csv(extract_copy / "load_faults.csv")
    simulate_trial_load(extract_copy, f"sqlite:///{tmp_path / 't.db'}", faults="default", seed=3)
    truth_sqlite = pl.read_csv(extract_copy / "load_faults.csv")
    assert _counts(pg_url) == _counts(f"sqlite:///{tmp_path / 't.db'}")
    assert truth_pg.equals(truth_sqlite)
    eng = sa.create_engine(pg_url)
    with eng.connect() as c:
        assert c.execute(sa.text("select count(*) from code_value")).scalar_one() == 62
        assert c.execute(sa.text("select count(*) from nomenclature")).scalar_one() == 88
        t = c.execute(
            sa.text(
                "select data_type from information_schema.columns where table_name = 'encounter' "
                "and column_name = 'reg_dt_tm' and table_schema = current_schema()"
            )
        ).scalar_one()
    eng.dispose()
    assert t == "timestamp without time zone"


LOAD_CATEGORIES = {
    "missing_in_target",
    "unexpected_in_target",
    "value_mismatch",
    "orphan",
    "invalid_code",
    "confidentiality",
    "mandatory_missing",
    "duplicate",
    "row_count",
}


@pytest.fixture(scope="module")
def faulted(tmp_path_factory, sample_extract):
    import shutil

    root = tmp_path_factory.mktemp("faulted")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    db = root / "t.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="default", seed=7)
    eng = sa.create_engine(f"sqlite:///{db}")
    yield extract, eng, pl.read_csv(extract / "load_faults.csv", infer_schema_length=0).fill_null("")
    eng.dispose()


def test_fault_truth_covers_every_kind_and_entity(faulted):
    _, _, truth = faulted
    assert LOAD_CATEGORIES <= set(truth["category"])
    missing = set(truth.filter(pl.col("category") == "missing_in_target")["entity"])
    assert set(DATA_TABLES) <= missing | {"person_alias", "ce_blob"}  # a chunk missing is a text change
    assert truth["defect_id"].n_unique() == truth.height
    assert (truth["layer"] == "load").all()
    # the contract's layout; a nature for every value fault and for nothing else
    assert truth.columns == TRUTH_LAYOUT
    values = truth.filter(pl.col("category") == "value_mismatch")
    assert set(values["nature"]) == {"encoding", "truncated", "time_shift", "code_swapped", "other"}
    texts = truth.filter(pl.col("category") == "text_altered")
    assert set(texts["nature"]) == {
        "chunk_missing",
        "chunk_order",
        "truncated",
        "encoding",
        "markup",
        "negation_lost",
        "words_lost",
        "line_breaks_lost",
    }
    assert (texts["column"] == "note_text").all() and (texts["entity"] == "clinical_event").all()
    assert (truth.filter(~pl.col("category").is_in(["value_mismatch", "text_altered"]))["nature"] == "").all()
    notes = truth.filter(pl.col("entity") == "clinical_event")
    assert {"missing_in_target", "unexpected_in_target", "value_mismatch"} <= set(notes["category"])
    chunks = truth.filter(pl.col("entity") == "ce_blob")
    assert set(chunks["category"]) == {"mandatory_missing", "duplicate", "orphan"}


def _row(eng, ref: str) -> dict | None:
    table, rid = ref.split(":")
    pk = PRIMARY_KEY[table]
    with eng.connect() as c:
        r = c.execute(sa.text(f'select * from "{table}" where {pk} = :i'), {"i": int(rid)}).mappings().first()
    return dict(r) if r else None


def test_every_listed_fault_is_really_in_the_target(faulted):
    extract, eng, truth = faulted
    exp = _expected(extract)
    with eng.connect() as c:
        cv = pl.DataFrame(c.execute(sa.text("select * from code_value")).mappings().all())
        aliases = pl.DataFrame(c.execute(sa.text("select * from person_alias")).mappings().all())
        enc_alias = set(r[0] for r in c.execute(sa.text("select alias from encntr_alias")))
        persons = {r[0] for r in c.execute(sa.text("select person_id from person"))}
        encounters = {r[0] for r in c.execute(sa.text("select encntr_id from encounter"))}
        events = {r[0] for r in c.execute(sa.text("select clinical_event_id from clinical_event"))}
        blobs = pl.DataFrame(
            c.execute(sa.text("select ce_blob_id, clinical_event_id, blob_seq_num from ce_blob")).mappings().all()
        )
    active = {(r["code_set"], r["code_value"]) for r in cv.filter(pl.col("active_ind") == 1).iter_rows(named=True)}
    identity_of = dict(exp.tables["person"].select("person_ref", "identity").iter_rows())
    for f in truth.iter_rows(named=True):
        cat, ent = f["category"], f["entity"]
        if f["target_ref"] and cat not in ("mandatory_missing", "missing_in_target"):
            row = _row(eng, f["target_ref"])
            assert row is not None, f
        if cat == "orphan":
            parent = row[f["column"]]
            ids = {"encntr_id": encounters, "clinical_event_id": events}.get(f["column"], persons)
            assert parent not in ids, f
        elif cat == "mandatory_missing" and ent == "ce_blob":  # a note without any text chunk
            eid = int(f["target_ref"].split(":")[1])
            assert eid in events and blobs.filter(pl.col("clinical_event_id") == eid).height == 0, f
        elif cat == "duplicate" and ent == "ce_blob":  # a chunk number twice within one note
            same = blobs.filter(
                (pl.col("clinical_event_id") == row["clinical_event_id"])
                & (pl.col("blob_seq_num") == row["blob_seq_num"])
            )
            assert same.height == 2 and row["ce_blob_id"] == same["ce_blob_id"].max(), f
        elif cat == "invalid_code":
            assert (CODE_SETS[(ent, f["column"])], row[f["column"]]) not in active, f
        elif cat == "confidentiality":
            assert (
                exp.tables["person"].filter(pl.col("person_ref") == f["source_ref"])["confid_level_cd"].item()
                == "PROTECTED"
            )
            assert cv.filter(pl.col("code_value") == row["confid_level_cd"])["cdf_meaning"].item() == "ROUTINE"
        elif cat == "mandatory_missing":
            pid = int(f["target_ref"].split(":")[1])
            mine = aliases.filter(pl.col("person_id") == pid)["alias"].to_list()
            assert identity_of[f["source_ref"]] not in mine, f
        elif cat == "duplicate":
            assert aliases.filter(pl.col("alias") == row["alias"]).height == 2, f
        elif cat == "missing_in_target" and ent == "person":
            assert identity_of[f["source_ref"]] not in set(aliases["alias"]), f
        elif cat == "missing_in_target" and ent in ("encounter", "encntr_alias"):
            assert f["source_ref"].split(":")[-1] not in enc_alias, f
        elif cat == "value_mismatch" and f["column"] in ("name_last", "name_first"):
            assert (
                row[f["column"]]
                != exp.tables["person"].filter(pl.col("person_ref") == f["source_ref"])[f["column"]].item()
            )


def test_faults_are_deterministic_by_seed(tmp_path, extract_copy):
    simulate_trial_load(extract_copy, f"sqlite:///{tmp_path / 'a.db'}", faults="default", seed=11)
    a = (extract_copy / "load_faults.csv").read_bytes()
    simulate_trial_load(extract_copy, f"sqlite:///{tmp_path / 'b.db'}", faults="default", seed=11)
    assert (extract_copy / "load_faults.csv").read_bytes() == a
    simulate_trial_load(extract_copy, f"sqlite:///{tmp_path / 'c.db'}", faults="default", seed=12)
    assert (extract_copy / "load_faults.csv").read_bytes() != a


def test_a_load_made_a_partition_at_a_time_is_found_whole(extract_copy, tmp_path):
    """Three partitions of whole persons: every fault found, no false alarm; a clean one is clean."""
    from pipelines.run.validate import run_validation
    from pipelines.synth.scoring import read_truth, score

    url = f"sqlite:///{tmp_path / 'f.db'}"
    r = simulate_trial_load(extract_copy, url, faults="default", seed=5, partitions=3)
    load = pl.read_csv(r.load_faults, infer_schema_length=0)
    assert load["defect_id"].to_list() == [f"L{i:04d}" for i in range(1, load.height + 1)]
    counted = load.filter(pl.col("category") == "row_count")
    # one row_count fault per table and system, counted over the whole load (not one per partition)
    per = counted.select("entity", pl.col("description").str.split(" ").list.first().alias("system"))
    assert per.height and not per.is_duplicated().any()
    engine = sa.create_engine(url)
    with engine.connect() as c:  # ids unique across the partitions
        for t in DATA_TABLES:
            pk = PRIMARY_KEY[t]
            n, distinct = c.execute(sa.text(f"SELECT count(*), count(DISTINCT {pk}) FROM {t}")).one()
            assert n == distinct == r.rows[t], t
    engine.dispose()
    out = tmp_path / "report"
    run_validation(extract_copy, url, "TL1", out, history_url=f"sqlite:///{tmp_path / 'h.db'}")
    disc = pl.read_parquet(out / "discrepancies.parquet").with_columns(pl.all().cast(pl.String).fill_null(""))
    s = score(read_truth(extract_copy), disc)
    assert s.missed.height == 0, s.missed.select("category", "entity", "description").rows()[:5]
    assert s.false_alarms.height == 0, s.false_alarms.select("category", "entity", "message").rows()[:5]
    # the same extract loaded clean in three partitions: no finding of the load at all
    clean = f"sqlite:///{tmp_path / 'c.db'}"
    simulate_trial_load(extract_copy, clean, faults="none", partitions=3)
    out2 = tmp_path / "clean"
    run_validation(extract_copy, clean, "TL2", out2, history_url=f"sqlite:///{tmp_path / 'h2.db'}")
    disc2 = pl.read_parquet(out2 / "discrepancies.parquet")
    s2 = score(read_truth(extract_copy), disc2.with_columns(pl.all().cast(pl.String).fill_null("")))
    assert s2.false_alarms.height == 0 and s2.missed.height == 0
    assert not list(extract_copy.parent.glob(f".{extract_copy.name}.work.*"))  # the staging folder is gone
