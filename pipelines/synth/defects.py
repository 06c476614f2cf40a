"""The source-defect variants: one declaration and one small function each, in one registry.

``VARIANTS`` lists every variant in the order it is injected: its ``defects.csv`` category, entity,
column and description, where its defects sit, and the function that makes them.

* A **patient-level** variant breaks the record(s) of dedicated host persons (each in one system
  only, with no other defect). Its function gets one host at a time and returns the values it
  overrides (``id`` for the identity value of either system) and a note for the description.
* A **child-level** variant appends records of its own (a contact, a visit, a diagnosis row, a
  clinical note, …) whose parents are clean (and, for a note, in scope and signed), through the
  vectorised builders of ``clinical.py``; its function makes all ``n`` instances at once and returns
  the ``Hits``. A tuple in ``over`` is cycled over the instances, so the ``i``-th instance gets
  ``values[i % len(values)]``.

So every listed defect has exactly one cause, and a rejected record pulls its children with it (the
cascade) without rows of their own in ``defects.csv``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from checks.errors import MigcheckError
from checks.identity import RESNR_LETTER_DIGIT, luhn_digit, with_identity
from pipelines.synth import calendar as cal
from pipelines.synth import clinical as K
from pipelines.synth import note_text as T
from pipelines.synth.population import Persons, Records
from pipelines.synth.world import ANY_KIND, KIND_NAME, PAS_ONLY, PCS_ONLY, PNR, PNR_SAM, RESNR, SAMNR, Hits, World

P, C = (PAS_ONLY,), (PCS_ONLY,)
PatientFn = Callable[["Ctx", int, int, str], tuple[dict[str, Any], str]]
ChildFn = Callable[["Ctx", int, Any], Hits]
Level = Literal["patient", "child"]  # "patient": on a dedicated host's own record; "child": on an appended record


@dataclass(frozen=True)
class Variant:
    """One kind of source defect: what ``defects.csv`` says about it, where it sits, how it is made."""

    name: str
    category: str
    entity: str
    column: str
    description: str
    level: Level
    systems: tuple[int, ...]  # dedicated host's system per instance (cycled); () = no dedicated host
    kinds: tuple[int, ...]  # dedicated host's identity kind per instance (cycled); () = any
    force: tuple[str, ...]  # extra host properties: sex_known, no_children, infant, died, records2/3
    make_patient: PatientFn | None  # the function of a level "patient" variant (else None)
    make_child: ChildFn | None  # the function of a level "child" variant (else None)


VARIANTS: list[Variant] = []


def variant(
    category: str,
    entity: str,
    column: str,
    description: str,
    level: Level = "child",
    systems: tuple[int, ...] = (),
    kinds: tuple[int, ...] = (),
    force: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the variant named like it (without the leading underscore)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__.lstrip("_")
        make_patient, make_child = (fn, None) if level == "patient" else (None, fn)
        VARIANTS.append(
            Variant(name, category, entity, column, description, level, systems, kinds, force, make_patient, make_child)
        )
        return fn

    return register


@dataclass
class Ctx:
    """What a variant function works with: the run, its persons and patient records."""

    w: World
    p: Persons
    rec: Records

    @property
    def rng(self) -> np.random.Generator:
        """The run's random generator."""
        return self.w.rng

    def clean(self, system: str, n: int, kinds: tuple[int, ...] = ANY_KIND) -> tuple[np.ndarray, np.ndarray]:
        """(record keys, persons) of ``n`` random clean patients of ``pas`` or ``pcs``."""
        return K.clean_records(self.w, self.p, self.rec, system, n, kinds)

    def unmapped(self, kind: str, candidates: tuple[str, ...], n: int) -> np.ndarray:
        """``n`` random candidates among those that really map to nothing."""
        return self.w.pick(self.w.ref.unmapped(kind, candidates), n)

    def pick(self, seq: Any) -> Any:
        """One random element of ``seq``."""
        return seq[int(self.rng.integers(len(seq)))]

    def contacts(self, n: int, over: dict[str, Any], **kw: Any) -> Hits:
        """``n`` contacts on clean PAS patients, every other one with diagnoses and procedures."""
        rec, person = self.clean("pas", n)
        return Hits("kontakt", K.add_contacts(self.w, self.p, rec, person, children=_even(n), over=over, **kw))

    def visits(self, n: int, over: dict[str, Any], n_dx: Any = None) -> Hits:
        """``n`` visits on clean PCS patients (with 2 or 0 diagnoses unless ``n_dx``)."""
        rec, person = self.clean("pcs", n)
        n_dx = np.where(_even(n), 2, 0) if n_dx is None else n_dx
        return Hits("visits", K.add_visits(self.w, self.p, rec, person, n_dx=n_dx, over=over))

    def diagnoses(self, n: int, over: dict[str, Any]) -> Hits:
        """``n`` diagnosis rows, each on its own clean contact."""
        return Hits("diagnos", K.add_diagnoses_on_clean(self.w, self.p, self.rec, n, over))

    def procedures(self, n: int, over: dict[str, Any]) -> Hits:
        """``n`` procedure rows, each on its own clean contact."""
        return Hits("atgard", K.add_procedures_on_clean(self.w, self.p, self.rec, n, over))

    def medications(self, n: int, over: dict[str, Any]) -> Hits:
        """``n`` medications on clean PCS patients."""
        rec, person = self.clean("pcs", n)
        return Hits("medications", K.add_medications(self.w, self.p, rec, person, over=over))

    def allergies(self, n: int, over: dict[str, Any]) -> Hits:
        """``n`` allergies on clean PCS patients."""
        rec, person = self.clean("pcs", n)
        return Hits("allergies", K.add_allergies(self.w, self.p, rec, person, over=over))

    def pas_notes(self, n: int, over: dict[str, Any]) -> Hits:
        """``n`` signed notes, each on its own clean in-scope contact."""
        contact = K.clean_contacts(self.w, self.p, self.rec, n)
        start, ctype = K.note_contacts(self.w, contact)
        return Hits("anteckning", K.add_pas_notes(self.w, contact, start=start, ctype=ctype, over=over))

    def pcs_notes(self, n: int, over: dict[str, Any]) -> Hits:
        """``n`` signed notes, each on its own clean signed visit."""
        visit = K.clean_visits(self.w, self.p, self.rec, n)
        return Hits("notes", K.add_pcs_notes(self.w, visit, start=K.note_visit_starts(self.w, visit), over=over))


