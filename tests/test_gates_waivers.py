"""Gates and waivers as configuration: thresholds change the verdict; waivers apply, expire, report."""

from __future__ import annotations

import datetime as dt
import shutil

import polars as pl
import pytest

from checks.errors import MigcheckError
from checks.gates import GateConfig, Threshold, evaluate_gates, load_gates
from checks.waivers import Waiver, apply_waivers, load_waivers

from conftest import MAPPINGS


def _disc():
    return pl.DataFrame(
        {
            "discrepancy_id": ["a1", "a2", "a3", "a4"],
            "check": [
                "encounter.reconcile.value",
                "encounter.reconcile.value",
                "encounter.source.implausible",
                "person.reconcile.confidentiality",
            ],
            "category": ["value_mismatch", "value_mismatch", "implausible", "confidentiality"],
            "severity": ["error", "error", "warning", "error"],
            "source_ref": ["pas:kontakt:11", "pas:kontakt:12", "pas:kontakt:13", "pas:patient:1"],
            "status": ["new", "new", "new", "new"],
        }
    )


CATALOGUE = pl.DataFrame(
    {
        "check": [
            "encounter.reconcile.value",
            "encounter.source.implausible",
            "person.reconcile.confidentiality",
            "diagnosis.reconcile.missing",
        ],
        "category": ["value_mismatch", "implausible", "confidentiality", "missing_in_target"],
    }
)


def test_default_gate_fails_on_any_error_and_lists_quiet_checks():
    disc, _ = apply_waivers(_disc(), [], dt.date(2026, 1, 1))
    g = evaluate_gates(disc, CATALOGUE, {"encounter": 1000, "person": 100}, GateConfig())
    by = {r["check"]: r for r in g.iter_rows(named=True)}
    assert by["encounter.reconcile.value"]["errors"] == 2 and not by["encounter.reconcile.value"]["passed"]
    assert by["encounter.source.implausible"]["passed"] and by["encounter.source.implausible"]["warnings"] == 1
    assert by["diagnosis.reconcile.missing"]["passed"] and by["diagnosis.reconcile.missing"]["errors"] == 0
    assert not g["passed"].all()


def test_thresholds_by_category_share_and_by_check():
    disc, _ = apply_waivers(_disc(), [], dt.date(2026, 1, 1))
    cfg = GateConfig(
        categories={"value_mismatch": Threshold(max_share=0.002)},
        checks={"person.reconcile.confidentiality": Threshold(max_count=1)},
    )
    g = evaluate_gates(disc, CATALOGUE, {"encounter": 1000, "person": 100}, cfg)
    assert g["passed"].all()
    assert "0.20% of 1000" in g.filter(pl.col("check") == "encounter.reconcile.value")["threshold"][0]
    g2 = evaluate_gates(disc, CATALOGUE, {"encounter": 500, "person": 100}, cfg)  # 2 > 0.2 % of 500
    assert not g2.filter(pl.col("check") == "encounter.reconcile.value")["passed"][0]


def test_waivers_apply_expire_and_report_unmatched():
    ws = [
        Waiver(
            id="W1",
            check="encounter.reconcile.value",
            source_ref="pas:kontakt:1?",
            reason="accepted drift",
            approver_role="PAS data steward",
            expires=dt.date(2027, 1, 1),
        ),
        Waiver(
            id="W2",
            discrepancy_id="a4",
            reason="old waiver",
            approver_role="security officer",
            expires=dt.date(2025, 12, 31),
        ),
        Waiver(id="W3", discrepancy_id="zz", reason="stale", approver_role="lead", expires=dt.date(2027, 1, 1)),
    ]
    disc, rep = apply_waivers(_disc(), ws, dt.date(2026, 1, 1))
    assert disc.filter(pl.col("waived"))["discrepancy_id"].to_list() == ["a1", "a2"]
    assert disc.height == 4  # waived findings stay visible
    assert [w["id"] for w in rep["applied"]] == ["W1"] and rep["applied"][0]["matched"] == 2
    assert [w["id"] for w in rep["expired"]] == ["W2"]
    assert [w["id"] for w in rep["unmatched"]] == ["W3"]
    g = evaluate_gates(disc, CATALOGUE, {"encounter": 1000, "person": 100}, GateConfig())
    assert g.filter(pl.col("check") == "encounter.reconcile.value")["passed"][0]
    assert not g.filter(pl.col("check") == "person.reconcile.confidentiality")["passed"][0]  # W2 expired
    # the day after expiry the waiver stops applying
    later, rep2 = apply_waivers(_disc(), ws, dt.date(2027, 1, 2))
    assert not later["waived"].any() and {w["id"] for w in rep2["expired"]} == {"W1", "W2", "W3"}


def test_project_files_load_and_bad_entries_name_file_and_line(tmp_path):
    assert load_gates(MAPPINGS / "gates.yaml").default.max_count == 0
    assert load_waivers(MAPPINGS / "waivers.yaml") == []
    bad = tmp_path / "waivers.yaml"
    bad.write_text(
        "waivers:\n  - id: W1\n    check: x.y\n    reason: because\n    approver_role: lead\n"
        "    expires: 2027-01-01\n    colour: red\n"
    )
    with pytest.raises(MigcheckError, match=r"waivers.yaml line 7"):
        load_waivers(bad)
    g = tmp_path / "gates.yaml"
    g.write_text("default: {max_count: -1}\n")
    with pytest.raises(MigcheckError, match="gates.yaml"):
        load_gates(g)


def test_thresholds_and_waivers_change_the_exit_code(tmp_path, sample_extract):
    from pipelines.run.validate import run_validation
    from pipelines.synth.trial_load import simulate_trial_load

    extract = tmp_path / "extract"
    shutil.copytree(sample_extract, extract)
    db = tmp_path / "t.db"
    simulate_trial_load(extract, f"sqlite:///{db}", faults="none")
    mroot = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, mroot)
    hist = f"sqlite:///{tmp_path / 'h.db'}"
    r1 = run_validation(extract, f"sqlite:///{db}", "TL1", tmp_path / "r1", mappings_root=mroot, history_url=hist)
    assert r1.exit_code == 1  # the sample's source defects are errors
    # waive every source-layer error by check pattern → only warnings remain → passes
    disc = pl.read_parquet(tmp_path / "r1" / "discrepancies.parquet")
    checks = sorted(set(disc.filter(pl.col("severity") == "error")["check"]))
    lines = ["waivers:"]
    for i, c in enumerate(checks):
        lines += [
            f"  - id: W{i}",
            f"    check: {c}",
            "    reason: known source defects, corrected in PAS/PCS",
            "    approver_role: data steward",
            "    expires: 2099-12-31",
        ]
    (mroot / "waivers.yaml").write_text("\n".join(lines) + "\n")
    r2 = run_validation(extract, f"sqlite:///{db}", "TL2", tmp_path / "r2", mappings_root=mroot, history_url=hist)
    assert r2.exit_code == 0 and r2.errors == 0
    (mroot / "waivers.yaml").write_text("waivers: []\n")
    (mroot / "gates.yaml").write_text("default: {max_count: 1000}\n")
    r3 = run_validation(extract, f"sqlite:///{db}", "TL3", tmp_path / "r3", mappings_root=mroot, history_url=hist)
    assert r3.exit_code == 0 and r3.errors > 0
