"""junit.xml: one test case per check, failing exactly where the gate fails."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import polars as pl

from pipelines.report.junit import write_junit

GATE_SCHEMA = {
    "check": pl.String,
    "category": pl.String,
    "errors": pl.Int64,
    "warnings": pl.Int64,
    "waived": pl.Int64,
    "threshold": pl.String,
    "passed": pl.Boolean,
}


def _gates(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=GATE_SCHEMA, orient="row")


GATES = _gates(
    [
        ("person.reconcile.value", "value_mismatch", 3, 0, 1, "max 0 errors", False),
        ("person.source.implausible", "implausible", 0, 5, 0, "max 0 errors", True),
        ("encounter.count", "row_count", 0, 0, 0, "max 0 errors", True),
        ("encounter.reconcile.missing", "missing_in_target", 2, 0, 0, "max 0.10% of 500 and max 1 errors", False),
        ("diagnosis.source.unmapped_code", "unmapped_code", 0, 0, 4, "max 0 errors", True),
        ('odd.<check>&"quoted"', "orphan", 1, 0, 0, "max <0> & more", False),
        ("labresult.source.unparseable", "unparseable", 0, 0, 0, None, True),
    ]
)


def test_one_testcase_per_check_failing_where_the_gate_fails(tmp_path):
    path = write_junit(tmp_path / "out" / "junit.xml", GATES, "TL3 & <friends>")
    assert path == tmp_path / "out" / "junit.xml"
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("name") == "migcheck TL3 & <friends>"
    assert suite.get("tests") == root.get("tests") == str(GATES.height)
    assert suite.get("failures") == root.get("failures") == "3"
    assert suite.get("errors") == "0"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == GATES["check"].to_list()
    for case, gate in zip(cases, GATES.iter_rows(named=True), strict=True):
        assert case.get("classname") == "migcheck." + gate["check"].split(".")[0]
        failures = case.findall("failure")
        assert len(failures) == (0 if gate["passed"] else 1), gate["check"]
        if failures:
            msg = failures[0].get("message")
            assert f"{gate['errors']} unwaived error" in msg and gate["threshold"] in msg
            assert f"{gate['waived']} waived" in msg


def test_warnings_only_passes_with_system_out(tmp_path):
    root = ET.parse(write_junit(tmp_path / "junit.xml", GATES, "TL3")).getroot()
    case = {c.get("name"): c for c in root.iter("testcase")}
    warn = case["person.source.implausible"]
    assert warn.find("failure") is None
    assert "5 warnings" in warn.find("system-out").text
    assert "4 waived" in case["diagnosis.source.unmapped_code"].find("system-out").text
    clean = case["encounter.count"]
    assert list(clean) == []  # nothing to say
    assert case['odd.<check>&"quoted"'].get("classname") == "migcheck.odd"
    assert "no threshold given" not in ET.tostring(case["labresult.source.unparseable"], encoding="unicode")


def test_empty_gates_and_escaping_of_control_characters(tmp_path):
    empty = pl.DataFrame(schema=GATE_SCHEMA)
    root = ET.parse(write_junit(tmp_path / "empty.xml", empty, "TL0")).getroot()
    assert root.get("tests") == "0" and root.find("testsuite").findall("testcase") == []
    odd = _gates([("person.x", "orphan", 1, 0, 0, "max\x01 0", False)])
    root = ET.parse(write_junit(tmp_path / "odd.xml", odd, "T\x02L")).getroot()
    assert root.find("testsuite").get("name") == "migcheck TL"
    assert "max 0" in root.find(".//failure").get("message")
