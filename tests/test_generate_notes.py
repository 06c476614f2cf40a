"""The synthetic clinical notes: pas/anteckning.csv and pcs/notes.jsonl (clinical-notes.md).

The files are read back the way a validator must (Python's csv module over the cp1252 text, with
quoted multi-line fields; JSON Lines line by line) and the note rules of clinical-notes.md are
applied to them independently of how the generator made the notes: the note findings must equal the
clinical_event rows of defects.csv exactly, in both directions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipelines.synth import note_text
from pipelines.synth.generator import NOTE_FILES, VARIANTS, GenerateResult, generate
from pipelines.synth.writers import to_cp1252

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = ROOT.parent / "shared" / "tools" / "spec_conformance.py"
STHLM = ZoneInfo("Europe/Stockholm")
PAS_TYPES = {"RTG", "EPI", "DAG", "OPB"}
PCS_TYPES = {"journal", "referral-answer"}
NEGATIONS = {"inte", "ej", "icke", "ingen", "inget", "inga", "utan", "aldrig", "ua", "negativ", "negativt"}
NOTE_VARIANTS = {
    # variant: (category, column)
    "mm_pas_note_text": ("mandatory_missing", "note_text"),
    "mm_pcs_note_text": ("mandatory_missing", "note_text"),
    "mm_pas_note_type": ("mandatory_missing", "event_cd"),
    "mm_pcs_note_type": ("mandatory_missing", "event_cd"),
    "uc_pas_note_type": ("unmapped_code", "event_cd"),
    "uc_pcs_note_type": ("unmapped_code", "event_cd"),
    "or_pas_note": ("orphan", "encntr_id"),
    "or_pcs_note": ("orphan", "encntr_id"),
    "up_pas_note": ("unparseable", ""),
    "up_pcs_note": ("unparseable", ""),
}


# ------------------------------------------------------------------------------------------------
# reading the files


def normalise(text: str) -> str:
    """clinical-notes.md: \\r\\n and \\r become \\n, blanks at line ends go, blank edge lines go."""
    lines = [x.rstrip(" \t") for x in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[^\W_]+", text)]


@dataclass
class PasNote:
    line: int  # the physical line the record starts on
    raw: str  # the record as written (without its line end)
    fields: list[str]


@dataclass
class Extract:
    root: Path
    result: GenerateResult
    pas: list[PasNote]
    pcs: list[dict]
    pcs_bad: list[int]
    pcs_lines: list[str]
    kontakt: dict[str, dict[str, str]]
    visits: dict[str, dict]
    defects: list[dict[str, str]]


def read_pas_notes(root: Path) -> list[PasNote]:
    text = (root / "pas" / "anteckning.csv").read_bytes().decode("cp1252")
    lines = io.StringIO(text, newline="").readlines()
    reader = csv.reader(iter(lines), delimiter=";", quotechar='"')
    assert next(reader) == NOTE_FILES["pas/anteckning.csv"]
    out, start = [], reader.line_num + 1
    for row in reader:
        out.append(PasNote(start, "".join(lines[start - 1 : reader.line_num]).removesuffix("\r\n"), row))
        start = reader.line_num + 1
    return out


def read_pcs_notes(root: Path) -> tuple[list[dict], list[int], list[str]]:
    text = (root / "pcs" / "notes.jsonl").read_bytes().decode("utf-8")
    assert "\r" not in text and text.endswith("\n")
    lines = text[:-1].split("\n")
    rows, bad = [], []
    for n, line in enumerate(lines, start=1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            bad.append(n)
            continue
        assert isinstance(obj, dict)
        rows.append(obj)
    return rows, bad, lines


def read(root: Path, result: GenerateResult) -> Extract:
    with open(root / "pas" / "kontakt.csv", encoding="cp1252", newline="") as f:
        kontakt = {r["KONTAKTID"]: r for r in csv.DictReader(f, delimiter=";") if r["KONTAKTID"]}
    visits = {}
    for line in (root / "pcs" / "visits.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            o = json.loads(line)
        except json.JSONDecodeError:
            continue
        visits[o["id"]] = o
    with open(root / "defects.csv", encoding="utf-8", newline="") as f:
        defects = list(csv.DictReader(f))
    pcs, bad, lines = read_pcs_notes(root)
    return Extract(root, result, read_pas_notes(root), pcs, bad, lines, kontakt, visits, defects)


def pas_time(s: str) -> dt.datetime:
    return dt.datetime.strptime(s, "%Y-%m-%d %H:%M")


def exists_once(local: dt.datetime) -> bool:
    """A Stockholm wall time that exists (not in the spring gap) and is not the repeated autumn hour."""
    a, b = local.replace(tzinfo=STHLM, fold=0), local.replace(tzinfo=STHLM, fold=1)
    back = a.astimezone(dt.UTC).astimezone(STHLM).replace(tzinfo=None)
    return back == local and a.utcoffset() == b.utcoffset()


def utc(local: dt.datetime) -> dt.datetime:
    return local.replace(tzinfo=STHLM, fold=0).astimezone(dt.UTC)


def note_findings(x: Extract) -> Counter:
    """The note rules of clinical-notes.md applied to the files: (category, source_ref) per finding."""
    found: Counter = Counter()
    for note in x.pas:
        if len(note.fields) != 5:
            found[("unparseable", f"pas:anteckning.csv#{note.line}")] += 1
            continue
        antid, kid, typ, signed, text = *(v.strip() for v in note.fields[:4]), note.fields[4]
        ref = f"pas:anteckning:{antid}"
        if not signed:
            continue  # a draft: out of scope
        if kid not in x.kontakt:
            found[("orphan", ref)] += 1
        elif x.kontakt[kid]["STATUS"] == "M":
            continue  # on a voided contact: out of scope
        elif not typ or not normalise(text):
            found[("mandatory_missing", ref)] += 1
        elif typ not in PAS_TYPES:
            found[("unmapped_code", ref)] += 1
    for n in x.pcs_bad:
        found[("unparseable", f"pcs:notes.jsonl#{n}")] += 1
    for o in x.pcs:
        ref = f"pcs:note:{o['id']}"
        if o["signed"] is None:
            continue
        visit = x.visits.get(o["visitId"])
        if visit is None:
            found[("orphan", ref)] += 1
        elif visit["status"] in ("draft", "deleted"):
            continue
        elif not o["type"].strip() or not normalise(o["text"]):
            found[("mandatory_missing", ref)] += 1
        elif o["type"].strip() not in PCS_TYPES:
            found[("unmapped_code", ref)] += 1
    return found


def note_texts(x: Extract) -> list[str]:
    """Every note's text (PAS and PCS), as written."""
    return [n.fields[4] for n in x.pas if len(n.fields) == 5] + [o["text"] for o in x.pcs]