def _even(n: int) -> np.ndarray:
    return np.arange(n) % 2 == 0


def _none(n: int) -> np.ndarray:
    return np.full(n, -1, dtype=np.int64)


def _with_check(body: str) -> str:
    return body + str(luhn_digit(body[2:]))


def _other_check_digit(c: Ctx, ident: str) -> str:
    return ident[:11] + str((int(ident[11]) + int(c.rng.integers(1, 10))) % 10)


def _serial(c: Ctx) -> str:
    return f"{int(c.rng.integers(0, 1000)):03d}"


# fmt: off
# ------------------------------------------------------------------------------------------------
# invalid_identifier: the patient is rejected, its contacts/visits with it (no rows of their own)

@variant("invalid_identifier", "person", "identity", "PAS identity number has a wrong check digit",
         "patient", P, PNR_SAM)
def _ii_pas_check_digit(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"id": _other_check_digit(c, ident)}, ""


_IMPOSSIBLE = (("0231", "31 February"), ("0230", "30 February"), ("0431", "31 April"),
               ("0229", "29 February of a common year"), ("1301", "month 13"), ("0631", "31 June"),
               ("0000", "month and day 00"))


@variant("invalid_identifier", "person", "identity",
         "PAS identity number holds a calendar date that does not exist, with a recomputed check digit",
         "patient", P, (PNR,))
