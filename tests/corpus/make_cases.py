"""Write the broken-extract corpus: each case is the files that differ from ``base/``.

Run from this folder (``python make_cases.py``); the outputs are committed, this script only
documents how each was made. ``tests/test_corpus.py`` overlays a case on a copy of ``base/``
and asserts its exact outcome.
"""

import json
import shutil
from pathlib import Path

HERE = Path(__file__).parent
BASE = HERE / "base"


def lines(rel: str) -> list[bytes]:
    return (BASE / rel).read_bytes().split(b"\r\n" if rel.startswith("pas") else b"\n")


def case(name: str, rel: str, data: bytes | None) -> None:
    p = HERE / name / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if data is not None:
        p.write_bytes(data)


def main() -> None:
    for d in HERE.iterdir():
        if d.is_dir() and d.name != "base":
            shutil.rmtree(d)
    pat = (BASE / "pas/patient.csv").read_bytes()
    # PAS written as UTF-8 / with a byte-order mark
    case("pas_utf8", "pas/patient.csv", pat.decode("cp1252").encode("utf-8"))
    case("pas_bom", "pas/patient.csv", b"\xef\xbb\xbf" + pat)
    # mixed line endings: every other line ends in LF only
    k = lines("pas/kontakt.csv")
    case(
        "pas_mixed_endings",
        "pas/kontakt.csv",
        b"".join(ln + (b"\n" if i % 2 else b"\r\n") for i, ln in enumerate(k[:-1])),
    )
    # no header / misspelled header
    d = lines("pas/diagnos.csv")
    case("pas_no_header", "pas/diagnos.csv", b"\r\n".join(d[1:]))
    case(
        "pas_misspelled_header",
        "pas/atgard.csv",
        b"\r\n".join([b"KONTAKTID;KVAKOD;DATMU", *lines("pas/atgard.csv")[1:]]),
    )
    # rows with an extra / a missing field (line 3 and 5 of atgard.csv)
    a = lines("pas/atgard.csv")
    a2 = list(a)
    a2[2] = a2[2] + b";EXTRA"
    a2[4] = b";".join(a2[4].split(b";")[:2])
    case("pas_wrong_field_counts", "pas/atgard.csv", b"\r\n".join(a2))
    # an unbalanced quote in line 4 of patient.csv (patient with no children? the test knows)
    p = lines("pas/patient.csv")
    p2 = list(p)
    f = p2[3].split(b";")
    f[2] = b'"' + f[2]
    p2[3] = b";".join(f)
    case("pas_unbalanced_quote", "pas/patient.csv", b"\r\n".join(p2))
    # truncated last line (cut in the middle, no line ending)
    k2 = list(k[:-1])
    k2[-1] = k2[-1][: len(k2[-1]) // 2]
    case("pas_truncated_last_line", "pas/kontakt.csv", b"\r\n".join(k2))
    # embedded delimiter and embedded line break in quoted fields
    p3 = list(p)
    f = p3[1].split(b";")
    f[2] = b'"' + f[2] + b';Lind"'
    p3[1] = b";".join(f)
    f = p3[2].split(b";")
    f[3] = b'"' + f[3] + b"\r\nMaria" + b'"'
    p3[2] = b";".join(f)
    case("pas_quoted_delimiter_newline", "pas/patient.csv", b"\r\n".join(p3))
    # empty (0 bytes), header only, missing
    case("pas_empty_file", "pas/atgard.csv", b"")
    case("pas_header_only", "pas/atgard.csv", b"KONTAKTID;KVAKOD;DATUM\r\n")
    (HERE / "pas_missing_file").mkdir()
    (HERE / "pas_missing_file" / "REMOVE").write_text("pas/diagnos.csv\n")
    # PCS: wrong JSON types, nulls where objects belong
    pts = (BASE / "pcs/patients.jsonl").read_text(encoding="utf-8").splitlines()
    o = json.loads(pts[1])
    o["identity"] = o["identity"]["value"]  # a string where an object belongs
    pts2 = list(pts)
    pts2[1] = json.dumps(o, ensure_ascii=False)
    vis = (BASE / "pcs/visits.jsonl").read_text(encoding="utf-8").splitlines()
    v = json.loads(vis[0])
    v["diagnoses"] = "J06.9"  # a string where a list belongs
    vis2 = list(vis)
    vis2[0] = json.dumps(v, ensure_ascii=False)
    case("pcs_wrong_types", "pcs/patients.jsonl", ("\n".join(pts2) + "\n").encode())
    case("pcs_wrong_types", "pcs/visits.jsonl", ("\n".join(vis2) + "\n").encode())
    o = json.loads(pts[2])
    o["name"] = None
    pts3 = list(pts)
    pts3[2] = json.dumps(o, ensure_ascii=False)
    case("pcs_null_objects", "pcs/patients.jsonl", ("\n".join(pts3) + "\n").encode())
    al = json.loads((BASE / "pcs/allergies.jsonl").read_text(encoding="utf-8").splitlines()[0])
    al["substance"] = None
    case("pcs_null_objects", "pcs/allergies.jsonl", (json.dumps(al, ensure_ascii=False) + "\n").encode())
    hostile()


#: values a spreadsheet would run as formulas (CSV injection), and markup, as legacy data may hold
HOSTILE = [
    '=HYPERLINK("http://example.invalid/","click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+2",
    "-2+3",
    "=1+1",
    "\t=cmd",
    "<script>alert(1)</script>",
]


def hostile() -> None:
    """Hostile values in the text fields of both systems that end up in an output: codes, units,
    types, free-text allergies (each the only change of its record, so each shows in a finding)."""

    def pas_field(rel: str, column: str, values: list[str]) -> None:
        rows = lines(rel)
        head = rows[0].decode("cp1252").split(";")
        i = head.index(column)
        out = list(rows)
        for n, v in enumerate(values, start=1):
            f = out[n].decode("cp1252").split(";")
            f[i] = '"' + v.replace('"', '""') + '"' if '"' in v or ";" in v else v
            out[n] = ";".join(f).encode("cp1252", errors="replace")
        case("hostile_values", rel, b"\r\n".join(out))

    pas_field("pas/kontakt.csv", "ENHET", HOSTILE[:3])
    pas_field("pas/diagnos.csv", "DIAGNOSKOD", HOSTILE[1:4])
    pas_field("pas/atgard.csv", "KVAKOD", HOSTILE[2:5])

    def pcs_field(rel: str, set_value, values: list[str]) -> None:
        rows = (BASE / rel).read_text(encoding="utf-8").splitlines()
        for n, v in enumerate(values):
            o = json.loads(rows[n])
            set_value(o, v)
            rows[n] = json.dumps(o, ensure_ascii=False)
        case("hostile_values", rel, ("\n".join(rows) + "\n").encode())

    pcs_field("pcs/visits.jsonl", lambda o, v: o.__setitem__("type", v), HOSTILE[3:6])
    pcs_field("pcs/medications.jsonl", lambda o, v: o.__setitem__("atc", v), HOSTILE[4:7])
    # the one allergy: a hostile free-text substance; a copy of it with a hostile severity code
    al = json.loads((BASE / "pcs/allergies.jsonl").read_text(encoding="utf-8").splitlines()[0])
    first = {**al, "substance": {"text": HOSTILE[0]}}
    second = {**al, "id": "A-09000002", "severity": HOSTILE[4]}
    rows = [json.dumps(o, ensure_ascii=False) for o in (first, second)]
    case("hostile_values", "pcs/allergies.jsonl", ("\n".join(rows) + "\n").encode())


if __name__ == "__main__":
    main()