# ------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Extract:
    root = tmp_path_factory.mktemp("notes")
    return read(root, generate(root, patients=600, seed=3, defects="default"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Extract:
    root = tmp_path_factory.mktemp("clean")
    return read(root, generate(root, patients=300, seed=3, defects="none"))


# ------------------------------------------------------------------------------------------------
# formats


def test_pas_notes_read_back_with_the_csv_module(extract: Extract) -> None:
    raw = (extract.root / "pas" / "anteckning.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r"), "every line break is CRLF, inside TEXT too"
    assert raw.split(b"\r\n", 1)[0] == b"ANTID;KONTAKTID;TYP;SIGNERAD;TEXT"
    assert "Ã" not in raw.decode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # really Windows-1252
    assert len(extract.pas) == extract.result.records["pas/anteckning.csv"]
    whole = [n for n in extract.pas if len(n.fields) == 5]
    antids = [n.fields[0] for n in extract.pas]
    assert len(antids) == len(set(antids)) and all(a.isdigit() for a in antids)
    for n in whole:
        assert n.raw.split(";", 4)[4].startswith('"') and n.raw.endswith('"'), f"TEXT quoted at line {n.line}"
        assert re.fullmatch(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2})?", n.fields[3])
    assert sum(n.raw.count("\r\n") > 0 for n in whole) > 0.9 * len(whole), "notes span several lines"


def test_pcs_notes_are_json_lines(extract: Extract) -> None:
    assert len(extract.pcs) + len(extract.pcs_bad) == extract.result.records["pcs/notes.jsonl"]
    assert extract.pcs_bad and len(extract.pcs_bad) < 10
    ids = [o["id"] for o in extract.pcs]
    assert len(ids) == len(set(ids))
    for o in extract.pcs:
        assert list(o) == NOTE_FILES["pcs/notes.jsonl"]
        assert re.fullmatch(r"N-\d{8}", o["id"]) and re.fullmatch(r"V-\d{8}", o["visitId"])
        assert isinstance(o["type"], str) and isinstance(o["text"], str)
        assert o["signed"] is None or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00\+0[12]:00", o["signed"])
    raw = (extract.root / "pcs" / "notes.jsonl").read_bytes()
    assert "ö".encode() in raw and b"\\u00" not in raw  # UTF-8 as it stands, like the other PCS files
    assert b'\\"' in raw and b"\\n" in raw and b"\\t" in raw  # escaped quotes, line breaks and tabs


def test_notes_hang_on_contacts_and_visits_of_the_extract(extract: Extract) -> None:
    orphans = {r["source_ref"] for r in extract.defects if r["category"] == "orphan"}
    for n in extract.pas:
        if len(n.fields) == 5 and f"pas:anteckning:{n.fields[0]}" not in orphans:
            assert n.fields[1] in extract.kontakt, n.line
    for o in extract.pcs:
        if f"pcs:note:{o['id']}" not in orphans:
            assert o["visitId"] in extract.visits, o["id"]


def test_signing_times(extract: Extract) -> None:
    pas = [n for n in extract.pas if len(n.fields) == 5 and n.fields[1] in extract.kontakt]
    for n in pas:
        if not n.fields[3]:
            continue
        signed = pas_time(n.fields[3])
        assert exists_once(signed), n.fields[3]
        assert utc(signed) >= utc(pas_time(extract.kontakt[n.fields[1]]["INDATUM"])), n.line
    pcs = [o for o in extract.pcs if o["visitId"] in extract.visits]
    for o in pcs:
        if o["signed"] is None:
            continue
        signed = dt.datetime.fromisoformat(o["signed"])
        local = signed.astimezone(STHLM)
        assert local.utcoffset() == signed.utcoffset() and exists_once(local.replace(tzinfo=None)), o["signed"]
        assert signed >= dt.datetime.fromisoformat(extract.visits[o["visitId"]]["start"]), o["id"]
    drafts = sum(not n.fields[3] for n in pas) + sum(o["signed"] is None for o in pcs)
    assert 0.01 < drafts / (len(pas) + len(pcs)) < 0.06, "about 3 % unsigned drafts"
    assert {pas_time(n.fields[3]).year for n in pas if n.fields[3]} >= set(range(2015, 2026))


def test_density_and_scope(extract: Extract) -> None:
    per_contact = Counter(n.fields[1] for n in extract.pas if len(n.fields) == 5)
    per_visit = Counter(o["visitId"] for o in extract.pcs)
    assert 0.45 < sum(per_contact[k] for k in extract.kontakt) / len(extract.kontakt) < 0.75
    assert 0.38 < sum(per_visit[v] for v in extract.visits) / len(extract.visits) < 0.62
    assert sum(k not in per_contact for k in extract.kontakt) > 0.4 * len(extract.kontakt)
    assert max(per_contact.values()) >= 3 and max(per_visit.values()) >= 3
    assert any(extract.kontakt[k]["STATUS"] == "M" for k in per_contact if k in extract.kontakt)
    assert {extract.visits[v]["status"] for v in per_visit if v in extract.visits} == {"signed", "draft", "deleted"}
    assert {n.fields[2] for n in extract.pas if len(n.fields) == 5} >= PAS_TYPES
    assert {o["type"] for o in extract.pcs} >= PCS_TYPES


# ------------------------------------------------------------------------------------------------
# ground truth


def test_note_defects_are_listed_exactly(extract: Extract) -> None:
    truth = Counter((r["category"], r["source_ref"]) for r in extract.defects if r["entity"] == "clinical_event")
    found = note_findings(extract)
    assert not truth - found, f"listed in defects.csv but not in the files: {sorted(truth - found)[:10]}"
    assert not found - truth, f"in the files but not listed in defects.csv: {sorted(found - truth)[:10]}"


def test_every_note_variant_with_its_declaration(extract: Extract) -> None:
    by_name = {v.name: v for v in VARIANTS}
    assert set(NOTE_VARIANTS) <= set(by_name)
    rows = [r for r in extract.defects if r["entity"] == "clinical_event"]
    for name, (category, column) in NOTE_VARIANTS.items():
        v = by_name[name]
        assert (v.category, v.entity, v.column) == (category, "clinical_event", column), name
        mine = [r for r in rows if r["description"].startswith(v.description)]
        assert len(mine) >= 2, name
        for r in mine:
            assert (r["layer"], r["category"], r["column"], r["nature"], r["target_ref"]) == (
                "source",
                category,
                column,
                "",
                "",
            )
    assert len(rows) == sum(1 for v in VARIANTS if v.entity == "clinical_event") * 2  # 600 patients: 2 each


def test_defective_notes_hold_their_defect_on_a_clean_parent(extract: Extract) -> None:
    pas = {f"pas:anteckning:{n.fields[0]}": n for n in extract.pas if len(n.fields) == 5}
    pas_lines = {f"pas:anteckning.csv#{n.line}": n for n in extract.pas}
    pcs = {f"pcs:note:{o['id']}": o for o in extract.pcs}
    listed = {r["source_ref"] for r in extract.defects}
    by_description = {v.description: v.name for v in VARIANTS}
    for r in extract.defects:
        if r["entity"] != "clinical_event":
            continue
        name = next(n for d, n in by_description.items() if r["description"].startswith(d))
        ref = r["source_ref"]
        if name == "up_pas_note":
            n = pas_lines[ref]
            assert len(n.fields) == 4 and '"' not in n.raw and "\r" not in n.raw, n.raw
            continue
        if name == "up_pcs_note":
            line = extract.pcs_lines[int(ref.split("#")[1]) - 1]
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            continue
        if ref.startswith("pas:"):
            n = pas[ref]
            kid, typ, signed, text = n.fields[1], n.fields[2].strip(), n.fields[3], n.fields[4]
            parent = extract.kontakt.get(kid)
            parent_ok = parent is not None and parent["STATUS"] == "A"
            parent_refs = {f"pas:kontakt:{kid}", f"pas:patient:{parent['PATID']}"} if parent else set()
        else:
            o = pcs[ref]
            typ, signed, text = o["type"].strip(), o["signed"], o["text"]
            visit = extract.visits.get(o["visitId"])
            parent_ok = visit is not None and visit["status"] == "signed"
            parent_refs = {f"pcs:visit:{o['visitId']}", f"pcs:patient:{visit['patientId']}"} if visit else set()
        assert signed, ref  # a defect on an unsigned draft would be out of scope
        assert not parent_refs & listed, ref  # the parents carry no defect of their own
        if name.startswith("or_"):
            assert not parent_ok and not parent_refs
            continue
        assert parent_ok, ref
        if name.endswith("_note_text"):
            assert normalise(text) == "" and typ in PAS_TYPES | PCS_TYPES
        elif name.startswith("mm_"):
            assert typ == "" and normalise(text)
        else:
            assert typ not in PAS_TYPES | PCS_TYPES and typ and normalise(text)


def test_no_defects_gives_notes_but_no_note_defects(clean: Extract) -> None:
    assert clean.result.records["pas/anteckning.csv"] > 100 and clean.result.records["pcs/notes.jsonl"] > 100
    assert clean.defects == []
    assert not clean.pcs_bad and all(len(n.fields) == 5 for n in clean.pas)
    assert note_findings(clean) == Counter()


# ------------------------------------------------------------------------------------------------
# the text


def test_texts_are_realistic_and_varied(extract: Extract) -> None:
    texts = note_texts(extract)
    norm = [normalise(t) for t in texts]
    with_text = [t for t in norm if t]
    negated = sum(bool(NEGATIONS & set(words(t))) for t in with_text)
    assert negated >= 0.8 * len(with_text), negated / len(with_text)
    lengths = [len(t) for t in with_text if len(t) > 100]
    long = [n for n in lengths if n > 4000]
    assert 0.03 < len(long) / len(lengths) < 0.10 and max(long) <= 13_500 and any(n > 8000 for n in long)
    assert sum(200 <= n <= 2500 for n in lengths) > 0.85 * len(lengths)
    lines = sorted(t.count("\n") + 1 for t in with_text)
    assert lines[len(lines) // 2] >= 5, "several lines per note"
    assert sum("\n\n" in t for t in with_text) > 0.2 * len(with_text), "blank lines between sections"
    for t in with_text:
        assert not re.search(r"(^|\n)[ \t]", t), "no line starts with a blank"
        assert "\t" not in t, "tabs only as trailing blanks"
        assert all(ord(ch) < 0x10000 for ch in t)
        assert not re.search(r"\d{10}|\d{8}[-+]\d{4}", t), "no identity number"
    rtg = [normalise(n.fields[4]) for n in extract.pas if len(n.fields) == 5 and n.fields[2] == "RTG"]
    assert any("Frågeställning:" in t and "Fynd:" in t and "Ingen fraktur." in t for t in rtg)


def test_texts_name_people_sometimes(extract: Extract) -> None:
    from pipelines.synth import names

    texts = note_texts(extract)
    given = set(names.FEMALE_GIVEN) | set(names.MALE_GIVEN)
    family = set(names.FAMILY_NAMES)
    pattern = re.compile(r"([A-ZÅÄÖÉÜ][\wåäöéüÅÄÖÉÜ]+) ([A-ZÅÄÖÉÜ][\wåäöéüÅÄÖÉÜ-]+)")
    named = sum(any(g in given and f in family for g, f in pattern.findall(t)) for t in texts)
    assert 0.05 < named / len(texts) < 0.16, named / len(texts)


def test_pas_texts_hold_separators_quotes_and_line_breaks(extract: Extract) -> None:
    raw = [n.raw.split(";", 4)[4] for n in extract.pas if len(n.fields) == 5]
    assert sum(";" in r for r in raw) > 10
    assert sum('""' in r for r in raw) > 10
    assert sum("\r\n" in r for r in raw) > 0.9 * len(raw)
    texts = [n.fields[4] for n in extract.pas if len(n.fields) == 5]
    assert any('"ont i magen"; remiss skickad' in t for t in texts)
    for t in texts:
        t.encode("cp1252")
        assert "\n" not in t.replace("\r\n", "")


def test_some_texts_carry_whitespace_the_rules_remove(extract: Extract) -> None:
    for texts, nl in (
        ([n.fields[4] for n in extract.pas if len(n.fields) == 5], "\r\n"),
        ([o["text"] for o in extract.pcs], "\n"),
    ):
        trailing = sum(bool(re.search(r"[ \t]" + re.escape(nl), t)) for t in texts)
        edges = sum(t.startswith(nl) or t.startswith(" ") or t.endswith((nl, " ")) for t in texts if normalise(t))
        changed = sum(normalise(t) != t.replace("\r\n", "\n") for t in texts if normalise(t))
        assert trailing > 0 and edges > 0
        assert 0.05 < changed / len(texts) < 0.16, changed / len(texts)
    pcs = [o["text"] for o in extract.pcs]
    assert 0 < sum("\r\n" in t for t in pcs) < 0.1 * len(pcs), "a few PCS notes with \\r\\n"


def test_corpus_is_windows_1252_and_plain() -> None:
    for s in note_text.corpus():
        s.encode("cp1252")
        assert "\t" not in s and "\n" not in s and "\r" not in s and "\\" not in s
    for pool in note_text.POOLS.values():
        assert all(s == s.strip() and s for s in pool)
    for s in note_text.PLAIN:
        assert not set(s) & set(';"\r\n')


def test_cp1252_of_three_byte_characters() -> None:
    for text in ("Smärtan – lindras\r\n", "€ … ™ ‘’ “” • — Šš Žž Œœ Ÿ ƒ ˆ ˜", "plain", "Åsa\r\n"):
        assert bytes(to_cp1252(memoryview(text.encode("utf-8")))) == text.encode("cp1252")
    with pytest.raises(UnicodeEncodeError):
        to_cp1252(memoryview("Ω".encode()))


# ------------------------------------------------------------------------------------------------
# determinism and conformance


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        generate(tmp_path / name, patients=150, seed=8 if name != "c" else 9)
    for rel in NOTE_FILES:
        a, b, c = ((tmp_path / x / rel).read_bytes() for x in "abc")
        assert a == b and a != c


def test_larger_extract_holds_long_notes_and_its_ground_truth(tmp_path: Path) -> None:
    result = generate(tmp_path, patients=3_000, seed=5)
    x = read(tmp_path, result)
    truth = Counter((r["category"], r["source_ref"]) for r in x.defects if r["entity"] == "clinical_event")
    assert note_findings(x) == truth and sum(truth.values()) == 6 * 10
    long = [len(normalise(t)) for t in note_texts(x) if len(normalise(t)) > 4000]
    assert len(long) > 100 and sum(n > 12_000 for n in long) > 0


@pytest.mark.skipif(not CONFORMANCE.exists(), reason="the shared spec tools are not present")
def test_spec_conformance_of_the_notes(extract: Extract) -> None:
    done = subprocess.run(
        [sys.executable, str(CONFORMANCE), "--extract", str(extract.root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "problems=0" in done.stdout and "unreadable_pas=2 unreadable_pcs=2" in done.stdout
