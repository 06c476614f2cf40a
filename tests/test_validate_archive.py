"""``migcheck validate --archive``: every legacy record in the target or the preservation archive, provably.

Real archives of copies of ``sample_data`` (``pipelines.io.archive.write_archive``), real trial
loads into SQLite, the real command line; no mocks. An archive made from an extract that lacks a
record and holds another changed is checked against the full extract: each shows with its
category and ``source_ref``, the ledger's ``archived`` column is exact, a changed byte of the bag
is named by its file, and the records in neither place are counted and said first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipelines.io.archive import write_archive
from pipelines.synth.trial_load import simulate_trial_load

from conftest import REPO


def _validate(extract: Path, db: Path, out: Path, archive: Path | None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "pipelines.cli", "validate", "--source", str(extract), "--target", f"sqlite:///{db}"]
    args += ["--trial-load", "TLA", "--out", str(out), "--history", f"sqlite:///{out.parent / 'h.db'}", "--quiet"]
    if archive is not None:
        args += ["--archive", str(archive)]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, sample_extract):
    root = tmp_path_factory.mktemp("varch")
    extract = root / "extract"
    shutil.copytree(sample_extract, extract)
    (extract / "load_faults.csv").unlink(missing_ok=True)
    db = root / "t.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="default", seed=3)
    # the archive of an extract that lacks one contact line and holds one medication line changed
    partial = root / "partial"
    shutil.copytree(extract, partial)
    k = (partial / "pas" / "kontakt.csv").read_bytes().split(b"\r\n")
    gone = k.pop(5)
    (partial / "pas" / "kontakt.csv").write_bytes(b"\r\n".join(k))
    meds = (partial / "pcs" / "medications.jsonl").read_text(encoding="utf-8").split("\n")
    changed = json.loads(meds[3])
    meds[3] = meds[3].replace('"dose": "', '"dose": "X', 1)
    (partial / "pcs" / "medications.jsonl").write_text("\n".join(meds), encoding="utf-8")
    write_archive(partial, root / "archive-partial")
    write_archive(extract, root / "archive-full")
    gone_ref = f"pas:kontakt:{gone.split(b';')[0].decode()}"
    return root, extract, db, gone_ref, f"pcs:medication:{changed['id']}"


def test_a_full_archive_holds_every_record(setup):
    root, extract, db, _, _ = setup
    out = root / "full"
    r = _validate(extract, db, out, root / "archive-full")
    assert r.returncode in (0, 1), r.stderr
    ledger = pl.read_parquet(out / "ledger.parquet")
    assert ledger["archived"].null_count() == 0 and ledger["archived"].all()
    disc = pl.read_parquet(out / "discrepancies.parquet")
    assert disc.filter(pl.col("category").is_in(["missing_in_archive", "archive_altered"])).height == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["archive"]["intact"] is True and summary["archive"]["lost"] == 0
    per = summary["archive"]["entities"]
    assert sum(c["archived"] for c in per.values()) == ledger.height
    assert "lost-records" not in (out / "report.html").read_text(encoding="utf-8")


def test_missing_and_altered_records_are_named_and_the_ledger_is_exact(setup):
    root, extract, db, gone_ref, changed_ref = setup
    out = root / "partial-out"
    r = _validate(extract, db, out, root / "archive-partial")
    assert r.returncode in (0, 1), r.stderr
    disc = pl.read_parquet(out / "discrepancies.parquet")
    arch = disc.filter(pl.col("category").is_in(["missing_in_archive", "archive_altered"]))
    assert sorted(arch.select("category", "source_ref", "entity").rows()) == [
        ("archive_altered", changed_ref, "orders"),
        ("missing_in_archive", gone_ref, "encounter"),
    ]
    assert (arch["severity"] == "error").all() and arch["suggested_action"].str.starts_with("Archive:").all()
    ledger = pl.read_parquet(out / "ledger.parquet")
    not_archived = set(ledger.filter(~pl.col("archived"))["source_ref"])
    assert not_archived == {gone_ref, changed_ref}
    summary = json.loads((out / "summary.json").read_text())
    in_target = ledger.filter(pl.col("disposition").is_in(["migrated", "migrated_with_differences", "merged"]))
    lost = set(ledger.filter(~pl.col("archived"))["source_ref"]) - set(in_target["source_ref"])
    assert summary["archive"]["lost"] == len(lost)
    if lost:  # said first, on the page's head
        html = (out / "report.html").read_text(encoding="utf-8")
        assert html.index("lost-records") < html.index('id="k-ledger"')


def test_a_changed_byte_of_the_bag_is_named_by_its_file(setup, tmp_path):
    root, extract, db, _, _ = setup
    bag = tmp_path / "bag"
    shutil.copytree(root / "archive-full", bag)
    target = bag / "data" / "original" / "pcs" / "allergies.jsonl"
    target.chmod(0o600)
    data = bytearray(target.read_bytes())
    data[10] ^= 1
    target.write_bytes(bytes(data))
    out = tmp_path / "out"
    r = _validate(extract, db, out, bag)
    assert r.returncode in (0, 1), r.stderr
    disc = pl.read_parquet(out / "discrepancies.parquet")
    fixity = disc.filter(pl.col("check") == "archive.archive.fixity")
    assert fixity.height == 1 and fixity["source_ref"].is_null().all()
    assert "data/original/pcs/allergies.jsonl" in fixity["message"][0]
    assert json.loads((out / "summary.json").read_text())["archive"]["intact"] is False


def test_without_archive_the_column_is_empty_and_a_wrong_archive_is_refused_at_once(setup, tmp_path):
    root, extract, db, _, _ = setup
    out = tmp_path / "out"
    r = _validate(extract, db, out, None)
    assert r.returncode in (0, 1), r.stderr
    assert pl.read_parquet(out / "ledger.parquet")["archived"].null_count() > 0
    assert json.loads((out / "summary.json").read_text())["archive"] is None
    r = _validate(extract, db, tmp_path / "out2", tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--archive" in r.stderr
    assert not (tmp_path / "out2").exists()
