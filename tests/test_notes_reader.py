"""Reading clinical notes: PAS ``anteckning.csv`` (multi-line quoted text) and PCS ``notes.jsonl``.

Real files written byte for byte as a legacy export would write them; no mocks. The expected text
of each note is checked through the mapping engine (``checks.expected``), so the load rules for
text (line breaks, line ends, blank edge lines) are pinned here too.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from checks.expected import compute_expected
from checks.mapping import load_mappings
from pipelines.io.extract import read_extract, read_pas_file, read_pcs_file

from conftest import MAPPINGS

HEADER = "ANTID;KONTAKTID;TYP;SIGNERAD;TEXT"


def _write_pas(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join([HEADER, *lines]) + "\r\n").encode("cp1252"))
    return path


def test_multi_line_notes_keep_their_text_and_start_line(tmp_path):
    path = _write_pas(
        tmp_path / "pas" / "anteckning.csv",
        [
            '1;10;RTG;2024-01-01 10:00;"Ingen fraktur.\r\n\r\nPat. säger ""ont""; remiss  \r\n"',  # lines 2-5
            "",  # line 6: a blank line between records
            '2;11;DAG;2024-01-02 10:00;"  En rad med inledande mellanslag"',  # line 7
            "3;11;DAG;2024-01-02 10:00;Kort text utan citattecken",  # line 8
        ],
    )
    df, bad, status = read_pas_file(path, "anteckning")
    assert status == "ok" and bad.height == 0
    assert df["ANTID"].to_list() == ["1", "2", "3"]
    assert df["_line"].to_list() == [2, 7, 8]
    # the text exactly as written: quotes undoubled, ';' kept, blank line inside kept, never trimmed
    assert df["TEXT"].to_list() == [
        'Ingen fraktur.\n\nPat. säger "ont"; remiss  \n',
        "  En rad med inledande mellanslag",
        "Kort text utan citattecken",
    ]


def test_a_stray_quote_costs_one_line_not_the_notes_after_it(tmp_path):
    path = _write_pas(
        tmp_path / "pas" / "anteckning.csv",
        [
            '1;10;RTG;2024-01-01 10:00;"Första"',  # line 2
            '2;10;"EPI;2024-01-02 10:00;"Rad ett',  # line 3: quotes out of place, 3 fields
            'rad två"',  # line 4: opens a quote that never closes into a record
            '3;12;EPI;;"x"""',  # line 5
            "4;13;OPB;2024-01-03 11:00;Lacks a field;",  # line 6: six fields
            '5;13;OPB;2024-01-03 11:00;"Sista\r\nraden"',  # lines 7-8
        ],
    )
    df, bad, _ = read_pas_file(path, "anteckning")
    assert df["ANTID"].to_list() == ["1", "3", "5"]
    assert df["_line"].to_list() == [2, 5, 7]
    assert df["TEXT"].to_list() == ["Första", 'x"', "Sista\nraden"]
    assert bad["line"].to_list() == [3, 4, 6]
    assert bad["source_ref"].to_list() == ["pas:anteckning.csv#3", "pas:anteckning.csv#4", "pas:anteckning.csv#6"]
    assert set(bad["entity"]) == {"clinical_event"}


def test_a_quote_left_open_at_the_end_loses_only_its_own_line(tmp_path):
    path = _write_pas(
        tmp_path / "pas" / "anteckning.csv",
        ['1;10;RTG;2024-01-01 10:00;"Hel"', '2;10;RTG;2024-01-01 10:00;"Aldrig stängd', "3;10;RTG;2024-01-01;x"],
    )
    df, bad, _ = read_pas_file(path, "anteckning")
    assert df["ANTID"].to_list() == ["1", "3"]
    assert bad["line"].to_list() == [3]


