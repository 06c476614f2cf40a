"""The preservation archive (archive.md): written, verified, complete, owner-only, readable in parts."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from checks.archive import codebook
from checks.codebook import codebook_rows
from pipelines.io import archive as archive_mod
from pipelines.io.archive import archive_records, record_hashes, record_rows, verify_archive, write_archive
from pipelines.io.extract import read_extract

from conftest import REPO

HIVE = {"system": pl.String, "kind": pl.String, "year": pl.String}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MIGCHECK_DEBUG", None)
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


@pytest.fixture(scope="module")
def validated(tmp_path_factory, sample_extract):
    """A copy of the sample extract, its faulted trial load and its validation report."""
    from pipelines.run.validate import run_validation
    from pipelines.synth.trial_load import simulate_trial_load

    work = tmp_path_factory.mktemp("archive")
    extract = work / "extract"
    shutil.copytree(sample_extract, extract)
    db = f"sqlite:///{work / 'target.db'}"
    simulate_trial_load(extract, db, faults="default", seed=1)
    run_validation(extract, db, "TL1", work / "report", history_url=f"sqlite:///{work / 'history.db'}")
    return work


@pytest.fixture(scope="module")
def archived(validated):
    """The archive of that extract with its report's ledger, written through the command line."""
    out = validated / "archive"
    r = cli("archive", "--source", str(validated / "extract"), "--out", str(out), "--report", str(validated / "report"))
    assert r.returncode == 0, r.stderr
    return out, r


@pytest.fixture()
def archive_copy(archived, tmp_path):
    """A copy of the archive to damage (modes kept)."""
    dst = tmp_path / "copy"
    shutil.copytree(archived[0], dst)
    return dst


def _personal_values(extract: Path) -> set[str]:
    x = read_extract(extract)
    values: set[str] = set()
    for frame, cols in (
        ("pas/patient", ["PNR", "ENAMN", "FNAMN"]),
        ("pcs/patients", ["identity_value", "name_family"]),
    ):
        for c in cols:
            values |= {v for v in x.frame(frame)[c].drop_nulls().to_list() if len(v) >= 4}
    return values


