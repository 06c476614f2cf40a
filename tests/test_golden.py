"""Golden mapping tests: a hand-written extract against a hand-computed expected target.

The extract (`tests/golden/extract/`) and the expected frames (`tests/golden/expected/`) were
written from `load-rules.md` and `docs/decisions.md` by hand, independently of the mapping engine;
`tests/golden/CASES.md` says which record pins which rule and shows the arithmetic.

Two groups of tests:
* `test_frame`, `test_ledger`, `test_findings` run the engine (`compute_expected`) on the golden
  extract and compare with the golden files as multisets of text rows;
* `test_golden_*` check the golden files against each other and against the raw extract, so a
  slip in the hand work shows up without the engine.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import date
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
EXTRACT = GOLDEN / "extract"
EXPECTED = GOLDEN / "expected"
AS_OF = date(2026, 1, 15)
TS_FORMAT = "%Y-%m-%d %H:%M:%S"

FRAMES = [
    "person",
    "person_alias",
    "encounter",
    "encntr_alias",
    "diagnosis",
    "procedure",
    "orders",
    "allergy",
]
LEDGER_KEY = ["source_ref", "source_system", "entity", "disposition"]
FINDING_KEY = ["category", "severity", "entity", "source_system", "source_ref"]


# --------------------------------------------------------------------------------------- helpers


def _golden(name: str) -> pl.DataFrame:
    """A golden CSV, every column text, empty field = empty string (= null)."""
    df = pl.read_csv(EXPECTED / f"{name}.csv", infer_schema=False, encoding="utf8")
    return df.with_columns(pl.all().fill_null(""))


def _as_text(df: pl.DataFrame, columns: list[str], frame: str) -> pl.DataFrame:
    """The given columns of an engine frame as text: datetimes `YYYY-MM-DD HH:MM:SS`, null → ''."""
    missing = [c for c in columns if c not in df.columns]
    assert not missing, f"{frame}: engine frame lacks columns {missing}; it has {df.columns}"
    exprs = []
    for c in columns:
        dtype = df.schema[c]
        e = pl.col(c)
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is not None:
                e = e.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            e = e.dt.strftime(TS_FORMAT)
        elif dtype == pl.Date:
            e = e.dt.strftime("%Y-%m-%d")  # deliberately not a timestamp: a Date shows as a difference
        else:
            e = e.cast(pl.String)
        exprs.append(e.fill_null("").alias(c))
    return df.select(exprs)


def _rows(df: pl.DataFrame, columns: list[str]) -> Counter:
    return Counter(tuple(r) for r in df.select(columns).iter_rows())


def _multiset_diff(what: str, columns: list[str], expected: Counter, actual: Counter) -> str | None:
    """None when equal, else a readable listing of the rows only in expected / only in actual."""
    only_exp = expected - actual
    only_act = actual - expected
    if not only_exp and not only_act:
        return None

    def fmt(counter: Counter) -> list[str]:
        lines = []
        for row in sorted(counter):
            n = counter[row]
            lines.append(("  " if n == 1 else f"  {n}x ") + " | ".join(row))
        return lines or ["  (none)"]

    return "\n".join(
        [
            f"{what}: {sum(only_exp.values())} row(s) only in expected, {sum(only_act.values())} only in actual",
            "columns: " + " | ".join(columns),
            "only in expected (golden):",
            *fmt(only_exp),
            "only in actual (engine):",
            *fmt(only_act),
        ]
    )


def _unmatched_attributes(
    expected: pl.DataFrame,
    actual: pl.DataFrame,
    key: list[str],
    attr: str,
    actual_attr: str,
    *,
    substring: bool,
) -> list[str]:
    """Expected rows whose non-empty `attr` finds no distinct actual row with the same key.

    Each actual row is used at most once, so two expected rows with the same key and attribute
    need two actual rows.
    """
    pool: dict[tuple, list[str]] = {}
    for row in actual.select([*key, actual_attr]).iter_rows():
        pool.setdefault(tuple(row[:-1]), []).append(row[-1])
    problems = []
    for row in expected.select([*key, attr]).iter_rows():
        want = row[-1]
        if want == "":
            continue
        candidates = pool.get(tuple(row[:-1]), [])
        hit = next(
            (i for i, got in enumerate(candidates) if (want in got if substring else want == got)),
            None,
        )
        if hit is None:
            problems.append(f"  {' | '.join(row[:-1])}: wants {attr} {want!r}, engine has {candidates}")
        else:
            candidates.pop(hit)
    return problems


# ------------------------------------------------------------------------------- engine results


@pytest.fixture(scope="module")
def engine():
    """The engine's expected target for the golden extract (imports lazily: the engine may not exist)."""
    from checks.expected import compute_expected
    from checks.mapping import load_mappings
    from pipelines.io.extract import read_extract

    return compute_expected(read_extract(EXTRACT), load_mappings(REPO / "mappings"), as_of=AS_OF)


