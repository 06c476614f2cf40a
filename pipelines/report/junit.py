"""``junit.xml``: one test case per check, failing where its gate fails, for CI systems.

The test cases are the gates' rows: every check of the catalogue (``checks.catalogue``) that the
run performed (``checks_run``), findings or not; each is classed by the entity it declares.

Only counts go in (errors, warnings, waived, threshold): no value of any record, hence no
personal data. Built with ``xml.etree.ElementTree``, which escapes attribute values and text.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl

from checks.catalogue import REGISTRY

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not allowed in XML 1.0, escaped or not


def _text(v: object) -> str:
    return "" if v is None else _CONTROL.sub("", str(v))


def _int(v: int | None) -> int:
    return int(v) if v is not None else 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _classname(check: str) -> str:
    if check in REGISTRY:
        return "migcheck." + REGISTRY[check].entity
    return "migcheck." + (check.split(".", 1)[0] if check else "unknown")  # a gate row of no declared check


def write_junit(path: Path, gates: pl.DataFrame, trial_load: str) -> Path:
    """Write the JUnit XML of the gate results to ``path``; return it.

    ``gates``: one row per check with ``check``, ``category``, ``errors`` (unwaived error findings),
    ``warnings``, ``waived``, ``threshold`` (text) and ``passed``. A check that did not pass is a
    test case with a ``<failure>``; a passing check with warnings or waived findings says so in
    ``<system-out>``.
    """
    path = Path(path)
    rows = gates.to_dicts()
    failures = sum(1 for r in rows if not r.get("passed"))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None).isoformat()
    suite_name = f"migcheck {_text(trial_load)}".strip()
    root = ET.Element(
        "testsuites",
        {"name": "migcheck", "tests": str(len(rows)), "failures": str(failures), "errors": "0", "time": "0"},
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": suite_name,
            "tests": str(len(rows)),
            "failures": str(failures),
            "errors": "0",
            "skipped": "0",
            "time": "0",
            "timestamp": now,
        },
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", {"name": "trial_load", "value": _text(trial_load)})
    for r in rows:
        check = _text(r.get("check"))
        errors, warnings, waived = _int(r.get("errors")), _int(r.get("warnings")), _int(r.get("waived"))
        threshold = _text(r.get("threshold")) or "no threshold given"
        category = _text(r.get("category"))
        case = ET.SubElement(suite, "testcase", {"classname": _classname(check), "name": check, "time": "0"})
        counts = (
            f"{_plural(errors, 'unwaived error')}, {_plural(warnings, 'warning')}, {waived} waived"
            f" (threshold: {threshold})"
        )
        if not r.get("passed"):
            failure = ET.SubElement(
                case,
                "failure",
                {"message": f"{check}: {counts}", "type": category or "gate"},
            )
            failure.text = (
                f"check {check} ({category}) failed its gate in trial load {_text(trial_load)}: {counts}. "
                "See the worklists and report.html for the findings."
            )
        elif warnings or waived:
            out = ET.SubElement(case, "system-out")
            out.text = f"passed: {counts}"
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
