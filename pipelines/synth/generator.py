"""Synthetic legacy extract (PAS + PCS) with injected source defects and their ground truth.

``generate`` writes an extract in the exact formats of ``legacy-exports.md`` and ``defects.csv``,
the list of every source-layer defect it injected. How it keeps the ground truth exact:

* The bulk of the data is clean by construction: valid identities whose sex digit agrees with
  the recorded sex, mapped and active codes, encounters inside the person's life (no start before
  birth, none after death), no non-existent local times, distinct codes per contact/visit.
* Defects sit on *dedicated* records: a patient-level defect on a person who has no other defect
  and exists in one system only; a child-level defect on a record of its own (an appended
  contact, visit, diagnosis row, …) whose parents are clean. So every listed defect has exactly
  one cause, and records that are rejected pull their children with them (the cascade) without
  rows of their own.
* Rows are generated column-wise with numpy and turned into lines with polars; only the few
  defect records are built one by one. Ids are assigned at the end, in file order, with gaps
  from which the ids of orphans' missing parents are taken.

Everything is driven by one ``numpy.random.Generator(seed)``: the same arguments give the same
bytes (no clock, no hash ordering).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from checks.errors import MigcheckError
from checks.identity import RESNR_LETTER_DIGIT, classify, luhn_digit
from pipelines.synth import names as V

_MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"

DEFECT_COLUMNS = [
    "defect_id",
    "layer",
    "category",
    "entity",
    "source_ref",
    "target_ref",
    "column",
    "description",
]
PAS_HEADERS = {
    "patient.csv": ["PATID", "PNR", "ENAMN", "FNAMN", "KON", "AVLIDEN", "SKYDD", "POSTNR", "KOMMUN"],
    "kontakt.csv": ["KONTAKTID", "PATID", "KONTAKTTYP", "ENHET", "INDATUM", "UTDATUM", "STATUS"],
    "diagnos.csv": ["KONTAKTID", "DIAGNOSKOD", "DIAGNOSTYP", "REGDATUM"],
    "atgard.csv": ["KONTAKTID", "KVAKOD", "DATUM"],
}
PCS_FILES = ["patients.jsonl", "visits.jsonl", "medications.jsonl", "allergies.jsonl", "labresults.jsonl"]


@dataclass(frozen=True)
class GenerateResult:
    """What ``generate`` wrote."""

    out_dir: Path
    records: dict[str, int]  # "pas/patient.csv" -> data rows written, "pcs/visits.jsonl" -> lines, ...
    defects: int  # rows in defects.csv


def generate(out_dir: Path, patients: int = 500, seed: int = 1, defects: str = "default") -> GenerateResult:
    """Write a synthetic extract of about ``patients`` persons to ``out_dir``.

    ``defects`` is ``none`` (a clean extract, ``defects.csv`` holds only its header) or
    ``default`` (every source-layer defect variant, several times each, listed in ``defects.csv``).
    """
    if defects not in ("none", "default"):
        raise MigcheckError("--defects must be none or default")
    if not isinstance(patients, int) or patients < 1:
        raise MigcheckError("--patients must be a whole number of at least 1")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "pas").mkdir(exist_ok=True)
        (out_dir / "pcs").mkdir(exist_ok=True)
    except OSError as exc:
        raise MigcheckError(f"cannot create the extract folder {out_dir}: {exc.strerror or exc}") from None
    gen = _Generator(patients, seed, defects == "default", _Reference.load(_MAPPINGS))
    files, truth = gen.run()
    records: dict[str, int] = {}
    try:
        for rel, (payload, rows) in files.items():
            (out_dir / rel).write_bytes(payload)
            records[rel] = rows
        (out_dir / "defects.csv").write_bytes(truth.encode("utf-8"))
    except OSError as exc:
        raise MigcheckError(f"cannot write the extract to {out_dir}: {exc.strerror or exc}") from None
    return GenerateResult(out_dir=out_dir, records=records, defects=len(gen.defects))


# --------------------------------------------------------------------------------------------
# Reference data: the codes a clean record may use, and candidates that map to nothing.


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except OSError as exc:
        raise MigcheckError(f"cannot read reference file {path}: {exc.strerror or exc}") from None


def _norm_icd(code: str) -> str:
    c = code.strip().upper().replace(" ", "")
    return c[:3] + "." + c[3:] if "." not in c and len(c) > 3 else c


@dataclass(frozen=True)
class _Reference:
    icd: tuple[str, ...]  # active ICD-10-SE identifiers, with the dot
    kva: tuple[str, ...]
    atc: tuple[str, ...]
    atc_name: dict[str, str]
    pas_units: tuple[str, ...]  # map to an active location
    pas_units_inactive: tuple[str, ...]  # map to an inactive location (MED3)
    pcs_units: tuple[str, ...]
    pcs_unit_meaning: dict[str, str]
    maps: dict[str, set[str]]  # source codes of each code map

    @staticmethod
    def load(root: Path) -> _Reference:
        cv = _read_csv(root / "reference" / "code_value.csv")
        active = {(r["code_set"], r["cdf_meaning"]): r["active_ind"] == "1" for r in cv}
        vocab = {r["code_value"]: r["cdf_meaning"] for r in cv if r["code_set"] == "400"}
        icd: list[str] = []
        kva: list[str] = []
        atc: list[str] = []
        atc_name: dict[str, str] = {}
        for r in _read_csv(root / "reference" / "nomenclature.csv"):
            if r["active_ind"] != "1":
                continue
            v = vocab.get(r["source_vocabulary_cd"])
            if v == "ICD10SE":
                icd.append(r["source_identifier"])
            elif v == "KVA":
                kva.append(r["source_identifier"])
            elif v == "ATC":
                atc.append(r["source_identifier"])
                atc_name[r["source_identifier"]] = r["source_string"]
        maps: dict[str, set[str]] = {}
        unit_rows: dict[str, list[dict[str, str]]] = {}
        for name in (
            "map_pas_unit",
            "map_pcs_unit",
            "pas_contact_type",
            "pcs_visit_type",
            "pas_sex",
            "pcs_sex",
            "pas_diagnosis_type",
            "pcs_allergy_severity",
        ):
            rows = _read_csv(root / "code_maps" / f"{name}.csv")
            unit_rows[name] = rows
            maps[name] = {r["source_code"] for r in rows}
        pas_units = tuple(
            r["source_code"] for r in unit_rows["map_pas_unit"] if active.get(("220", r["target_cdf_meaning"]), False)
        )
        pas_inactive = tuple(
            r["source_code"]
            for r in unit_rows["map_pas_unit"]
            if ("220", r["target_cdf_meaning"]) in active and not active[("220", r["target_cdf_meaning"])]
        )
        pcs_rows = [r for r in unit_rows["map_pcs_unit"] if active.get(("220", r["target_cdf_meaning"]), False)]
        for need, what in (
            (icd, "ICD-10-SE codes"),
            (kva, "KVÅ codes"),
            (atc, "ATC codes"),
            (pas_units, "PAS units"),
            (pcs_rows, "PCS units"),
        ):
            if not need:
                raise MigcheckError(f"no active {what} in {root}: cannot generate an extract")
        return _Reference(
            icd=tuple(icd),
            kva=tuple(kva),
            atc=tuple(atc),
            atc_name=atc_name,
            pas_units=pas_units,
            pas_units_inactive=pas_inactive,
            pcs_units=tuple(r["source_code"] for r in pcs_rows),
            pcs_unit_meaning={r["target_cdf_meaning"]: r["source_code"] for r in pcs_rows},
            maps=maps,
        )

    def unmapped(self, kind: str, candidates: tuple[str, ...]) -> tuple[str, ...]:
        """The candidates that really map to nothing (so a corrected map cannot make a defect clean)."""
        if kind == "icd":
            known = set(self.icd)
            out = tuple(c for c in candidates if _norm_icd(c) not in known)
        elif kind in ("kva", "atc"):
            known = set(self.kva if kind == "kva" else self.atc)
            out = tuple(c for c in candidates if c.strip().upper() not in known)
        else:
            out = tuple(c for c in candidates if c not in self.maps[kind])
        if not out:
            raise MigcheckError(f"every candidate unmapped code for {kind} is mapped: cannot inject the defect")
        return out


# --------------------------------------------------------------------------------------------
# Calendar: days since 1970-01-01 for dates, minutes since 1970-01-01 00:00 for local wall time.

_EPOCH = dt.date(1970, 1, 1)
_EPOCH_DT = dt.datetime(1970, 1, 1)


def _days(d: dt.date) -> int:
    return (d - _EPOCH).days


def _date_str(days: int) -> str:
    return (_EPOCH + dt.timedelta(days=int(days))).isoformat()


def _last_sunday(year: int, month: int) -> dt.date:
    d = dt.date(year, month, 31)
    return d - dt.timedelta(days=(d.weekday() + 1) % 7)


_Y0, _Y1 = 1996, 2100  # EU summer-time rules hold unchanged over these years
_SPRING_DAY = np.array([_days(_last_sunday(y, 3)) for y in range(_Y0, _Y1 + 1)], dtype=np.int64)
_AUTUMN_DAY = np.array([_days(_last_sunday(y, 10)) for y in range(_Y0, _Y1 + 1)], dtype=np.int64)
_GAP_START = _SPRING_DAY * 1440 + 120  # 02:00 local: clocks go to 03:00
_SUMMER_END = _AUTUMN_DAY * 1440 + 180  # 03:00 summer time: clocks go back to 02:00

_B_LO, _B_HI = _days(dt.date(1925, 1, 1)), _days(dt.date(2024, 12, 31))  # birth dates
_W_LO, _W_HI = _days(dt.date(2015, 1, 1)), _days(dt.date(2025, 10, 31))  # care events
_DEATH_HI = _days(dt.date(2025, 6, 30))
_OLD = _days(dt.date(1960, 1, 1))
_SELF_CHECK_DAY = dt.date(2026, 1, 1)  # "today" for internal assertions only; the output never depends on it


def _year_index(days: np.ndarray) -> np.ndarray:
    years = days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    return np.clip(years - _Y0, 0, _Y1 - _Y0)


def _skip_gap(t: np.ndarray) -> np.ndarray:
    """Move wall times inside the skipped spring hour one hour forward (they do not exist)."""
    g = _GAP_START[_year_index(t // 1440)]
    return np.where((t >= g) & (t < g + 60), t + 60, t)


def _is_summer(t: np.ndarray) -> np.ndarray:
    """Summer time (UTC+2) for a Stockholm wall time; the repeated October hour reads as summer."""
    y = _year_index(t // 1440)
    return (t >= _GAP_START[y]) & (t < _SUMMER_END[y])


def _ts_series(t: np.ndarray, fmt: str) -> pl.Series:
    return pl.Series((t * 60_000).astype("datetime64[ms]")).dt.strftime(fmt)


def _pas_ts_series(t: np.ndarray) -> pl.Series:
    return _ts_series(t, "%Y-%m-%d %H:%M")


def _pcs_ts_series(t: np.ndarray) -> pl.Series:
    off = np.where(_is_summer(t), "+02:00", "+01:00")
    return _ts_series(t, "%Y-%m-%dT%H:%M:00") + pl.Series(off)


def _day_series(days: np.ndarray) -> pl.Series:
    return pl.Series(days.astype("datetime64[D]")).dt.strftime("%Y-%m-%d")


def _pas_ts(t: int) -> str:
    return f"{_EPOCH_DT + dt.timedelta(minutes=int(t)):%Y-%m-%d %H:%M}"


def _pcs_ts(t: int) -> str:
    off = "+02:00" if bool(_is_summer(np.array([t]))[0]) else "+01:00"
    return f"{_EPOCH_DT + dt.timedelta(minutes=int(t)):%Y-%m-%dT%H:%M}:00{off}"


def _fix_gap(t: int) -> int:
    return int(_skip_gap(np.array([t], dtype=np.int64))[0])


# --------------------------------------------------------------------------------------------
# Defect variants.

_PNR, _SAMNR, _RESNR = 0, 1, 2
_KIND_NAME = ("pnr", "samnr", "resnr")
_PAS_ONLY, _BOTH, _PCS_ONLY = 0, 1, 2


@dataclass(frozen=True)
class _Variant:
    name: str
    category: str
    entity: str
    column: str
    description: str
    level: str  # "patient": the defect is on a dedicated patient record; "child": on an appended record
    systems: tuple[int, ...] = ()  # dedicated host's system per instance (cycled); () = no dedicated host
    kinds: tuple[int, ...] = ()  # dedicated host's identity kind per instance (cycled); () = any
    force: tuple[str, ...] = ()  # extra host properties: sex_known, no_children, infant, died, records2/3


def _v(
    name: str,
    category: str,
    entity: str,
    column: str,
    description: str,
    level: str = "child",
    systems: tuple[int, ...] = (),
    kinds: tuple[int, ...] = (),
    force: tuple[str, ...] = (),
) -> _Variant:
    return _Variant(name, category, entity, column, description, level, systems, kinds, force)


P, C = (_PAS_ONLY,), (_PCS_ONLY,)
PNR_SAM = (_PNR, _SAMNR)
# fmt: off
VARIANTS: tuple[_Variant, ...] = (
    # invalid_identifier: the patient is rejected, its contacts/visits with it (no rows of their own)
    _v("ii_pas_check_digit", "invalid_identifier", "person", "identity",
       "PAS identity number has a wrong check digit", "patient", P, PNR_SAM),
    _v("ii_pas_impossible_date", "invalid_identifier", "person", "identity",
       "PAS identity number holds a calendar date that does not exist, with a recomputed check digit",
       "patient", P, (_PNR,)),
    _v("ii_pas_future_date", "invalid_identifier", "person", "identity",
       "PAS identity number is dated decades in the future, with a valid check digit", "patient", P, (_PNR,)),
    _v("ii_pcs_check_digit", "invalid_identifier", "person", "identity",
       "PCS identity value has a wrong check digit", "patient", C, (_PNR,)),
    _v("ii_pcs_type_mismatch", "invalid_identifier", "person", "identity",
       "PCS identity.type disagrees with the form of the identity value",
       "patient", C, (_SAMNR, _PNR, _PNR, _RESNR)),
    _v("ii_resnr_check_digit", "invalid_identifier", "person", "identity",
       "reservnummer has a wrong check digit", "patient", (_PAS_ONLY, _PCS_ONLY), (_RESNR,)),
    _v("ii_resnr_serial", "invalid_identifier", "person", "identity",
       "reservnummer serial does not fit its sex letter, with a recomputed check digit",
       "patient", (_PCS_ONLY, _PAS_ONLY), (_RESNR,)),
    _v("ii_bad_form", "invalid_identifier", "person", "identity",
       "identity value has the wrong length or characters", "patient", (_PAS_ONLY, _PCS_ONLY), (_PNR,)),
    # mandatory_missing
    _v("mm_pas_enamn", "mandatory_missing", "person", "name_last",
       "PAS patient has no family name (ENAMN)", "patient", P),
    _v("mm_pas_fnamn", "mandatory_missing", "person", "name_first",
       "PAS patient has no given name (FNAMN)", "patient", P),
    _v("mm_pas_pnr", "mandatory_missing", "person", "identity",
       "PAS patient has no identity number (PNR)", "patient", P),
    _v("mm_pcs_family", "mandatory_missing", "person", "name_last",
       "PCS patient has no family name", "patient", C),
    _v("mm_pcs_given", "mandatory_missing", "person", "name_first",
       "PCS patient has no given name", "patient", C),
    _v("mm_pcs_identity", "mandatory_missing", "person", "identity",
       "PCS patient has no identity value", "patient", C),
    _v("mm_kontakt_indatum", "mandatory_missing", "encounter", "reg_dt_tm",
       "PAS contact has no start (INDATUM)"),
    _v("mm_kontakt_enhet", "mandatory_missing", "encounter", "loc_nurse_unit_cd",
       "PAS contact has no unit (ENHET)"),
    _v("mm_kontakt_typ", "mandatory_missing", "encounter", "encntr_type_cd",
       "PAS contact has no contact type (KONTAKTTYP)"),
    _v("mm_visit_start", "mandatory_missing", "encounter", "reg_dt_tm",
       "PCS visit has no start"),
    _v("mm_visit_unit", "mandatory_missing", "encounter", "loc_nurse_unit_cd",
       "PCS visit has no unitHsaId"),
    _v("mm_visit_type", "mandatory_missing", "encounter", "encntr_type_cd",
       "PCS visit has no type"),
    _v("mm_diagnos_kod", "mandatory_missing", "diagnosis", "nomenclature_id",
       "PAS diagnosis row has no code (DIAGNOSKOD)"),
    _v("mm_diagnos_regdatum", "mandatory_missing", "diagnosis", "diag_dt_tm",
       "PAS diagnosis row has no registration date (REGDATUM)"),
    _v("mm_atgard_kod", "mandatory_missing", "procedure", "nomenclature_id",
       "PAS procedure row has no code (KVAKOD)"),
    _v("mm_atgard_datum", "mandatory_missing", "procedure", "proc_dt_tm",
       "PAS procedure row has no date (DATUM)"),
    _v("mm_pcs_dx_code", "mandatory_missing", "diagnosis", "nomenclature_id",
       "PCS visit diagnosis element has no code"),
    _v("mm_med_atc", "mandatory_missing", "orders", "atc_nomenclature_id",
       "PCS medication has no ATC code"),
    _v("mm_med_name", "mandatory_missing", "orders", "order_mnemonic",
       "PCS medication has no drug name"),
    _v("mm_med_start", "mandatory_missing", "orders", "orig_order_dt_tm",
       "PCS medication has no start date"),
    _v("mm_allergy_severity", "mandatory_missing", "allergy", "severity_cd",
       "PCS allergy has no severity"),
    _v("mm_allergy_substance", "mandatory_missing", "allergy", "substance",
       "PCS allergy has no substance"),
    # unmapped_code
    _v("uc_pas_enhet", "unmapped_code", "encounter", "loc_nurse_unit_cd",
       "PAS contact unit (ENHET) is not in the unit map"),
    _v("uc_pcs_unit", "unmapped_code", "encounter", "loc_nurse_unit_cd",
       "PCS visit unitHsaId is not in the unit map"),
    _v("uc_kontakttyp", "unmapped_code", "encounter", "encntr_type_cd",
       "PAS contact type (KONTAKTTYP) is unknown"),
    _v("uc_visit_type", "unmapped_code", "encounter", "encntr_type_cd",
       "PCS visit type is unknown"),
    _v("uc_pas_icd", "unmapped_code", "diagnosis", "nomenclature_id",
       "PAS diagnosis code is not in the ICD-10-SE nomenclature"),
    _v("uc_pcs_icd", "unmapped_code", "diagnosis", "nomenclature_id",
       "PCS diagnosis code is not in the ICD-10-SE nomenclature"),
    _v("uc_diagnostyp", "unmapped_code", "diagnosis", "diag_type_cd",
       "PAS diagnosis role (DIAGNOSTYP) is unknown"),
    _v("uc_kva", "unmapped_code", "procedure", "nomenclature_id",
       "PAS procedure code is not in the KVÅ nomenclature"),
    _v("uc_atc", "unmapped_code", "orders", "atc_nomenclature_id",
       "PCS medication ATC code is not in the nomenclature"),
    _v("uc_allergy_atc", "unmapped_code", "allergy", "substance_nom_id",
       "PCS allergy substance ATC code is not in the nomenclature"),
    _v("uc_severity", "unmapped_code", "allergy", "severity_cd",
       "PCS allergy severity value is unknown"),
    _v("uc_pas_kon", "unmapped_code", "person", "sex_cd",
       "PAS sex (KON) value is unknown", "patient", P),
    _v("uc_pcs_sex", "unmapped_code", "person", "sex_cd",
       "PCS sex value is not an ISO/IEC 5218 code", "patient", C),
    # invalid_code
    _v("ic_inactive_unit", "invalid_code", "encounter", "loc_nurse_unit_cd",
       "PAS contact unit maps to an inactive location"),
    # duplicate (warning): every record of the group is listed
    _v("dup_pas_pair", "duplicate", "person", "identity",
       "two PAS patient records share one identity number", "patient", P, PNR_SAM, ("records2",)),
    _v("dup_pcs_pair", "duplicate", "person", "identity",
       "two PCS patient records share one identity value", "patient", C, PNR_SAM, ("records2",)),
    _v("dup_pas_triple", "duplicate", "person", "identity",
       "three PAS patient records share one identity number", "patient", P, PNR_SAM, ("records3",)),
    # orphan
    _v("or_kontakt", "orphan", "encounter", "person_id",
       "PAS contact refers to a PATID that is not in patient.csv"),
    _v("or_kontakt_no_patid", "orphan", "encounter", "person_id",
       "PAS contact has an empty PATID"),
    _v("or_diagnos", "orphan", "diagnosis", "encntr_id",
       "PAS diagnosis row refers to a KONTAKTID that is not in kontakt.csv"),
    _v("or_atgard", "orphan", "procedure", "encntr_id",
       "PAS procedure row refers to a KONTAKTID that is not in kontakt.csv"),
    _v("or_visit", "orphan", "encounter", "person_id",
       "PCS visit refers to a patientId that is not in patients"),
    _v("or_med", "orphan", "orders", "person_id",
       "PCS medication refers to a patientId that is not in patients"),
    _v("or_allergy", "orphan", "allergy", "person_id",
       "PCS allergy refers to a patientId that is not in patients"),
    # implausible (warning): loaded as the source says
    _v("im_kontakt_end_before_start", "implausible", "encounter", "disch_dt_tm",
       "PAS contact ends (UTDATUM) before it starts"),
    _v("im_visit_end_before_start", "implausible", "encounter", "disch_dt_tm",
       "PCS visit ends before it starts"),
    _v("im_kontakt_before_birth", "implausible", "encounter", "reg_dt_tm",
       "PAS contact starts before the patient's birth date", "child", P, PNR_SAM, ("infant",)),
    _v("im_visit_before_birth", "implausible", "encounter", "reg_dt_tm",
       "PCS visit starts before the patient's birth date", "child", C, PNR_SAM, ("infant",)),
    _v("im_kontakt_after_death", "implausible", "encounter", "reg_dt_tm",
       "PAS contact starts more than 30 days after the patient's date of death",
       "child", P, PNR_SAM, ("died",)),
    _v("im_visit_after_death", "implausible", "encounter", "reg_dt_tm",
       "PCS visit starts more than 30 days after the patient's date of death",
       "child", C, PNR_SAM, ("died",)),
    _v("im_kontakt_dst_gap", "implausible", "encounter", "reg_dt_tm",
       "PAS contact starts at a local time that does not exist (spring clock change)"),
    _v("im_pas_avliden_future", "implausible", "person", "deceased_dt_tm",
       "PAS date of death (AVLIDEN) is in the future", "patient", P, PNR_SAM),
    _v("im_pcs_deceased_future", "implausible", "person", "deceased_dt_tm",
       "PCS date of death is in the future", "patient", C, PNR_SAM),
    _v("im_pas_sex_contradiction", "implausible", "person", "sex_cd",
       "PAS sex (KON) contradicts the identity number's sex digit", "patient", P, PNR_SAM, ("sex_known",)),
    _v("im_pcs_sex_contradiction", "implausible", "person", "sex_cd",
       "PCS sex contradicts the identity number's sex digit", "patient", C, PNR_SAM, ("sex_known",)),
    # unparseable: only lines whose records have no children (decision D4)
    _v("up_pas_patient", "unparseable", "person", "",
       "patient.csv line has too few fields", "patient", P, (), ("no_children",)),
    _v("up_pcs_patient", "unparseable", "person", "",
       "patients.jsonl line is not valid JSON", "patient", C, (), ("no_children",)),
    _v("up_diagnos_extra", "unparseable", "diagnosis", "",
       "diagnos.csv line has an extra field"),
    _v("up_diagnos_missing", "unparseable", "diagnosis", "",
       "diagnos.csv line lacks a field"),
    _v("up_atgard_extra", "unparseable", "procedure", "",
       "atgard.csv line has an extra field"),
    _v("up_atgard_missing", "unparseable", "procedure", "",
       "atgard.csv line lacks a field"),
    _v("up_visit", "unparseable", "encounter", "",
       "visits.jsonl line is not valid JSON"),
    _v("up_med", "unparseable", "orders", "",
       "medications.jsonl line is not valid JSON"),
    _v("up_allergy", "unparseable", "allergy", "",
       "allergies.jsonl line is not valid JSON"),
    _v("up_lab", "unparseable", "labresult", "",
       "labresults.jsonl line is not valid JSON"),
    _v("up_kontakt_date", "unparseable", "encounter", "reg_dt_tm",
       "PAS contact start (INDATUM) cannot be read"),
    _v("up_med_date", "unparseable", "orders", "orig_order_dt_tm",
       "PCS medication start date cannot be read"),
)
# fmt: on

_CONTACT_TYPES = ("SV", "OV", "AKM", "DAG")
_CONTACT_TYPE_P = (0.20, 0.55, 0.15, 0.10)
_VISIT_TYPES = ("visit", "phone", "video", "home")
_VISIT_TYPE_P = (0.55, 0.30, 0.08, 0.07)
_SEVERITIES = ("mild", "moderate", "severe")
# Preferred units per contact type (those not in the active map are dropped).
_UNITS_BY_TYPE = (
    ("MED1", "MED2", "KIR1", "ORT", "BARN", "KVK", "GER", "IVA", "ONK", "KARD"),
    ("MED1", "MED2", "KIR1", "ORT", "BARN", "KVK", "GER", "ONK", "KARD"),
    ("AKM",),
    ("DKIR", "KIR1", "ORT"),
)
_HOME_UNIT = {
    "1490": ("VC_BORAS", "VC_NORRBY", "VC_HESTRA"),
    "1491": ("VC_ULRICE",),
    "1463": ("VC_KINNA",),
    "1465": ("VC_SVENLJ",),
    "1452": ("VC_TRANEMO",),
    "1443": ("VC_BOLLEB",),
}


def _coprime_steps(n: int) -> np.ndarray:
    return np.array([s for s in range(1, max(n, 2)) if math.gcd(s, n) == 1] or [1], dtype=np.int64)


def _positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For children repeated by ``counts``: the parent index of each child and its position 0..k-1."""
    parent = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return parent, np.arange(len(parent)) - starts[parent]


