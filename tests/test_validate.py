"""validate on the project's synthetic trial loads: recall, false alarms, ledger, masking, exit codes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from pipelines.run.validate import run_validation
from pipelines.synth.generator import generate
from pipelines.synth.scoring import read_truth, score
from pipelines.synth.trial_load import simulate_trial_load

SEEDS = [1, 2, 3]
PATIENTS = 2000


@pytest.fixture(scope="module", params=SEEDS, ids=lambda s: f"seed{s}")
def faulted_run(request, tmp_path_factory):
    seed = request.param
    root = tmp_path_factory.mktemp(f"run{seed}")
    extract = root / "extract"
    generate(extract, patients=PATIENTS, seed=seed, defects="default")
    db = root / "target.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="default", seed=seed)
    out = root / "report"
    result = run_validation(extract, f"sqlite:///{db}", f"TL{seed}", out)
    return extract, db, out, result


def test_recall_per_category_and_no_false_alarms(faulted_run):
    extract, _, out, result = faulted_run
    truth = read_truth(extract)
    disc = pl.read_parquet(out / "discrepancies.parquet")
    s = score(truth, disc)
    assert set(s.recall) >= {
        "invalid_identifier",
        "mandatory_missing",
        "unmapped_code",
        "invalid_code",
        "duplicate",
        "orphan",
        "implausible",
        "unparseable",
        "missing_in_target",
        "unexpected_in_target",
        "value_mismatch",
        "confidentiality",
        "row_count",
    }
    low = {c: r for c, r in s.recall.items() if r < 0.99}
    assert not low, (low, s.missed.head(20))
    assert s.false_alarms.height == 0, s.false_alarms.select(
        "check", "category", "source_ref", "target_ref", "message"
    ).head(20)
    assert result.exit_code == 1 and result.ledger_balanced


def test_report_contract_columns_and_ledger(faulted_run):
    extract, _, out, _ = faulted_run
    disc = pl.read_parquet(out / "discrepancies.parquet")
    assert disc.columns == [
        "discrepancy_id",
        "trial_load",
        "check",
        "category",
        "severity",
        "entity",
        "source_system",
        "source_ref",
        "target_ref",
        "column",
        "expected",
        "actual",
        "nature",
        "message",
        "suggested_action",
        "status",
    ]
    assert disc["message"].null_count() == 0 and disc["suggested_action"].null_count() == 0
    assert disc["discrepancy_id"].n_unique() == disc.height
    csv = pl.read_csv(out / "discrepancies.csv", infer_schema_length=0)
    assert csv.height == disc.height
    ledger = pl.read_parquet(out / "ledger.parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ledger_balanced"] is True
    # one ledger row per legacy record: count the records in the files independently
    n = 0
    for f in sorted((extract / "pas").glob("*.csv")):
        if f.name == "anteckning.csv":  # a note is one record however many lines its quoted text spans
            n += _note_records(f)
            continue
        n += sum(1 for line in f.read_bytes().split(b"\r\n")[1:] if line.strip())
    for f in sorted((extract / "pcs").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line:
                continue
            n += 1
            try:
                n += len(json.loads(line).get("diagnoses") or []) if f.name == "visits.jsonl" else 0
            except (json.JSONDecodeError, AttributeError):
                pass
    assert ledger.height == n == summary["records_read"]
    assert set(ledger["disposition"]) <= {
        "migrated",
        "migrated_with_differences",
        "missing_in_target",
        "rejected",
        "merged",
        "out_of_scope",
    }
    # every missing record in the report is missing in the ledger
    missing = disc.filter(
        pl.col("category") == "missing_in_target",
        pl.col("entity").is_in(["person", "encounter", "diagnosis", "procedure", "orders", "allergy"]),
    )["source_ref"]
    led_missing = set(ledger.filter(pl.col("disposition") == "missing_in_target")["source_ref"])
    assert set(missing) <= led_missing


def _personal_values(extract: Path) -> tuple[set[str], set[str], set[str]]:
    pas = pl.read_csv(
        extract / "pas" / "patient.csv",
        separator=";",
        encoding="cp1252",
        infer_schema_length=0,
        truncate_ragged_lines=True,
    )
    ids = {v.strip() for v in pas["PNR"].drop_nulls() if len(v.strip()) >= 10}
    names = set()
    for col in ("ENAMN", "FNAMN"):
        for v in pas[col].drop_nulls():
            names |= {w for w in re.split(r"[\s\-]+", v.strip()) if len(w) >= 4}
    postal = {v.replace(" ", "") for v in pas["POSTNR"].drop_nulls() if v.strip()}
    for line in (extract / "pcs" / "patients.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            o = json.loads(line)
        except json.JSONDecodeError:
            continue
        ident = (o.get("identity") or {}).get("value")
        if ident and len(ident) >= 10:
            ids.add(ident)
        for v in (o.get("name") or {}).values():
            if v:
                names |= {w for w in re.split(r"[\s\-]+", v.strip()) if len(w) >= 4}
        pc = (o.get("address") or {}).get("postalCode")
        if pc:
            postal.add(pc.replace(" ", ""))
    return ids, names, postal


def _all_text(out: Path) -> str:
    """Every value a person could read in a report folder: Parquet cells, workbook cells, text files."""
    from openpyxl import load_workbook

    parts = []
    for p in sorted(out.rglob("*")):
        if p.is_dir() or "static" in p.relative_to(out).parts:  # GX's own fonts, scripts and images
            continue
        if p.suffix == ".parquet":
            df = pl.read_parquet(p)
            parts.append(df.select(pl.all().cast(pl.String)).write_csv())
        elif p.suffix == ".xlsx":  # a zip: its cells, not its compressed bytes
            wb = load_workbook(p, read_only=True)
            for ws in wb.worksheets:
                for row in ws.iter_rows(values_only=True):
                    parts.append("\t".join("" if v is None else str(v) for v in row))
            wb.close()
        else:
            parts.append(p.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


def note_texts(extract: Path) -> list[str]:
    """The text of every note of an extract, read independently of migcheck's readers."""
    import csv
    import io

    texts = []
    pas = extract / "pas" / "anteckning.csv"
    if pas.exists():
        rows = csv.reader(io.StringIO(pas.read_bytes().decode("cp1252"), newline=""), delimiter=";")
        texts += [r[4] for r in list(rows)[1:] if len(r) == 5]
    pcs = extract / "pcs" / "notes.jsonl"
    if pcs.exists():
        for line in pcs.read_text(encoding="utf-8").splitlines():
            try:
                o = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(o, dict) and isinstance(o.get("text"), str):
                texts.append(o["text"])
    return texts


