"""The broken-extract corpus (tests/corpus/): every case has its exact outcome.

Each case is ``base/`` with some files replaced (or removed, listed in ``REMOVE``). Cases the run
can go through give findings, and the ledger balances for what was read; cases it cannot give a
``MigcheckError`` (exit 2) whose one-line reason names the file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from checks.errors import MigcheckError
from pipelines.cli import main
from pipelines.run.validate import run_validation
from pipelines.synth.trial_load import simulate_trial_load

CORPUS = Path(__file__).parent / "corpus"
BASE = CORPUS / "base"


def build(case: str, tmp: Path) -> Path:
    dst = tmp / case
    shutil.copytree(BASE, dst)
    src = CORPUS / case
    for f in src.rglob("*"):
        if f.is_file() and f.name != "REMOVE":
            shutil.copy(f, dst / f.relative_to(src))
    if (src / "REMOVE").exists():
        for rel in (src / "REMOVE").read_text().split():
            (dst / rel).unlink()
    return dst


def validate(extract: Path, tmp: Path) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    db = tmp / f"{extract.name}.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="none")
    out = tmp / f"{extract.name}-report"
    r = run_validation(extract, f"sqlite:///{db}", "TL", out, history_url=f"sqlite:///{tmp / 'h.db'}")
    assert r.ledger_balanced
    disc = pl.read_parquet(out / "discrepancies.parquet")
    return (
        disc.filter(pl.col("severity") != "info"),
        pl.read_parquet(out / "ledger.parquet"),
        json.loads((out / "summary.json").read_text()),
    )


def pairs(disc: pl.DataFrame) -> set[tuple[str, str]]:
    return set(disc.select("category", "source_ref").iter_rows())


def base_rows(rel: str) -> list[list[str]]:
    return [ln.split(";") for ln in (BASE / rel).read_bytes().decode("cp1252").split("\r\n")[1:] if ln]


def test_the_base_is_clean(tmp_path):
    disc, ledger, _ = validate(build("base", tmp_path), tmp_path)
    assert disc.height == 0
    assert set(ledger["disposition"]) <= {"migrated", "out_of_scope"}


@pytest.mark.parametrize(
    "case, file, words",
    [
        ("pas_utf8", "pas/patient.csv", "UTF-8 text, not Windows-1252"),
        ("pas_bom", "pas/patient.csv", "byte-order mark"),
        ("pas_no_header", "pas/diagnos.csv", "has no header line"),
        ("pas_misspelled_header", "pas/atgard.csv", "missing DATUM"),
    ],
)
def test_unreadable_files_stop_the_run_naming_the_file(case, file, words, tmp_path, capsys):
    extract = build(case, tmp_path)
    with pytest.raises(MigcheckError) as e:
        simulate_trial_load(extract, f"sqlite:///{tmp_path / 't.db'}")
    assert file in e.value.reason and words in e.value.reason and e.value.exit_code == 2
    # the same through the command line: exit 2, one line, no traceback
    shutil.copytree(BASE, tmp_path / "good")
    simulate_trial_load(tmp_path / "good", f"sqlite:///{tmp_path / 'good.db'}")
    capsys.readouterr()
    code = main(
        [
            "validate",
            "--source",
            str(extract),
            "--target",
            f"sqlite:///{tmp_path / 'good.db'}",
            "--trial-load",
            "TL",
            "--out",
            str(tmp_path / "out"),
            "--history",
            f"sqlite:///{tmp_path / 'h.db'}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and file in err[0] and words in err[0], err
    assert not (tmp_path / "out").exists()
    import os

    assert "MIGCHECK_HISTORY_URL" not in os.environ and "MIGCHECK_TARGET_URL" not in os.environ  # nothing leaks


def test_mixed_line_endings_read_every_record(tmp_path):
    disc, ledger, s = validate(build("pas_mixed_endings", tmp_path), tmp_path)
    assert disc.height == 0
    assert s["entities"]["encounter"]["records_read_by_system"]["pas"] == len(base_rows("pas/kontakt.csv"))


def test_rows_with_wrong_field_counts_are_unparseable_the_rest_is_read(tmp_path):
    disc, ledger, _ = validate(build("pas_wrong_field_counts", tmp_path), tmp_path)
    assert pairs(disc) == {("unparseable", "pas:atgard.csv#3"), ("unparseable", "pas:atgard.csv#5")}
    assert ledger.filter(pl.col("entity") == "procedure").height == len(base_rows("pas/atgard.csv"))


def test_unbalanced_quote_loses_one_line_and_orphans_its_children(tmp_path):
    disc, _, _ = validate(build("pas_unbalanced_quote", tmp_path), tmp_path)
    patid = base_rows("pas/patient.csv")[2][0]  # physical line 4
    contacts = {f"pas:kontakt:{r[0]}" for r in base_rows("pas/kontakt.csv") if r[1] == patid}
    assert pairs(disc) == {("unparseable", "pas:patient.csv#4")} | {("orphan", c) for c in contacts}


def test_truncated_last_line(tmp_path):
    disc, _, _ = validate(build("pas_truncated_last_line", tmp_path), tmp_path)
    rows = base_rows("pas/kontakt.csv")
    kid = rows[-1][0]
    children = {f"pas:diagnos:{r[0]}:{r[1]}:{r[2]}" for r in base_rows("pas/diagnos.csv") if r[0] == kid}
    children |= {f"pas:atgard:{r[0]}:{r[1]}:{r[2]}" for r in base_rows("pas/atgard.csv") if r[0] == kid}
    assert pairs(disc) == {("unparseable", f"pas:kontakt.csv#{len(rows) + 1}")} | {("orphan", c) for c in children}


def test_quoted_delimiter_and_line_break_are_one_record(tmp_path):
    extract = build("pas_quoted_delimiter_newline", tmp_path)
    disc, ledger, _ = validate(extract, tmp_path)
    assert disc.height == 0
    assert ledger.filter(pl.col("entity") == "person", pl.col("source_system") == "pas").height == len(
        base_rows("pas/patient.csv")
    )
    from pipelines.io.extract import read_extract

    names = read_extract(extract).frames["pas/patient"]
    assert names["ENAMN"].str.contains(";Lind", literal=True).sum() == 1
    assert names["FNAMN"].str.contains("\n", literal=True).sum() == 1


@pytest.mark.parametrize(
    "case, status", [("pas_empty_file", "empty"), ("pas_header_only", "empty"), ("pas_missing_file", "missing")]
)
def test_empty_and_missing_files_are_reported(case, status, tmp_path):
    extract = build(case, tmp_path)
    db = tmp_path / "t.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="none")
    out = tmp_path / "r"
    r = run_validation(extract, f"sqlite:///{db}", "TL", out, history_url=f"sqlite:///{tmp_path / 'h.db'}")
    disc = pl.read_parquet(out / "discrepancies.parquet")
    note = disc.filter(pl.col("check").str.ends_with(".extract.file"))
    assert note.height == 1 and status in note["message"][0]
    assert note["severity"][0] == ("error" if status == "missing" else "info")
    assert disc.filter((pl.col("severity") != "info") & ~pl.col("check").str.ends_with(".extract.file")).height == 0
    assert r.ledger_balanced


def test_pcs_wrong_json_types_are_unparseable_with_their_line(tmp_path):
    disc, _, _ = validate(build("pcs_wrong_types", tmp_path), tmp_path)
    pts = [json.loads(x) for x in (BASE / "pcs/patients.jsonl").read_text(encoding="utf-8").splitlines()]
    lost = pts[1]["id"]
    kids = set()
    for f, kind in (("visits", "visit"), ("medications", "medication"), ("allergies", "allergy")):
        for x in (BASE / f"pcs/{f}.jsonl").read_text(encoding="utf-8").splitlines():
            o = json.loads(x)
            if o["patientId"] == lost and not (kind == "visit" and o["status"] != "signed"):
                kids.add(f"pcs:{kind}:{o['id']}")
    assert pairs(disc) == {("unparseable", "pcs:patients.jsonl#2"), ("unparseable", "pcs:visits.jsonl#1")} | {
        ("orphan", k) for k in kids
    }


def test_pcs_nulls_where_objects_belong(tmp_path):
    disc, _, _ = validate(build("pcs_null_objects", tmp_path), tmp_path)
    pts = [json.loads(x) for x in (BASE / "pcs/patients.jsonl").read_text(encoding="utf-8").splitlines()]
    al = json.loads((BASE / "pcs/allergies.jsonl").read_text(encoding="utf-8"))
    got = set(disc.select("category", "source_ref", "column").iter_rows())
    assert got == {
        ("mandatory_missing", f"pcs:patient:{pts[2]['id']}", "name_last"),
        ("mandatory_missing", f"pcs:allergy:{al['id']}", "substance"),
    }


def test_a_line_of_several_megabytes(tmp_path):
    extract = build("base", tmp_path)
    med = json.loads((extract / "pcs/medications.jsonl").read_text(encoding="utf-8").splitlines()[0])
    med["id"], med["dose"] = "M-09999999", "1 tablett " * 600_000  # ~6 MB of text in one value
    with open(extract / "pcs/medications.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(med, ensure_ascii=False) + "\n")
    with open(extract / "pcs/labresults.jsonl", "ab") as f:
        f.write(b'{"id": "L-1", "value": "' + b"x" * 5_000_000 + b"\n")  # 5 MB that never closes
    n_labs = len((BASE / "pcs/labresults.jsonl").read_text().splitlines())
    disc, ledger, _ = validate(extract, tmp_path)
    assert pairs(disc) == {("unparseable", f"pcs:labresults.jsonl#{n_labs + 1}")}
    assert ledger.filter(pl.col("source_ref") == "pcs:medication:M-09999999")["disposition"].to_list() == ["migrated"]


def test_extract_directory_that_does_not_exist(tmp_path, capsys):
    code = main(
        [
            "validate",
            "--source",
            str(tmp_path / "nope"),
            "--target",
            f"sqlite:///{tmp_path / 't.db'}",
            "--trial-load",
            "TL",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--source" in err[0] and "nope" in err[0]
