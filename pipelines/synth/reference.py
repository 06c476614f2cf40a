"""Reference data for the synthetic extract: the codes a clean record may use, and candidates that map to nothing."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from checks.errors import MigcheckError

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"


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
class Reference:
    """The codes a clean record may use, read from ``mappings/``."""

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
    def load(root: Path) -> Reference:
        """Read the reference data and code maps under ``root``."""
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
        return Reference(
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