def _js(e: pl.Expr) -> pl.Expr:
    """A string column as JSON text (``null`` for null)."""
    esc = e.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
    return pl.when(e.is_null()).then(pl.lit("null")).otherwise(pl.lit('"') + esc + pl.lit('"'))


def _keep(e: pl.Expr, mask: np.ndarray) -> pl.Expr:
    """The column where ``mask`` holds, null elsewhere."""
    return pl.when(pl.lit(pl.Series(mask, dtype=pl.Boolean))).then(e).otherwise(None)


def _jb(e: pl.Expr) -> pl.Expr:
    return pl.when(e).then(pl.lit("true")).otherwise(pl.lit("false"))


def _csv_field(e: pl.Expr) -> pl.Expr:
    """A PAS field: quoted only when it holds the separator, a quote or a line break."""
    e = e.fill_null("")
    quoted = pl.lit('"') + e.str.replace_all('"', '""', literal=True) + pl.lit('"')
    return pl.when(e.str.contains('[;"\r\n]')).then(quoted).otherwise(e)


@dataclass
class _Defect:
    variant: _Variant
    table: str
    key: int
    note: str


# Column schemas of the internal tables (``_k`` record key, ``_pk`` parent key, ``_ghost``: index of a
# non-existent parent id, -2 for an empty parent id, -1 for none; ``_break``: how the line is broken).
_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "kontakt": {
        "_k": pl.Int64,
        "_pk": pl.Int64,
        "_ghost": pl.Int64,
        "KONTAKTTYP": pl.String,
        "ENHET": pl.String,
        "INDATUM": pl.String,
        "UTDATUM": pl.String,
        "STATUS": pl.String,
        "_sort": pl.String,
        "_break": pl.String,
    },
    "diagnos": {
        "_k": pl.Int64,
        "_pk": pl.Int64,
        "_ghost": pl.Int64,
        "DIAGNOSKOD": pl.String,
        "DIAGNOSTYP": pl.String,
        "REGDATUM": pl.String,
        "_break": pl.String,
    },
    "atgard": {
        "_k": pl.Int64,
        "_pk": pl.Int64,
        "_ghost": pl.Int64,
        "KVAKOD": pl.String,
        "DATUM": pl.String,
        "_break": pl.String,
    },
    "visits": {
        "_k": pl.Int64,
        "_pk": pl.Int64,
        "_ghost": pl.Int64,
        "type": pl.String,
        "unitHsaId": pl.String,
        "start": pl.String,
        "end": pl.String,
        "status": pl.String,
        "_sort": pl.String,
        "_break": pl.String,
    },
    "vdx": {"_k": pl.Int64, "_pk": pl.Int64, "code": pl.String, "primary": pl.Boolean},
    "medications": {
        "_k": pl.Int64,
        "_pk": pl.Int64,
        "_ghost": pl.Int64,
        "atc": pl.String,
        "name": pl.String,
        "dose": pl.String,
        "start": pl.String,
        "end": pl.String,
        "_sort": pl.String,
        "_break": pl.String,
    },
    "allergies": {
        "_k": pl.Int64,
        "_pk": pl.Int64,
        "_ghost": pl.Int64,
        "sub_kind": pl.String,
        "sub_value": pl.String,
        "severity": pl.String,
        "recorded": pl.String,
        "_sort": pl.String,
        "_break": pl.String,
    },
    "labresults": {
        "_k": pl.Int64,
        "_pk": pl.Int64,
        "_ghost": pl.Int64,
        "npu": pl.String,
        "value": pl.String,
        "unit": pl.String,
        "taken": pl.String,
        "_sort": pl.String,
        "_break": pl.String,
    },
}