def _ii_pas_impossible_date(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    mmdd, what = _IMPOSSIBLE[i % len(_IMPOSSIBLE)]
    year = int(ident[:4])
    if mmdd == "0229" and (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        year -= 1
    return {"id": _with_check(f"{year:04d}{mmdd}{_serial(c)}")}, f" ({what})"


@variant("invalid_identifier", "person", "identity",
         "PAS identity number is dated decades in the future, with a valid check digit", "patient", P, (PNR,))
def _ii_pas_future_date(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    year = (2091, 2088, 2095, 2102)[i % 4]
    mmdd = ident[4:8] if ident[4:8] != "0229" else "0228"
    return {"id": _with_check(f"{year}{mmdd}{_serial(c)}")}, f" (year {year})"


@variant("invalid_identifier", "person", "identity", "PCS identity value has a wrong check digit",
         "patient", C, (PNR,))
def _ii_pcs_check_digit(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"id": _other_check_digit(c, ident)}, ""


@variant("invalid_identifier", "person", "identity", "PCS identity.type disagrees with the form of the identity value",
         "patient", C, (SAMNR, PNR, PNR, RESNR))
def _ii_pcs_type_mismatch(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    declared = ("pnr", "samnr", "resnr", "pnr")[i % 4]  # the host's kind is (samnr, pnr, pnr, resnr)[i % 4]
    actual = KIND_NAME[c.p.kind[p]]
    assert declared != actual
    return {"id_type": declared}, f" (type {declared}, value a {actual})"


@variant("invalid_identifier", "person", "identity", "reservnummer has a wrong check digit",
         "patient", (PAS_ONLY, PCS_ONLY), (RESNR,))
def _ii_resnr_check_digit(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"id": _other_check_digit(c, ident)}, ""


@variant("invalid_identifier", "person", "identity",
         "reservnummer serial does not fit its sex letter, with a recomputed check digit",
         "patient", (PCS_ONLY, PAS_ONLY), (RESNR,))
def _ii_resnr_serial(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    letter = ident[8]
    low = int(c.rng.integers(3, 40))
    bad = {"M": 2 * low, "K": 2 * low + 1, "X": int(c.rng.integers(0, 80))}[letter]  # even for M, odd for K
    body = f"{ident[:8]}{letter}{bad:02d}"
    return {"id": body + str(luhn_digit(body[2:8] + str(RESNR_LETTER_DIGIT[letter]) + body[9:]))}, ""


_BAD_FORMS = (" (10-digit short form)", " (with hyphen)", " (11 characters)", " (letter in the serial)")


@variant("invalid_identifier", "person", "identity", "identity value has the wrong length or characters",
         "patient", (PAS_ONLY, PCS_ONLY), (PNR,))
def _ii_bad_form(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    form = i % 4
    letter = "ABCDEFGH"[int(c.rng.integers(8))]
    bad = (ident[2:], ident[:8] + "-" + ident[8:], ident[:11], ident[:8] + letter + ident[9:])[form]
    return {"id": bad}, _BAD_FORMS[form]


# ------------------------------------------------------------------------------------------------
# mandatory_missing

@variant("mandatory_missing", "person", "name_last", "PAS patient has no family name (ENAMN)", "patient", P)
def _mm_pas_enamn(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"ENAMN": ("", "   ")[i % 2]}, ""


@variant("mandatory_missing", "person", "name_first", "PAS patient has no given name (FNAMN)", "patient", P)
def _mm_pas_fnamn(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"FNAMN": ("", "  ")[i % 2]}, ""


@variant("mandatory_missing", "person", "identity", "PAS patient has no identity number (PNR)", "patient", P)
def _mm_pas_pnr(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"id": ("", " ")[i % 2]}, ""


@variant("mandatory_missing", "person", "name_last", "PCS patient has no family name", "patient", C)
def _mm_pcs_family(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"family": (None, "", "  ")[i % 3]}, ""


@variant("mandatory_missing", "person", "name_first", "PCS patient has no given name", "patient", C)
def _mm_pcs_given(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"given": (None, "")[i % 2]}, ""


@variant("mandatory_missing", "person", "identity", "PCS patient has no identity value", "patient", C)
def _mm_pcs_identity(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"id": (None, "")[i % 2]}, ""


@variant("mandatory_missing", "encounter", "reg_dt_tm", "PAS contact has no start (INDATUM)")
def _mm_kontakt_indatum(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.contacts(n, {"INDATUM": ("", "  ")})


@variant("mandatory_missing", "encounter", "loc_nurse_unit_cd", "PAS contact has no unit (ENHET)")
def _mm_kontakt_enhet(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.contacts(n, {"ENHET": ("", " ")})


@variant("mandatory_missing", "encounter", "encntr_type_cd", "PAS contact has no contact type (KONTAKTTYP)")
def _mm_kontakt_typ(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.contacts(n, {"KONTAKTTYP": ""})


@variant("mandatory_missing", "encounter", "reg_dt_tm", "PCS visit has no start")
def _mm_visit_start(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.visits(n, {"start": (None, "")})


@variant("mandatory_missing", "encounter", "loc_nurse_unit_cd", "PCS visit has no unitHsaId")
def _mm_visit_unit(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.visits(n, {"unitHsaId": None})


@variant("mandatory_missing", "encounter", "encntr_type_cd", "PCS visit has no type")
def _mm_visit_type(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.visits(n, {"type": (None, "")})


@variant("mandatory_missing", "diagnosis", "nomenclature_id", "PAS diagnosis row has no code (DIAGNOSKOD)")
def _mm_diagnos_kod(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.diagnoses(n, {"DIAGNOSKOD": ("", " ")})


@variant("mandatory_missing", "diagnosis", "diag_dt_tm", "PAS diagnosis row has no registration date (REGDATUM)")
def _mm_diagnos_regdatum(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.diagnoses(n, {"REGDATUM": ""})


@variant("mandatory_missing", "procedure", "nomenclature_id", "PAS procedure row has no code (KVAKOD)")
def _mm_atgard_kod(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.procedures(n, {"KVAKOD": ""})


@variant("mandatory_missing", "procedure", "proc_dt_tm", "PAS procedure row has no date (DATUM)")
def _mm_atgard_datum(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.procedures(n, {"DATUM": ""})


def _bad_visit_diagnoses(c: Ctx, n: int, code: Any) -> Hits:
    """A clean visit with one diagnosis, then a defective second diagnosis element of its own."""
    visits = c.visits(n, {}, n_dx=1).keys
    return Hits("vdx", c.w.add("vdx", _pk=visits, code=code, primary=False))


@variant("mandatory_missing", "diagnosis", "nomenclature_id", "PCS visit diagnosis element has no code")
def _mm_pcs_dx_code(c: Ctx, n: int, hosts: Any) -> Hits:
    return _bad_visit_diagnoses(c, n, (None, ""))


@variant("mandatory_missing", "orders", "atc_nomenclature_id", "PCS medication has no ATC code")
def _mm_med_atc(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.medications(n, {"atc": (None, "")})


@variant("mandatory_missing", "orders", "order_mnemonic", "PCS medication has no drug name")
def _mm_med_name(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.medications(n, {"name": None})


@variant("mandatory_missing", "orders", "orig_order_dt_tm", "PCS medication has no start date")
def _mm_med_start(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.medications(n, {"start": None})


@variant("mandatory_missing", "allergy", "severity_cd", "PCS allergy has no severity")
def _mm_allergy_severity(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.allergies(n, {"severity": None})


@variant("mandatory_missing", "allergy", "substance", "PCS allergy has no substance")
def _mm_allergy_substance(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.allergies(n, {"sub_kind": ("empty", "null"), "sub_value": None})


@variant("mandatory_missing", "clinical_event", "note_text",
         "PAS note has no text (TEXT empty or only blanks and line breaks)")
def _mm_pas_note_text(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.pas_notes(n, {"TEXT": ("", "   ", "\r\n\r\n", " \r\n  ")})


@variant("mandatory_missing", "clinical_event", "note_text",
         "PCS note has no text (empty or only blanks and line breaks)")
def _mm_pcs_note_text(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.pcs_notes(n, {"text": ("", "  ", "\n\n", " \n\t")})


@variant("mandatory_missing", "clinical_event", "event_cd", "PAS note has no note type (TYP)")
def _mm_pas_note_type(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.pas_notes(n, {"TYP": ("", " ")})


@variant("mandatory_missing", "clinical_event", "event_cd", "PCS note has no type")
def _mm_pcs_note_type(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.pcs_notes(n, {"type": ("", " ")})


# ------------------------------------------------------------------------------------------------
# unmapped_code

@variant("unmapped_code", "encounter", "loc_nurse_unit_cd", "PAS contact unit (ENHET) is not in the unit map")
def _uc_pas_enhet(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.contacts(n, {"ENHET": c.unmapped("map_pas_unit", ("MED9", "KIR9", "ONK2", "AVD7"), n)})


@variant("unmapped_code", "encounter", "loc_nurse_unit_cd", "PCS visit unitHsaId is not in the unit map")
def _uc_pcs_unit(c: Ctx, n: int, hosts: Any) -> Hits:
    units = ("SE2321000131-E000001000099", "SE2321000131-E000001000042", "SE2321000131-F000001000001")
    return c.visits(n, {"unitHsaId": c.unmapped("map_pcs_unit", units, n)})


@variant("unmapped_code", "encounter", "encntr_type_cd", "PAS contact type (KONTAKTTYP) is unknown")
def _uc_kontakttyp(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.contacts(n, {"KONTAKTTYP": c.unmapped("pas_contact_type", ("XX", "HEM", "TEL"), n)})


@variant("unmapped_code", "encounter", "encntr_type_cd", "PCS visit type is unknown")
def _uc_visit_type(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.visits(n, {"type": c.unmapped("pcs_visit_type", ("chat", "email", "letter"), n)})


@variant("unmapped_code", "diagnosis", "nomenclature_id", "PAS diagnosis code is not in the ICD-10-SE nomenclature")
def _uc_pas_icd(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.diagnoses(n, {"DIAGNOSKOD": c.unmapped("icd", ("Q999", "J18", "z999", "R999"), n)})


@variant("unmapped_code", "diagnosis", "nomenclature_id", "PCS diagnosis code is not in the ICD-10-SE nomenclature")
def _uc_pcs_icd(c: Ctx, n: int, hosts: Any) -> Hits:
    return _bad_visit_diagnoses(c, n, c.unmapped("icd", ("Q99.9", "J18", "R99.9", "Z99.9"), n))


@variant("unmapped_code", "diagnosis", "diag_type_cd", "PAS diagnosis role (DIAGNOSTYP) is unknown")
def _uc_diagnostyp(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.diagnoses(n, {"DIAGNOSTYP": c.unmapped("pas_diagnosis_type", ("Z", "X", "S"), n)})


@variant("unmapped_code", "procedure", "nomenclature_id", "PAS procedure code is not in the KVÅ nomenclature")
def _uc_kva(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.procedures(n, {"KVAKOD": c.unmapped("kva", ("ZZZ99", "JEA99", "AF999", "qxx00"), n)})


@variant("unmapped_code", "orders", "atc_nomenclature_id", "PCS medication ATC code is not in the nomenclature")
def _uc_atc(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.medications(n, {"atc": c.unmapped("atc", ("C09AA99", "N02BE99", "A10BA99"), n)})


@variant("unmapped_code", "allergy", "substance_nom_id", "PCS allergy substance ATC code is not in the nomenclature")
def _uc_allergy_atc(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.allergies(n, {"sub_kind": "atc", "sub_value": c.unmapped("atc", ("J01CE99", "Z99ZZ99"), n)})


@variant("unmapped_code", "allergy", "severity_cd", "PCS allergy severity value is unknown")
def _uc_severity(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.allergies(n, {"severity": c.unmapped("pcs_allergy_severity", ("extreme", "high", "lethal"), n)})


@variant("unmapped_code", "clinical_event", "event_cd", "PAS note type (TYP) is unknown")
def _uc_pas_note_type(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.pas_notes(n, {"TYP": _unknown(("LAB", "XYZ", "KUR"), T.PAS_TYPES)})


@variant("unmapped_code", "clinical_event", "event_cd", "PCS note type is unknown")
def _uc_pcs_note_type(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.pcs_notes(n, {"type": _unknown(("letter", "lab-report", "memo"), T.PCS_TYPES)})


@variant("unmapped_code", "person", "sex_cd", "PAS sex (KON) value is unknown", "patient", P)
def _uc_pas_kon(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"KON": str(c.pick(c.w.ref.unmapped("pas_sex", ("X", "U", "O"))))}, ""


@variant("unmapped_code", "person", "sex_cd", "PCS sex value is not an ISO/IEC 5218 code", "patient", C)
def _uc_pcs_sex(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"sex": str(c.pick(c.w.ref.unmapped("pcs_sex", ("3", "M", "K"))))}, ""


# ------------------------------------------------------------------------------------------------
# invalid_code

@variant("invalid_code", "encounter", "loc_nurse_unit_cd", "PAS contact unit maps to an inactive location")
def _ic_inactive_unit(c: Ctx, n: int, hosts: Any) -> Hits:
    if not c.w.ref.pas_units_inactive:
        raise MigcheckError("no PAS unit maps to an inactive location: cannot inject invalid_code")
    return c.contacts(n, {"ENHET": c.w.pick(c.w.ref.pas_units_inactive, n)})


# ------------------------------------------------------------------------------------------------
# duplicate (warning): every record of the group is listed

@variant("duplicate", "person", "identity", "two PAS patient records share one identity number",
         "patient", P, PNR_SAM, ("records2",))
def _dup_pas_pair(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {}, ""


@variant("duplicate", "person", "identity", "two PCS patient records share one identity value",
         "patient", C, PNR_SAM, ("records2",))
def _dup_pcs_pair(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {}, ""


@variant("duplicate", "person", "identity", "three PAS patient records share one identity number",
         "patient", P, PNR_SAM, ("records3",))
def _dup_pas_triple(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {}, ""


# ------------------------------------------------------------------------------------------------
# orphan

@variant("orphan", "encounter", "person_id", "PAS contact refers to a PATID that is not in patient.csv")
def _or_kontakt(c: Ctx, n: int, hosts: Any) -> Hits:
    ghost = c.w.ghost("pas_patient", n)
    return Hits("kontakt", K.add_contacts(c.w, c.p, _none(n), _none(n), ghost=ghost, children=_even(n)))


@variant("orphan", "encounter", "person_id", "PAS contact has an empty PATID")
def _or_kontakt_no_patid(c: Ctx, n: int, hosts: Any) -> Hits:
    return Hits("kontakt", K.add_contacts(c.w, c.p, _none(n), _none(n), ghost=-2, children=False))


def _unknown(candidates: tuple[str, ...], known: tuple[str, ...]) -> tuple[str, ...]:
    """The candidate codes that are no known value (note types have no code map of their own)."""
    return tuple(x for x in candidates if x.strip() not in known)


def _any_day(c: Ctx, n: int) -> pl.Series:
    return cal.day_text(c.rng.integers(cal.W_LO, cal.W_HI + 1, n))


@variant("orphan", "diagnosis", "encntr_id", "PAS diagnosis row refers to a KONTAKTID that is not in kontakt.csv")
def _or_diagnos(c: Ctx, n: int, hosts: Any) -> Hits:
    codes = c.w.extra["codes"]
    keys = c.w.add("diagnos", _pk=_none(n), _ghost=c.w.ghost("kontakt", n), DIAGNOSKOD=c.w.pick(codes.icd_nodot, n),
                   DIAGNOSTYP=("H", "B"), REGDATUM=_any_day(c, n))
    return Hits("diagnos", keys)


@variant("orphan", "procedure", "encntr_id", "PAS procedure row refers to a KONTAKTID that is not in kontakt.csv")
def _or_atgard(c: Ctx, n: int, hosts: Any) -> Hits:
    codes = c.w.extra["codes"]
    keys = c.w.add("atgard", _pk=_none(n), _ghost=c.w.ghost("kontakt", n), KVAKOD=c.w.pick(codes.kva, n),
                   DATUM=_any_day(c, n))
    return Hits("atgard", keys)


@variant("orphan", "encounter", "person_id", "PCS visit refers to a patientId that is not in patients")
def _or_visit(c: Ctx, n: int, hosts: Any) -> Hits:
    ghost = c.w.ghost("pcs_patient", n)
    n_dx = np.where(_even(n), 2, 0)
    return Hits("visits", K.add_visits(c.w, c.p, _none(n), _none(n), ghost=ghost, n_dx=n_dx))


@variant("orphan", "orders", "person_id", "PCS medication refers to a patientId that is not in patients")
def _or_med(c: Ctx, n: int, hosts: Any) -> Hits:
    ghost = c.w.ghost("pcs_patient", n)
    return Hits("medications", K.add_medications(c.w, c.p, _none(n), _none(n), ghost=ghost))


@variant("orphan", "allergy", "person_id", "PCS allergy refers to a patientId that is not in patients")
def _or_allergy(c: Ctx, n: int, hosts: Any) -> Hits:
    ghost = c.w.ghost("pcs_patient", n)
    return Hits("allergies", K.add_allergies(c.w, c.p, _none(n), _none(n), ghost=ghost))


def _any_time(c: Ctx, n: int) -> np.ndarray:
    """A daytime wall time on any day of the extract's years."""
    return cal.skip_gap(c.rng.integers(cal.W_LO, cal.W_HI + 1, n) * 1440 + 420 + c.rng.integers(0, 120, n) * 5)


@variant("orphan", "clinical_event", "encntr_id", "PAS note refers to a KONTAKTID that is not in kontakt.csv")
def _or_pas_note(c: Ctx, n: int, hosts: Any) -> Hits:
    ctype = c.rng.integers(0, len(K.CONTACT_TYPES), n)
    keys = K.add_pas_notes(c.w, _none(n), start=_any_time(c, n), ctype=ctype, ghost=c.w.ghost("kontakt", n))
    return Hits("anteckning", keys)


@variant("orphan", "clinical_event", "encntr_id", "PCS note refers to a visitId that is not in visits")
def _or_pcs_note(c: Ctx, n: int, hosts: Any) -> Hits:
    keys = K.add_pcs_notes(c.w, _none(n), start=_any_time(c, n), ghost=c.w.ghost("visits", n))
    return Hits("notes", keys)


# ------------------------------------------------------------------------------------------------
# implausible (warning): loaded as the source says

def _daytime_start(c: Ctx, person: np.ndarray) -> np.ndarray:
    """A start 07:00-16:55 on a day of the person's care window."""
    lo, hi = K.window(c.p, person)
    day = cal.uniform_days(c.rng, lo, hi)
    return cal.skip_gap(day * 1440 + 420 + c.rng.integers(0, 120, len(person)) * 5)


@variant("implausible", "encounter", "disch_dt_tm", "PAS contact ends (UTDATUM) before it starts")
def _im_kontakt_end_before_start(c: Ctx, n: int, hosts: Any) -> Hits:
    rec, person = c.clean("pas", n, PNR_SAM)
    start = _daytime_start(c, person)
    back = np.where(_even(n), c.rng.integers(1, 12, n) * 5, c.rng.integers(1, 72, n) * 60)
    end = cal.skip_gap(start - back)
    return Hits("kontakt", K.add_contacts(c.w, c.p, rec, person, start=start, end=end))


@variant("implausible", "encounter", "disch_dt_tm", "PCS visit ends before it starts")
def _im_visit_end_before_start(c: Ctx, n: int, hosts: Any) -> Hits:
    rec, person = c.clean("pcs", n, PNR_SAM)
    start = _daytime_start(c, person)
    end = cal.skip_gap(start - c.rng.integers(1, 12, n) * 5 - np.where(_even(n), 0, 1440))
    return Hits("visits", K.add_visits(c.w, c.p, rec, person, start=start, end=end))


def _before_birth(c: Ctx, hosts: np.ndarray) -> np.ndarray:
    birth = c.p.birth[hosts]
    span = np.minimum(400, birth - cal.W_LO)
    day = birth - 1 - (c.rng.random(len(hosts)) * span).astype(np.int64)
    return cal.skip_gap(day * 1440 + 480 + c.rng.integers(0, 100, len(hosts)) * 5)


def _after_death(c: Ctx, hosts: np.ndarray) -> np.ndarray:
    day = np.minimum(c.p.death[hosts] + c.rng.integers(31, 300, len(hosts)), cal.W_HI)
    return cal.skip_gap(day * 1440 + 480 + c.rng.integers(0, 100, len(hosts)) * 5)


@variant("implausible", "encounter", "reg_dt_tm", "PAS contact starts before the patient's birth date",
         "child", P, PNR_SAM, ("infant",))
def _im_kontakt_before_birth(c: Ctx, n: int, hosts: np.ndarray) -> Hits:
    keys = K.add_contacts(c.w, c.p, c.rec.pas_rec_of[hosts], hosts, start=_before_birth(c, hosts))
    return Hits("kontakt", keys)


@variant("implausible", "encounter", "reg_dt_tm", "PCS visit starts before the patient's birth date",
         "child", C, PNR_SAM, ("infant",))
def _im_visit_before_birth(c: Ctx, n: int, hosts: np.ndarray) -> Hits:
    return Hits("visits", K.add_visits(c.w, c.p, c.rec.pcs_rec_of[hosts], hosts, start=_before_birth(c, hosts)))


@variant("implausible", "encounter", "reg_dt_tm",
         "PAS contact starts more than 30 days after the patient's date of death", "child", P, PNR_SAM, ("died",))
def _im_kontakt_after_death(c: Ctx, n: int, hosts: np.ndarray) -> Hits:
    keys = K.add_contacts(c.w, c.p, c.rec.pas_rec_of[hosts], hosts, start=_after_death(c, hosts))
    return Hits("kontakt", keys)


@variant("implausible", "encounter", "reg_dt_tm",
         "PCS visit starts more than 30 days after the patient's date of death", "child", C, PNR_SAM, ("died",))
def _im_visit_after_death(c: Ctx, n: int, hosts: np.ndarray) -> Hits:
    return Hits("visits", K.add_visits(c.w, c.p, c.rec.pcs_rec_of[hosts], hosts, start=_after_death(c, hosts)))


@variant("implausible", "encounter", "reg_dt_tm",
         "PAS contact starts at a local time that does not exist (spring clock change)")
def _im_kontakt_dst_gap(c: Ctx, n: int, hosts: Any) -> Hits:
    recs, persons, days = [], [], []
    got = 0
    for _ in range(1000):  # clean patients whose care window holds a spring clock change
        rec, person = c.clean("pas", 2 * n, PNR_SAM)
        lo, hi = K.window(c.p, person)
        first = np.searchsorted(cal.SPRING_DAY, lo, side="left")
        count = np.searchsorted(cal.SPRING_DAY, hi, side="right") - first
        ok = np.flatnonzero(count > 0)[: n - got]
        pick = first[ok] + (c.rng.random(len(ok)) * count[ok]).astype(np.int64)
        recs.append(rec[ok])
        persons.append(person[ok])
        days.append(cal.SPRING_DAY[pick])
        got += len(ok)
        if got == n:
            break
    else:  # pragma: no cover
        raise MigcheckError("internal: no host for a spring clock-change contact")
    day = np.concatenate(days)
    start = day * 1440 + 120 + c.rng.integers(0, 12, n) * 5  # 02:00-02:55 does not exist that day
    end = day * 1440 + 180 + c.rng.integers(12, 60, n) * 5
    rec, person = np.concatenate(recs), np.concatenate(persons)
    return Hits("kontakt", K.add_contacts(c.w, c.p, rec, person, start=start, end=end, has_end=_even(n)))


@variant("implausible", "person", "deceased_dt_tm", "PAS date of death (AVLIDEN) is in the future",
         "patient", P, PNR_SAM)
def _im_pas_avliden_future(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"AVLIDEN": f"{2090 + i % 9}-{1 + i % 12:02d}-{1 + i % 28:02d}"}, ""


@variant("implausible", "person", "deceased_dt_tm", "PCS date of death is in the future", "patient", C, PNR_SAM)
def _im_pcs_deceased_future(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"deceased": f"{2092 + i % 7}-{1 + i % 12:02d}-{1 + i % 28:02d}"}, ""


@variant("implausible", "person", "sex_cd", "PAS sex (KON) contradicts the identity number's sex digit",
         "patient", P, PNR_SAM, ("sex_known",))
def _im_pas_sex_contradiction(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"KON": "K" if c.p.male[p] else "M"}, ""


@variant("implausible", "person", "sex_cd", "PCS sex contradicts the identity number's sex digit",
         "patient", C, PNR_SAM, ("sex_known",))
def _im_pcs_sex_contradiction(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"sex": "2" if c.p.male[p] else "1"}, ""


# ------------------------------------------------------------------------------------------------
# unparseable: only lines whose records have no children (decision D4)

_JSON_BREAKS = ("truncate", "comma", "single", "quote")


@variant("unparseable", "person", "", "patient.csv line has too few fields", "patient", P, (), ("no_children",))
def _up_pas_patient(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"_break": ("missing1", "missing3", "missing5")[i % 3]}, ""


@variant("unparseable", "person", "", "patients.jsonl line is not valid JSON", "patient", C, (), ("no_children",))
def _up_pcs_patient(c: Ctx, i: int, p: int, ident: str) -> tuple[dict[str, Any], str]:
    return {"_break": _JSON_BREAKS[i % 4]}, ""


@variant("unparseable", "diagnosis", "", "diagnos.csv line has an extra field")
def _up_diagnos_extra(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.diagnoses(n, {"_break": "extra"})


@variant("unparseable", "diagnosis", "", "diagnos.csv line lacks a field")
def _up_diagnos_missing(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.diagnoses(n, {"_break": "missing1"})


@variant("unparseable", "procedure", "", "atgard.csv line has an extra field")
def _up_atgard_extra(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.procedures(n, {"_break": "extra"})


@variant("unparseable", "procedure", "", "atgard.csv line lacks a field")
def _up_atgard_missing(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.procedures(n, {"_break": "missing1"})


@variant("unparseable", "encounter", "", "visits.jsonl line is not valid JSON")
def _up_visit(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.visits(n, {"_break": _JSON_BREAKS}, n_dx=0)


@variant("unparseable", "orders", "", "medications.jsonl line is not valid JSON")
def _up_med(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.medications(n, {"_break": _JSON_BREAKS})


@variant("unparseable", "allergy", "", "allergies.jsonl line is not valid JSON")
def _up_allergy(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.allergies(n, {"_break": _JSON_BREAKS})


@variant("unparseable", "labresult", "", "labresults.jsonl line is not valid JSON")
def _up_lab(c: Ctx, n: int, hosts: Any) -> Hits:
    rec, person = c.clean("pcs", n)
    return Hits("labresults", K.add_labs(c.w, c.p, rec, person, over={"_break": _JSON_BREAKS}))


@variant("unparseable", "clinical_event", "", "anteckning.csv line lacks a field")
def _up_pas_note(c: Ctx, n: int, hosts: Any) -> Hits:
    # a short one-line text, unquoted once broken: the line stands alone (no quote opens and stays open)
    return c.pas_notes(n, {"_break": ("drop_typ", "missing1"), "TEXT": T.PLAIN})


@variant("unparseable", "clinical_event", "", "notes.jsonl line is not valid JSON")
def _up_pcs_note(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.pcs_notes(n, {"_break": _JSON_BREAKS, "text": T.PLAIN})


@variant("unparseable", "encounter", "reg_dt_tm", "PAS contact start (INDATUM) cannot be read")
def _up_kontakt_date(c: Ctx, n: int, hosts: Any) -> Hits:
    rec, person = c.clean("pas", n)
    start = _daytime_start(c, person)
    bad = []
    for i, t in enumerate(cal.pas_ts(start).to_list()):
        bad.append((t[:5] + "13" + t[7:], f"{t[8:10]}.{t[5:7]}.{t[:4]} {t[11:]}", t[:8] + "32" + t[10:])[i % 3])
    keys = K.add_contacts(c.w, c.p, rec, person, start=start, children=False, over={"INDATUM": bad})
    return Hits("kontakt", keys)


@variant("unparseable", "orders", "orig_order_dt_tm", "PCS medication start date cannot be read")
def _up_med_date(c: Ctx, n: int, hosts: Any) -> Hits:
    return c.medications(n, {"start": ("2023-13-05", "31/12/2023", "2023-02-30")})
# fmt: on


# ------------------------------------------------------------------------------------------------
# the dispatchers


def inject_patient_variants(c: Ctx) -> tuple[dict[str, dict[int, Any]], dict[str, dict[int, Any]]]:
    """Run every patient-level variant on its hosts; the overrides of PAS and PCS patient records.

    An identity value a variant derives must equal no other identity value (valid or derived): a
    variant that happens to repeat one is asked again (its functions draw what they vary).
    """
    w, p, rec = c.w, c.p, c.rec
    seen: set[str] = set()  # derived values (none can be a valid identity, so none equals a drawn one)
    pas_over: dict[str, dict[int, Any]] = {}
    pcs_over: dict[str, dict[int, Any]] = {}
    for v in VARIANTS:
        make = v.make_patient
        if make is None:  # a child-level variant
            continue
        hosts = w.hosts[v.name]
        pas_keys: list[int] = []
        pcs_keys: list[int] = []
        pas_notes: list[str] = []
        pcs_notes: list[str] = []
        for i, (person, ident) in enumerate(zip(hosts.tolist(), p.ident.gather(hosts).to_list(), strict=True)):
            for _ in range(100):
                over, note = make(c, i, person, ident)
                value = over.get("id")
                if not value or not value.strip() or value not in seen:
                    break
            else:  # pragma: no cover - derived values practically never collide
                raise MigcheckError(f"internal: {v.name} could not derive a distinct identity value")
            if value and value.strip():
                seen.add(value)
            pas = p.system[person] == PAS_ONLY
            if "id" in over:
                over["PNR" if pas else "id_value"] = over.pop("id")
            target = pas_over if pas else pcs_over
            key = int(rec.pas_rec_of[person] if pas else rec.pcs_rec_of[person])
            for col, val in over.items():
                target.setdefault(col, {})[key] = val
            (pas_keys if pas else pcs_keys).append(key)
            (pas_notes if pas else pcs_notes).append(note)
        if v.category == "duplicate":  # every record of the host is listed, the host's records in order
            for table, persons in (("pas_patient", rec.pr_person), ("pcs_patient", rec.cr_person)):
                keys = np.flatnonzero(np.isin(persons, hosts))
                by_host = np.argsort(hosts)
                host_index = by_host[np.searchsorted(hosts[by_host], persons[keys])]
                if len(keys):
                    w.hits.append((v, Hits(table, keys[np.lexsort((keys, host_index))])))
            continue
        if pas_keys:
            w.hits.append((v, Hits("pas_patient", np.array(pas_keys, dtype=np.int64), pas_notes)))
        if pcs_keys:
            w.hits.append((v, Hits("pcs_patient", np.array(pcs_keys, dtype=np.int64), pcs_notes)))
    if p.ident.is_in(pl.Series(sorted(seen), dtype=pl.String).implode()).any():  # pragma: no cover - by construction
        raise MigcheckError("internal: a derived identity value equals a drawn one")
    return pas_over, pcs_over


def inject_child_variants(c: Ctx) -> None:
    """Run every child-level variant: ``per_variant`` appended defective records each."""
    for v in VARIANTS:
        if v.make_child is not None:
            c.w.hits.append((v, v.make_child(c, c.w.per_variant, c.w.hosts.get(v.name))))


def check_identities(c: Ctx, pas: pl.DataFrame, pcs: pl.DataFrame) -> None:
    """Self-check with the project's own identity rules: exactly the injected identities fail."""
    meant: dict[str, set[int]] = {"pas_patient": set(), "pcs_patient": set()}
    for v, hits in c.w.hits:
        if v.category == "invalid_identifier" or v.name in ("mm_pas_pnr", "mm_pcs_identity"):
            meant[hits.table].update(hits.keys.tolist())
    hosts = np.concatenate([np.zeros(0, dtype=np.int64), *c.w.hosts.values()])
    for table, df, declared, of in (
        ("pas_patient", pas, None, c.rec.pas_rec_of),
        ("pcs_patient", pcs, pl.col("id_type"), c.rec.pcs_rec_of),
    ):
        # every host's record and a sample of the others (all of them in a small extract)
        rows = np.union1d(of[hosts][of[hosts] >= 0], np.arange(0, df.height, max(1, df.height // 20_000)))
        value = pl.col("PNR" if table == "pas_patient" else "id_value").str.strip_chars()
        checked = with_identity(df[rows], value, cal.SELF_CHECK_DAY, declared)["id_valid"]
        failing = set(rows[~checked.fill_null(False).to_numpy()].tolist())
        if failing != meant[table] & set(rows.tolist()) or not meant[table] <= set(rows.tolist()):
            raise MigcheckError(f"internal: {table} identities are not as injected")  # pragma: no cover
