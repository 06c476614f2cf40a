"""Property tests of the readers and identity numbers, and a fuzz run of the readers on random bytes:
no crash (only a MigcheckError for a file that cannot be read at all), no lost line."""

from __future__ import annotations

import csv
import datetime as dt
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.errors import MigcheckError
from checks.identity import classify, luhn_digit
from pipelines.io.extract import read_pas_file, read_pcs_file

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADER = b"KONTAKTID;KVAKOD;DATUM\r\n"
field = st.text(alphabet=st.sampled_from(list("abcÅÄÖåäöé019 ;\"-'")), max_size=12)


@SETTINGS
@given(st.lists(st.tuples(field, field, field), min_size=1, max_size=30))
def test_pas_round_trip(tmp_path, rows):
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=";", quotechar='"', lineterminator="\r\n")
    w.writerow(["KONTAKTID", "KVAKOD", "DATUM"])
    w.writerows(rows)
    path = tmp_path / "atgard.csv"
    path.write_bytes(buf.getvalue().encode("cp1252"))
    frame, bad, status = read_pas_file(path, "atgard")
    expected = [tuple((v.strip() or None) for v in r) for r in rows]  # a row of empty fields is ";;": a record
    assert bad.height == 0, bad
    got = [tuple(r) for r in frame.select("KONTAKTID", "KVAKOD", "DATUM").iter_rows()]
    assert got == expected
    assert frame["_line"].is_sorted()


@SETTINGS
@given(st.binary(max_size=3000))
def test_pas_reader_on_random_bytes_loses_no_line(tmp_path, data):
    path = tmp_path / "atgard.csv"
    path.write_bytes(HEADER + data)
    try:
        frame, bad, _ = read_pas_file(path, "atgard")
    except MigcheckError:
        return  # e.g. the bytes happen to be UTF-8: the whole file is refused, with its reason
    physical = [ln for ln in (HEADER + data).split(b"\n")[1:] if ln not in (b"", b"\r")]
    accounted = frame.height + bad.height
    if b'"' not in data:
        assert accounted == len(physical)
    else:  # quoted fields may join lines into one record, never drop one
        assert 0 < accounted <= len(physical) or not physical
    lines = sorted(frame["_line"].to_list() + bad["line"].to_list())
    assert len(set(lines)) == len(lines)


@SETTINGS
@given(
    st.lists(
        st.binary(max_size=200).filter(lambda b: b"\n" not in b and not b.startswith(b"\xef\xbb\xbf")), max_size=40
    )
)
def test_pcs_reader_on_random_lines_loses_no_line(tmp_path, lines):
    path = tmp_path / "medications.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    frames, bad, _ = read_pcs_file(path, "medications")
    nonblank = [i + 1 for i, ln in enumerate(lines) if ln not in (b"", b"\r")]
    assert sorted(frames["pcs/medications"]["_line"].to_list() + bad["line"].to_list()) == nonblank


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@SETTINGS
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["id", "patientId", "atc", "name", "dose", "start", "end", "x"]), json_value, max_size=8
        ),
        min_size=1,
        max_size=30,
    )
)
def test_pcs_reader_with_any_json_types(tmp_path, objs):
    import json

    path = tmp_path / "medications.jsonl"
    path.write_text("\n".join(json.dumps(o) for o in objs) + "\n", encoding="utf-8")
    frames, bad, _ = read_pcs_file(path, "medications")
    assert frames["pcs/medications"].height + bad.height == len(objs)
    assert sorted(frames["pcs/medications"]["_line"].to_list() + bad["line"].to_list()) == list(range(1, len(objs) + 1))


@settings(max_examples=300, deadline=None)
@given(st.dates(dt.date(1900, 1, 1), dt.date(2025, 12, 31)), st.integers(0, 999), st.booleans(), st.integers(1, 9))
def test_valid_numbers_are_valid_and_any_other_check_digit_is_not(birth, serial, samnr, delta):
    day = birth.day + (60 if samnr else 0)
    body = f"{birth.year:04d}{birth.month:02d}{day:02d}{serial:03d}"
    c = luhn_digit(body[2:])
    good = classify(body + str(c), dt.date(2026, 1, 1))
    assert good.valid and good.birth_date == birth and good.kind == ("SAMNR" if samnr else "PNR")
    assert good.sex == ("MALE" if serial % 2 else "FEMALE")
    bad = classify(body + str((c + delta) % 10), dt.date(2026, 1, 1))
    assert not bad.valid and bad.reason == "check digit does not match"
