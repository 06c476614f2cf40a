"""The synthetic extract generator: exact formats, determinism, and a ground truth that holds.

The ground truth is checked by an independent reading of the files written: ``_reference_findings``
parses the extract the way a validator must (cp1252 CSV, JSON Lines, physical line numbers) and
applies ``load-rules.md`` and ``docs/decisions.md`` to it, without knowing how the defects were
made. Its findings must equal ``defects.csv`` exactly, in both directions: every listed defect is
really there, with one cause, and nothing else is wrong.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from test_generate_notes import note_findings
from test_generate_notes import read as read_notes

from checks.errors import MigcheckError
from checks.identity import classify, luhn_digit
from pipelines.synth.generator import DEFECT_COLUMNS, PAS_HEADERS, VARIANTS, generate
from pipelines.synth.population import luhn
from pipelines.synth.writers import to_cp1252

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "mappings"
CONFORMANCE = ROOT.parent / "shared" / "tools" / "spec_conformance.py"
STHLM = ZoneInfo("Europe/Stockholm")
TODAY = dt.datetime.now(STHLM).date()
PCS_KEYS = {
    "patients.jsonl": {"id", "identity", "name", "sex", "deceased", "protected", "address"},
    "visits.jsonl": {"id", "patientId", "type", "unitHsaId", "start", "end", "status", "diagnoses"},
    "medications.jsonl": {"id", "patientId", "atc", "name", "dose", "start", "end"},
    "allergies.jsonl": {"id", "patientId", "substance", "severity", "recorded"},
    "labresults.jsonl": {"id", "patientId", "npu", "value", "unit", "taken"},
}
CATEGORIES = {
    "invalid_identifier",
    "mandatory_missing",
    "unmapped_code",
    "invalid_code",
    "duplicate",
    "orphan",
    "implausible",
    "unparseable",
}


# ------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def default_extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("default")
    generate(out, patients=300, seed=11, defects="default")
    return out


@pytest.fixture(scope="module")
def clean_extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    generate(out, patients=300, seed=11, defects="none")
    return out


# ------------------------------------------------------------------------------------------------
# reading an extract as a validator would


def _read_pas(root: Path, name: str) -> tuple[list[dict[str, str]], list[int]]:
    """Data rows (trimmed) and the line numbers of rows with the wrong number of fields."""
    text = (root / "pas" / name).read_bytes().decode("cp1252")
    assert text.endswith("\r\n")
    lines = text[:-2].split("\r\n")
    header = lines[0].split(";")
    rows, bad = [], []
    for n, line in enumerate(lines[1:], start=2):
        fields = next(csv.reader([line], delimiter=";", quotechar='"'))
        if len(fields) != len(header):
            bad.append(n)
            continue
        rows.append({h: v.strip() for h, v in zip(header, fields, strict=True)})
    return rows, bad


def _read_pcs(root: Path, name: str) -> tuple[list[dict], list[int]]:
    text = (root / "pcs" / name).read_bytes().decode("utf-8")
    assert "\r" not in text and (text == "" or text.endswith("\n"))
    rows, bad = [], []
    for n, line in enumerate(text[:-1].split("\n") if text else [], start=1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            bad.append(n)
            continue
        if not isinstance(obj, dict):
            bad.append(n)
            continue
        rows.append(obj)
    return rows, bad


def _t(v: object) -> str:
    return v.strip() if isinstance(v, str) else ""


def _read_defects(root: Path) -> list[dict[str, str]]:
    with open(root / "defects.csv", encoding="utf-8", newline="") as f:
        r = csv.DictReader(f)
        assert r.fieldnames == DEFECT_COLUMNS
        return list(r)


@dataclass
class _Maps:
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    active_locations: set[str] = field(default_factory=set)
    nomenclature: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def _maps() -> _Maps:
    m = _Maps()
    for p in sorted((MAPPINGS / "code_maps").glob("*.csv")):
        with open(p, encoding="utf-8", newline="") as f:
            m.codes[p.stem] = {r["source_code"]: r["target_cdf_meaning"] for r in csv.DictReader(f)}
    with open(MAPPINGS / "reference" / "code_value.csv", encoding="utf-8", newline="") as f:
        cv = list(csv.DictReader(f))
    m.active_locations = {r["cdf_meaning"] for r in cv if r["code_set"] == "220" and r["active_ind"] == "1"}
    vocab = {r["code_value"]: r["cdf_meaning"] for r in cv if r["code_set"] == "400"}
    with open(MAPPINGS / "reference" / "nomenclature.csv", encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            if r["active_ind"] == "1":
                m.nomenclature[vocab[r["source_vocabulary_cd"]]].add(r["source_identifier"])
    return m


MAPS = _maps()


def _icd(code: str) -> str:
    c = code.upper().replace(" ", "")
    return c[:3] + "." + c[3:] if "." not in c and len(c) > 3 else c


def _date(s: str) -> dt.date | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        return None
    try:
        return dt.datetime.strptime(s, "%Y-%m-%d").date()
    except ValueError:
        return None


def _pas_time(s: str) -> dt.datetime | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", s):
        return None
    try:
        return dt.datetime.strptime(s, "%Y-%m-%d %H:%M")
    except ValueError:
        return None


def _pcs_time(s: str) -> dt.datetime | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}", s):
        return None
    try:
        return dt.datetime.fromisoformat(s)
    except ValueError:
        return None


def _nonexistent(local: dt.datetime) -> bool:
    back = local.replace(tzinfo=STHLM).astimezone(dt.UTC).astimezone(STHLM).replace(tzinfo=None)
    return back != local


def _utc(local: dt.datetime) -> dt.datetime:
    """Stockholm wall time → UTC: earliest reading of the repeated hour, a skipped time one hour on."""
    if _nonexistent(local):
        local += dt.timedelta(hours=1)
    return local.replace(tzinfo=STHLM, fold=0).astimezone(dt.UTC)


# ------------------------------------------------------------------------------------------------
# the independent reading of the rules


def _reference_findings(root: Path) -> Counter:
    found: Counter = Counter()

    def add(category: str, ref: str) -> None:
        found[(category, ref)] += 1

    codes = MAPS.codes
    # ---- patients
    pas_pat, bad = _read_pas(root, "patient.csv")
    for n in bad:
        add("unparseable", f"pas:patient.csv#{n}")
    pcs_pat, bad = _read_pcs(root, "patients.jsonl")
    for n in bad:
        add("unparseable", f"pcs:patients.jsonl#{n}")
    pas_ids = {r["PATID"] for r in pas_pat}
    pcs_ids = {_t(o.get("id")) for o in pcs_pat}
    pas_ok: dict[str, dict] = {}
    pcs_ok: dict[str, dict] = {}
    for r in pas_pat:
        ref = f"pas:patient:{r['PATID']}"
        if not r["PNR"] or not r["ENAMN"] or not r["FNAMN"]:
            add("mandatory_missing", ref)
        elif not classify(r["PNR"], TODAY).valid:
            add("invalid_identifier", ref)
        elif r["KON"] not in codes["pas_sex"]:
            add("unmapped_code", ref)
        else:
            pas_ok[r["PATID"]] = r
    for o in pcs_pat:
        ref = f"pcs:patient:{_t(o.get('id'))}"
        ident, name = o.get("identity") or {}, o.get("name") or {}
        value = _t(ident.get("value"))
        if not value or not _t(name.get("family")) or not _t(name.get("given")):
            add("mandatory_missing", ref)
        elif not classify(value, TODAY, declared=ident.get("type")).valid:
            add("invalid_identifier", ref)
        elif _t(o.get("sex")) not in codes["pcs_sex"]:
            add("unmapped_code", ref)
        else:
            pcs_ok[_t(o.get("id"))] = o

    # duplicates within a system, persons across systems (PAS first, then the lower id)
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for patid, r in pas_ok.items():
        groups[("pas", r["PNR"])].append(f"pas:patient:{patid}")
    for pid, o in pcs_ok.items():
        groups[("pcs", _t(o["identity"]["value"]))].append(f"pcs:patient:{pid}")
    for refs in groups.values():
        if len(refs) > 1:
            for ref in refs:
                add("duplicate", ref)
    birth: dict[str, dt.date] = {}
    death: dict[str, dt.date] = {}
    ordered = [(r["PNR"], _date(r["AVLIDEN"])) for _, r in sorted(pas_ok.items(), key=lambda kv: int(kv[0]))]
    ordered += [(_t(o["identity"]["value"]), _date(_t(o.get("deceased")))) for _, o in sorted(pcs_ok.items())]
    for ident, died in ordered:
        check = classify(ident, TODAY)
        birth[ident] = check.birth_date
        if died is not None and ident not in death:
            death[ident] = died
    sex_of = {"M": "MALE", "K": "FEMALE", "1": "MALE", "2": "FEMALE"}
    for patid, r in pas_ok.items():
        died = _date(r["AVLIDEN"])
        if died is not None and died > TODAY:
            add("implausible", f"pas:patient:{patid}")
        digit = classify(r["PNR"], TODAY).sex
        if digit and r["KON"] in sex_of and sex_of[r["KON"]] != digit:
            add("implausible", f"pas:patient:{patid}")
    for pid, o in pcs_ok.items():
        died = _date(_t(o.get("deceased")))
        if died is not None and died > TODAY:
            add("implausible", f"pcs:patient:{pid}")
        digit = classify(_t(o["identity"]["value"]), TODAY).sex
        if digit and _t(o.get("sex")) in sex_of and sex_of[_t(o.get("sex"))] != digit:
            add("implausible", f"pcs:patient:{pid}")

    def encounter_warnings(
        ref: str, ident: str, local_start: dt.datetime, start_utc: dt.datetime, end_utc: dt.datetime | None
    ) -> None:
        if end_utc is not None and end_utc < start_utc:
            add("implausible", ref)
        if local_start.date() < birth[ident]:
            add("implausible", ref)
        if ident in death and (local_start.date() - death[ident]).days > 30:
            add("implausible", ref)

    # ---- PAS contacts and their rows
    kontakt, bad = _read_pas(root, "kontakt.csv")
    for n in bad:
        add("unparseable", f"pas:kontakt.csv#{n}")
    unit_map, type_map = codes["map_pas_unit"], codes["pas_contact_type"]
    state: dict[str, str] = {}
    for r in kontakt:
        kid, ref = r["KONTAKTID"], f"pas:kontakt:{r['KONTAKTID']}"
        state[kid] = "rejected"
        if r["STATUS"] == "M":
            state[kid] = "out"
        elif not r["PATID"] or r["PATID"] not in pas_ids:
            add("orphan", ref)
        elif r["PATID"] not in pas_ok:
            pass  # rejected with its patient
        elif not r["INDATUM"] or not r["KONTAKTTYP"] or not r["ENHET"]:
            add("mandatory_missing", ref)
        elif _pas_time(r["INDATUM"]) is None or (r["UTDATUM"] and _pas_time(r["UTDATUM"]) is None):
            add("unparseable", ref)
        elif r["KONTAKTTYP"] not in type_map or r["ENHET"] not in unit_map:
            add("unmapped_code", ref)
        elif unit_map[r["ENHET"]] not in MAPS.active_locations:
            add("invalid_code", ref)
        else:
            state[kid] = "ok"
            start = _pas_time(r["INDATUM"])
            assert start is not None
            if _nonexistent(start):
                add("implausible", ref)
            end = _utc(_pas_time(r["UTDATUM"])) if r["UTDATUM"] else None
            encounter_warnings(ref, pas_ok[r["PATID"]]["PNR"], start, _utc(start), end)
    diag, bad = _read_pas(root, "diagnos.csv")
    for n in bad:
        add("unparseable", f"pas:diagnos.csv#{n}")
    for r in diag:
        ref = f"pas:diagnos:{r['KONTAKTID']}:{r['DIAGNOSKOD']}:{r['DIAGNOSTYP']}"
        if r["KONTAKTID"] not in state:
            add("orphan", ref)
        elif state[r["KONTAKTID"]] != "ok":
            pass
        elif not r["DIAGNOSKOD"] or not r["REGDATUM"]:
            add("mandatory_missing", ref)
        elif _date(r["REGDATUM"]) is None:
            add("unparseable", ref)
        elif (
            _icd(r["DIAGNOSKOD"]) not in MAPS.nomenclature["ICD10SE"]
            or r["DIAGNOSTYP"] not in codes["pas_diagnosis_type"]
        ):
            add("unmapped_code", ref)
    atg, bad = _read_pas(root, "atgard.csv")
    for n in bad:
        add("unparseable", f"pas:atgard.csv#{n}")
    for r in atg:
        ref = f"pas:atgard:{r['KONTAKTID']}:{r['KVAKOD']}:{r['DATUM']}"
        if r["KONTAKTID"] not in state:
            add("orphan", ref)
        elif state[r["KONTAKTID"]] != "ok":
            pass
        elif not r["KVAKOD"] or not r["DATUM"]:
            add("mandatory_missing", ref)
        elif _date(r["DATUM"]) is None:
            add("unparseable", ref)
        elif r["KVAKOD"].upper().replace(" ", "") not in MAPS.nomenclature["KVA"]:
            add("unmapped_code", ref)

    # ---- PCS visits and their diagnoses
    visits, bad = _read_pcs(root, "visits.jsonl")
    for n in bad:
        add("unparseable", f"pcs:visits.jsonl#{n}")
    for o in visits:
        vid, pid = _t(o.get("id")), _t(o.get("patientId"))
        ref = f"pcs:visit:{vid}"
        if o.get("status") in ("draft", "deleted"):
            continue
        if not pid or pid not in pcs_ids:
            add("orphan", ref)
            continue
        if pid not in pcs_ok:
            continue
        start, unit, vtype = _t(o.get("start")), _t(o.get("unitHsaId")), _t(o.get("type"))
        if not start or not unit or not vtype:
            add("mandatory_missing", ref)
            continue
        t0 = _pcs_time(start)
        t1 = _pcs_time(_t(o.get("end"))) if _t(o.get("end")) else None
        if t0 is None or (_t(o.get("end")) and t1 is None):
            add("unparseable", ref)
            continue
        if vtype not in codes["pcs_visit_type"] or unit not in codes["map_pcs_unit"]:
            add("unmapped_code", ref)
            continue
        if codes["map_pcs_unit"][unit] not in MAPS.active_locations:
            add("invalid_code", ref)
            continue
        encounter_warnings(ref, _t(pcs_ok[pid]["identity"]["value"]), t0.astimezone(STHLM).replace(tzinfo=None), t0, t1)
        for el in o.get("diagnoses") or []:
            code = _t(el.get("code"))
            dref = f"pcs:diagnosis:{vid}:{code}"
            if not code:
                add("mandatory_missing", dref)
            elif _icd(code) not in MAPS.nomenclature["ICD10SE"]:
                add("unmapped_code", dref)

    # ---- medications, allergies, lab results
    meds, bad = _read_pcs(root, "medications.jsonl")
    for n in bad:
        add("unparseable", f"pcs:medications.jsonl#{n}")
    for o in meds:
        ref, pid = f"pcs:medication:{_t(o.get('id'))}", _t(o.get("patientId"))
        if not pid or pid not in pcs_ids:
            add("orphan", ref)
        elif pid not in pcs_ok:
            pass
        elif not _t(o.get("atc")) or not _t(o.get("name")) or not _t(o.get("start")):
            add("mandatory_missing", ref)
        elif _date(_t(o.get("start"))) is None or (_t(o.get("end")) and _date(_t(o.get("end"))) is None):
            add("unparseable", ref)
        elif _t(o.get("atc")).upper() not in MAPS.nomenclature["ATC"]:
            add("unmapped_code", ref)
    allergies, bad = _read_pcs(root, "allergies.jsonl")
    for n in bad:
        add("unparseable", f"pcs:allergies.jsonl#{n}")
    for o in allergies:
        ref, pid = f"pcs:allergy:{_t(o.get('id'))}", _t(o.get("patientId"))
        sub = o.get("substance") or {}
        if not pid or pid not in pcs_ids:
            add("orphan", ref)
        elif pid not in pcs_ok:
            pass
        elif not (_t(sub.get("atc")) or _t(sub.get("text"))) or not _t(o.get("severity")):
            add("mandatory_missing", ref)
        elif _t(o.get("recorded")) and _date(_t(o.get("recorded"))) is None:
            add("unparseable", ref)
        elif _t(o.get("severity")) not in codes["pcs_allergy_severity"] or (
            _t(sub.get("atc")) and _t(sub.get("atc")).upper() not in MAPS.nomenclature["ATC"]
        ):
            add("unmapped_code", ref)
    _, bad = _read_pcs(root, "labresults.jsonl")
    for n in bad:
        add("unparseable", f"pcs:labresults.jsonl#{n}")
    # notes: the rules of clinical-notes.md, read independently (tests/test_generate_notes.py)
    found.update(note_findings(read_notes(root, None)))
    return found


def _assert_same(found: Counter, truth: Counter) -> None:
    missing = truth - found
    extra = found - truth
    assert not missing, f"listed in defects.csv but not in the files: {sorted(missing)[:10]}"
    assert not extra, f"in the files but not listed in defects.csv: {sorted(extra)[:10]}"


# ------------------------------------------------------------------------------------------------
# formats


def test_pas_files_are_cp1252_semicolon_crlf_with_the_exact_header(default_extract: Path) -> None:
    for name, header in PAS_HEADERS.items():
        raw = (default_extract / "pas" / name).read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf")
        text = raw.decode("cp1252")
        assert raw.count(b"\n") == raw.count(b"\r\n") > 1, f"{name}: every line ends in CRLF"
        assert text.split("\r\n", 1)[0] == ";".join(header)
        assert "Ã" not in text
        assert '"' not in text  # no value needs quoting, so none is quoted
    patient = (default_extract / "pas" / "patient.csv").read_bytes().decode("cp1252")
    for ch in "åäö":
        assert ch in patient
    with pytest.raises(UnicodeDecodeError):
        patient.encode("cp1252").decode("utf-8")  # really cp1252, not UTF-8


def test_pcs_files_are_utf8_json_lines_with_every_key(default_extract: Path) -> None:
    for name, keys in PCS_KEYS.items():
        raw = (default_extract / "pcs" / name).read_bytes()
        rows, _ = _read_pcs(default_extract, name)
        assert rows
        for o in rows:
            assert set(o) == keys, name
        if name == "patients.jsonl":
            assert "ö".encode() in raw and b"\\u00" not in raw  # ensure_ascii=False
            for o in rows:
                assert set(o["identity"]) == {"type", "value"}
                assert set(o["name"]) == {"family", "given"}
                assert set(o["address"]) == {"postalCode", "municipality"}
                assert isinstance(o["protected"], bool)


def test_realistic_clean_content(clean_extract: Path) -> None:
    pas, bad = _read_pas(clean_extract, "patient.csv")
    pcs, bad2 = _read_pcs(clean_extract, "patients.jsonl")
    assert not bad and not bad2
    families = [r["ENAMN"] for r in pas] + [o["name"]["family"] for o in pcs]
    givens = [r["FNAMN"] for r in pas] + [o["name"]["given"].strip() for o in pcs]
    assert any("-" in f for f in families), "hyphenated double family names"
    assert any(" " in g for g in givens), "two given names"
    assert any(ch in "".join(families + givens) for ch in "éü")
    kinds = Counter(classify(r["PNR"], TODAY).kind for r in pas)
    assert kinds["PNR"] > kinds["SAMNR"] > 0 and kinds["RESNR"] > 0
    assert {r["KON"] for r in pas} == {"M", "K", ""}
    assert {o["sex"] for o in pcs} >= {"1", "2", "0"}
    assert any(r["AVLIDEN"] for r in pas) and any(r["SKYDD"] == "J" for r in pas)
    raw_pas = (clean_extract / "pas" / "patient.csv").read_bytes().decode("cp1252").split("\r\n")[1:-1]
    assert any(re.search(r";\d{3} \d{2};", line) for line in raw_pas), "postal codes written 503 32"
    assert any(line != ";".join(f.strip() for f in line.split(";")) for line in raw_pas), "values to trim"
    # persons in both systems carry the same identity and names; PAS-only and PCS-only persons exist
    by_id = {r["PNR"]: r for r in pas}
    both = [o for o in pcs if o["identity"]["value"] in by_id]
    assert 0.2 * len(pcs) < len(both) < 0.8 * len(pcs)
    assert len(by_id) > len(both) and len(pcs) > len(both)
    for o in both:
        r = by_id[o["identity"]["value"]]
        assert (r["ENAMN"], r["FNAMN"]) == (o["name"]["family"], o["name"]["given"].strip())
    for r in pas:
        assert dt.date(1925, 1, 1) <= classify(r["PNR"], TODAY).birth_date <= dt.date(2024, 12, 31)


def test_clean_timestamps_are_right_for_stockholm(clean_extract: Path) -> None:
    kontakt, _ = _read_pas(clean_extract, "kontakt.csv")
    stamps = [_pas_time(r[c]) for r in kontakt for c in ("INDATUM", "UTDATUM") if r[c]]
    assert all(t is not None and not _nonexistent(t) for t in stamps)
    assert {t.year for t in stamps if t} >= set(range(2015, 2026))
    assert {r["ENHET"] for r in kontakt} <= {
        u for u, m in MAPS.codes["map_pas_unit"].items() if m in MAPS.active_locations
    }
    assert {r["STATUS"] for r in kontakt} == {"A", "M"}
    ambiguous = [t for t in stamps if t and t.month == 10 and t.hour == 2 and t.weekday() == 6 and t.day >= 25]
    assert ambiguous, "a few contacts in the repeated October hour"
    offsets = Counter()
    for name, cols in (("visits.jsonl", ("start", "end")), ("labresults.jsonl", ("taken",))):
        for o in _read_pcs(clean_extract, name)[0]:
            for c in cols:
                if o[c] is None:
                    continue
                t = _pcs_time(o[c])
                assert t is not None and t.astimezone(STHLM).utcoffset() == t.utcoffset(), o[c]
                offsets[o[c][-6:]] += 1
    assert set(offsets) == {"+01:00", "+02:00"}
    visits, _ = _read_pcs(clean_extract, "visits.jsonl")
    assert {o["status"] for o in visits} == {"signed", "draft", "deleted"}
    for o in visits:
        codes = [d["code"] for d in o["diagnoses"]]
        assert len(codes) == len(set(codes))
        assert not codes or sum(d["primary"] for d in o["diagnoses"]) == 1
    diag, _ = _read_pas(clean_extract, "diagnos.csv")
    assert any(r["DIAGNOSKOD"] != r["DIAGNOSKOD"].upper() for r in diag)
    per_contact = Counter(r["KONTAKTID"] for r in diag)
    assert max(per_contact.values()) == 3
    assert all(
        sum(1 for r in diag if r["KONTAKTID"] == k and r["DIAGNOSTYP"] == "H") == 1 for k in list(per_contact)[:50]
    )


# ------------------------------------------------------------------------------------------------
# ground truth


def test_no_defects_means_a_clean_extract(clean_extract: Path) -> None:
    assert (clean_extract / "defects.csv").read_text(encoding="utf-8") == ",".join(DEFECT_COLUMNS) + "\n"
    assert _reference_findings(clean_extract) == Counter()


def test_every_listed_defect_is_there_and_nothing_else(default_extract: Path) -> None:
    rows = _read_defects(default_extract)
    truth = Counter((r["category"], r["source_ref"]) for r in rows)
    _assert_same(_reference_findings(default_extract), truth)


def test_defects_csv_layout_and_coverage(default_extract: Path) -> None:
    rows = _read_defects(default_extract)
    assert [r["defect_id"] for r in rows] == [f"S{i:04d}" for i in range(1, len(rows) + 1)]
    assert {r["layer"] for r in rows} == {"source"} and {r["target_ref"] for r in rows} == {""}
    assert {r["nature"] for r in rows} == {""}  # a source defect is never a value_mismatch
    assert {r["category"] for r in rows} == CATEGORIES
    pairs = {(r["category"], r["entity"]) for r in rows}
    for cat in ("mandatory_missing", "unmapped_code", "orphan", "unparseable"):
        assert {e for c, e in pairs if c == cat} >= {"encounter", "diagnosis", "orders", "allergy"}, cat
    assert ("unparseable", "labresult") in pairs and ("invalid_code", "encounter") in pairs
    assert not any(c == "orphan" and e == "labresult" for c, e in pairs)
    for v in VARIANTS:  # every variant, at least twice
        assert sum(r["description"].startswith(v.description) for r in rows) >= 2, v.name
    mm_columns = {r["column"] for r in rows if r["category"] == "mandatory_missing"}
    assert mm_columns >= {
        "name_last",
        "name_first",
        "reg_dt_tm",
        "loc_nurse_unit_cd",
        "encntr_type_cd",
        "nomenclature_id",
        "atc_nomenclature_id",
        "severity_cd",
        "substance",
    }
    assert Counter(r["source_ref"] for r in rows).most_common(1)[0][1] == 1, "one defect per record"


def test_duplicates_share_identity_and_are_otherwise_clean(default_extract: Path) -> None:
    pas = {r["PATID"]: r for r in _read_pas(default_extract, "patient.csv")[0]}
    pcs = {o["id"]: o for o in _read_pcs(default_extract, "patients.jsonl")[0]}
    groups: dict[str, list[str]] = defaultdict(list)
    for r in _read_defects(default_extract):
        if r["category"] == "duplicate":
            system, _, key = r["source_ref"].split(":")
            value = pas[key]["PNR"] if system == "pas" else pcs[key]["identity"]["value"].strip()
            assert classify(value, TODAY).valid
            groups[f"{system}:{value}"].append(key)
    sizes = Counter(len(v) for v in groups.values())
    assert sizes[2] >= 4 and sizes[3] >= 2


def test_descriptions_hold_no_personal_data(default_extract: Path) -> None:
    pas = _read_pas(default_extract, "patient.csv")[0]
    pcs = _read_pcs(default_extract, "patients.jsonl")[0]
    words = {w for r in pas for c in ("ENAMN", "FNAMN") for w in re.split(r"[ -]", r[c]) if w}
    words |= {w for o in pcs for w in re.split(r"[ -]", _t(o["name"]["family"]) + " " + _t(o["name"]["given"])) if w}
    for r in _read_defects(default_extract):
        d = r["description"]
        assert not re.search(r"\d{5,}", d), d  # no identity number or postal code
        assert not re.search(r"\d{4}-\d{2}-\d{2}", d), d  # no date
        assert not words & set(re.findall(r"[\wåäöÅÄÖéü]+", d)), d


def test_tiny_extract_still_has_every_variant(tmp_path: Path) -> None:
    result = generate(tmp_path, patients=5, seed=3)
    rows = _read_defects(tmp_path)
    assert result.defects == len(rows) and {r["category"] for r in rows} == CATEGORIES
    for v in VARIANTS:
        assert any(r["description"].startswith(v.description) for r in rows), v.name
    _assert_same(_reference_findings(tmp_path), Counter((r["category"], r["source_ref"]) for r in rows))


def test_every_row_carries_its_variants_declaration(default_extract: Path) -> None:
    by_description = {v.description: v for v in VARIANTS}
    assert len(VARIANTS) == len({v.name for v in VARIANTS}) == 87
    for r in _read_defects(default_extract):
        v = next(v for d, v in by_description.items() if r["description"].startswith(d))
        assert (r["category"], r["entity"], r["column"]) == (v.category, v.entity, v.column), v.name


def test_larger_extract_ground_truth_holds(tmp_path: Path) -> None:
    """Ten instances of every variant: host pools, clean-contact pools and derived identities at scale."""
    result = generate(tmp_path, patients=5_000, seed=7)
    rows = _read_defects(tmp_path)
    assert result.defects == len(rows) == 10 * len(VARIANTS) + 10 * (1 + 1 + 2)  # every record of a duplicate group
    _assert_same(_reference_findings(tmp_path), Counter((r["category"], r["source_ref"]) for r in rows))


def test_vectorised_luhn_and_cp1252_agree_with_the_scalar_rules() -> None:
    rng = np.random.default_rng(5)
    digits = rng.integers(0, 10, (2_000, 9))
    expected = [luhn_digit("".join(map(str, row))) for row in digits]
    assert luhn(digits).tolist() == expected
    for text in ("Åsa Öberg;Zoë;Loïc\r\n", "plain ascii\r\n", "Šárka €5 – ok\r\n", ""):
        assert bytes(to_cp1252(memoryview(text.encode("utf-8")))) == text.encode("cp1252")


def test_more_patients_more_defects(tmp_path: Path) -> None:
    small = generate(tmp_path / "a", patients=200, seed=5).defects
    large = generate(tmp_path / "b", patients=1500, seed=5).defects
    assert large * 2 == small * 3  # max(2, patients // 500) per variant: 2 at 200 patients, 3 at 1500


# ------------------------------------------------------------------------------------------------
# determinism, errors, conformance


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", patients=200, seed=42)
    generate(tmp_path / "b", patients=200, seed=42)
    generate(tmp_path / "c", patients=200, seed=43)
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(fa) == 12 and fa == fb  # 5 PAS and 6 PCS files (notes too), defects.csv
    assert all(fa[k] != fc[k] for k in fa)
    # a record per line, but a PAS note: one record however many lines its quoted text spans
    notes = sum(
        1 for _ in csv.reader(io.StringIO(fa["pas/anteckning.csv"].decode("cp1252"), newline=""), delimiter=";")
    )
    assert a.records == {
        k: (notes - 1 if k == "pas/anteckning.csv" else v.count(b"\n") - (1 if k.startswith("pas/") else 0))
        for k, v in fa.items()
        if k != "defects.csv"
    }
    assert a.defects == fa["defects.csv"].count(b"\n") - 1


def test_bad_defects_argument(tmp_path: Path) -> None:
    with pytest.raises(MigcheckError, match=r"^--defects must be none or default$"):
        generate(tmp_path, defects="all")


def test_unwritable_folder_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MigcheckError) as err:
        generate(blocker / "extract", patients=10)
    assert str(blocker / "extract") in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2


@pytest.mark.skipif(not CONFORMANCE.exists(), reason="the shared spec tools are not present")
def test_spec_conformance_tool_passes(default_extract: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(CONFORMANCE), "--extract", str(default_extract)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "problems=0" in done.stdout and "source_categories=8/8" in done.stdout
