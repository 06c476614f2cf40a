"""Large extract files are read a block at a time: the same records and unreadable lines as at once.

``read_file_parts`` cuts a file into blocks at line ends; a note whose quoted text a block's end cuts
in two is carried to the next block. Whatever the block size — down to one byte, so that every line
end is a cut — the frames, the unreadable lines (numbers and reasons) and the status must be those
of the whole file. Real files, written byte for byte as the legacy systems write them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.errors import MigcheckError
from pipelines.io.extract import file_status, read_extract_file, read_file_parts

from conftest import SAMPLE

HEADER = b"ANTID;KONTAKTID;TYP;SIGNERAD;TEXT\r\n"
SIZES = (1, 7, 64, 300, 10**9)


def _by_blocks(root: Path, system: str, name: str, size: int) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, dict]:
    parts = list(read_file_parts(root, system, name, size))
    frames = {k: pl.concat([p.frames[k] for p in parts]) for k in parts[0].frames}
    return frames, pl.concat([p.unparseable for p in parts]).sort("line"), file_status([p.file for p in parts])


def _assert_same(root: Path, system: str, name: str, sizes=SIZES) -> int:
    whole = read_extract_file(root, system, name)
    for size in sizes:
        frames, bad, status = _by_blocks(root, system, name, size)
        assert status == whole.file, size
        assert bad.equals(whole.unparseable), size
        for k, df in whole.frames.items():
            assert frames[k].equals(df), (size, k)
    return len(list(read_file_parts(root, system, name, sizes[0])))


# one record of a notes file: well-formed ones, and every way a legacy export goes wrong
_note = st.sampled_from(
    [
        b'1;10;RTG;2024-01-01 10:00;"Ingen fraktur.\r\n\r\nPat. s\xe4ger ""ont""; remiss  \r\n"',
        b"2;11;DAG;2024-01-02 10:00;Kort text utan citattecken",
        b'3;11;EPI;;"  inledande mellanslag"',
        b'4;10;"EPI;2024-01-02 10:00;"Rad ett',  # quotes out of place
        b'rad tv\xe5"',  # closes a quote opened above
        b"",  # a blank line
        b'5;12;EPI;;"x"""',
        b'6;12;RTG;2024-01-03;"en\r\nann\x81an rad"',  # a byte that is not Windows-1252
        b"7;12;RTG;2024-01-03",  # too few fields
        b'8;13;DAG;2024-01-04;"aldrig st\xe4ngd',  # a quote that never closes
        b'9;13;DAG;2024-01-04;"tre\r\nrader\r\nh\xe4r"',
    ]
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_note, max_size=25), st.sampled_from([b"\r\n", b""]))
def test_a_notes_file_by_blocks_is_the_whole_file(tmp_path, notes, end):
    root = tmp_path / "x"
    (root / "pas").mkdir(parents=True, exist_ok=True)
    (root / "pas" / "anteckning.csv").write_bytes(HEADER + b"\r\n".join(notes) + (end if notes else b""))
    _assert_same(root, "pas", "anteckning")


# one line of a PAS file of rows (atgard: KONTAKTID;KVAKOD;DATUM), good and bad
_row = st.sampled_from(
    [
        b"K1;AA01;2024-01-01",
        b'K2;"AB;02";2024-01-02',  # a quoted value with the separator
        b'K3;"rad ett',  # a quote that opens a value spanning lines
        b'tv\xe5";2024-01-03',  # … and closes it
        b"K4;AA01",  # too few fields
        b"",
        b"K5;\x81;2024-01-04",  # not Windows-1252
        b'K6;"aldrig',  # never closes
    ]
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_row, max_size=60))
def test_a_pas_file_of_rows_by_blocks_is_the_whole_file(tmp_path, rows):
    root = tmp_path / "x"
    (root / "pas").mkdir(parents=True, exist_ok=True)
    (root / "pas" / "atgard.csv").write_bytes(b"KONTAKTID;KVAKOD;DATUM\r\n" + b"\r\n".join(rows))
    _assert_same(root, "pas", "atgard")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from(
            [
                json.dumps(
                    {"id": "N1", "visitId": "V1", "type": "EPI", "signed": "2024-01-01T10:00:00", "text": "a\nb"}
                ),
                json.dumps({"id": "N2", "visitId": "V1", "type": "EPI", "signed": None, "text": "  x  "}),
                '{"id": "N3", "visitId": ',  # cut off
                json.dumps({"id": 3, "visitId": "V1", "type": "EPI", "signed": None, "text": "y"}),  # wrong type
                "",
                "[1, 2]",
            ]
        ),
        max_size=20,
    ),
    st.booleans(),
)
def test_a_pcs_file_by_blocks_is_the_whole_file(tmp_path, lines, bom):
    root = tmp_path / "x"
    (root / "pcs").mkdir(parents=True, exist_ok=True)
    data = "\n".join(lines).encode("utf-8")
    (root / "pcs" / "notes.jsonl").write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    _assert_same(root, "pcs", "notes")


@pytest.mark.parametrize(
    ("system", "name"),
    [
        ("pas", "anteckning"),
        ("pas", "kontakt"),
        ("pas", "diagnos"),
        ("pcs", "notes"),
        ("pcs", "labresults"),
        ("pcs", "visits"),
    ],
)
def test_the_sample_extract_by_blocks_is_the_whole_file(system, name):
    # 16 KiB blocks: several per file, cuts inside multi-line notes
    assert _assert_same(SAMPLE, system, name, sizes=(16 * 1024, 10**9)) >= 1
    assert len(list(read_file_parts(SAMPLE, system, name, 16 * 1024))) > 1


def test_missing_and_empty_files_by_blocks(tmp_path):
    root = tmp_path / "x"
    (root / "pas").mkdir(parents=True)
    (root / "pcs").mkdir()
    assert _by_blocks(root, "pas", "anteckning", 7)[2]["status"] == "missing"
    assert _by_blocks(root, "pas", "atgard", 7)[2]["status"] == "missing"
    assert _by_blocks(root, "pcs", "notes", 7)[2]["status"] == "missing"
    (root / "pas" / "anteckning.csv").write_bytes(b"")
    (root / "pcs" / "notes.jsonl").write_bytes(b"\n\n")
    assert _by_blocks(root, "pas", "anteckning", 7)[2] == {
        "file": "pas/anteckning.csv",
        "status": "empty",
        "records": 0,
    }
    assert _by_blocks(root, "pcs", "notes", 7)[2] == {"file": "pcs/notes.jsonl", "status": "empty", "records": 0}
    (root / "pas" / "anteckning.csv").write_bytes(HEADER)
    assert _by_blocks(root, "pas", "anteckning", 7)[2]["status"] == "empty"


def test_a_utf8_notes_file_is_refused_by_blocks_too(tmp_path):
    root = tmp_path / "x"
    shutil.copytree(SAMPLE / "pas", root / "pas")
    path = root / "pas" / "anteckning.csv"
    path.write_bytes(path.read_bytes().decode("cp1252").encode("utf-8"))
    with pytest.raises(MigcheckError, match="is UTF-8 text, not Windows-1252"):
        list(read_file_parts(root, "pas", "anteckning", 64 * 1024))
