"""The legacy record layouts of ``legacy-exports.md``: columns, JSON shapes, source_refs."""

from __future__ import annotations

import polars as pl

PAS_COLUMNS: dict[str, list[str]] = {
    "patient": ["PATID", "PNR", "ENAMN", "FNAMN", "KON", "AVLIDEN", "SKYDD", "POSTNR", "KOMMUN"],
    "kontakt": ["KONTAKTID", "PATID", "KONTAKTTYP", "ENHET", "INDATUM", "UTDATUM", "STATUS"],
    "diagnos": ["KONTAKTID", "DIAGNOSKOD", "DIAGNOSTYP", "REGDATUM"],
    "atgard": ["KONTAKTID", "KVAKOD", "DATUM"],
    "anteckning": ["ANTID", "KONTAKTID", "TYP", "SIGNERAD", "TEXT"],
}
#: free-text columns: read as found (never trimmed; a quoted value may span lines), normalised by
#: the ``note_text`` transform
PAS_TEXT_COLUMNS: dict[str, str] = {"anteckning": "TEXT"}
PCS_TEXT_FIELDS: dict[str, str] = {"notes": "text"}

_S = pl.String
#: polars schema of each PCS file (dtype classes such as ``pl.String`` or instances such as ``pl.Struct(...)``)
PCS_SCHEMAS: dict[str, dict[str, pl.DataType | type[pl.DataType]]] = {
    "patients": {
        "id": _S,
        "identity": pl.Struct({"type": _S, "value": _S}),
        "name": pl.Struct({"family": _S, "given": _S}),
        "sex": _S,
        "deceased": _S,
        "protected": pl.Boolean,
        "address": pl.Struct({"postalCode": _S, "municipality": _S}),
    },
    "visits": {
        "id": _S,
        "patientId": _S,
        "type": _S,
        "unitHsaId": _S,
        "start": _S,
        "end": _S,
        "status": _S,
        "diagnoses": pl.List(pl.Struct({"code": _S, "primary": pl.Boolean})),
    },
    "medications": {
        "id": _S,
        "patientId": _S,
        "atc": _S,
        "name": _S,
        "dose": _S,
        "start": _S,
        "end": _S,
    },
    "allergies": {
        "id": _S,
        "patientId": _S,
        "substance": pl.Struct({"atc": _S, "text": _S}),
        "severity": _S,
        "recorded": _S,
    },
    "labresults": {"id": _S, "patientId": _S, "npu": _S, "value": _S, "unit": _S, "taken": _S},
    "notes": {"id": _S, "visitId": _S, "type": _S, "signed": _S, "text": _S},
}

#: The target table a file's records feed (``labresult`` has none: out of scope).
FILE_ENTITY: dict[str, str] = {
    "pas/patient.csv": "person",
    "pas/kontakt.csv": "encounter",
    "pas/diagnos.csv": "diagnosis",
    "pas/atgard.csv": "procedure",
    "pas/anteckning.csv": "clinical_event",
    "pcs/patients.jsonl": "person",
    "pcs/visits.jsonl": "encounter",
    "pcs/medications.jsonl": "orders",
    "pcs/allergies.jsonl": "allergy",
    "pcs/labresults.jsonl": "labresult",
    "pcs/notes.jsonl": "clinical_event",
}

#: ``source_ref`` of each record kind: literal parts and ``{column}`` parts, raw trimmed values.
SOURCE_REF: dict[str, list[str]] = {
    "pas/patient": ["pas:patient:", "{PATID}"],
    "pas/kontakt": ["pas:kontakt:", "{KONTAKTID}"],
    "pas/diagnos": ["pas:diagnos:", "{KONTAKTID}", ":", "{DIAGNOSKOD}", ":", "{DIAGNOSTYP}"],
    "pas/atgard": ["pas:atgard:", "{KONTAKTID}", ":", "{KVAKOD}", ":", "{DATUM}"],
    "pas/anteckning": ["pas:anteckning:", "{ANTID}"],
    "pcs/patients": ["pcs:patient:", "{id}"],
    "pcs/visits": ["pcs:visit:", "{id}"],
    "pcs/visit_diagnosis": ["pcs:diagnosis:", "{visit_id}", ":", "{code}"],
    "pcs/medications": ["pcs:medication:", "{id}"],
    "pcs/allergies": ["pcs:allergy:", "{id}"],
    "pcs/labresults": ["pcs:labresult:", "{id}"],
    "pcs/notes": ["pcs:note:", "{id}"],
}
