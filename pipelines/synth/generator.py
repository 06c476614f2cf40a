"""Synthetic legacy extract (PAS + PCS) with injected source defects and their ground truth.

``generate`` writes an extract in the exact formats of ``legacy-exports.md`` and ``clinical-notes.md``
(the clinical notes ``pas/anteckning.csv`` and ``pcs/notes.jsonl``: radiology reports, discharge
summaries, daily notes, operation reports, primary-care journal notes and referral answers, as
Swedish free text) and ``defects.csv``, the list of every source-layer defect it injected. How it
keeps the ground truth exact:

* The bulk of the data is clean by construction: valid identities whose sex digit agrees with
  the recorded sex, mapped and active codes, encounters inside the person's life (no start before
  birth, none after death), no non-existent local times, distinct codes per contact/visit; notes
  with a known type and a non-empty text, signed on or after their contact's or visit's start (or
  unsigned drafts, which are out of scope like the notes on voided contacts and draft visits).
* Defects sit on *dedicated* records: a patient-level defect on a person who has no other defect
  and exists in one system only; a child-level defect on a record of its own (an appended
  contact, visit, diagnosis row, …) whose parents are clean. So every listed defect has exactly
  one cause, and records that are rejected pull their children with them (the cascade) without
  rows of their own.
* Everything is column-wise (numpy/polars), the defect variants too: each is one small function
  in the registry of ``defects.py`` that makes all its instances at once.

The work is split by concern: ``population`` (persons, identities, names, patient records),
``clinical`` (contacts, visits, notes and the other child records), ``note_text`` (the Swedish
sentence corpus and the vectorised note-text builder), ``defects`` (the variant table),
``writers`` (ids, file order, the cp1252 CSV and JSON Lines writers, ``defects.csv``); ``world``
holds the state of one run, ``calendar`` the Stockholm wall-clock arithmetic, ``reference`` the codes.

Everything is driven by one ``numpy.random.Generator(seed)``: the same arguments give the same
bytes (no clock, no hash ordering).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from checks.errors import MigcheckError
from pipelines.synth import clinical, population
from pipelines.synth.defects import (
    VARIANTS,
    Ctx,
    check_identities,
    inject_child_variants,
    inject_patient_variants,
)
from pipelines.synth.reference import MAPPINGS, Reference
from pipelines.synth.scoring import TRUTH_COLUMNS as DEFECT_COLUMNS
from pipelines.synth.world import World
from pipelines.synth.writers import NOTE_FILES, PAS_HEADERS, PCS_FILES, write_extract

__all__ = ["DEFECT_COLUMNS", "NOTE_FILES", "PAS_HEADERS", "PCS_FILES", "VARIANTS", "GenerateResult", "generate"]


@dataclass(frozen=True)
class GenerateResult:
    """What ``generate`` wrote."""

    out_dir: Path
    records: dict[str, int]  # "pas/patient.csv" -> records written (a note may span lines), "pcs/visits.jsonl" -> lines
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
    ref = Reference.load(MAPPINGS)
    inject = defects == "default"
    per_variant = max(2, patients // 500) if inject else 0
    w = World(rng=np.random.default_rng(seed), ref=ref, n=patients, per_variant=per_variant)
    variants = VARIANTS if inject else []

    p = population.plan(w, patients, w.per_variant * sum(1 for v in variants if v.systems))
    population.reserve_hosts(w, p, variants)
    population.derive(w, p)
    population.identities(w, p)
    rec = population.allocate_records(w, p)
    w.extra["codes"] = clinical.Codes(w)
    ctx = Ctx(w, p, rec)
    pas_over, pcs_over = inject_patient_variants(ctx) if inject else ({}, {})
    pas = population.pas_patients(w, p, rec, pas_over)
    pcs = population.pcs_patients(w, p, rec, pcs_over)
    check_identities(ctx, pas, pcs)
    clinical.bulk_pas(w, p, rec)
    clinical.bulk_pcs(w, p, rec)
    if inject:
        inject_child_variants(ctx)
    try:
        records, n_defects = write_extract(w, pas, pcs, out_dir)
    except OSError as exc:
        raise MigcheckError(f"cannot write the extract to {out_dir}: {exc.strerror or exc}") from None
    return GenerateResult(out_dir=out_dir, records=records, defects=n_defects)