class _Generator:
    def __init__(self, patients: int, seed: int, inject: bool, ref: _Reference) -> None:
        self.rng = np.random.default_rng(seed)
        self.ref = ref
        self.inject = inject
        self.per_variant = max(2, patients // 500) if inject else 0
        self.defects: list[_Defect] = []
        self.pas_over: dict[int, dict[str, str | None]] = {}  # person -> PAS column overrides
        self.pcs_over: dict[int, dict[str, object]] = {}
        self.added: dict[str, list[dict]] = {t: [] for t in _SCHEMAS}
        self.next_key: dict[str, int] = {}
        self.ghosts: dict[str, int] = {"pas_patient": 0, "kontakt": 0, "pcs_patient": 0}
        self.hosts: dict[str, list[int]] = {}
        n_dedicated = self.per_variant * sum(1 for v in VARIANTS if v.systems)
        self.n = max(patients, n_dedicated + max(n_dedicated, 30)) if inject else patients
        self.icd_nodot = np.array([c.replace(".", "") for c in ref.icd])
        self.icd_dot = np.array(ref.icd)
        self.kva = np.array(ref.kva)
        self.atc = np.array(ref.atc)
        self.pas_units_by_type = tuple(
            np.array([u for u in us if u in ref.pas_units] or list(ref.pas_units)) for us in _UNITS_BY_TYPE
        )

    # ---------------------------------------------------------------- plan of persons

    def _plan(self) -> None:
        r, n = self.rng, self.n
        u = r.random(n)
        self.system = np.where(u < 0.40, _PAS_ONLY, np.where(u < 0.70, _BOTH, _PCS_ONLY)).astype(np.int8)
        u = r.random(n)
        self.kind = np.where(u < 0.90, _PNR, np.where(u < 0.96, _SAMNR, _RESNR)).astype(np.int8)
        self.male = r.random(n) < 0.5
        self.x_letter = r.random(n) < 0.15  # reservnummer for a person of unknown sex
        self.birth = r.integers(_B_LO, _B_HI + 1, n)
        self.dead = r.random(n) < np.where(self.birth < _OLD, 0.15, 0.02)
        self.u_death = r.random(n)
        self.death = np.zeros(n, dtype=np.int64)
        self._draw_death(np.arange(n))
        self.protected = r.random(n) < 0.015
        self.u_kon = r.random(n)
        self.u_pcs_sex = r.random(n)
        self.sex_known = np.zeros(n, dtype=bool)  # forced: the recorded sex must be known
        self.no_children = np.zeros(n, dtype=bool)
        self.reserved = np.zeros(n, dtype=bool)
        self.n_pas_rec = (self.system <= _BOTH).astype(np.int64)
        self.n_pcs_rec = (self.system >= _BOTH).astype(np.int64)

    def _draw_death(self, idx: np.ndarray, lo: int | None = None, hi: int = _DEATH_HI) -> None:
        first = np.maximum(self.birth[idx] + 1, _W_LO if lo is None else lo)
        span = np.maximum(hi - first, 0)
        self.death[idx] = first + (self.u_death[idx] * (span + 1)).astype(np.int64)

    def _window(self, p: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        lo = np.maximum(self.birth[p], _W_LO)
        hi = np.where(self.dead[p], np.minimum(self.death[p], _W_HI), _W_HI)
        return lo, np.maximum(hi, lo)

    def _reserve(self, v: _Variant) -> None:
        """Pick and shape the dedicated host persons of a variant (before any record exists)."""
        r, hosts = self.rng, []
        for i in range(self.per_variant):
            system = v.systems[i % len(v.systems)]
            kinds = (v.kinds[i % len(v.kinds)],) if v.kinds else (_PNR, _SAMNR, _RESNR)
            p = -1
            for _ in range(64):  # most persons qualify: try random ones first
                q = int(r.integers(self.n))
                if not self.reserved[q] and self.system[q] == system and self.kind[q] in kinds:
                    p = q
                    break
            if p < 0:
                free = ~self.reserved
                for mask in (
                    free & (self.system == system) & np.isin(self.kind, kinds),
                    free & (self.system == system),
                    free,
                ):
                    cand = np.flatnonzero(mask)
                    if len(cand):
                        break
                else:  # pragma: no cover - the plan is sized for every dedicated host
                    raise MigcheckError("internal: too few synthetic persons for the defect hosts")
                p = int(cand[r.integers(len(cand))])
            self.reserved[p] = True
            self.system[p] = system
            if self.kind[p] not in kinds:
                self.kind[p] = kinds[int(r.integers(len(kinds)))]
            self.n_pas_rec[p] = 1 if system <= _BOTH else 0
            self.n_pcs_rec[p] = 1 if system >= _BOTH else 0
            if "records2" in v.force or "records3" in v.force:
                k = 3 if "records3" in v.force else 2
                if system == _PAS_ONLY:
                    self.n_pas_rec[p] = k
                else:
                    self.n_pcs_rec[p] = k
            if "sex_known" in v.force:
                self.sex_known[p] = True
            if "no_children" in v.force:
                self.no_children[p] = True
            if "infant" in v.force:
                self.birth[p] = r.integers(_days(dt.date(2016, 6, 1)), _days(dt.date(2024, 6, 30)) + 1)
                self.dead[p] = False
            if "died" in v.force:
                if self.birth[p] > _days(dt.date(2005, 1, 1)):
                    self.birth[p] = r.integers(_days(dt.date(1930, 1, 1)), _days(dt.date(2005, 1, 1)))
                self.dead[p] = True
                self._draw_death(np.array([p]), _days(dt.date(2016, 1, 1)), _days(dt.date(2024, 12, 31)))
            hosts.append(p)
        self.hosts[v.name] = hosts

    def _derive(self) -> None:
        """Attributes that follow from the (possibly forced) plan: recorded sex, names, places."""
        r, n = self.rng, self.n
        x = (self.kind == _RESNR) & self.x_letter & ~self.sex_known
        self.sex_unknown = x
        self.kon = np.where(x | ((self.u_kon < 0.02) & ~self.sex_known), "", np.where(self.male, "M", "K"))
        pcs = np.where(self.male, "1", "2")
        pcs = np.where((self.u_pcs_sex < 0.015) & ~self.sex_known, "0", pcs)
        pcs = np.where((self.u_pcs_sex > 0.995) & ~self.sex_known, "9", pcs)
        self.pcs_sex = np.where(x, "0", pcs)
        fam = np.array(V.FAMILY_NAMES)
        f1 = r.integers(0, len(fam), n)
        f2 = (f1 + r.integers(1, len(fam), n)) % len(fam)
        double = r.random(n) < 0.07
        self.family = np.where(double, np.char.add(np.char.add(fam[f1], "-"), fam[f2]), fam[f1]).astype(object)
        fem, mal = np.array(V.FEMALE_GIVEN), np.array(V.MALE_GIVEN)
        g1 = np.where(self.male, mal[r.integers(0, len(mal), n)], fem[r.integers(0, len(fem), n)])
        g2 = np.where(self.male, mal[r.integers(0, len(mal), n)], fem[r.integers(0, len(fem), n)])
        two = (r.random(n) < 0.25) & (g1 != g2)
        self.first_given = g1.astype(object)
        self.given = np.where(two, np.char.add(np.char.add(g1, " "), g2), g1).astype(object)
        weights = np.array([30, 6, 6, 2, 2, 2, 2, 2, 3, 8], dtype=float)[: len(V.MUNICIPALITIES)]
        mun = r.choice(len(V.MUNICIPALITIES), n, p=weights / weights.sum())
        pre = r.integers(0, 1 << 30, n)
        last = r.integers(10, 100, n)
        self.kommun = np.array([V.MUNICIPALITIES[m][0] for m in mun], dtype=object)
        self.postal = np.array(
            [
                V.MUNICIPALITIES[m][1][q % len(V.MUNICIPALITIES[m][1])] + f"{s:02d}"
                for m, q, s in zip(mun, pre, last, strict=True)
            ],
            dtype=object,
        )
        units = self.ref.pcs_units
        home = []
        for m, q in zip(self.kommun, pre, strict=True):
            opts = [self.ref.pcs_unit_meaning[x] for x in _HOME_UNIT.get(m, ()) if x in self.ref.pcs_unit_meaning]
            home.append(opts[q % len(opts)] if opts else units[q % len(units)])
        self.home_unit = np.array(home, dtype=object)

    # ---------------------------------------------------------------- identity numbers

    def _identities(self) -> None:
        r, n = self.rng, self.n
        ymd = pl.Series(self.birth.astype("datetime64[D]")).dt.strftime("%Y%m%d").to_list()
        serial = r.integers(0, 100, n)
        sexd = r.integers(0, 5, n) * 2 + self.male.astype(np.int64)
        gg = r.integers(0, 1000, n)
        seen: set[str] = set()
        ident: list[str] = []
        for i in range(n):
            while True:
                v = self._make_id(
                    int(self.kind[i]),
                    ymd[i],
                    bool(self.male[i]),
                    bool(self.sex_unknown[i]),
                    int(serial[i]),
                    int(sexd[i]),
                    int(gg[i]),
                )
                if v not in seen:
                    break
                serial[i], sexd[i], gg[i] = (
                    r.integers(0, 100),
                    r.integers(0, 5) * 2 + int(self.male[i]),
                    r.integers(0, 1000),
                )
            seen.add(v)
            ident.append(v)
        self.ident = ident
        self.seen_ids = seen

    @staticmethod
    def _make_id(kind: int, ymd: str, male: bool, unknown: bool, serial: int, sexd: int, gg: int) -> str:
        if kind == _RESNR:
            letter = "X" if unknown else ("M" if male else "K")
            if letter == "X":
                g = 80 + gg % 10
            elif letter == "M":
                g = 7 + 2 * (gg % 37)  # 07..79 odd
            else:
                g = 6 + 2 * (gg % 37)  # 06..78 even
            return f"{ymd}{letter}{g:02d}{luhn_digit(ymd[2:] + str(RESNR_LETTER_DIGIT[letter]) + f'{g:02d}')}"
        day = int(ymd[6:8]) + (60 if kind == _SAMNR else 0)
        body = f"{ymd[:6]}{day:02d}{serial:02d}{sexd}"
        return body + str(luhn_digit(body[2:]))

    def _fresh(self, value: str) -> str:
        """Register a derived identity value; None of the injected values may equal another."""
        if value in self.seen_ids:
            raise _Collision
        self.seen_ids.add(value)
        return value

    # ---------------------------------------------------------------- records

    def _allocate_records(self) -> None:
        n = self.n
        persons = np.arange(n)
        self.pr_person = np.concatenate(
            [persons[self.n_pas_rec >= 1], persons[self.n_pas_rec >= 2], persons[self.n_pas_rec >= 3]]
        )
        self.pr_seq = np.concatenate(
            [
                np.zeros((self.n_pas_rec >= 1).sum(), dtype=np.int64),
                np.ones((self.n_pas_rec >= 2).sum(), dtype=np.int64),
                np.full((self.n_pas_rec >= 3).sum(), 2, dtype=np.int64),
            ]
        )
        self.cr_person = np.concatenate([persons[self.n_pcs_rec >= 1], persons[self.n_pcs_rec >= 2]])
        self.cr_seq = np.concatenate(
            [
                np.zeros((self.n_pcs_rec >= 1).sum(), dtype=np.int64),
                np.ones((self.n_pcs_rec >= 2).sum(), dtype=np.int64),
            ]
        )
        self.pas_rec_of = np.full(n, -1, dtype=np.int64)
        first = self.pr_seq == 0
        self.pas_rec_of[self.pr_person[first]] = np.flatnonzero(first)
        self.pcs_rec_of = np.full(n, -1, dtype=np.int64)
        first = self.cr_seq == 0
        self.pcs_rec_of[self.cr_person[first]] = np.flatnonzero(first)

    def _pas_patients(self) -> pl.DataFrame:
        r = self.rng
        m = len(self.pr_person)
        u_sp = r.random((m, 4))
        u_fmt = r.random(m)
        u_sk = r.random(m)
        alt_postal = r.integers(10, 100, m)
        cols: dict[str, list] = {c: [] for c in PAS_HEADERS["patient.csv"][1:]}
        breaks: list[str | None] = []
        for k in range(m):
            p, seq = int(self.pr_person[k]), int(self.pr_seq[k])
            postal = self.postal[p] if seq == 0 else self.postal[p][:3] + f"{alt_postal[k]:02d}"
            if u_fmt[k] < 0.12:
                postal = postal[:3] + " " + postal[3:]
            row = {
                "PNR": self.ident[p] if u_sp[k, 0] > 0.004 else " " + self.ident[p],
                "ENAMN": self.family[p]
                if u_sp[k, 1] > 0.02
                else (" " + self.family[p] if u_sp[k, 1] < 0.01 else self.family[p] + "  "),
                "FNAMN": (self.given[p] if seq == 0 else self.first_given[p]) + (" " if u_sp[k, 2] < 0.01 else ""),
                "KON": self.kon[p],
                "AVLIDEN": _date_str(self.death[p]) if self.dead[p] else "",
                "SKYDD": "J" if self.protected[p] else ("N" if u_sk[k] < 0.7 else ""),
                "POSTNR": postal if u_sp[k, 3] > 0.01 else postal + " ",
                "KOMMUN": self.kommun[p],
            }
            brk = None
            if seq == 0 and p in self.pas_over:
                over = dict(self.pas_over[p])
                brk = over.pop("_break", None)
                row.update(over)
            for c in cols:
                cols[c].append(row[c])
            breaks.append(brk)
        return pl.DataFrame(
            {
                "_k": np.arange(m),
                "_ord": np.where(self.pr_seq == 0, 0, 1) * m + np.arange(m),
                **cols,
                "_break": breaks,
            },
            schema={"_k": pl.Int64, "_ord": pl.Int64, **{c: pl.String for c in cols}, "_break": pl.String},
        )

    def _pcs_patients(self) -> pl.DataFrame:
        r = self.rng
        m = len(self.cr_person)
        u = r.random((m, 4))
        rows: dict[str, list] = {
            c: []
            for c in (
                "id_type",
                "id_value",
                "family",
                "given",
                "sex",
                "deceased",
                "protected",
                "postalCode",
                "municipality",
                "_break",
            )
        }
        for k in range(m):
            p, seq = int(self.cr_person[k]), int(self.cr_seq[k])
            both = self.system[p] == _BOTH
            row: dict[str, object] = {
                "id_type": _KIND_NAME[self.kind[p]],
                "id_value": self.ident[p],
                "family": self.family[p],
                "given": (self.given[p] if seq == 0 else self.first_given[p]) + (" " if u[k, 0] < 0.01 else ""),
                "sex": self.pcs_sex[p],
                "deceased": _date_str(self.death[p]) if self.dead[p] and (not both or u[k, 1] < 0.85) else None,
                "protected": bool(self.protected[p]),
                "postalCode": None if u[k, 2] < (0.10 if both else 0.03) else self.postal[p],
                "municipality": None if u[k, 3] < 0.02 else self.kommun[p],
                "_break": None,
            }
            if seq == 0 and p in self.pcs_over:
                row.update(self.pcs_over[p])
            for c in rows:
                rows[c].append(row[c])
        return pl.DataFrame(
            {"_k": np.arange(m), "_ord": np.where(self.cr_seq == 0, 0, 1) * m + np.arange(m), **rows},
            schema={
                "_k": pl.Int64,
                "_ord": pl.Int64,
                **{c: (pl.Boolean if c == "protected" else pl.String) for c in rows},
            },
        )

    def _bulk_pas_children(self) -> None:
        r = self.rng
        rec_person = self.pr_person
        lam = np.where(self.pr_seq == 0, 3.0, 1.5)
        ncont = r.poisson(lam)
        ncont[self.no_children[rec_person]] = 0
        pk = np.repeat(np.arange(len(rec_person)), ncont)
        person = rec_person[pk]
        n = len(pk)
        lo, hi = self._window(person)
        day = lo + (r.random(n) * (hi - lo + 1)).astype(np.int64)
        ctype = r.choice(4, n, p=_CONTACT_TYPE_P)
        unit = np.empty(n, dtype=object)
        for t in range(4):
            sel = ctype == t
            opts = self.pas_units_by_type[t]
            unit[sel] = opts[r.integers(0, len(opts), sel.sum())]
        anytime = (ctype == 0) | (ctype == 2)
        mod = np.where(anytime, r.integers(0, 288, n) * 5, 420 + r.integers(0, 120, n) * 5)
        dur = np.select(
            [ctype == 0, ctype == 1, ctype == 2],
            [r.integers(288, 20 * 288, n) * 5, r.integers(3, 19, n) * 5, r.integers(12, 120, n) * 5],
            r.integers(36, 120, n) * 5,
        )
        # a few clean contacts in the repeated October hour (valid, ambiguous: read as summer time)
        oct_day = _AUTUMN_DAY[_year_index(day)]
        elig = (oct_day >= lo) & (oct_day <= hi) & anytime  # inpatient / emergency contacts at night
        pick = elig & (r.random(n) < 0.003)
        if pick.sum() < 2:
            pick[np.flatnonzero(elig & ~pick)[: 2 - pick.sum()]] = True
        day = np.where(pick, oct_day, day)
        mod = np.where(pick, 120 + r.integers(0, 12, n) * 5, mod)
        start = _skip_gap(day * 1440 + mod)
        end = _skip_gap(start + dur)
        has_end = r.random(n) >= 0.04
        status = np.where(r.random(n) < 0.03, "M", "A")
        indatum = _pas_ts_series(start)
        self.bulk_kontakt = pl.DataFrame(
            {
                "_k": np.arange(n),
                "_pk": pk,
                "_ghost": np.full(n, -1),
                "KONTAKTTYP": np.array(_CONTACT_TYPES)[ctype],
                "ENHET": unit.astype(str),
                "INDATUM": indatum,
                "UTDATUM": _pas_ts_series(end),
                "STATUS": status,
                "_sort": indatum,
                "_break": pl.Series([None] * n, dtype=pl.String),
            }
        ).with_columns(_keep(pl.col("UTDATUM"), has_end))
        self.next_key["kontakt"] = n
        self.k_start, self.k_end, self.k_has_end, self.k_status = start, end, has_end, status
        self.k_person = person

        # diagnoses: 1-3 distinct codes per contact, the first one H
        nI = len(self.icd_nodot)
        ndx = r.choice([1, 2, 3], n, p=[0.5, 0.33, 0.17])
        self.k_dx_base = r.integers(0, nI, n)
        self.k_dx_step = r.choice(_coprime_steps(nI), n)
        self.k_ndx = ndx
        par, j = _positions(ndx)
        code = self.icd_nodot[(self.k_dx_base[par] + j * self.k_dx_step[par]) % nI]
        code = np.where(r.random(len(par)) < 0.08, np.char.lower(code), code)
        cday, eday = start // 1440, np.where(has_end, end // 1440, start // 1440)
        reg = cday[par] + (r.random(len(par)) * (np.minimum(eday - cday, 30)[par] + 1)).astype(np.int64)
        self.bulk_diagnos = pl.DataFrame(
            {
                "_k": np.arange(len(par)),
                "_pk": par,
                "_ghost": np.full(len(par), -1),
                "DIAGNOSKOD": code,
                "DIAGNOSTYP": np.where(j == 0, "H", "B"),
                "REGDATUM": _day_series(reg),
                "_break": pl.Series([None] * len(par), dtype=pl.String),
            }
        )
        self.next_key["diagnos"] = len(par)

        nK = len(self.kva)
        nat = r.choice([0, 1, 2], n, p=[0.45, 0.40, 0.15])
        self.k_at_base = r.integers(0, nK, n)
        self.k_at_step = r.choice(_coprime_steps(nK), n)
        self.k_nat = nat
        par, j = _positions(nat)
        code = self.kva[(self.k_at_base[par] + j * self.k_at_step[par]) % nK]
        code = np.where(r.random(len(par)) < 0.05, np.char.lower(code), code)
        when = cday[par] + (r.random(len(par)) * (np.minimum(eday - cday, 30)[par] + 1)).astype(np.int64)
        self.bulk_atgard = pl.DataFrame(
            {
                "_k": np.arange(len(par)),
                "_pk": par,
                "_ghost": np.full(len(par), -1),
                "KVAKOD": code,
                "DATUM": _day_series(when),
                "_break": pl.Series([None] * len(par), dtype=pl.String),
            }
        )
        self.next_key["atgard"] = len(par)

    def _bulk_pcs_children(self) -> None:
        r = self.rng
        rec_person = self.cr_person
        scale = np.where(self.cr_seq == 0, 1.0, 0.5)
        blocked = self.no_children[rec_person]

        def counts(lam: float) -> np.ndarray:
            c = r.poisson(lam * scale)
            c[blocked] = 0
            return c

        # visits
        nv = counts(3.0)
        pk = np.repeat(np.arange(len(rec_person)), nv)
        person = rec_person[pk]
        n = len(pk)
        lo, hi = self._window(person)
        day = lo + (r.random(n) * (hi - lo + 1)).astype(np.int64)
        vtype = r.choice(4, n, p=_VISIT_TYPE_P)
        units = np.array(self.ref.pcs_units)
        unit = np.where(r.random(n) < 0.85, self.home_unit[person].astype(str), units[r.integers(0, len(units), n)])
        start = _skip_gap(day * 1440 + 480 + r.integers(0, 106, n) * 5)
        end = _skip_gap(start + r.integers(2, 13, n) * 5)
        has_end = r.random(n) >= 0.05
        u = r.random(n)
        status = np.where(u < 0.03, "draft", np.where(u < 0.06, "deleted", "signed"))
        self.bulk_visits = pl.DataFrame(
            {
                "_k": np.arange(n),
                "_pk": pk,
                "_ghost": np.full(n, -1),
                "type": np.array(_VISIT_TYPES)[vtype],
                "unitHsaId": unit,
                "start": _pcs_ts_series(start),
                "end": _pcs_ts_series(end),
                "status": status,
                "_sort": _pas_ts_series(start),
                "_break": pl.Series([None] * n, dtype=pl.String),
            }
        ).with_columns(_keep(pl.col("end"), has_end))
        self.next_key["visits"] = n
        nI = len(self.icd_dot)
        ndx = r.choice([0, 1, 2, 3], n, p=[0.25, 0.45, 0.22, 0.08])
        base, step = r.integers(0, nI, n), r.choice(_coprime_steps(nI), n)
        par, j = _positions(ndx)
        self.bulk_vdx = pl.DataFrame(
            {
                "_k": np.arange(len(par)),
                "_pk": par,
                "code": self.icd_dot[(base[par] + j * step[par]) % nI],
                "primary": j == 0,
            }
        )
        self.next_key["vdx"] = len(par)

        # medications
        nm = counts(1.6)
        pk = np.repeat(np.arange(len(rec_person)), nm)
        person = rec_person[pk]
        n = len(pk)
        lo, hi = self._window(person)
        sday = lo + (r.random(n) * (hi - lo + 1)).astype(np.int64)
        atc = self.atc[r.integers(0, len(self.atc), n)]
        pick = r.integers(0, 1 << 30, n)
        dose = [
            V.DOSES.get(a, ("1 tablett 1 gång dagligen",))[q % len(V.DOSES.get(a, (0,)))]
            for a, q in zip(atc, pick, strict=True)
        ]
        eday = sday + r.integers(7, 720, n)
        has_end = (r.random(n) < 0.45) & (eday <= _W_HI)
        self.bulk_medications = pl.DataFrame(
            {
                "_k": np.arange(n),
                "_pk": pk,
                "_ghost": np.full(n, -1),
                "atc": atc,
                "name": [self.ref.atc_name[a] for a in atc],
                "dose": pl.Series(dose, dtype=pl.String),
                "start": _day_series(sday),
                "end": _day_series(eday),
                "_sort": _day_series(sday),
                "_break": pl.Series([None] * n, dtype=pl.String),
            }
        ).with_columns(_keep(pl.col("end"), has_end))
        self.next_key["medications"] = n

        # allergies: distinct substances per patient
        atc_set = set(self.ref.atc)
        subs = [("atc", a) for a in V.ALLERGY_ATC if a in atc_set] + [("text", t) for t in V.ALLERGY_TEXT]
        ns = len(subs)
        na = r.choice([0, 1, 2, 3], len(rec_person), p=[0.74, 0.19, 0.05, 0.02])
        na[blocked] = 0
        base, step = r.integers(0, ns, len(rec_person)), r.choice(_coprime_steps(ns), len(rec_person))
        par, j = _positions(na)
        s_idx = (base[par] + j * step[par]) % ns
        person = rec_person[par]
        n = len(par)
        lo, hi = self._window(person)
        rday = lo + (r.random(n) * (hi - lo + 1)).astype(np.int64)
        sev = np.array(_SEVERITIES)[r.choice(3, n, p=[0.5, 0.35, 0.15])]
        rec_known = r.random(n) >= 0.03
        self.bulk_allergies = pl.DataFrame(
            {
                "_k": np.arange(n),
                "_pk": par,
                "_ghost": np.full(n, -1),
                "sub_kind": [subs[s][0] for s in s_idx],
                "sub_value": [subs[s][1] for s in s_idx],
                "severity": sev,
                "recorded": _day_series(rday),
                "_sort": _day_series(rday),
                "_break": pl.Series([None] * n, dtype=pl.String),
            }
        ).with_columns(_keep(pl.col("recorded"), rec_known))
        self.next_key["allergies"] = n

        # lab results (out of scope for the migration, still delivered)
        nl = counts(2.5)
        pk = np.repeat(np.arange(len(rec_person)), nl)
        person = rec_person[pk]
        n = len(pk)
        lo, hi = self._window(person)
        day = lo + (r.random(n) * (hi - lo + 1)).astype(np.int64)
        taken = day * 1440 + 420 + r.integers(0, 60, n) * 5
        a_idx = r.integers(0, len(V.LAB_ANALYSES), n)
        frac = r.random(n)
        values = []
        for a, f in zip(a_idx, frac, strict=True):
            code, unit_, low, high, dec = V.LAB_ANALYSES[a]
            x = low + f * (high - low)
            values.append("<5" if code == "NPU19748" and x < 5 else f"{x:.{dec}f}")
        self.bulk_labresults = pl.DataFrame(
            {
                "_k": np.arange(n),
                "_pk": pk,
                "_ghost": np.full(n, -1),
                "npu": [V.LAB_ANALYSES[a][0] for a in a_idx],
                "value": values,
                "unit": [V.LAB_ANALYSES[a][1] for a in a_idx],
                "taken": _pcs_ts_series(taken),
                "_sort": _pas_ts_series(taken),
                "_break": pl.Series([None] * n, dtype=pl.String),
            }
        )
        self.next_key["labresults"] = n

    # ---------------------------------------------------------------- appended (defect) records

    def _key(self, table: str) -> int:
        k = self.next_key[table]
        self.next_key[table] = k + 1
        return k

    def _ghost(self, table: str) -> int:
        g = self.ghosts[table]
        self.ghosts[table] = g + 1
        return g

    def _pick(self, seq: np.ndarray | list) -> object:
        return seq[int(self.rng.integers(len(seq)))]

    def _clean_record(self, system: str, kinds: tuple[int, ...] = (_PNR, _SAMNR, _RESNR)) -> tuple[int, int]:
        """(record key, person) of a random clean patient of ``system``: not dedicated, not a duplicate."""
        pools = self.__dict__.setdefault("_pools", {})
        if (system, kinds) not in pools:
            rec_person, rec_seq = (self.pr_person, self.pr_seq) if system == "pas" else (self.cr_person, self.cr_seq)
            ok = ~self.reserved[rec_person] & (rec_seq == 0) & np.isin(self.kind[rec_person], kinds)
            pools[(system, kinds)] = np.flatnonzero(ok)
        pool = pools[(system, kinds)]
        if not len(pool):  # pragma: no cover - the plan always leaves clean persons in both systems
            raise MigcheckError("internal: no clean patient to attach a defective record to")
        k = int(pool[self.rng.integers(len(pool))])
        return k, int((self.pr_person if system == "pas" else self.cr_person)[k])

    def _clean_pas_record(self, kinds: tuple[int, ...] = (_PNR, _SAMNR, _RESNR)) -> tuple[int, int]:
        return self._clean_record("pas", kinds)

    def _clean_pcs_record(self, kinds: tuple[int, ...] = (_PNR, _SAMNR, _RESNR)) -> tuple[int, int]:
        return self._clean_record("pcs", kinds)

    def _clean_contact(self) -> int:
        """An unused bulk contact that is in scope, of a clean patient (a host for a defective child row)."""
        if not hasattr(self, "_contact_pool"):
            ok = (self.k_status == "A") & ~self.reserved[self.k_person]
            pool = np.flatnonzero(ok)
            self._contact_pool = list(pool[self.rng.permutation(len(pool))])
        if not self._contact_pool:
            rec, person = self._clean_pas_record()
            return self._add_contact(rec, person, children=True)
        return int(self._contact_pool.pop())

    def _contact_info(self, ck: int) -> tuple[int, set[int], set[int]]:
        """Start day of a contact and the ICD / KVÅ indexes its rows already use."""
        if ck < len(self.k_start):
            nI, nK = len(self.icd_nodot), len(self.kva)
            dx = {int((self.k_dx_base[ck] + j * self.k_dx_step[ck]) % nI) for j in range(self.k_ndx[ck])}
            at = {int((self.k_at_base[ck] + j * self.k_at_step[ck]) % nK) for j in range(self.k_nat[ck])}
            return int(self.k_start[ck] // 1440), dx, at
        return self.added_contact_info[ck]

    def _rand_start(self, person: int | None, daytime: bool = False) -> int:
        lo, hi = self._window(person) if person is not None else (_W_LO, _W_HI)
        day = int(self.rng.integers(int(lo), int(hi) + 1))
        mod = 420 + int(self.rng.integers(0, 120)) * 5 if daytime else int(self.rng.integers(0, 288)) * 5
        return _fix_gap(day * 1440 + mod)

    def _add_contact(
        self,
        rec: int,
        person: int | None,
        *,
        ghost: int = -1,
        children: bool = False,
        start: int | None = None,
        end: int | None | bool = True,
        over: dict | None = None,
    ) -> int:
        r = self.rng
        t = int(r.choice(4, p=_CONTACT_TYPE_P))
        if start is None:
            start = self._rand_start(person, daytime=t in (1, 3))
        if end is True:
            dur = (
                int(r.integers(288, 20 * 288)) * 5
                if t == 0
                else int(r.integers(3, 19)) * 5
                if t == 1
                else int(r.integers(12, 120)) * 5
            )
            end = _fix_gap(start + dur)
        key = self._key("kontakt")
        row = {
            "_k": key,
            "_pk": rec,
            "_ghost": ghost,
            "KONTAKTTYP": _CONTACT_TYPES[t],
            "ENHET": str(self._pick(self.pas_units_by_type[t])),
            "INDATUM": _pas_ts(start),
            "UTDATUM": _pas_ts(end) if end is not None and end is not False else "",
            "STATUS": "A",
            "_sort": _pas_ts(start),
            "_break": None,
        }
        row.update(over or {})
        self.added["kontakt"].append(row)
        day = start // 1440
        dx: set[int] = set()
        at: set[int] = set()
        if children:
            nI, nK = len(self.icd_nodot), len(self.kva)
            for j, i in enumerate(r.permutation(nI)[: int(r.integers(1, 4))]):
                code = str(self.icd_nodot[i])
                self._add_row(
                    "diagnos",
                    key,
                    DIAGNOSKOD=code.lower() if r.random() < 0.08 else code,
                    DIAGNOSTYP="H" if j == 0 else "B",
                    REGDATUM=_date_str(day),
                )
                dx.add(int(i))
            for i in r.permutation(nK)[: int(r.integers(0, 3))]:
                self._add_row("atgard", key, KVAKOD=str(self.kva[i]), DATUM=_date_str(day))
                at.add(int(i))
        if not hasattr(self, "added_contact_info"):
            self.added_contact_info: dict[int, tuple[int, set[int], set[int]]] = {}
        self.added_contact_info[key] = (day, dx, at)
        return key

    def _add_row(self, table: str, parent: int, ghost: int = -1, **values: object) -> int:
        key = self._key(table)
        row: dict[str, object] = {c: None for c in _SCHEMAS[table]}
        row.update({"_k": key, "_pk": parent})
        if "_ghost" in row:
            row["_ghost"] = ghost
        row.update(values)
        self.added[table].append(row)
        return key

    def _add_diag_on_clean_contact(self, **values: object) -> int:
        ck = self._clean_contact()
        day, used, _ = self._contact_info(ck)
        free = [i for i in range(len(self.icd_nodot)) if i not in used]
        code = str(self.icd_nodot[self._pick(free)])
        row = {"DIAGNOSKOD": code, "DIAGNOSTYP": "B", "REGDATUM": _date_str(day)}
        row.update(values)
        return self._add_row("diagnos", ck, **row)

    def _add_atg_on_clean_contact(self, **values: object) -> int:
        ck = self._clean_contact()
        day, _, used = self._contact_info(ck)
        free = [i for i in range(len(self.kva)) if i not in used] or list(range(len(self.kva)))
        row = {"KVAKOD": str(self.kva[self._pick(free)]), "DATUM": _date_str(day)}
        row.update(values)
        return self._add_row("atgard", ck, **row)

    def _add_visit(
        self,
        rec: int,
        person: int | None,
        *,
        ghost: int = -1,
        n_dx: int = 0,
        extra_dx: list[tuple[str | None, bool]] | None = None,
        start: int | None = None,
        end: int | None | bool = True,
        over: dict | None = None,
    ) -> int:
        r = self.rng
        if start is None:
            start = self._rand_start(person, daytime=True)
        if end is True:
            end = _fix_gap(start + int(r.integers(2, 13)) * 5)
        key = self._key("visits")
        row = {
            "_k": key,
            "_pk": rec,
            "_ghost": ghost,
            "type": _VISIT_TYPES[int(r.choice(4, p=_VISIT_TYPE_P))],
            "unitHsaId": self.home_unit[person] if person is not None else str(self._pick(self.ref.pcs_units)),
            "start": _pcs_ts(start),
            "end": _pcs_ts(end) if end not in (None, False) else None,
            "status": "signed",
            "_sort": _pas_ts(start),
            "_break": None,
        }
        row.update(over or {})
        self.added["visits"].append(row)
        for j, i in enumerate(r.permutation(len(self.icd_dot))[:n_dx]):
            self._add_row("vdx", key, code=str(self.icd_dot[i]), primary=j == 0)
        for code, primary in extra_dx or []:
            self._add_row("vdx", key, code=code, primary=primary)
        return key

    def _add_med(self, rec: int, person: int | None, ghost: int = -1, **over: object) -> int:
        lo, hi = self._window(person) if person is not None else (_W_LO, _W_HI)
        day = int(self.rng.integers(int(lo), int(hi) + 1))
        atc = str(self._pick(self.atc))
        doses = V.DOSES.get(atc, ("1 tablett 1 gång dagligen",))
        row = {
            "atc": atc,
            "name": self.ref.atc_name[atc],
            "dose": str(self._pick(doses)),
            "start": _date_str(day),
            "end": None,
            "_sort": _date_str(day),
        }
        row.update(over)
        return self._add_row("medications", rec, ghost, **row)

    def _add_allergy(self, rec: int, person: int | None, ghost: int = -1, **over: object) -> int:
        lo, hi = self._window(person) if person is not None else (_W_LO, _W_HI)
        day = int(self.rng.integers(int(lo), int(hi) + 1))
        # free-text substances only, so the appended allergy never repeats a coded one of the patient
        row = {
            "sub_kind": "text",
            "sub_value": str(self._pick(("Nickel", "Parfym", "Citrusfrukter"))),
            "severity": str(self._pick(_SEVERITIES)),
            "recorded": _date_str(day),
            "_sort": _date_str(day),
        }
        row.update(over)
        return self._add_row("allergies", rec, ghost, **row)

    def _add_lab(self, rec: int, person: int) -> int:
        lo, hi = self._window(person)
        day = int(self.rng.integers(int(lo), int(hi) + 1))
        code, unit, low, high, dec = V.LAB_ANALYSES[int(self.rng.integers(len(V.LAB_ANALYSES)))]
        t = day * 1440 + 480
        return self._add_row(
            "labresults",
            rec,
            npu=code,
            value=f"{low + (high - low) / 2:.{dec}f}",
            unit=unit,
            taken=_pcs_ts(t),
            _sort=_pas_ts(t),
        )

    def _defect(self, v: _Variant, table: str, key: int, note: str = "") -> None:
        self.defects.append(_Defect(v, table, key, note))

    # ---------------------------------------------------------------- the variants

    def _patient_variant(self, v: _Variant, i: int, p: int) -> None:
        """Shape the record(s) of dedicated host ``p`` for instance ``i`` of a patient-level variant."""
        r = self.rng
        pas = self.system[p] == _PAS_ONLY
        over: dict[str, object] = {}
        ident = self.ident[p]
        note = ""
        name = v.name
        if name in ("ii_pas_check_digit", "ii_pcs_check_digit", "ii_resnr_check_digit"):
            over["id"] = self._fresh(ident[:11] + str((int(ident[11]) + int(r.integers(1, 10))) % 10))
        elif name == "ii_pas_impossible_date":
            mmdd = ("0231", "0230", "0431", "0229", "1301", "0631", "0000")[i % 7]
            year = int(ident[:4])
            if mmdd == "0229" and (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
                year -= 1
            body = f"{year:04d}{mmdd}{ident[8:11]}"
            over["id"] = self._fresh(body + str(luhn_digit(body[2:])))
            note = {
                "0231": " (31 February)",
                "0230": " (30 February)",
                "0431": " (31 April)",
                "0229": " (29 February of a common year)",
                "1301": " (month 13)",
                "0631": " (31 June)",
                "0000": " (month and day 00)",
            }[mmdd]
        elif name == "ii_pas_future_date":
            year = (2091, 2088, 2095, 2102)[i % 4]
            mmdd = ident[4:8] if ident[4:8] != "0229" else "0228"
            body = f"{year}{mmdd}{ident[8:11]}"
            over["id"] = self._fresh(body + str(luhn_digit(body[2:])))
            note = f" (year {year})"
        elif name == "ii_pcs_type_mismatch":
            declared = ("pnr", "samnr", "resnr", "pnr")[i % 4]  # the host's kind is (samnr, pnr, pnr, resnr)[i % 4]
            assert declared != _KIND_NAME[self.kind[p]]
            over["id_type"] = declared
            note = f" (type {declared}, value a {_KIND_NAME[self.kind[p]]})"
        elif name == "ii_resnr_serial":
            letter, g = ident[8], int(ident[9:11])
            bad = {"M": g - 1 if g > 7 else g + 1, "K": g + 1, "X": (12, 90, 5)[i % 3]}[letter]
            body = f"{ident[:8]}{letter}{bad:02d}"
            over["id"] = self._fresh(body + str(luhn_digit(body[2:8] + str(RESNR_LETTER_DIGIT[letter]) + body[9:])))
        elif name == "ii_bad_form":
            form = i % 4
            bad = (ident[2:], ident[:8] + "-" + ident[8:], ident[:11], ident[:8] + "A" + ident[9:])[form]
            over["id"] = self._fresh(bad)
            note = (
                " (10-digit short form)",
                " (with hyphen)",
                " (11 characters)",
                " (letter in the serial)",
            )[form]
        elif name == "mm_pas_enamn":
            over["ENAMN"] = ("", "   ")[i % 2]
        elif name == "mm_pas_fnamn":
            over["FNAMN"] = ("", "  ")[i % 2]
        elif name == "mm_pas_pnr":
            over["id"] = ("", " ")[i % 2]
        elif name == "mm_pcs_family":
            over["family"] = (None, "", "  ")[i % 3]
        elif name == "mm_pcs_given":
            over["given"] = (None, "")[i % 2]
        elif name == "mm_pcs_identity":
            over["id_value"] = (None, "")[i % 2]
        elif name == "uc_pas_kon":
            over["KON"] = str(self._pick(self.ref.unmapped("pas_sex", ("X", "U", "O"))))
        elif name == "uc_pcs_sex":
            over["sex"] = str(self._pick(self.ref.unmapped("pcs_sex", ("3", "M", "K"))))
        elif name == "im_pas_avliden_future":
            over["AVLIDEN"] = f"{2090 + i % 9}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        elif name == "im_pcs_deceased_future":
            over["deceased"] = f"{2092 + i % 7}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        elif name == "im_pas_sex_contradiction":
            over["KON"] = "K" if self.male[p] else "M"
        elif name == "im_pcs_sex_contradiction":
            over["sex"] = "2" if self.male[p] else "1"
        elif name in ("up_pas_patient", "up_pcs_patient"):
            over["_break"] = (
                ("missing1", "missing3", "missing5")[i % 3] if pas else ("truncate", "comma", "single", "quote")[i % 4]
            )
        if "id" in over:
            value = over.pop("id")
            over["PNR" if pas else "id_value"] = value
        # self-check with the project's own rules: the injected identity fails, every other one holds
        value = str(over.get("PNR" if pas else "id_value", ident) or "")
        declared = None if pas else str(over.get("id_type", _KIND_NAME[self.kind[p]]))
        if v.category == "invalid_identifier" or name in ("mm_pas_pnr", "mm_pcs_identity"):
            assert not classify(value.strip(), _SELF_CHECK_DAY, declared).valid, name
        else:
            assert classify(ident, _SELF_CHECK_DAY, declared).valid, name
        if pas:
            self.pas_over[p] = {k: (None if val is None else str(val)) for k, val in over.items()}
        else:
            self.pcs_over[p] = over
        if v.category == "duplicate":
            if pas:
                keys = np.flatnonzero(self.pr_person == p)
                table = "pas_patient"
            else:
                keys = np.flatnonzero(self.cr_person == p)
                table = "pcs_patient"
            for k in keys:
                self._defect(v, table, int(k))
            return
        table = "pas_patient" if pas else "pcs_patient"
        self._defect(v, table, int(self.pas_rec_of[p] if pas else self.pcs_rec_of[p]), note)

    def _child_variant(self, v: _Variant, i: int, host: int | None) -> None:  # noqa: C901 - one branch per variant
        r = self.rng
        name = v.name
        d = self._defect
        if name.startswith("mm_kontakt") or name in ("uc_pas_enhet", "uc_kontakttyp", "ic_inactive_unit"):
            rec, person = self._clean_pas_record()
            over = {
                "mm_kontakt_indatum": {"INDATUM": ("", "  ")[i % 2]},
                "mm_kontakt_enhet": {"ENHET": ("", " ")[i % 2]},
                "mm_kontakt_typ": {"KONTAKTTYP": ""},
            }.get(name, {})
            if name == "uc_pas_enhet":
                over = {"ENHET": str(self._pick(self.ref.unmapped("map_pas_unit", ("MED9", "KIR9", "ONK2", "AVD7"))))}
            elif name == "uc_kontakttyp":
                over = {"KONTAKTTYP": str(self._pick(self.ref.unmapped("pas_contact_type", ("XX", "HEM", "TEL"))))}
            elif name == "ic_inactive_unit":
                if not self.ref.pas_units_inactive:
                    raise MigcheckError("no PAS unit maps to an inactive location: cannot inject invalid_code")
                over = {"ENHET": str(self._pick(self.ref.pas_units_inactive))}
            d(v, "kontakt", self._add_contact(rec, person, children=i % 2 == 0, over=over))
        elif name.startswith("mm_visit") or name in ("uc_pcs_unit", "uc_visit_type"):
            rec, person = self._clean_pcs_record()
            over = {
                "mm_visit_start": {"start": (None, "")[i % 2]},
                "mm_visit_unit": {"unitHsaId": None},
                "mm_visit_type": {"type": (None, "")[i % 2]},
            }.get(name, {})
            if name == "uc_pcs_unit":
                over = {
                    "unitHsaId": str(
                        self._pick(
                            self.ref.unmapped(
                                "map_pcs_unit",
                                (
                                    "SE2321000131-E000001000099",
                                    "SE2321000131-E000001000042",
                                    "SE2321000131-F000001000001",
                                ),
                            )
                        )
                    )
                }
            elif name == "uc_visit_type":
                over = {"type": str(self._pick(self.ref.unmapped("pcs_visit_type", ("chat", "email", "letter"))))}
            d(v, "visits", self._add_visit(rec, person, n_dx=(2, 0)[i % 2], over=over))
        elif name == "mm_diagnos_kod":
            d(v, "diagnos", self._add_diag_on_clean_contact(DIAGNOSKOD=("", " ")[i % 2]))
        elif name == "mm_diagnos_regdatum":
            d(v, "diagnos", self._add_diag_on_clean_contact(REGDATUM=""))
        elif name == "uc_pas_icd":
            code = str(self._pick(self.ref.unmapped("icd", ("Q999", "J18", "z999", "R999"))))
            d(v, "diagnos", self._add_diag_on_clean_contact(DIAGNOSKOD=code))
        elif name == "uc_diagnostyp":
            typ = str(self._pick(self.ref.unmapped("pas_diagnosis_type", ("Z", "X", "S"))))
            d(v, "diagnos", self._add_diag_on_clean_contact(DIAGNOSTYP=typ))
        elif name == "mm_atgard_kod":
            d(v, "atgard", self._add_atg_on_clean_contact(KVAKOD=""))
        elif name == "mm_atgard_datum":
            d(v, "atgard", self._add_atg_on_clean_contact(DATUM=""))
        elif name == "uc_kva":
            code = str(self._pick(self.ref.unmapped("kva", ("ZZZ99", "JEA99", "AF999", "qxx00"))))
            d(v, "atgard", self._add_atg_on_clean_contact(KVAKOD=code))
        elif name in ("mm_pcs_dx_code", "uc_pcs_icd"):
            rec, person = self._clean_pcs_record()
            bad = (
                (None, "")[i % 2]
                if name == "mm_pcs_dx_code"
                else str(self._pick(self.ref.unmapped("icd", ("Q99.9", "J18", "R99.9", "Z99.9"))))
            )
            vk = self._add_visit(rec, person, n_dx=1)
            d(v, "vdx", self._add_row("vdx", vk, code=bad, primary=False))
        elif name.startswith("mm_med") or name in ("uc_atc", "up_med_date"):
            rec, person = self._clean_pcs_record()
            over: dict[str, object] = {
                "mm_med_atc": {"atc": (None, "")[i % 2]},
                "mm_med_name": {"name": None},
                "mm_med_start": {"start": None},
            }.get(name, {})
            if name == "uc_atc":
                over = {"atc": str(self._pick(self.ref.unmapped("atc", ("C09AA99", "N02BE99", "A10BA99"))))}
            elif name == "up_med_date":
                over = {"start": ("2023-13-05", "31/12/2023", "2023-02-30")[i % 3]}
            d(v, "medications", self._add_med(rec, person, **over))
        elif name in ("mm_allergy_severity", "mm_allergy_substance", "uc_severity", "uc_allergy_atc"):
            rec, person = self._clean_pcs_record()
            over = {
                "mm_allergy_severity": {"severity": None},
                "mm_allergy_substance": {"sub_kind": ("empty", "null")[i % 2], "sub_value": None},
            }.get(name, {})
            if name == "uc_severity":
                over = {
                    "severity": str(
                        self._pick(self.ref.unmapped("pcs_allergy_severity", ("extreme", "high", "lethal")))
                    )
                }
            elif name == "uc_allergy_atc":
                over = {
                    "sub_kind": "atc",
                    "sub_value": str(self._pick(self.ref.unmapped("atc", ("J01CE99", "Z99ZZ99")))),
                }
            d(v, "allergies", self._add_allergy(rec, person, **over))
        elif name == "or_kontakt":
            d(
                v,
                "kontakt",
                self._add_contact(-1, None, ghost=self._ghost("pas_patient"), children=i % 2 == 0),
            )
        elif name == "or_kontakt_no_patid":
            d(v, "kontakt", self._add_contact(-1, None, ghost=-2, children=False))
        elif name in ("or_diagnos", "or_atgard"):
            g = self._ghost("kontakt")
            day = int(r.integers(_W_LO, _W_HI + 1))
            if name == "or_diagnos":
                code = str(self.icd_nodot[r.integers(len(self.icd_nodot))])
                d(
                    v,
                    "diagnos",
                    self._add_row(
                        "diagnos",
                        -1,
                        g,
                        DIAGNOSKOD=code,
                        DIAGNOSTYP=("H", "B")[i % 2],
                        REGDATUM=_date_str(day),
                    ),
                )
            else:
                d(
                    v,
                    "atgard",
                    self._add_row("atgard", -1, g, KVAKOD=str(self._pick(self.kva)), DATUM=_date_str(day)),
                )
        elif name == "or_visit":
            d(v, "visits", self._add_visit(-1, None, ghost=self._ghost("pcs_patient"), n_dx=(2, 0)[i % 2]))
        elif name == "or_med":
            d(v, "medications", self._add_med(-1, None, self._ghost("pcs_patient")))
        elif name == "or_allergy":
            d(v, "allergies", self._add_allergy(-1, None, self._ghost("pcs_patient")))
        elif name == "im_kontakt_end_before_start":
            rec, person = self._clean_pas_record(PNR_SAM)
            start = self._rand_start(person, daytime=True)
            end = _fix_gap(start - (int(r.integers(1, 72)) * 60 if i % 2 else int(r.integers(1, 12)) * 5))
            d(v, "kontakt", self._add_contact(rec, person, children=True, start=start, end=end))
        elif name == "im_visit_end_before_start":
            rec, person = self._clean_pcs_record(PNR_SAM)
            start = self._rand_start(person, daytime=True)
            end = start - int(r.integers(1, 12)) * 5 - (1440 if i % 2 else 0)
            d(v, "visits", self._add_visit(rec, person, n_dx=1, start=start, end=_fix_gap(end)))
        elif name in ("im_kontakt_before_birth", "im_visit_before_birth"):
            assert host is not None
            birth = int(self.birth[host])
            day = birth - int(r.integers(1, min(400, birth - _W_LO) + 1))
            start = _fix_gap(day * 1440 + 480 + int(r.integers(0, 100)) * 5)
            if name == "im_kontakt_before_birth":
                d(
                    v,
                    "kontakt",
                    self._add_contact(int(self.pas_rec_of[host]), host, children=True, start=start),
                )
            else:
                d(v, "visits", self._add_visit(int(self.pcs_rec_of[host]), host, n_dx=1, start=start))
        elif name in ("im_kontakt_after_death", "im_visit_after_death"):
            assert host is not None
            death = int(self.death[host])
            day = min(death + int(r.integers(31, 300)), _W_HI)
            start = _fix_gap(day * 1440 + 480 + int(r.integers(0, 100)) * 5)
            if name == "im_kontakt_after_death":
                d(
                    v,
                    "kontakt",
                    self._add_contact(int(self.pas_rec_of[host]), host, children=True, start=start),
                )
            else:
                d(v, "visits", self._add_visit(int(self.pcs_rec_of[host]), host, n_dx=1, start=start))
        elif name == "im_kontakt_dst_gap":
            for _ in range(1000):
                rec, person = self._clean_pas_record(PNR_SAM)
                lo, hi = self._window(person)
                days = [int(x) for x in _SPRING_DAY if lo <= x <= hi]
                if days:
                    break
            else:  # pragma: no cover
                raise MigcheckError("internal: no host for a spring clock-change contact")
            day = int(self._pick(days))
            start = day * 1440 + 120 + int(r.integers(0, 12)) * 5  # 02:00-02:55 does not exist that day
            end = day * 1440 + 180 + int(r.integers(12, 60)) * 5 if i % 2 == 0 else None
            d(v, "kontakt", self._add_contact(rec, person, children=True, start=start, end=end))
        elif name in ("up_diagnos_extra", "up_diagnos_missing"):
            brk = "extra" if name.endswith("extra") else "missing1"
            d(v, "diagnos", self._add_diag_on_clean_contact(_break=brk))
        elif name in ("up_atgard_extra", "up_atgard_missing"):
            brk = "extra" if name.endswith("extra") else "missing1"
            d(v, "atgard", self._add_atg_on_clean_contact(_break=brk))
        elif name in ("up_visit", "up_med", "up_allergy", "up_lab"):
            rec, person = self._clean_pcs_record()
            brk = ("truncate", "comma", "single", "quote")[i % 4]
            if name == "up_visit":
                key = self._add_visit(rec, person, n_dx=0, over={"_break": brk})
                d(v, "visits", key)
            elif name == "up_med":
                d(v, "medications", self._add_med(rec, person, _break=brk))
            elif name == "up_allergy":
                d(v, "allergies", self._add_allergy(rec, person, _break=brk))
            else:
                key = self._add_lab(rec, person)
                self.added["labresults"][-1]["_break"] = brk
                d(v, "labresults", key)
        elif name == "up_kontakt_date":
            rec, person = self._clean_pas_record()
            start = self._rand_start(person, daytime=True)
            txt = _pas_ts(start)
            bad = (
                txt[:5] + "13" + txt[7:],
                f"{txt[8:10]}.{txt[5:7]}.{txt[:4]} {txt[11:]}",
                txt[:8] + "32" + txt[10:],
            )[i % 3]
            d(
                v,
                "kontakt",
                self._add_contact(rec, person, children=False, start=start, over={"INDATUM": bad}),
            )
        else:  # pragma: no cover - every variant has a branch
            raise AssertionError(name)

    # ---------------------------------------------------------------- assembly

    def run(self) -> tuple[dict[str, tuple[bytes, int]], str]:
        self._plan()
        variants = VARIANTS if self.inject else ()
        for v in variants:
            if v.systems:
                self._reserve(v)
        self._derive()
        self._allocate_records()
        for _ in range(100):
            self._identities()
            try:
                for v in variants:
                    if v.level == "patient":
                        for i, p in enumerate(self.hosts[v.name]):
                            self._patient_variant(v, i, p)
                break
            except _Collision:  # a derived defect value equals another identity: redraw everything
                self.defects.clear()
                self.pas_over.clear()
                self.pcs_over.clear()
        else:  # pragma: no cover - derived values practically never collide
            raise MigcheckError("internal: could not draw distinct identity numbers")
        pas_patients = self._pas_patients()
        pcs_patients = self._pcs_patients()
        self._bulk_pas_children()
        self._bulk_pcs_children()
        for v in variants:
            if v.level == "child":
                hosts = self.hosts.get(v.name) or [None] * self.per_variant
                for i, h in enumerate(hosts):
                    self._child_variant(v, i, h)
        return self._finish(pas_patients, pcs_patients)

    def _table(self, name: str) -> pl.DataFrame:
        bulk: pl.DataFrame = getattr(self, f"bulk_{name}")
        schema = _SCHEMAS[name]
        bulk = bulk.select([pl.col(c).cast(t) for c, t in schema.items()])
        if not self.added[name]:
            return bulk
        return pl.concat([bulk, pl.DataFrame(self.added[name], schema=schema)])

    def _ids(self, n: int, start: int, n_ghosts: int) -> tuple[np.ndarray, np.ndarray]:
        """Increasing ids with gaps, and ``n_ghosts`` unused ids from those gaps (orphans' parents)."""
        ids = start + np.cumsum(self.rng.integers(1, 4, n))
        lo = start + 1
        hi = int(ids[-1]) if n else start + 1
        used = np.zeros(hi - lo + 1, dtype=bool)
        used[ids - lo] = True
        free = np.flatnonzero(~used) + lo
        if len(free) < n_ghosts:
            free = np.concatenate([free, hi + 1 + np.arange(n_ghosts - len(free))])
        ghosts = free[np.sort(self.rng.choice(len(free), n_ghosts, replace=False))] if n_ghosts else free[:0]
        return ids, self.rng.permutation(ghosts)

    @staticmethod
    def _with_parent(df: pl.DataFrame, parent_ids: pl.DataFrame, ghost_ids: list[str], col: str) -> pl.DataFrame:
        """Add the parent's external id as ``col`` (ghost id for orphans, empty for an empty parent id)."""
        ghosts = pl.DataFrame(
            {"_ghost": np.arange(len(ghost_ids), dtype=np.int64), "_gid": ghost_ids},
            schema={"_ghost": pl.Int64, "_gid": pl.String},
        )
        df = df.join(parent_ids.rename({"_k": "_pk", "_id": "_pid"}), on="_pk", how="left", maintain_order="left")
        df = df.join(ghosts, on="_ghost", how="left", maintain_order="left")
        return df.with_columns(
            pl.when(pl.col("_ghost") == -2)
            .then(pl.lit(""))
            .when(pl.col("_ghost") >= 0)
            .then(pl.col("_gid"))
            .otherwise(pl.col("_pid"))
            .alias(col)
        ).drop("_pid", "_gid")

    def _finish(self, pp: pl.DataFrame, cp: pl.DataFrame) -> tuple[dict[str, tuple[bytes, int]], str]:
        # PAS ids
        pp = pp.sort("_ord")
        patid, ghost_patid = self._ids(pp.height, 100_000, self.ghosts["pas_patient"])
        pp = pp.with_columns(pl.Series("PATID", patid.astype(str)))
        kc = self._with_parent(
            self._table("kontakt"),
            pp.select("_k", pl.col("PATID").alias("_id")),
            ghost_patid.astype(str).tolist(),
            "PATID",
        )
        kc = kc.sort("_sort", "_k")
        kid, ghost_kid = self._ids(kc.height, 5_000_000, self.ghosts["kontakt"])
        kc = kc.with_columns(pl.Series("KONTAKTID", kid.astype(str)))
        kc_ids = kc.select("_k", pl.col("KONTAKTID").alias("_id"))
        dg = self._with_parent(self._table("diagnos"), kc_ids, ghost_kid.astype(str).tolist(), "KONTAKTID")
        at = self._with_parent(self._table("atgard"), kc_ids, ghost_kid.astype(str).tolist(), "KONTAKTID")
        dg = dg.sort(pl.col("KONTAKTID").cast(pl.Int64, strict=False), "_k")
        at = at.sort(pl.col("KONTAKTID").cast(pl.Int64, strict=False), "_k")

        # PCS ids
        cp = cp.sort("_ord")
        pid, ghost_pid = self._ids(cp.height, 1_000, self.ghosts["pcs_patient"])
        cp = cp.with_columns(pl.Series("id", [f"P-{x:07d}" for x in pid], dtype=pl.String))
        ghost_pid_s = [f"P-{x:07d}" for x in ghost_pid]
        cp_ids = cp.select("_k", pl.col("id").alias("_id"))
        pcs: dict[str, pl.DataFrame] = {}
        for name, prefix, start in (
            ("visits", "V", 100_000),
            ("medications", "M", 10_000),
            ("allergies", "A", 1_000),
            ("labresults", "L", 100_000),
        ):
            df = self._with_parent(self._table(name), cp_ids, ghost_pid_s, "patientId").sort("_sort", "_k")
            ids, _ = self._ids(df.height, start, 0)
            pcs[name] = df.with_columns(pl.Series("id", [f"{prefix}-{x:08d}" for x in ids], dtype=pl.String))
        vdx = self._table("vdx").join(
            pcs["visits"].select(pl.col("_k").alias("_pk"), pl.col("id").alias("_vid")),
            on="_pk",
            how="left",
            maintain_order="left",
        )

        files: dict[str, tuple[bytes, int]] = {}
        tables = {"patient.csv": pp, "kontakt.csv": kc, "diagnos.csv": dg, "atgard.csv": at}
        for fname, df in tables.items():
            files[f"pas/{fname}"] = self._pas_file(fname, df)
        files["pcs/patients.jsonl"] = self._jsonl(cp, self._patient_json())
        elements = (
            vdx.sort("_pk", "_k")
            .group_by("_pk", maintain_order=True)
            .agg(
                pl.concat_str(
                    [
                        pl.lit('{"code": '),
                        _js(pl.col("code")),
                        pl.lit(', "primary": '),
                        _jb(pl.col("primary")),
                        pl.lit("}"),
                    ]
                )
                .str.join(", ")
                .alias("_dx")
            )
        )
        visits = pcs["visits"].join(elements.rename({"_pk": "_k"}), on="_k", how="left", maintain_order="left")
        files["pcs/visits.jsonl"] = self._jsonl(visits, self._visit_json())
        files["pcs/medications.jsonl"] = self._jsonl(pcs["medications"], self._med_json())
        files["pcs/allergies.jsonl"] = self._jsonl(pcs["allergies"], self._allergy_json())
        files["pcs/labresults.jsonl"] = self._jsonl(pcs["labresults"], self._lab_json())
        truth = self._truth(
            {
                "pas_patient": pp,
                "kontakt": kc,
                "diagnos": dg,
                "atgard": at,
                "pcs_patient": cp,
                "vdx": vdx,
                **pcs,
            }
        )
        return files, truth

    # ---------------------------------------------------------------- writing

    @staticmethod
    def _break_csv(line: str, how: str) -> str:
        if how == "extra":
            return line + ";X"
        drop = int(how[len("missing") :])
        return line.rsplit(";", drop)[0]

    @staticmethod
    def _break_json(line: str, how: str) -> str:
        if how == "truncate":
            return line[: len(line) * 2 // 3]
        if how == "comma":
            return line[:-1] + ", }"
        if how == "single":
            return line.replace('"', "'")
        at = line.find('", "')  # drop the closing quote of the first string value
        return line[:at] + line[at + 1 :] if at > 0 else line[:-1]

    def _pas_file(self, fname: str, df: pl.DataFrame) -> tuple[bytes, int]:
        header = PAS_HEADERS[fname]
        lines = df.select(pl.concat_str([_csv_field(pl.col(c)) for c in header], separator=";").alias("l"), "_break")
        text = lines["l"].to_list()
        for pos in lines.with_row_index("_pos").filter(pl.col("_break").is_not_null()).iter_rows(named=True):
            text[pos["_pos"]] = self._break_csv(text[pos["_pos"]], pos["_break"])
        body = "\r\n".join([";".join(header), *text]) + "\r\n"
        return body.encode("cp1252"), len(text)

    def _jsonl(self, df: pl.DataFrame, expr: pl.Expr) -> tuple[bytes, int]:
        lines = df.select(expr.alias("l"), "_break")
        text = lines["l"].to_list()
        for pos in lines.with_row_index("_pos").filter(pl.col("_break").is_not_null()).iter_rows(named=True):
            text[pos["_pos"]] = self._break_json(text[pos["_pos"]], pos["_break"])
        return ("".join(t + "\n" for t in text)).encode("utf-8"), len(text)

    @staticmethod
    def _obj(*parts: tuple[str, pl.Expr]) -> pl.Expr:
        pieces: list[pl.Expr] = []
        for i, (key, val) in enumerate(parts):
            pieces.append(pl.lit(("{" if i == 0 else ", ") + f'"{key}": '))
            pieces.append(val)
        pieces.append(pl.lit("}"))
        return pl.concat_str(pieces)

    def _patient_json(self) -> pl.Expr:
        c = pl.col
        return self._obj(
            ("id", _js(c("id"))),
            ("identity", self._obj(("type", _js(c("id_type"))), ("value", _js(c("id_value"))))),
            ("name", self._obj(("family", _js(c("family"))), ("given", _js(c("given"))))),
            ("sex", _js(c("sex"))),
            ("deceased", _js(c("deceased"))),
            ("protected", _jb(c("protected"))),
            (
                "address",
                self._obj(("postalCode", _js(c("postalCode"))), ("municipality", _js(c("municipality")))),
            ),
        )

    def _visit_json(self) -> pl.Expr:
        c = pl.col
        dx = pl.lit("[") + c("_dx").fill_null("") + pl.lit("]")
        return self._obj(
            ("id", _js(c("id"))),
            ("patientId", _js(c("patientId"))),
            ("type", _js(c("type"))),
            ("unitHsaId", _js(c("unitHsaId"))),
            ("start", _js(c("start"))),
            ("end", _js(c("end"))),
            ("status", _js(c("status"))),
            ("diagnoses", dx),
        )

    def _med_json(self) -> pl.Expr:
        c = pl.col
        return self._obj(*[(k, _js(c(k))) for k in ("id", "patientId", "atc", "name", "dose", "start", "end")])

    def _allergy_json(self) -> pl.Expr:
        c = pl.col
        sub = (
            pl.when(c("sub_kind") == "atc")
            .then(pl.lit('{"atc": ') + _js(c("sub_value")) + pl.lit("}"))
            .when(c("sub_kind") == "text")
            .then(pl.lit('{"text": ') + _js(c("sub_value")) + pl.lit("}"))
            .when(c("sub_kind") == "empty")
            .then(pl.lit("{}"))
            .otherwise(pl.lit("null"))
        )
        return self._obj(
            ("id", _js(c("id"))),
            ("patientId", _js(c("patientId"))),
            ("substance", sub),
            ("severity", _js(c("severity"))),
            ("recorded", _js(c("recorded"))),
        )

    def _lab_json(self) -> pl.Expr:
        c = pl.col
        return self._obj(*[(k, _js(c(k))) for k in ("id", "patientId", "npu", "value", "unit", "taken")])

    # ---------------------------------------------------------------- ground truth

    def _truth(self, tables: dict[str, pl.DataFrame]) -> str:
        def s(x: object) -> str:
            return "" if x is None else str(x).strip()

        refs: dict[str, Callable[[dict], str]] = {
            "pas_patient": lambda r: f"pas:patient:{s(r['PATID'])}",
            "kontakt": lambda r: f"pas:kontakt:{s(r['KONTAKTID'])}",
            "diagnos": lambda r: f"pas:diagnos:{s(r['KONTAKTID'])}:{s(r['DIAGNOSKOD'])}:{s(r['DIAGNOSTYP'])}",
            "atgard": lambda r: f"pas:atgard:{s(r['KONTAKTID'])}:{s(r['KVAKOD'])}:{s(r['DATUM'])}",
            "pcs_patient": lambda r: f"pcs:patient:{s(r['id'])}",
            "visits": lambda r: f"pcs:visit:{s(r['id'])}",
            "vdx": lambda r: f"pcs:diagnosis:{s(r['_vid'])}:{s(r['code'])}",
            "medications": lambda r: f"pcs:medication:{s(r['id'])}",
            "allergies": lambda r: f"pcs:allergy:{s(r['id'])}",
            "labresults": lambda r: f"pcs:labresult:{s(r['id'])}",
        }
        files = {
            "pas_patient": ("pas", "patient.csv", 2),
            "kontakt": ("pas", "kontakt.csv", 2),
            "diagnos": ("pas", "diagnos.csv", 2),
            "atgard": ("pas", "atgard.csv", 2),
            "pcs_patient": ("pcs", "patients.jsonl", 1),
            "visits": ("pcs", "visits.jsonl", 1),
            "medications": ("pcs", "medications.jsonl", 1),
            "allergies": ("pcs", "allergies.jsonl", 1),
            "labresults": ("pcs", "labresults.jsonl", 1),
        }
        wanted: dict[str, set[int]] = {}
        for dfc in self.defects:
            wanted.setdefault(dfc.table, set()).add(dfc.key)
        found: dict[tuple[str, int], str] = {}
        for table, keys in wanted.items():
            df = tables[table].with_row_index("_pos").filter(pl.col("_k").is_in(sorted(keys)))
            for row in df.iter_rows(named=True):
                if table in files and row.get("_break") is not None:
                    system, fname, first = files[table]
                    found[(table, row["_k"])] = f"{system}:{fname}#{row['_pos'] + first}"
                else:
                    found[(table, row["_k"])] = refs[table](row)
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(DEFECT_COLUMNS)
        for i, dfc in enumerate(self.defects, start=1):
            v = dfc.variant
            w.writerow(
                [
                    f"S{i:04d}",
                    "source",
                    v.category,
                    v.entity,
                    found[(dfc.table, dfc.key)],
                    "",
                    v.column,
                    v.description + dfc.note + ".",
                ]
            )
        return out.getvalue()


class _Collision(Exception):
    """A derived (defective) identity value happens to equal another one: the plan is redrawn."""
