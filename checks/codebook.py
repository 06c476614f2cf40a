"""What every field of every legacy file means and how it is written, declared once.

From ``legacy-exports.md`` and ``clinical-notes.md``, beside the record layouts of
``checks/records.py``.
The preservation archive's ``codebook.json`` is generated from this table and the layouts the
readers use (``PAS_COLUMNS``, ``PCS_SCHEMAS``); ``codebook_rows`` refuses a table that names a
field the layouts do not have, or misses one they have, so the two cannot drift apart.
"""

from __future__ import annotations

import polars as pl

from checks.records import PAS_COLUMNS, PCS_SCHEMAS

_DATE = "YYYY-MM-DD"
_LOCAL_TS = "YYYY-MM-DD HH:MM, local time Europe/Stockholm"
_ISO_TS = "ISO 8601 timestamp with offset, e.g. 2024-03-01T09:30:00+01:00"
_PCS_ID = "text, unique within its file"

#: file → column → (meaning, form); a PCS column is a top-level JSON key
FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "pas/patient.csv": {
        "PATID": ("PAS patient id", "integer, unique within PAS"),
        "PNR": (
            "identity number (personnummer, samordningsnummer or reservnummer)",
            "12 characters, no hyphen; PAS does not say which kind, the form tells",
        ),
        "ENAMN": ("family name", "text"),
        "FNAMN": ("given names", "text"),
        "KON": ("sex", "M man, K woman, empty unknown"),
        "AVLIDEN": ("date of death", f"{_DATE} or empty"),
        "SKYDD": ("protected identity (skyddade personuppgifter)", "J yes, N or empty no"),
        "POSTNR": ("postal code", "5 digits, sometimes written '503 32'"),
        "KOMMUN": ("municipality code", "4 digits, e.g. 1490"),
    },
    "pas/kontakt.csv": {
        "KONTAKTID": ("care contact id", "integer, unique within PAS"),
        "PATID": ("the contact's patient", "PATID of patient.csv"),
        "KONTAKTTYP": ("contact type", "SV inpatient, OV outpatient, AKM emergency, DAG day surgery"),
        "ENHET": ("care unit", "PAS local unit code, e.g. MED1"),
        "INDATUM": ("start", _LOCAL_TS),
        "UTDATUM": ("end", f"{_LOCAL_TS}, or empty"),
        "STATUS": ("record status", "A active, M voided (makulerad)"),
    },
    "pas/diagnos.csv": {
        "KONTAKTID": ("the diagnosis's contact", "KONTAKTID of kontakt.csv"),
        "DIAGNOSKOD": ("ICD-10-SE code", "without the dot, sometimes in lower case, e.g. J189"),
        "DIAGNOSTYP": ("role", "H main (huvuddiagnos), B secondary (bidiagnos)"),
        "REGDATUM": ("registration date", _DATE),
    },
    "pas/atgard.csv": {
        "KONTAKTID": ("the procedure's contact", "KONTAKTID of kontakt.csv"),
        "KVAKOD": ("KVÅ procedure code", "e.g. JEA01; may be lower case"),
        "DATUM": ("date", _DATE),
    },
    "pas/anteckning.csv": {
        "ANTID": ("note id", "integer, unique within PAS"),
        "KONTAKTID": ("the note's contact", "KONTAKTID of kontakt.csv"),
        "TYP": (
            "note type",
            "RTG radiology report, EPI discharge summary, DAG daily note, OPB operation report",
        ),
        "SIGNERAD": ("signed at", f"{_LOCAL_TS}; empty for an unsigned draft"),
        "TEXT": ("the note", "free text; may hold ';', '\"' and line breaks (CRLF); thousands of characters"),
    },
    "pcs/patients.jsonl": {
        "id": ("PCS patient id", _PCS_ID),
        "identity": (
            "identity number and its kind",
            'JSON object {"type": pnr|samnr|resnr, "value": 12 characters}',
        ),
        "name": ("name", 'JSON object {"family": text, "given": text}'),
        "sex": ("sex (ISO/IEC 5218)", "1 male, 2 female, 0 not known, 9 not applicable"),
        "deceased": ("date of death", f"{_DATE} or null"),
        "protected": ("protected identity", "JSON true or false"),
        "address": ("address", 'JSON object {"postalCode": 5 digits, "municipality": 4 digits}'),
    },
    "pcs/visits.jsonl": {
        "id": ("PCS visit id", _PCS_ID),
        "patientId": ("the visit's patient", "id of patients.jsonl"),
        "type": ("visit type", "visit, phone, video, home"),
        "unitHsaId": ("care unit", "HSA id, e.g. SE2321000131-E000001000001"),
        "start": ("start", _ISO_TS),
        "end": ("end", f"{_ISO_TS}, or null"),
        "status": ("record status", "signed, draft, deleted"),
        "diagnoses": (
            "the visit's diagnoses (each element is also a record of its own: kind=diagnosis)",
            'JSON array of {"code": ICD-10-SE with the dot, "primary": true|false}',
        ),
    },
    "pcs/medications.jsonl": {
        "id": ("PCS medication id", _PCS_ID),
        "patientId": ("the medication's patient", "id of patients.jsonl"),
        "atc": ("ATC code", "e.g. C09AA05"),
        "name": ("product name", "text"),
        "dose": ("dosage", "free text, e.g. '5 mg 1 gång dagligen'"),
        "start": ("start", _DATE),
        "end": ("end", f"{_DATE} or null"),
    },
    "pcs/allergies.jsonl": {
        "id": ("PCS allergy id", _PCS_ID),
        "patientId": ("the allergy's patient", "id of patients.jsonl"),
        "substance": ("the substance", 'JSON object {"atc": ATC code} or {"text": free text}'),
        "severity": ("severity", "mild, moderate, severe"),
        "recorded": ("recorded on", _DATE),
    },
    "pcs/labresults.jsonl": {
        "id": ("PCS lab result id", _PCS_ID),
        "patientId": ("the result's patient", "id of patients.jsonl"),
        "npu": ("NPU analysis code", "e.g. NPU02319"),
        "value": ("result value", "text"),
        "unit": ("unit", "text, e.g. g/L"),
        "taken": ("sample taken at", _ISO_TS),
    },
    "pcs/notes.jsonl": {
        "id": ("PCS note id", _PCS_ID),
        "visitId": ("the note's visit", "id of visits.jsonl"),
        "type": ("note type", "journal (journal note), referral-answer (remissvar)"),
        "signed": ("signed at", f"{_ISO_TS}; null for an unsigned draft"),
        "text": ("the note", "free text; line breaks \\n (\\r\\n may occur)"),
    },
}