def _note_records(path: Path) -> int:
    """Records of a PAS notes file, read with Python's csv module (the generator's broken lines hold no quote)."""
    import csv
    import io

    rows = csv.reader(io.StringIO(path.read_bytes().decode("cp1252"), newline=""), delimiter=";")
    return sum(1 for r in list(rows)[1:] if r)


def _words(text: str) -> list[str]:
    return [w.casefold() for w in re.findall(r"[^\W_]+", text)]


def leaked_note_words(extract: Path, shown: str) -> list[tuple[str, ...]]:
    """Runs of four consecutive words of any note that occur, as four consecutive words, in ``shown``."""
    grams = set()
    for t in note_texts(extract):
        w = _words(t)
        grams |= {tuple(w[i : i + 4]) for i in range(len(w) - 3)}
    w = _words(shown)
    return sorted({g for g in (tuple(w[i : i + 4]) for i in range(len(w) - 3)) if g in grams})


def test_no_personal_data_in_any_output(faulted_run):
    extract, _, out, _ = faulted_run
    ids, names, postal = _personal_values(extract)
    text = _all_text(out)
    tokens = set(re.findall(r"[^\W\d_]+", text))
    assert not [i for i in ids if i in text], "identity number in the report"
    assert not (names & tokens), sorted(names & tokens)[:10]
    disc = pl.read_parquet(out / "discrepancies.parquet")
    shown = " ".join(
        disc.select(pl.concat_str(["expected", "actual", "message"], separator=" ", ignore_nulls=True))
        .to_series()
        .to_list()
    )
    assert not [p for p in postal if re.search(rf"\b{p}\b", shown)], "postal code in the report"
    assert note_texts(extract), "the extract holds notes"
    assert not leaked_note_words(extract, text), leaked_note_words(extract, text)[:5]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    extract = root / "extract"
    generate(extract, patients=PATIENTS, seed=9, defects="none")
    db = root / "target.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="none")
    out = root / "report"
    return extract, db, out, run_validation(extract, f"sqlite:///{db}", "CLEAN", out)


def test_clean_load_has_no_error_or_warning(clean_run):
    _, _, out, result = clean_run
    disc = pl.read_parquet(out / "discrepancies.parquet")
    assert disc.filter(pl.col("severity") != "info").height == 0, disc.head()
    ledger = pl.read_parquet(out / "ledger.parquet")
    assert set(ledger["disposition"]) == {"migrated", "out_of_scope"}
    assert ledger.filter(pl.col("disposition") == "out_of_scope")["reason"].str.starts_with("out of scope").all()
    assert result.exit_code == 0 and result.ledger_balanced