@pytest.mark.parametrize("frame", FRAMES)
def test_frame(engine, frame: str) -> None:
    golden = _golden(frame)
    assert frame in engine.tables, f"engine produced no frame {frame!r}; it has {sorted(engine.tables)}"
    actual = _as_text(engine.tables[frame], golden.columns, frame)
    diff = _multiset_diff(frame, golden.columns, _rows(golden, golden.columns), _rows(actual, golden.columns))
    assert diff is None, diff


@pytest.mark.parametrize("frame", FRAMES)
def test_frame_timestamps_are_naive_datetimes(engine, frame: str) -> None:
    """D18 / expected-target.md: timestamps are naive UTC datetimes, not text, dates or zoned."""
    df = engine.tables[frame]
    wrong = {
        c: str(df.schema[c])
        for c in df.columns
        if c.endswith("_dt_tm")
        and c in _golden(frame).columns
        and not (isinstance(df.schema[c], pl.Datetime) and df.schema[c].time_zone is None)
    }
    assert not wrong, f"{frame}: timestamp columns not naive Datetime: {wrong}"


def test_ledger(engine) -> None:
    golden = _golden("ledger")
    actual = _as_text(engine.ledger, [*LEDGER_KEY, "reason"], "ledger")
    diff = _multiset_diff("ledger", LEDGER_KEY, _rows(golden, LEDGER_KEY), _rows(actual, LEDGER_KEY))
    assert diff is None, diff
    problems = _unmatched_attributes(golden, actual, LEDGER_KEY, "reason_contains", "reason", substring=True)
    assert not problems, "ledger reasons do not name the expected record:\n" + "\n".join(problems)


def test_findings(engine) -> None:
    golden = _golden("findings")
    actual = _as_text(engine.findings, [*FINDING_KEY, "column"], "findings")
    diff = _multiset_diff("findings", FINDING_KEY, _rows(golden, FINDING_KEY), _rows(actual, FINDING_KEY))
    assert diff is None, diff
    problems = _unmatched_attributes(golden, actual, FINDING_KEY, "column", "column", substring=False)
    assert not problems, "findings name another column:\n" + "\n".join(problems)


# ------------------------------------------------------- consistency of the golden files themselves

PAS_FILES = {  # file -> (entity, number of fields)
    "patient.csv": ("person", 9),
    "kontakt.csv": ("encounter", 7),
    "diagnos.csv": ("diagnosis", 4),
    "atgard.csv": ("procedure", 3),
}
PCS_FILES = {
    "patients.jsonl": "person",
    "visits.jsonl": "encounter",
    "medications.jsonl": "orders",
    "allergies.jsonl": "allergy",
    "labresults.jsonl": "labresult",
}


def _ledger_counts() -> Counter:
    ledger = _golden("ledger")
    return Counter(ledger.select(["source_system", "entity"]).iter_rows())


def test_golden_pas_files_are_cp1252_crlf() -> None:
    for name in PAS_FILES:
        raw = (EXTRACT / "pas" / name).read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf"), name
        text = raw.decode("cp1252")
        assert "Ã" not in text, f"{name}: mojibake"
        assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", ""), f"{name}: not CRLF throughout"
    assert "ö".encode("cp1252") in (EXTRACT / "pas" / "patient.csv").read_bytes()


