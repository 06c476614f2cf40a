"""Unmapped codes: counts and fuzzy candidates from the code maps, code sets and nomenclature."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest

from checks.expected import Expected, compute_expected
from checks.mapping import load_mappings
from checks.suggest import SUGGESTION_SCHEMA, unmapped_code_suggestions
from pipelines.io.extract import read_extract

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"


@pytest.fixture(scope="module")
def m():
    return load_mappings(MAPPINGS)


def _staged(records: list[dict]) -> pl.DataFrame:
    """Staged records as compute_expected leaves them: raw fields plus the rejection columns."""
    rows = []
    for r in records:
        rows.append(
            {
                "disposition": "rejected",
                "_finding": r.get("_block_cat"),
                **r,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def _rej(ref: str, field: str, code: str, col: str, **extra) -> dict:
    """A record rejected as unmapped_code on target column ``col`` with raw ``field`` = ``code``."""
    return {"source_ref": ref, field: code, "_block_cat": "unmapped_code", "_block_col": col, **extra}


def _ok(ref: str, field: str, code: str) -> dict:
    return {"source_ref": ref, field: code, "_block_cat": None, "_block_col": None, "disposition": "expected"}


def _exp(staged: dict[str, pl.DataFrame]) -> Expected:
    return Expected(tables={}, ledger=pl.DataFrame(), findings=pl.DataFrame(), staged=staged)


def _score(label: str) -> int:
    return int(re.search(r"\((\d+)\)$", label).group(1))


def test_pas_unit_suggests_the_known_unit(m):
    kontakt = _staged(
        [_rej(f"pas:kontakt:{i}", "ENHET", "MED9", "loc_nurse_unit_cd") for i in range(3)]
        + [_rej("pas:kontakt:9", "ENHET", "KIR9", "loc_nurse_unit_cd")]
        + [_ok("pas:kontakt:10", "ENHET", "MED1")]
    )
    s = unmapped_code_suggestions(_exp({"pas/kontakt": kontakt}), m)
    assert s.schema == pl.Schema(SUGGESTION_SCHEMA)
    assert s.select("entity", "source_system", "column", "code", "count").rows() == [
        ("encounter", "pas", "loc_nurse_unit_cd", "MED9", 3),
        ("encounter", "pas", "loc_nurse_unit_cd", "KIR9", 1),
    ]
    med, kir = s["candidates"].to_list()
    assert len(med) == 3
    assert med[0].startswith("MED1 → SAS_MED1 — SÄS Medicinavdelning 1 (")
    assert 60 <= _score(med[0]) < 100
    assert [_score(c) for c in med] == sorted((_score(c) for c in med), reverse=True)
    assert kir[0].startswith("KIR1 → SAS_KIR1")
    # limit
    one = unmapped_code_suggestions(_exp({"pas/kontakt": kontakt}), m, limit=1)
    assert one["candidates"].list.len().to_list() == [1, 1]


def test_contact_type_finds_an_unmapped_target_value_by_its_text(m):
    kontakt = _staged([_rej("pas:kontakt:1", "KONTAKTTYP", "TEL", "encntr_type_cd")])
    cands = unmapped_code_suggestions(_exp({"pas/kontakt": kontakt}), m)["candidates"][0].to_list()
    assert cands[0].startswith("→ PCPHONE — Telefonkontakt primärvård")


@pytest.mark.parametrize("code", ["J18", "J189X", "j18 9x", "J18.8"])
def test_icd_code_suggests_the_nomenclature_row(m, code):
    diagnos = _staged([_rej("pas:diagnos:1:x:H", "DIAGNOSKOD", code, "nomenclature_id")])
    s = unmapped_code_suggestions(_exp({"pas/diagnos": diagnos}), m)
    assert s["code"].to_list() == [code]
    first = s["candidates"][0][0]
    assert first.startswith("J18.9 — Pneumoni, ospecificerad (")
    assert _score(first) >= 70


def test_atc_and_pcs_codes(m):
    meds = _staged([_rej("pcs:medication:M-1", "atc", "A10BA99", "atc_nomenclature_id")])
    s = unmapped_code_suggestions(_exp({"pcs/medications": meds}), m)
    assert s.row(0)[:5] == ("orders", "pcs", "atc_nomenclature_id", "A10BA99", 1)
    assert s["candidates"][0][0].startswith("A10BA02 — Metformin")


def test_empty_when_nothing_is_unmapped(m):
    kontakt = _staged([_ok("pas:kontakt:1", "ENHET", "MED1")])
    for exp in (_exp({}), _exp({"pas/kontakt": kontakt})):
        s = unmapped_code_suggestions(exp, m)
        assert s.height == 0 and s.columns == list(SUGGESTION_SCHEMA)


def test_only_code_columns_and_only_records_with_their_own_finding(m):
    patient = _staged(
        [
            # never a name column, whatever the rejection info says
            _rej("pas:patient:1", "ENAMN", "Exempelsson", "name_last"),
            _rej("pas:patient:2", "POSTNR", "12345", "postal_code"),
        ]
    )
    kontakt = _staged(
        [
            # a child rejected with its parent carries no finding of its own: not counted
            _rej("pas:kontakt:1", "ENHET", "MED9", "loc_nurse_unit_cd", _finding=None),
            # not a code column
            _rej("pas:kontakt:2", "INDATUM", "x", "reg_dt_tm"),
        ]
    )
    s = unmapped_code_suggestions(_exp({"pas/patient": patient, "pas/kontakt": kontakt}), m)
    assert s.height == 0


def test_counts_on_the_sample_extract(m, sample_extract):
    extract = read_extract(sample_extract)
    exp = compute_expected(extract, m, dt.date(2025, 6, 1))
    s = unmapped_code_suggestions(exp, m, frames=extract.frames)
    f = exp.findings.filter((pl.col("category") == "unmapped_code") & (pl.col("entity") != "labresult"))
    assert f.height > 5
    assert s["count"].sum() == f.height
    per_column = f.group_by("entity", "source_system", "column").len().sort("entity", "source_system", "column")
    got = s.group_by("entity", "source_system", "column").agg(pl.col("count").sum().cast(pl.UInt32).alias("len"))
    assert got.sort("entity", "source_system", "column").equals(per_column)
    assert s["count"].to_list() == sorted(s["count"].to_list(), reverse=True)
    # every raw code found (person sex codes through the extract's frames), never a name or identity column
    assert s["code"].null_count() == 0
    assert set(s["column"]) <= {
        "loc_nurse_unit_cd",
        "encntr_type_cd",
        "nomenclature_id",
        "diag_type_cd",
        "atc_nomenclature_id",
        "substance_nom_id",
        "severity_cd",
        "sex_cd",
        "event_cd",
    }
    units = s.filter((pl.col("column") == "loc_nurse_unit_cd") & (pl.col("source_system") == "pas"))
    known = set(m.code_maps["map_pas_unit"]["source_code"].to_list())
    for code, cands in units.select("code", "candidates").iter_rows():
        assert cands, code
        if any(k.startswith(code[:3]) for k in known):  # a near miss of a known unit is ranked first
            assert cands[0].startswith(code[:3]), (code, cands)
