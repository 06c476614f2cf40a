import polars as pl

from checks.schemas import schema_findings
from pipelines.synth.scoring import score


def _frames(**over):
    patient = pl.DataFrame(
        {
            "PATID": ["1", "2", "x3"],
            "POSTNR": ["503 32", "5033", "50332"],
            "KOMMUN": ["1490", "1490", "14"],
            "SKYDD": ["N", None, "Q"],
            "source_ref": ["pas:patient:1", "pas:patient:2", "pas:patient:x3"],
        }
    )
    frames = {
        "pas/patient": patient,
        "pas/kontakt": pl.DataFrame({"KONTAKTID": ["10"], "STATUS": ["A"], "source_ref": ["pas:kontakt:10"]}),
        "pcs/patients": pl.DataFrame(
            {"postal_code": ["50332"], "municipality": ["1490"], "source_ref": ["pcs:patient:P-1"]}
        ),
        "pcs/visits": pl.DataFrame({"status": ["signed"], "source_ref": ["pcs:visit:V-1"]}),
    }
    frames.update(over)
    return frames


def test_schema_failures_on_loaded_records_become_warnings_without_the_value():
    ledger = pl.DataFrame(
        {
            "source_ref": ["pas:patient:1", "pas:patient:2", "pas:patient:x3"],
            "disposition": ["expected", "expected", "rejected"],
        }
    )
    f = schema_findings(_frames(), ledger)
    assert f.select("source_ref", "column").rows() == [("pas:patient:2", "postal_code")]
    assert f["category"].to_list() == ["implausible"]
    assert "5033" not in f["message"][0]


def test_clean_frames_give_nothing():
    ledger = pl.DataFrame({"source_ref": ["pas:patient:1"], "disposition": ["expected"]})
    assert schema_findings(_frames(), ledger).height == 0


def test_scoring_counts_misses_and_false_alarms():
    truth = pl.DataFrame(
        {
            "category": ["missing_in_target", "unexpected_in_target", "row_count"],
            "entity": ["encounter", "diagnosis", "encounter"],
            "source_ref": ["pas:kontakt:1", "", ""],
            "target_ref": ["", "diagnosis:9", ""],
        }
    )
    disc = pl.DataFrame(
        {
            "category": ["missing_in_target", "row_count", "value_mismatch", "row_count"],
            "severity": ["error", "error", "error", "info"],
            "entity": ["encounter", "encounter", "person", "person"],
            "source_ref": ["pas:kontakt:1", None, "pas:patient:5", None],
            "target_ref": [None, None, "person:5", None],
        }
    )
    s = score(truth, disc)
    assert s.recall == {"missing_in_target": 1.0, "row_count": 1.0, "unexpected_in_target": 0.0}
    assert s.false_alarms["source_ref"].to_list() == ["pas:patient:5"]