def test_golden_ledger_has_one_row_per_record() -> None:
    """Count the records of the raw files (D1/D2: blank lines are no records) against the ledger."""
    counted: Counter = Counter()
    for name, (entity, _) in PAS_FILES.items():
        text = (EXTRACT / "pas" / name).read_bytes().decode("cp1252")
        for line in text.split("\r\n")[1:]:
            if line == "":
                continue
            counted[("pas", entity)] += 1
    for name, entity in PCS_FILES.items():
        for line in (EXTRACT / "pcs" / name).read_text(encoding="utf-8").split("\n"):
            if line == "":
                continue
            counted[("pcs", entity)] += 1
            if entity == "encounter":
                try:
                    counted[("pcs", "diagnosis")] += len(json.loads(line).get("diagnoses") or [])
                except json.JSONDecodeError:
                    pass
    assert counted == _ledger_counts()


def test_golden_unparseable_refs_point_at_bad_lines() -> None:
    ledger = _golden("ledger")
    for ref in ledger.filter(pl.col("source_ref").str.contains("#"))["source_ref"]:
        system, rest = ref.split(":", 1)
        name, number = rest.split("#")
        path = EXTRACT / system / name
        if system == "pas":
            line = path.read_bytes().decode("cp1252").split("\r\n")[int(number) - 1]
            assert len(next(csv.reader(io.StringIO(line), delimiter=";"))) != PAS_FILES[name][1], ref
        else:
            line = path.read_text(encoding="utf-8").split("\n")[int(number) - 1]
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)


def test_golden_frames_agree_with_ledger() -> None:
    ledger = _golden("ledger")

    def refs(entity: str, dispositions: tuple[str, ...] = ("expected",)) -> Counter:
        rows = ledger.filter((pl.col("entity") == entity) & pl.col("disposition").is_in(dispositions))
        return Counter(rows["source_ref"])

    for frame in ("encounter", "diagnosis", "procedure", "orders", "allergy"):
        assert Counter(_golden(frame)["source_ref"]) == refs(frame), frame
    assert Counter(_golden("encntr_alias")["source_ref"]) == refs("encounter")

    aliases = _golden("person_alias")
    mrn = aliases.filter(pl.col("person_alias_type_cd") == "MRN")
    assert Counter(mrn["source_ref"]) == refs("person", ("expected", "merged"))
    ident = aliases.filter(pl.col("person_alias_type_cd") != "MRN")
    persons = _golden("person")
    assert sorted(ident["person_ref"]) == sorted(persons["person_ref"])
    assert (ident["source_ref"] == ident["person_ref"]).all()
    joined = ident.join(persons, on="person_ref")
    assert (joined["alias"] == joined["identity"]).all()
    assert (joined["contributor_system_cd"] == joined["contributor_system_cd_right"]).all()
    assert set(persons["person_ref"]) <= set(refs("person"))

    person_refs = set(persons["person_ref"])
    encounter_refs = set(_golden("encounter")["source_ref"])
    for frame in ("person_alias", "encounter", "diagnosis", "orders", "allergy"):
        assert set(_golden(frame)["person_ref"]) <= person_refs, frame
    for frame in ("diagnosis", "procedure"):
        assert set(_golden(frame)["encounter_ref"]) <= encounter_refs, frame


def test_golden_findings_agree_with_ledger() -> None:
    ledger = _golden("ledger")
    findings = _golden("findings")
    disposition = {}
    for ref, disp, reason in ledger.select(["source_ref", "disposition", "reason_contains"]).iter_rows():
        disposition.setdefault(ref, set()).add((disp, reason))
    blocking = Counter(findings.filter(pl.col("severity") == "error")["source_ref"])
    own_rejections = ledger.filter((pl.col("disposition") == "rejected") & (pl.col("reason_contains") == ""))
    assert blocking == Counter(own_rejections["source_ref"])
    for ref in findings.filter(pl.col("severity") == "warning")["source_ref"]:
        assert {d for d, _ in disposition[ref]} <= {"expected", "merged"}, ref
    sev = dict(duplicate="warning", implausible="warning")
    for cat, severity in findings.select(["category", "severity"]).iter_rows():
        assert severity == sev.get(cat, "error"), cat
    ents = dict(ledger.select(["source_ref", "entity"]).iter_rows())
    for ref, entity in findings.select(["source_ref", "entity"]).iter_rows():
        assert ents[ref] == entity, ref