def test_pcs_note_text_is_not_trimmed(tmp_path):
    path = tmp_path / "pcs" / "notes.jsonl"
    path.parent.mkdir(parents=True)
    rows = [
        {"id": " N-1 ", "visitId": "V-1", "type": "journal", "signed": None, "text": "  Rad\r\nTvå  \n\n"},
        {"id": "N-2", "visitId": "V-1", "type": "journal", "signed": "2024-03-01T10:02:00+01:00", "text": ""},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    frames, bad, status = read_pcs_file(path, "notes")
    df = frames["pcs/notes"]
    assert status == "ok" and bad.height == 0
    assert df["id"].to_list() == ["N-1", "N-2"]  # other values are trimmed
    assert df["text"].to_list() == ["  Rad\r\nTvå  \n\n", ""]


def _extract(tmp_path: Path) -> Path:
    """A tiny extract: one PAS patient with a contact, one PCS patient with a visit, and their notes."""
    root = tmp_path / "extract"
    (root / "pas").mkdir(parents=True)
    (root / "pcs").mkdir()
    (root / "pas" / "patient.csv").write_bytes(
        b"PATID;PNR;ENAMN;FNAMN;KON;AVLIDEN;SKYDD;POSTNR;KOMMUN\r\n100001;195002187473;Novak;Rune;M;;N;50155;1490\r\n"
    )
    (root / "pas" / "kontakt.csv").write_bytes(
        b"KONTAKTID;PATID;KONTAKTTYP;ENHET;INDATUM;UTDATUM;STATUS\r\n"
        b"5000001;100001;OV;MED1;2024-03-01 09:00;2024-03-01 10:00;A\r\n"
    )
    _write_pas(
        root / "pas" / "anteckning.csv",
        [
            '700001;5000001;RTG;2024-03-01 10:15;"\r\nFrågeställning: fraktur?  \r\nFynd: Ingen fraktur.\t\r\n\r\n"',
            '700002;5000001;DAG;;"Osignerat utkast"',
            '700003;5000001;DAG;2024-03-01 10:20;"  \r\n   \r\n"',
            '700004;5000001;XYZ;2024-03-01 10:20;"Okänd typ"',
            '700005;5000001;;2024-03-01 10:20;"Ingen typ"',
            '700006;5999999;DAG;2024-03-01 10:20;"Föräldralös"',
        ],
    )
    patient = {
        "id": "P-0000001",
        "identity": {"type": "pnr", "value": "199105280185"},
        "name": {"family": "Holmqvist", "given": "Hanna"},
        "sex": "2",
        "deceased": None,
        "protected": False,
        "address": {"postalCode": "51119", "municipality": "1463"},
    }
    visit = {
        "id": "V-0000001",
        "patientId": "P-0000001",
        "type": "visit",
        "unitHsaId": "SE2321000131-E000001000001",
        "start": "2024-03-02T08:00:00+01:00",
        "end": None,
        "status": "finished",
        "diagnoses": [],
    }
    note = {
        "id": "N-00000001",
        "visitId": "V-0000001",
        "type": "referral-answer",
        "signed": "2024-03-02T08:30:00+01:00",
        "text": "Besöksorsak: hosta.\r\nStatus: Lungor ua.  \n",
    }
    for name, obj in (("patients", patient), ("visits", visit), ("notes", note)):
        (root / "pcs" / f"{name}.jsonl").write_text(json.dumps(obj, ensure_ascii=False) + "\n", encoding="utf-8")
    return root


def test_expected_notes_follow_the_load_rules(tmp_path):
    exp = compute_expected(read_extract(_extract(tmp_path)), load_mappings(MAPPINGS), dt.date(2026, 12, 1))
    ce = exp.tables["clinical_event"].sort("source_ref")
    assert ce["source_ref"].to_list() == ["pas:anteckning:700001", "pcs:note:N-00000001"]
    row = ce.row(0, named=True)
    assert row["note_text"] == "Frågeställning: fraktur?\nFynd: Ingen fraktur."
    assert (row["event_cd"], row["result_status_cd"], row["reference_nbr"], row["contributor_system_cd"]) == (
        "RADREPORT",
        "AUTH",
        "700001",
        "PAS",
    )
    assert row["event_end_dt_tm"] == dt.datetime(2024, 3, 1, 9, 15)  # 10:15 CET is 09:15 UTC
    assert row["encounter_ref"] == "pas:kontakt:5000001"
    pcs = ce.row(1, named=True)
    assert pcs["note_text"] == "Besöksorsak: hosta.\nStatus: Lungor ua."
    assert (pcs["event_cd"], pcs["event_end_dt_tm"]) == ("REFERRALANS", dt.datetime(2024, 3, 2, 7, 30))
    ledger = dict(
        exp.ledger.filter(pl.col("entity") == "clinical_event").select("source_ref", "disposition").iter_rows()
    )
    assert ledger == {
        "pas:anteckning:700001": "expected",
        "pas:anteckning:700002": "out_of_scope",  # unsigned draft
        "pas:anteckning:700003": "rejected",  # blank lines only
        "pas:anteckning:700004": "rejected",  # unknown type
        "pas:anteckning:700005": "rejected",  # no type
        "pas:anteckning:700006": "rejected",  # contact not in the extract
        "pcs:note:N-00000001": "expected",
    }
    found = {
        (r["source_ref"], r["category"], r["column"])
        for r in exp.findings.filter(pl.col("entity") == "clinical_event").iter_rows(named=True)
    }
    assert found == {
        ("pas:anteckning:700003", "mandatory_missing", "note_text"),
        ("pas:anteckning:700004", "unmapped_code", "event_cd"),
        ("pas:anteckning:700005", "mandatory_missing", "event_cd"),
        ("pas:anteckning:700006", "orphan", "KONTAKTID"),
    }