def test_the_archive_of_the_extract_verifies(archived, validated):
    out, written = archived
    r = cli("archive", "verify", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines() == [f"{out}: intact (every checksum and record count verified)"]
    assert written.stdout.count("\n") == 1 and "5563 legacy records" in written.stdout
    for value in _personal_values(validated / "extract"):  # no value of the archive in any output
        assert value not in written.stdout + written.stderr + r.stdout + r.stderr
    info = (out / "bag-info.txt").read_text()
    for tag in ("Source-Organization:", "External-Identifier: extract", "Bagging-Date:", "Payload-Oxum:"):
        assert tag in info
    assert "Record-Count: pas/patient.csv 219" in info and "Migcheck-Version:" in info
    assert (out / "manifest-sha512.txt").is_file() and (out / "tagmanifest-sha512.txt").is_file()


def test_the_originals_are_kept_byte_for_byte(archived, validated):
    out, _ = archived
    for system, pattern in (("pas", "*.csv"), ("pcs", "*.jsonl")):
        src = sorted((validated / "extract" / system).glob(pattern))
        assert [p.name for p in src] == sorted(p.name for p in (out / "data/original" / system).iterdir())
        for p in src:
            assert (out / "data/original" / system / p.name).read_bytes() == p.read_bytes()
    assert (out / "data/ledger.parquet").read_bytes() == (validated / "report/ledger.parquet").read_bytes()


def test_files_and_folders_are_owner_only(archived):
    out, _ = archived
    assert (out.stat().st_mode & 0o777) == 0o700
    seen = 0
    for dirpath, dirnames, filenames in os.walk(out):
        for d in dirnames:
            assert (Path(dirpath, d).stat().st_mode & 0o777) == 0o700, Path(dirpath, d)
        for f in filenames:
            assert (Path(dirpath, f).stat().st_mode & 0o777) == 0o600, Path(dirpath, f)
            seen += 1
    assert seen > 20


def _payload(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in (out / "data").rglob("*") if p.is_file())


def test_one_changed_byte_in_any_payload_file_is_named(archive_copy):
    files = _payload(archive_copy)
    assert any(f.endswith(".parquet") for f in files) and "data/codebook.json" in files
    for rel in files:
        p = archive_copy / rel
        data = bytearray(p.read_bytes())
        i = len(data) // 2
        data[i] ^= 0x01
        p.write_bytes(bytes(data))
        problems = verify_archive(archive_copy)
        assert problems and problems[0].startswith(f"{rel}: altered"), (rel, problems)
        data[i] ^= 0x01
        p.write_bytes(bytes(data))
    assert verify_archive(archive_copy) == []


@pytest.mark.parametrize(
    "rel",
    [
        "data/original/pas/patient.csv",
        "data/original/pcs/visits.jsonl",
        "data/records/system=pas/kind=anteckning/year=2020/part-0.parquet",
        "data/ledger.parquet",
    ],
)
def test_the_command_line_names_a_changed_deleted_or_added_file(archive_copy, rel):
    p = archive_copy / rel
    original = p.read_bytes()
    p.write_bytes(original[:10] + bytes([original[10] ^ 0x20]) + original[11:])
    r = cli("archive", "verify", str(archive_copy))
    assert r.returncode == 1 and r.stdout.splitlines()[0].startswith(f"{rel}: altered"), r.stdout + r.stderr
    p.unlink()
    r = cli("archive", "verify", str(archive_copy))
    assert r.returncode == 1 and f"{rel}: missing" in r.stdout, r.stdout
    p.write_bytes(original)
    added = p.with_name("extra" + p.suffix)
    added.write_bytes(original)
    r = cli("archive", "verify", str(archive_copy))
    assert r.returncode == 1, r.stdout
    assert f"{added.relative_to(archive_copy)}: added (not in the manifest)" in r.stdout.splitlines()
    added.unlink()
    assert cli("archive", "verify", str(archive_copy)).returncode == 0


def test_an_access_copy_missing_records_is_named_by_its_file(archive_copy):
    part = next((archive_copy / "data/records/system=pcs/kind=note").glob("year=*/part-0.parquet"))
    df = pl.read_parquet(part)
    df.head(df.height - 1).write_parquet(part)
    problems = verify_archive(archive_copy)
    assert any(p.startswith(f"{part.relative_to(archive_copy)}: altered") for p in problems)
    assert any(p.startswith("pcs/notes.jsonl: the access copy holds") for p in problems), problems


def test_what_is_not_a_bag_exits_2(tmp_path):
    (tmp_path / "folder").mkdir()
    for target in (tmp_path / "folder", tmp_path / "nothing"):
        r = cli("archive", "verify", str(target))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr


def test_one_row_per_legacy_record_as_in_the_ledger(archived):
    out, _ = archived
    refs = archive_records(out).select("source_ref").collect()["source_ref"].to_list()
    ledger = pl.read_parquet(out / "data/ledger.parquet")["source_ref"].to_list()
    assert len(refs) == 5563
    assert Counter(refs) == Counter(ledger)


def _kind(out: Path, system: str, kind: str) -> pl.LazyFrame:
    glob = out / f"data/records/system={system}/kind={kind}/**/*.parquet"
    return pl.scan_parquet(glob, hive_partitioning=True, hive_schema=HIVE)


def test_record_hash_is_the_sha256_of_the_raw_bytes(archived, validated):
    out, _ = archived
    extract = validated / "extract"
    lines = {
        f: (extract / f).read_bytes().split(b"\r\n" if f.startswith("pas") else b"\n")
        for f in ("pas/patient.csv", "pas/anteckning.csv", "pcs/visits.jsonl")
    }
    patient = _kind(out, "pas", "patient").head(5).collect()
    for line, h in patient.select("line", "record_hash").iter_rows():
        assert h == hashlib.sha256(lines["pas/patient.csv"][line - 1]).hexdigest()
    visits = _kind(out, "pcs", "visit").head(3).collect()
    for line, h in visits.select("line", "record_hash").iter_rows():
        assert h == hashlib.sha256(lines["pcs/visits.jsonl"][line - 1]).hexdigest()
    diagnoses = _kind(out, "pcs", "diagnosis").head(4).collect()
    for line, i, h in diagnoses.select("line", "index", "record_hash").iter_rows():
        assert h == hashlib.sha256(lines["pcs/visits.jsonl"][line - 1] + f"#diagnoses[{i}]".encode()).hexdigest()
    # a note spans lines: from its first line to the line before the next record of the file
    notes = _kind(out, "pas", "anteckning").sort("line").collect()
    bad = pl.concat([_kind(out, "pas", "unparseable").collect(), _kind(out, "pcs", "unparseable").collect()])
    starts = sorted(notes["line"].to_list() + bad.filter(pl.col("file") == "pas/anteckning.csv")["line"].to_list())
    starts.append(len(lines["pas/anteckning.csv"]))
    multi = 0
    for line, h, text in notes.head(5).select("line", "record_hash", "TEXT").iter_rows():
        nxt = starts[starts.index(line) + 1]
        raw = b"\r\n".join(lines["pas/anteckning.csv"][line - 1 : nxt - 1])
        assert h == hashlib.sha256(raw).hexdigest()
        multi += "\r\n" in text  # the text as it stands, line breaks and all
    assert multi
    assert bad.height == 24
    for raw, h in bad.select("raw", "record_hash").iter_rows():
        assert h == hashlib.sha256(raw).hexdigest()


def test_fields_are_kept_as_they_stand(archived, validated):
    out, _ = archived
    rows = pl.scan_parquet(out / "data/records/system=pas/kind=patient/**/*.parquet", hive_partitioning=True)
    first = rows.sort("line").head(1).collect().row(0, named=True)
    line = (validated / "extract/pas/patient.csv").read_bytes().split(b"\r\n")[first["line"] - 1].decode("cp1252")
    assert line.split(";") == [
        first[c] for c in ["PATID", "PNR", "ENAMN", "FNAMN", "KON", "AVLIDEN", "SKYDD", "POSTNR", "KOMMUN"]
    ]
    pcs = pl.scan_parquet(out / "data/records/system=pcs/kind=patient/**/*.parquet", hive_partitioning=True)
    p = pcs.sort("line").head(1).collect().row(0, named=True)
    obj = json.loads((validated / "extract/pcs/patients.jsonl").read_bytes().split(b"\n")[p["line"] - 1])
    assert p["id"] == obj["id"] and json.loads(p["identity"]) == obj["identity"]
    assert p["protected"] == json.dumps(obj["protected"])


def test_one_year_of_one_kind_is_read_alone(archived, tmp_path):
    out, _ = archived
    records = tmp_path / "records"
    shutil.copytree(out / "data/records", records)
    years = sorted(p.name for p in (records / "system=pas/kind=kontakt").iterdir())
    year = years[len(years) // 2].removeprefix("year=")
    scan = pl.scan_parquet(records / "system=pas/kind=kontakt/**/*.parquet", hive_partitioning=True, hive_schema=HIVE)
    wanted = scan.filter(pl.col("year") == year)
    plan = wanted.explain()
    assert f"year={year}/part-0.parquet" in plan and plan.count("part-0.parquet") == 1, plan
    expected = wanted.collect()
    assert expected.height and set(expected["year"]) == {year}
    # every other partition made unreadable: the filtered scan never opens one (given the columns, it
    # needs no other file's footer for the schema either)
    schema = pl.read_parquet_schema(records / f"system=pas/kind=kontakt/year={year}/part-0.parquet")
    for p in records.rglob("*.parquet"):
        if f"kind=kontakt/year={year}/" not in str(p):
            p.write_bytes(b"not parquet")
    glob = records / "system=pas/kind=kontakt/**/*.parquet"
    again = pl.scan_parquet(glob, hive_partitioning=True, hive_schema=HIVE, schema=schema)
    assert again.filter(pl.col("year") == year).collect().equals(expected)


def test_the_codebook_covers_every_column_of_the_access_copy(archived):
    out, _ = archived
    book = json.loads((out / "data/codebook.json").read_text())
    assert book["fields"] == codebook_rows() and book == json.loads(json.dumps(codebook(book["written_by"][9:])))
    known = {r["column"] for r in book["fields"]} | {
        c["column"] for k in ("access_columns", "unparseable_columns", "diagnosis_columns") for c in book[k]
    }
    for p in (out / "data/records").rglob("*.parquet"):
        assert set(pl.read_parquet_schema(p)) <= known, p
    files = {r["file"] for r in book["fields"]}
    assert {"pas/anteckning.csv", "pcs/notes.jsonl", "pcs/visits.jsonl#diagnoses[i]"} <= files


def test_validation_can_compare_the_extract_with_the_archive(archived, validated):
    out, _ = archived
    mine = record_hashes(validated / "extract").sort("source_ref", "record_hash")
    theirs = archive_records(out).collect().select(mine.columns).sort("source_ref", "record_hash")
    assert mine.equals(theirs)


@pytest.mark.parametrize("where", ["inside_source", "non_empty", "inside_report", "a_file"])
def test_a_wrong_out_is_refused_in_one_line(validated, tmp_path, where):
    extract = validated / "extract"
    out = {
        "inside_source": extract / "archive",
        "non_empty": tmp_path / "full",
        "inside_report": validated / "report" / "archive",
        "a_file": tmp_path / "file",
    }[where]
    if where == "non_empty":
        out.mkdir()
        (out / "keep.txt").write_text("a steward's note")
    if where == "a_file":
        out.write_text("x")
    before = sorted(p.name for p in out.parent.iterdir())
    r = cli("archive", "--source", str(extract), "--out", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "--out" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == before
    if where == "non_empty":
        assert (out / "keep.txt").read_text() == "a steward's note"


def test_a_failure_leaves_nothing(validated, tmp_path, monkeypatch):
    import bagit

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bagit, "make_bag", broken)
    with pytest.raises(RuntimeError):
        write_archive(validated / "extract", tmp_path / "archive")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_out_folder_is_taken(validated, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    r = write_archive(validated / "extract", out)
    assert r.path == out and sum(r.records.values()) == 5563
    assert (out.stat().st_mode & 0o777) == 0o700 and verify_archive(out) == []


# ---------------------------------------------------------------------------------------------
# The records are the readers' records, whatever the chunks


def _write_odd_extract(root: Path) -> None:
    """Lines the readers must recover from: stray quotes, bytes cp1252 lacks, blank lines, LF endings, BOM."""
    pas, pcs = root / "pas", root / "pcs"
    pas.mkdir(parents=True)
    pcs.mkdir()
    notes = [
        b"ANTID;KONTAKTID;TYP;SIGNERAD;TEXT",
        b'1;10;RTG;2020-01-02 10:00;"Ingen fraktur.\r\n\r\nInget ""patologiskt"";\r\nslut"',
        b'2;10;EPI;2021-01-02 10:00;"kort"',
        b"",
        b'3;10;DAG;;"utkast"',
        b'4;10;RTG;2020-05-05 10:00;"ett citat \x81 som ej kan l\xe4sas"',
        b'5;10;DAG;2019-03-03 09:00;"en rad',
        b'6;10;DAG;2019-03-04 09:00;"rad ett',
        b'rad tv\xe5"',
        b"7;10;DAG;2019-03-05 09:00;utan citat",
        b'8;10;OPB;2018-01-01 08:00;"fyra";"f\xe4lt"',
        b'9;10;"RTG";2018-02-02 08:00;"enkel"',
        b'rad tv\xe5"',  # a quote inside a bare value, then quotes out of place (D78)
        b'10;10;"EPI;2018-03-03 08:00;"Rad ett',
        b'11;10;RTG;2018-03-04 08:00;"sist"',
    ]
    (pas / "anteckning.csv").write_bytes(b"\r\n".join(notes) + b"\r\n")
    patients = [
        b"PATID;PNR;ENAMN;FNAMN;KON;AVLIDEN;SKYDD;POSTNR;KOMMUN",
        b"1;191212121212; Andersson ;Anna;K;;N;503 32;1490",
        b'2;191212121212;"Berg; Bo";Bo;M;;;50332;1490',
        b'3;191212121212;"Ceder',
        b'lund";Cia;K;;;50332;1490',
        b"4;191212121212;Dahl;Dan;M;;;50332",
        b"",
        b"5;191212121212;\x90rn;Eva;K;;;50332;1490",
        b'6;191212121212;"Ek;Fia;K;;;50332;1490',
        b"7;191212121212;Falk;Gun;K;2020-01-01;J;50332;1490",
    ]
    (pas / "patient.csv").write_bytes(b"\n".join(patients))  # LF endings, no final line break
    visits = [
        b'\xef\xbb\xbf{"id": "V1", "patientId": "P1", "start": "2020-01-01T10:00:00+01:00", '
        b'"diagnoses": [{"code": " J06.9 ", "primary": true}, null, {"code": "R50.9", "primary": false}]}',
        b'{"id": "V2", "start": null, "diagnoses": []}',
        b"",
        b"{not json",
        b'{"id": "V3", "start": "2021-02-02", "diagnoses": [{"code": "J06.9", "primary": "yes"}]}',
        b'{"id": "V4", "start": "2022-03-03", "type": 1.50, "status": {"a": [1, "\\u00e5"]}}',
        b"[1, 2]",
        b"   ",
    ]
    (pcs / "visits.jsonl").write_bytes(b"\n".join(visits) + b"\n")


def _reader_records(root: Path) -> pl.DataFrame:
    x = read_extract(root)
    parts = [f.select("source_ref", pl.col("_line").alias("line")) for f in x.frames.values()]
    return pl.concat([*parts, x.unparseable.select("source_ref", "line")]).sort("line", "source_ref")


def _archive_records(root: Path) -> pl.DataFrame:
    return pl.concat([df.select("source_ref", "line", "record_hash", "file") for _, df in record_rows(root)]).sort(
        "file", "line", "source_ref", "record_hash"
    )


@pytest.mark.parametrize("chunk", [1, 64, 1 << 20])
def test_records_are_the_readers_whatever_the_chunk(tmp_path, monkeypatch, chunk):
    _write_odd_extract(tmp_path / "x")
    whole = _archive_records(tmp_path / "x")
    monkeypatch.setattr(archive_mod, "CHUNK_BYTES", chunk)
    chunked = _archive_records(tmp_path / "x")
    assert chunked.equals(whole)
    reader = _reader_records(tmp_path / "x")
    assert chunked.select("source_ref", "line").sort("line", "source_ref").equals(reader)


def test_the_sample_extract_in_small_chunks_gives_the_readers_records(sample_extract, monkeypatch):
    whole = _archive_records(sample_extract)
    monkeypatch.setattr(archive_mod, "CHUNK_BYTES", 5000)
    chunked = _archive_records(sample_extract)
    assert chunked.equals(whole)
    assert chunked.select("source_ref", "line").sort("line", "source_ref").equals(_reader_records(sample_extract))


def test_odd_records_keep_their_bytes_and_fields(tmp_path):
    _write_odd_extract(tmp_path / "x")
    rows = {
        k: pl.concat([d for kk, d in record_rows(tmp_path / "x") if kk == k]) for k, _ in record_rows(tmp_path / "x")
    }
    notes = rows["pas/anteckning"].sort("line")
    first = notes.row(0, named=True)
    assert first["TEXT"] == 'Ingen fraktur.\r\n\r\nInget "patologiskt";\r\nslut' and first["line"] == 2
    raw = b'1;10;RTG;2020-01-02 10:00;"Ingen fraktur.\r\n\r\nInget ""patologiskt"";\r\nslut"'
    assert first["record_hash"] == hashlib.sha256(raw).hexdigest()
    assert notes.filter(pl.col("ANTID") == "3")["year"].to_list() == ["unknown"]
    patients = rows["pas/patient"].sort("line")
    assert patients.row(0, named=True)["ENAMN"] == " Andersson " and patients.row(0, named=True)["AVLIDEN"] == ""
    assert patients.filter(pl.col("PATID") == "3")["ENAMN"].to_list() == ["Ceder\nlund"]
    diag = rows["pcs/diagnosis"].sort("index")
    assert diag["code"].to_list() == [" J06.9 ", None, "R50.9"] and diag["primary"].to_list() == ["true", None, "false"]
    line1 = b'{"id": "V1", "patientId": "P1", "start": "2020-01-01T10:00:00+01:00", '
    assert (
        diag["record_hash"][1]
        == hashlib.sha256(
            line1 + b'"diagnoses": [{"code": " J06.9 ", "primary": true}, null, {"code": "R50.9", "primary": false}]}'
            b"#diagnoses[1]"
        ).hexdigest()
    )
    v4 = rows["pcs/visit"].filter(pl.col("id") == "V4").row(0, named=True)
    assert v4["type"] == "1.5" and json.loads(v4["status"]) == {"a": [1, "å"]} and v4["year"] == "2022"
    bad = rows["pcs/unparseable"].sort("line")
    assert bad["line"].to_list() == [4, 5, 7, 8] and bad["raw"][0] == b"{not json"


def test_the_prefect_flow_writes_and_verifies(harness, validated, tmp_path):
    from pipelines.run.archive_flow import archive_extract

    r = archive_extract(str(validated / "extract"), str(tmp_path / "archive"), str(validated / "report"), verify=True)
    assert r["total_records"] == 5563 and r["ledger"] and verify_archive(tmp_path / "archive") == []


def test_a_report_of_another_extract_or_no_report_is_refused(validated, tmp_path):
    from checks.errors import MigcheckError
    from pipelines.io.outputs import write_marker

    other = tmp_path / "other-report"
    other.mkdir()
    pl.DataFrame({"source_ref": ["pcs:patient:P-1", "pcs:patient:P-2"]}).write_parquet(other / "ledger.parquet")
    write_marker(other, "report")
    with pytest.raises(MigcheckError, match="ledger holds 2 records, the extract 5563"):
        write_archive(validated / "extract", tmp_path / "archive", other)
    r = cli("archive", "--source", str(validated / "extract"), "--out", str(tmp_path / "a2"), "--report", str(tmp_path))
    assert r.returncode == 2 and "not a migcheck report folder" in r.stderr and len(r.stderr.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other-report"]