#: the fields of one element of a visit's ``diagnoses`` (record kind ``diagnosis``)
DIAGNOSIS_FIELDS: dict[str, tuple[str, str]] = {
    "code": ("ICD-10-SE code", "normally with the dot, e.g. J06.9"),
    "primary": ("main diagnosis of the visit", "JSON true or false"),
}


def layout_columns(file: str) -> list[str]:
    """The columns of one file as the readers' layouts declare them (``pas/patient.csv`` …)."""
    system, fname = file.split("/")
    stem = fname.rsplit(".", 1)[0]
    return list(PAS_COLUMNS[stem]) if system == "pas" else list(PCS_SCHEMAS[stem])


def diagnosis_columns() -> list[str]:
    """The fields of a visit diagnosis, from the ``diagnoses`` element of the visits layout."""
    dtype = PCS_SCHEMAS["visits"]["diagnoses"]
    assert isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct)
    return [f.name for f in dtype.inner.fields]


def codebook_rows() -> list[dict[str, str]]:
    """Every field of every file: file, column, meaning, form, in layout order.

    Raises ``ValueError`` when ``FIELDS`` and the record layouts disagree on a file's columns.
    """
    files = [f"pas/{n}.csv" for n in PAS_COLUMNS] + [f"pcs/{n}.jsonl" for n in PCS_SCHEMAS]
    if sorted(files) != sorted(FIELDS):
        raise ValueError(f"codebook files {sorted(FIELDS)} differ from the layouts' {sorted(files)}")
    rows = []
    for file in files:
        cols = layout_columns(file)
        if cols != list(FIELDS[file]):
            raise ValueError(f"codebook columns of {file} differ from its layout {cols}")
        rows += [{"file": file, "column": c, "meaning": FIELDS[file][c][0], "form": FIELDS[file][c][1]} for c in cols]
    if diagnosis_columns() != list(DIAGNOSIS_FIELDS):
        raise ValueError(f"codebook diagnosis fields differ from the layout {diagnosis_columns()}")
    rows += [
        {"file": "pcs/visits.jsonl#diagnoses[i]", "column": c, "meaning": m, "form": f}
        for c, (m, f) in DIAGNOSIS_FIELDS.items()
    ]
    return rows
