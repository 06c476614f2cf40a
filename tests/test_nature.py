"""The ``nature`` of a value_mismatch: one word per difference, the same classification as the message.

A clean trial load of ``sample_data/`` is changed in the database, one kind of difference per row,
and validated: each changed value must come back with its word, nothing else with any. Then the
default load faults: every injected value fault is found with the nature its ground truth gives,
the column is carried by every output, and an older report without it still serves as a baseline.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil

import polars as pl
import pytest
import sqlalchemy as sa

from checks.discrepancies import DISCREPANCY_COLUMNS
from checks.masking import NATURES, describe, mojibake, value_nature
from checks.note_text import NATURES as TEXT_NATURES
from pipelines.run.validate import run_validation
from pipelines.synth.scoring import read_truth, score
from pipelines.synth.trial_load import simulate_trial_load

#: the phrase of the message for each word (``checks.masking.describe``)
PHRASE = {
    "encoding": r"UTF-8 text read as Windows-1252 \(.+ for .\)$",
    "truncated": r"truncated to \d+ of \d+ characters$",
    "case_whitespace": r"differs only in case or whitespace$",
    "time_shift": r"time shifted by [+-]\d+ hours? ",
    "date_shift": r"date moved by [+-]\d+ days?$",
    "code_swapped": r"code swapped: \S+ expected, \S+ found$|marked PROTECTED in the target",
    "value_lost": r"value lost \(empty in the target\)$",
    "value_added": r"value present in the target where the source has none$",
    "other": r"(text|time) differs$|differs$|attached to another record",
}
T0 = dt.datetime(2019, 4, 10, 6, 0)


# ------------------------------------------------------------------------------ the classifier


@pytest.mark.parametrize(
    ("table", "column", "expected", "actual", "word"),
    [
        ("person", "name_last", "Öberg", mojibake("Öberg"), "encoding"),
        ("person", "name_first", "Märta", "MÃ¤rta", "encoding"),
        ("orders", "simplified_display_line", "5 mg 1 gång dagligen", "5 mg 1", "truncated"),
        ("person", "name_last", "Lindqvist", "Lindq", "truncated"),
        ("person", "name_first", "Anna Karin", "ANNA  KARIN", "case_whitespace"),
        ("allergy", "substance_ftdesc", "Jordnöt", " jordnöt ", "case_whitespace"),
        ("encounter", "reg_dt_tm", T0, T0 + dt.timedelta(hours=1), "time_shift"),
        ("diagnosis", "diag_dt_tm", T0, T0 - dt.timedelta(hours=2), "time_shift"),
        ("person", "birth_dt_tm", dt.datetime(1950, 2, 18), dt.datetime(1950, 2, 17), "date_shift"),
        ("encounter", "disch_dt_tm", T0, T0 + dt.timedelta(days=3), "date_shift"),
        ("encounter", "loc_nurse_unit_cd", "SAS_MED1", "SAS_MED2", "code_swapped"),
        ("diagnosis", "nomenclature_id", "ICD10SE:J18.9", "ICD10SE:J06.9", "code_swapped"),
        ("person", "confid_level_cd", "ROUTINE", "PROTECTED", "code_swapped"),
        ("person", "postal_code", "41301", None, "value_lost"),
        ("orders", "simplified_display_line", "5 mg 1 gång dagligen", "", "value_lost"),
        ("encounter", "disch_dt_tm", T0, None, "value_lost"),
        ("person", "deceased_dt_tm", None, T0, "value_added"),
        ("orders", "order_mnemonic", "Alvedon", "Panodil", "other"),
        ("orders", "orig_order_dt_tm", T0, T0 + dt.timedelta(minutes=30), "other"),
        # a reference to a parent row is not text: a shorter ref is another record, not a cut one
        ("encounter", "person_id", "pas:patient:100173", "pas:patient:10017", "other"),
    ],
)
def test_the_first_nature_that_applies(table, column, expected, actual, word):
    assert value_nature(table, column, expected, actual) == word
    assert re.search(PHRASE[word], describe(word, table, column, expected, actual))


def test_order_is_the_contracts():
    # a code cut short is truncated before it is another valid code
    assert value_nature("diagnosis", "nomenclature_id", "ICD10SE:J18.9", "ICD10SE:J18") == "truncated"
    # a whole number of days is a date shift, fewer whole hours a time shift
    assert value_nature("orders", "orig_order_dt_tm", T0, T0 + dt.timedelta(hours=24)) == "date_shift"
    assert value_nature("orders", "orig_order_dt_tm", T0, T0 + dt.timedelta(hours=25)) == "time_shift"
    assert list(NATURES) == [
        "encoding",
        "truncated",
        "case_whitespace",
        "time_shift",
        "date_shift",
        "code_swapped",
        "value_lost",
        "value_added",
        "other",
    ]


# ------------------------------------------------------------- a real reconciliation, row by row


def _frame(eng: sa.Engine, sql: str) -> pl.DataFrame:
    with eng.connect() as c:
        return pl.DataFrame(c.execute(sa.text(sql)).mappings().all(), infer_schema_length=None)


@pytest.fixture(scope="module")
def changed_load(tmp_path_factory, sample_extract):
    """A clean load of sample_data with one difference of each nature written into the target."""
    root = tmp_path_factory.mktemp("nature")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    db = root / "t.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="none")
    eng = sa.create_engine(f"sqlite:///{db}")
    persons = _frame(eng, "select person_id, name_last, name_first, confid_level_cd from person order by person_id")
    enc = _frame(eng, "select encntr_id, loc_nurse_unit_cd, disch_dt_tm from encounter order by encntr_id")
    orders = _frame(eng, "select order_id, order_mnemonic from orders order by order_id")
    routine = _frame(eng, "select code_value from code_value where code_set = 87 and cdf_meaning = 'ROUTINE'").item()
    protected = _frame(eng, "select code_value from code_value where code_set = 87 and cdf_meaning = 'PROTECTED'")
    med = dict(_frame(eng, "select cdf_meaning, code_value from code_value where code_set = 220").iter_rows())
    used: set[int] = set()

    def person(cond: pl.Expr) -> dict:
        r = persons.filter(cond & ~pl.col("person_id").is_in(list(used))).row(0, named=True)
        used.add(r["person_id"])
        return r

    accented = person(pl.col("name_last").str.contains(r"[^\x00-\x7F]"))
    long_name = person(pl.col("name_last").str.len_chars() >= 7)
    plain = person(pl.col("name_first").str.len_chars() >= 3)
    routine_p = person(pl.col("confid_level_cd") == routine)
    e = enc.filter(pl.col("disch_dt_tm").is_not_null())["encntr_id"].to_list()
    open_e = enc.filter(pl.col("disch_dt_tm").is_null())["encntr_id"][0]
    on_med1 = enc.filter(pl.col("loc_nurse_unit_cd") == med["SAS_MED1"])["encntr_id"][0]
    e = [i for i in e if i != on_med1]
    o = orders["order_id"][0]
    changes = {
        ("person", accented["person_id"], "name_last"): (
            "update person set name_last = :v where person_id = :i",
            mojibake(accented["name_last"]),
            "encoding",
        ),
        ("person", long_name["person_id"], "name_last"): (
            "update person set name_last = :v where person_id = :i",
            long_name["name_last"][:4],
            "truncated",
        ),
        ("person", plain["person_id"], "name_first"): (
            "update person set name_first = :v where person_id = :i",
            plain["name_first"].upper(),
            "case_whitespace",
        ),
        ("person", routine_p["person_id"], "confid_level_cd"): (
            "update person set confid_level_cd = :v where person_id = :i",
            protected.item(),
            "code_swapped",
        ),
        ("encounter", on_med1, "loc_nurse_unit_cd"): (
            "update encounter set loc_nurse_unit_cd = :v where encntr_id = :i",
            med["SAS_MED2"],
            "code_swapped",
        ),
        ("encounter", e[0], "reg_dt_tm"): (
            "update encounter set reg_dt_tm = datetime(reg_dt_tm, :v) where encntr_id = :i",
            "+2 hours",
            "time_shift",
        ),
        ("encounter", e[1], "reg_dt_tm"): (
            "update encounter set reg_dt_tm = datetime(reg_dt_tm, :v) where encntr_id = :i",
            "-1 days",
            "date_shift",
        ),
        ("encounter", e[2], "disch_dt_tm"): (
            "update encounter set disch_dt_tm = :v where encntr_id = :i",
            None,
            "value_lost",
        ),
        ("encounter", open_e, "disch_dt_tm"): (
            "update encounter set disch_dt_tm = datetime(reg_dt_tm, :v) where encntr_id = :i",
            "+3 hours",
            "value_added",
        ),
        ("orders", o, "order_mnemonic"): (
            "update orders set order_mnemonic = :v where order_id = :i",
            orders["order_mnemonic"][0] + " forte",
            "other",
        ),
    }
    with eng.begin() as c:
        for (_, rid, _), (sql, value, _) in changes.items():
            c.execute(sa.text(sql), {"v": value, "i": rid})
    eng.dispose()
    out = root / "report"
    run_validation(extract, f"sqlite:///{db}", "TL-N", out, history_url=f"sqlite:///{root / 'h.db'}")
    want = {(f"{t}:{rid}", col): word for (t, rid, col), (_, _, word) in changes.items()}
    return pl.read_parquet(out / "discrepancies.parquet"), want


def test_each_changed_value_gets_its_nature(changed_load):
    disc, want = changed_load
    vm = disc.filter(pl.col("category") == "value_mismatch")
    got = {(r["target_ref"], r["column"]): r["nature"] for r in vm.iter_rows(named=True)}
    assert set(want.values()) == set(NATURES)  # every word
    # the changed values, each with its word, and no unchanged value with any
    assert got == want
    for r in vm.iter_rows(named=True):
        assert re.search(PHRASE[r["nature"]], r["message"]), r


def test_other_findings_have_no_nature(changed_load):
    disc, _ = changed_load
    others = disc.filter(pl.col("category") != "value_mismatch")
    assert others.height > 100  # the sample extract's source defects, counts, …
    assert others["nature"].null_count() == others.height


def test_masked_values_keep_the_nature(changed_load):
    disc, _ = changed_load
    names = disc.filter((pl.col("category") == "value_mismatch") & pl.col("column").is_in(["name_last", "name_first"]))
    assert set(names["nature"]) == {"encoding", "truncated", "case_whitespace"}
    assert names["expected"].str.contains(r"… \(\d+ chars").all() and names["actual"].str.contains(r"chars").all()


# -------------------------------------------------------------- the default load faults, scored


@pytest.fixture(scope="module")
def faulted(tmp_path_factory, sample_extract):
    root = tmp_path_factory.mktemp("nature-faults")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    db = root / "t.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="default", seed=3)
    out = root / "TL1"
    run_validation(extract, f"sqlite:///{db}", "TL1", out, history_url=f"sqlite:///{root / 'h.db'}")
    return root, extract, db, out


def test_every_value_fault_is_found_with_its_nature(faulted):
    _, extract, _, out = faulted
    truth = read_truth(extract)
    disc = pl.read_parquet(out / "discrepancies.parquet")
    faults = truth.filter(pl.col("category") == "value_mismatch")
    assert set(faults["nature"]) == {"encoding", "truncated", "time_shift", "code_swapped", "other"}
    s = score(truth, disc)
    assert s.recall["value_mismatch"] == 1.0, s.missed.filter(pl.col("category") == "value_mismatch")
    # a nature the report gets wrong is a miss, and the miss says what the report gave
    one = faults.row(0, named=True)
    wrong = disc.with_columns(
        pl.when((pl.col("category") == "value_mismatch") & (pl.col("source_ref") == one["source_ref"]))
        .then(pl.lit("other"))
        .otherwise(pl.col("nature"))
        .alias("nature")
    )
    s2 = score(truth, wrong)
    assert s2.recall["value_mismatch"] < 1.0
    assert s2.missed.select("source_ref", "nature", "reported_nature").rows() == [
        (one["source_ref"], one["nature"], "other")
    ]


def test_every_output_carries_the_nature(faulted):
    _, _, _, out = faulted
    disc = pl.read_parquet(out / "discrepancies.parquet")
    assert disc.columns == DISCREPANCY_COLUMNS
    assert DISCREPANCY_COLUMNS.index("nature") == DISCREPANCY_COLUMNS.index("actual") + 1
    assert DISCREPANCY_COLUMNS.index("message") == DISCREPANCY_COLUMNS.index("nature") + 1
    vm = disc.filter(pl.col("category") == "value_mismatch")
    assert vm.height > 0 and vm["nature"].is_in(list(NATURES)).all()
    ta = disc.filter(pl.col("category") == "text_altered")  # a note's text: the natures of clinical-notes.md
    assert ta.height > 0 and ta["nature"].is_in(list(TEXT_NATURES)).all()
    others = disc.filter(~pl.col("category").is_in(["value_mismatch", "text_altered"]))
    assert others["nature"].null_count() == others.height
    csv = pl.read_csv(out / "discrepancies.csv", infer_schema_length=0)
    assert csv.columns == DISCREPANCY_COLUMNS and csv["nature"].equals(disc["nature"])
    # the worklists show it beside the values, the page under them
    from openpyxl import load_workbook

    ws = load_workbook(out / "worklists" / "vendor-load.xlsx", read_only=True)["worklist"]
    rows = list(ws.iter_rows(values_only=True))
    header = list(rows[0])
    assert header.index("nature") == header.index("actual") + 1
    natured = ("value_mismatch", "text_altered")
    shown = {r[header.index("nature")] for r in rows[1:] if r[header.index("category")] in natured}
    assert shown == set(vm["nature"]) | set(ta["nature"])
    html = (out / "report.html").read_text(encoding="utf-8")
    on_page = set(re.findall(r'<div class="sub nat" title="nature of the difference">(\w+)</div>', html))
    assert on_page == set(vm["nature"]) | set(ta["nature"])


def test_an_older_report_without_nature_is_a_baseline(faulted):
    root, extract, db, out = faulted
    old = root / "old-report"
    old.mkdir()
    before = pl.read_parquet(out / "discrepancies.parquet")
    before.drop("nature").write_parquet(old / "discrepancies.parquet")
    again = root / "TL2"
    run_validation(extract, f"sqlite:///{db}", "TL2", again, baseline=old, history_url=f"sqlite:///{root / 'h2.db'}")
    d = pl.read_parquet(again / "discrepancies.parquet")
    assert d.columns == DISCREPANCY_COLUMNS
    assert set(d["status"]) == {"persisting"}  # the same load again: every finding persists
    assert (
        d.select("discrepancy_id", "nature")
        .sort("discrepancy_id")
        .equals(before.select("discrepancy_id", "nature").sort("discrepancy_id"))
    )