def test_baseline_marks_persisting_new_and_resolved(faulted_run, clean_run, tmp_path):
    extract, db, out, _ = faulted_run
    again = tmp_path / "again"
    run_validation(extract, f"sqlite:///{db}", "TL-again", again, baseline=out)
    d = pl.read_parquet(again / "discrepancies.parquet")
    assert set(d["status"]) == {"persisting"}
    # against a clean report every finding is new; against our report, a clean run resolves all
    c_extract, c_db, c_out, _ = clean_run
    resolved = tmp_path / "resolved"
    run_validation(c_extract, f"sqlite:///{c_db}", "TL-clean", resolved, baseline=out)
    r = pl.read_parquet(resolved / "discrepancies.parquet")
    prev = pl.read_parquet(out / "discrepancies.parquet")
    assert (
        r.filter(pl.col("status") == "resolved").height
        == prev.filter(
            ~pl.col("discrepancy_id").is_in(r.filter(pl.col("status") != "resolved")["discrepancy_id"].to_list())
        ).height
    )


@pytest.mark.postgres
def test_postgresql_target_gives_the_same_findings(tmp_path, pg_url, sample_extract):
    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    simulate_trial_load(extract, pg_url, faults="default", seed=4)
    simulate_trial_load(extract, f"sqlite:///{tmp_path / 't.db'}", faults="default", seed=4)
    a = run_validation(extract, pg_url, "TL", tmp_path / "pg")
    b = run_validation(extract, f"sqlite:///{tmp_path / 't.db'}", "TL", tmp_path / "lite")
    da = pl.read_parquet(tmp_path / "pg" / "discrepancies.parquet")
    db_ = pl.read_parquet(tmp_path / "lite" / "discrepancies.parquet")
    assert da.height > 0 and da.equals(db_)
    assert pl.read_parquet(tmp_path / "pg" / "ledger.parquet").equals(
        pl.read_parquet(tmp_path / "lite" / "ledger.parquet")
    )
    assert a.exit_code == b.exit_code == 1


def test_missing_table_is_exit_2(tmp_path, sample_extract):
    from checks.errors import MigcheckError

    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    db = tmp_path / "t.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="none")
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.begin() as c:
        c.execute(sa.text("DROP TABLE allergy"))
    eng.dispose()
    with pytest.raises(MigcheckError, match="allergy"):
        run_validation(extract, f"sqlite:///{db}", "TL", tmp_path / "out")


def test_extra_columns_in_the_target_are_ignored(tmp_path, sample_extract):
    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    db = tmp_path / "t.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="none")
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.begin() as c:
        c.execute(sa.text("ALTER TABLE encounter ADD COLUMN vendor_batch TEXT"))
        c.execute(sa.text("UPDATE encounter SET vendor_batch = 'B7'"))
    eng.dispose()
    r = run_validation(extract, f"sqlite:///{db}", "TL", tmp_path / "out")
    disc = pl.read_parquet(tmp_path / "out" / "discrepancies.parquet")
    assert (
        disc.filter(~pl.col("check").str.contains(".source.", literal=True) & (pl.col("severity") != "info")).height
        == 0
    )
    assert r.ledger_balanced


@pytest.mark.parametrize("how", ["missing", "empty"])
def test_missing_or_empty_file_is_reported_and_the_ledger_still_balances(tmp_path, sample_extract, how):
    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    db = tmp_path / "t.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="none")
    target = extract / "pas" / "atgard.csv"
    if how == "missing":
        target.unlink()
    else:
        target.write_bytes(b"KONTAKTID;KVAKOD;DATUM\r\n")
    r = run_validation(extract, f"sqlite:///{db}", "TL", tmp_path / "out")
    disc = pl.read_parquet(tmp_path / "out" / "discrepancies.parquet")
    note = disc.filter(pl.col("check") == "procedure.extract.file")
    assert note.height == 1 and "pas/atgard.csv" in note["message"][0] and how in note["message"][0]
    assert note["severity"][0] == ("error" if how == "missing" else "info")
    assert r.ledger_balanced
    # the procedures loaded from the old file are now unexpected in the target: found, not hidden
    assert disc.filter((pl.col("entity") == "procedure") & (pl.col("category") == "unexpected_in_target")).height > 0
