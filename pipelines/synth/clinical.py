"""Clinical records: PAS contacts, diagnoses, procedures, notes; PCS visits, medications, allergies, lab results, notes.

One vectorised builder per record kind (``add_contacts``, ``add_visits``, ``add_pas_notes``, …) makes a
batch of clean records for given parent records; the bulk of the extract and the records a defect
variant appends come from the same builders (a variant passes the values it breaks as ``over``). Codes
of a contact's or visit's diagnoses are ``(base + j * step) % len(codes)`` with ``step`` coprime to the
number of codes, so they are distinct, and a code not yet used by the record is one with ``j >= count``.

Clinical notes (``clinical-notes.md``) hang on contacts and visits of the bulk, in scope or not (about
0.6 per contact, 0.5 per visit); their text comes from ``note_text``. A note is signed on or after its
contact's or visit's start, at a local time that exists and is not the repeated October hour; about
3 % are unsigned drafts (empty SIGNERAD, ``signed`` null).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from checks.errors import MigcheckError
from pipelines.synth import calendar as cal
from pipelines.synth import names as V
from pipelines.synth import note_text as T
from pipelines.synth.population import Persons, Records, window
from pipelines.synth.world import ANY_KIND, World, vocab

CONTACT_TYPES = ("SV", "OV", "AKM", "DAG")
_CONTACT_TYPE_P = (0.20, 0.55, 0.15, 0.10)
VISIT_TYPES = ("visit", "phone", "video", "home")
_VISIT_TYPE_P = (0.55, 0.30, 0.08, 0.07)
SEVERITIES = ("mild", "moderate", "severe")
_SEVERITY_P = (0.5, 0.35, 0.15)
# Preferred units per contact type (those not in the active map are dropped).
_UNITS_BY_TYPE = (
    ("MED1", "MED2", "KIR1", "ORT", "BARN", "KVK", "GER", "IVA", "ONK", "KARD"),
    ("MED1", "MED2", "KIR1", "ORT", "BARN", "KVK", "GER", "ONK", "KARD"),
    ("AKM",),
    ("DKIR", "KIR1", "ORT"),
)
# Free-text substances of appended allergies: never one of a patient's coded or listed ones.
APPENDED_ALLERGENS = ("Nickel", "Parfym", "Citrusfrukter")
_DEFAULT_DOSE = "1 tablett 1 gång dagligen"
# Notes: how many per contact / visit (0, 1, 2, 3), the PAS note type (RTG, EPI, DAG, OPB) per contact
# type (SV, OV, AKM, DAG), and minutes from the start of the contact / visit to the signature.
_NOTES_PER_CONTACT_P = (0.57, 0.29, 0.10, 0.04)
_NOTES_PER_VISIT_P = (0.60, 0.32, 0.06, 0.02)
_NOTE_TYPE_P = (
    (0.25, 0.30, 0.35, 0.10),
    (0.45, 0.00, 0.55, 0.00),
    (0.50, 0.05, 0.45, 0.00),
    (0.10, 0.10, 0.20, 0.60),
)
_PAS_SIGN_DELAY = ((20, 1_440), (1_440, 20_160), (30, 2_880), (30, 600))  # RTG, EPI, DAG, OPB
_REFERRAL_ANSWER_P = 0.15
_UNSIGNED_P = 0.03
_PCS_CRLF_P = 0.03  # PCS notes whose line breaks are \r\n


def _coprime_steps(n: int) -> np.ndarray:
    return np.array([s for s in range(1, max(n, 2)) if math.gcd(s, n) == 1] or [1], dtype=np.int64)


def positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For children repeated by ``counts``: the parent index of each child and its position 0..k-1."""
    parent = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return parent, np.arange(len(parent)) - starts[parent]


class Codes:
    """The code lists of a run, as arrays (for picks) and string Series (for gathers)."""

    def __init__(self, w: World) -> None:
        ref = w.ref
        self.icd_nodot = tuple(c.replace(".", "") for c in ref.icd)
        self.icd_dot = tuple(ref.icd)
        self.kva = tuple(ref.kva)
        self.atc = tuple(ref.atc)
        self.atc_name = tuple(ref.atc_name[a] for a in ref.atc)
        # PAS writes some codes in lower case: index i + len(codes) is code i in lower case
        self.icd_pas = self.icd_nodot + tuple(x.lower() for x in self.icd_nodot)
        self.kva_pas = self.kva + tuple(x.lower() for x in self.kva)
        doses = [V.DOSES.get(a, (_DEFAULT_DOSE,)) for a in ref.atc]
        self.dose_cnt = np.array([len(d) for d in doses])
        self.dose_off = np.cumsum(self.dose_cnt) - self.dose_cnt
        self.doses = tuple(x for d in doses for x in d)
        by_type = [[u for u in us if u in ref.pas_units] or list(ref.pas_units) for us in _UNITS_BY_TYPE]
        self.pas_units = tuple(u for us in by_type for u in us)
        self.pas_unit_cnt = np.array([len(us) for us in by_type])
        self.pas_unit_off = np.cumsum(self.pas_unit_cnt) - self.pas_unit_cnt
        self.pcs_units = tuple(ref.pcs_units)
        self.icd_steps = _coprime_steps(len(self.icd_nodot))
        self.kva_steps = _coprime_steps(len(self.kva))


def _draw(w: World, n_codes: int, counts: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct-code scheme per parent: (base, step) and the child rows' (parent, position, code index)."""
    n = len(counts)
    base = w.rng.integers(0, n_codes, n)
    step = steps[w.rng.integers(0, len(steps), n)]
    par, j = positions(counts)
    return base, step, par, j, (base[par] + j * step[par]) % n_codes


def _spread(w: World, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """A day from ``first`` to at most 30 days later, not after ``last``."""
    return cal.uniform_days(w.rng, first, first + np.clip(last - first, 0, 30))


def _lower_some(w: World, idx: np.ndarray, n_codes: int, share: float) -> np.ndarray:
    """Index into a code list followed by its lower-case copy: some codes written in lower case."""
    return idx + np.where(w.rng.random(len(idx)) < share, n_codes, 0)


def _window_or_all(p: Persons, person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The care window of each person; the whole extract's for -1 (orphans have no person)."""
    known = person >= 0
    lo, hi = window(p, np.where(known, person, 0))
    return np.where(known, lo, cal.W_LO), np.where(known, hi, cal.W_HI)


def keep(values: pl.Series, mask: Any, other: str | None = None) -> pl.Series:
    """``values`` where ``mask`` holds, ``other`` (default null) elsewhere."""
    n = len(values)
    flags = pl.Series(np.broadcast_to(np.asarray(mask, dtype=bool), (n,)))
    return values.zip_with(flags, pl.repeat(other, n, dtype=pl.String, eager=True))


def _over(cols: dict[str, Any], over: dict[str, Any] | None) -> dict[str, Any]:
    cols.update(over or {})
    return cols


# ------------------------------------------------------------------------------------------------
# PAS: contacts, diagnoses, procedures


def contact_starts(w: World, p: Persons, person: np.ndarray, ctype: np.ndarray) -> np.ndarray:
    """Start wall time of a contact: inpatient/emergency at any time, others in the daytime."""
    r, n = w.rng, len(person)
    lo, hi = _window_or_all(p, person)
    day = cal.uniform_days(r, lo, hi)
    anytime = (ctype == 0) | (ctype == 2)
    mod = np.where(anytime, r.integers(0, 288, n) * 5, 420 + r.integers(0, 120, n) * 5)
    return cal.skip_gap(day * 1440 + mod)


def add_contacts(
    w: World,
    p: Persons,
    rec: np.ndarray,
    person: np.ndarray,
    *,
    ctype: np.ndarray | None = None,
    start: np.ndarray | None = None,
    end: np.ndarray | None = None,
    has_end: np.ndarray | bool = True,
    status: Any = "A",
    ghost: Any = -1,
    children: np.ndarray | bool = True,
    over: dict[str, Any] | None = None,
) -> np.ndarray:
    """Contacts of PAS records ``rec`` (persons ``person``); their keys.

    Where ``children`` holds, a contact gets 1-3 diagnoses and 0-2 procedures.
    """
    r, n, codes = w.rng, len(rec), w.extra["codes"]
    if ctype is None:
        ctype = r.choice(4, n, p=_CONTACT_TYPE_P)
    if start is None:
        start = contact_starts(w, p, person, ctype)
    if end is None:
        dur = np.select(
            [ctype == 0, ctype == 1, ctype == 2],
            [r.integers(288, 20 * 288, n) * 5, r.integers(3, 19, n) * 5, r.integers(12, 120, n) * 5],
            r.integers(36, 120, n) * 5,
        )
        end = cal.skip_gap(start + dur)
    has_end = np.broadcast_to(np.asarray(has_end, dtype=bool), (n,))
    unit = codes.pas_unit_off[ctype] + (r.random(n) * codes.pas_unit_cnt[ctype]).astype(np.int64)
    keys = w.add(
        "kontakt",
        **_over(
            {
                "_pk": rec,
                "_ghost": ghost,
                "KONTAKTTYP": vocab(CONTACT_TYPES, ctype),
                "ENHET": vocab(codes.pas_units, unit),
                "INDATUM": cal.pas_ts(start),
                "UTDATUM": keep(cal.pas_ts(end), has_end, ""),
                "STATUS": status,
                "_sort": start,
            },
            over,
        ),
    )
    children = np.broadcast_to(np.asarray(children, dtype=bool), (n,))
    ndx = np.where(children, r.choice([1, 2, 3], n, p=[0.5, 0.33, 0.17]), 0)
    nat = np.where(children, r.choice([0, 1, 2], n, p=[0.45, 0.40, 0.15]), 0)
    cday = start // 1440
    eday = np.where(has_end, end // 1440, cday)
    n_icd, n_kva = len(codes.icd_nodot), len(codes.kva)
    dx_base, dx_step, par, j, code = _draw(w, n_icd, ndx, codes.icd_steps)
    if len(par):
        w.add(
            "diagnos",
            _pk=keys[par],
            DIAGNOSKOD=vocab(codes.icd_pas, _lower_some(w, code, n_icd, 0.08)),
            DIAGNOSTYP=vocab(("H", "B"), j > 0),
            REGDATUM=cal.day_text(_spread(w, cday[par], eday[par])),
        )
    at_base, at_step, par, j, code = _draw(w, n_kva, nat, codes.kva_steps)
    if len(par):
        w.add(
            "atgard",
            _pk=keys[par],
            KVAKOD=vocab(codes.kva_pas, _lower_some(w, code, n_kva, 0.05)),
            DATUM=cal.day_text(_spread(w, cday[par], eday[par])),
        )
    w.extra.setdefault("contact_info", []).append(
        {
            "key": keys,
            "start": start,
            "ctype": ctype,
            "day": cday,
            "dx_base": dx_base,
            "dx_step": dx_step,
            "ndx": ndx,
            "at_base": at_base,
            "at_step": at_step,
            "nat": nat,
        }
    )
    return keys


def bulk_pas(w: World, p: Persons, rec: Records) -> None:
    """Contacts of every PAS record (fewer for duplicate records), with their diagnoses and procedures."""
    r = w.rng
    ncont = r.poisson(np.where(rec.pr_seq == 0, 3.0, 1.5))
    ncont[p.no_children[rec.pr_person]] = 0
    pk = np.repeat(np.arange(len(rec.pr_person)), ncont)
    person = rec.pr_person[pk]
    n = len(pk)
    ctype = r.choice(4, n, p=_CONTACT_TYPE_P)
    lo, hi = window(p, person)
    start = contact_starts(w, p, person, ctype)
    # a few clean contacts in the repeated October hour (valid, ambiguous: read as summer time)
    day = start // 1440
    oct_day = cal.AUTUMN_DAY[cal.year_index(day)]
    elig = (oct_day >= lo) & (oct_day <= hi) & ((ctype == 0) | (ctype == 2))
    pick = elig & (r.random(n) < 0.003)
    if pick.sum() < 2:
        pick[np.flatnonzero(elig & ~pick)[: 2 - pick.sum()]] = True
    start = np.where(pick, oct_day * 1440 + 120 + r.integers(0, 12, n) * 5, start)
    has_end = r.random(n) >= 0.04
    voided = r.random(n) < 0.03
    keys = add_contacts(w, p, pk, person, ctype=ctype, start=start, has_end=has_end, status=vocab(("A", "M"), voided))
    w.extra["bulk_contacts"] = (keys, ~voided, person)
    on = np.repeat(np.arange(n), r.choice(4, n, p=_NOTES_PER_CONTACT_P))  # voided contacts too (out of scope)
    add_pas_notes(w, keys[on], start=start[on], ctype=ctype[on], signed=r.random(len(on)) >= _UNSIGNED_P)


def clean_records(
    w: World, p: Persons, rec: Records, system: str, n: int, kinds: tuple[int, ...] = ANY_KIND
) -> tuple[np.ndarray, np.ndarray]:
    """(record keys, persons) of ``n`` random clean patients of ``system``: not dedicated, not a duplicate."""
    pools = w.extra.setdefault("pools", {})
    if (system, kinds) not in pools:
        rec_person, rec_seq = (rec.pr_person, rec.pr_seq) if system == "pas" else (rec.cr_person, rec.cr_seq)
        ok = ~p.reserved[rec_person] & (rec_seq == 0) & np.isin(p.kind[rec_person], kinds)
        pools[(system, kinds)] = np.flatnonzero(ok)
    pool = pools[(system, kinds)]
    if not len(pool):  # pragma: no cover - the plan always leaves clean persons in both systems
        raise MigcheckError("internal: no clean patient to attach a defective record to")
    k = pool[w.rng.integers(0, len(pool), n)]
    return k, (rec.pr_person if system == "pas" else rec.cr_person)[k]


def _info(w: World, name: str) -> dict[str, np.ndarray]:
    """Per-record facts kept by a builder (``contact_info``, ``visit_info``), indexable by key."""
    parts = w.extra[name]
    if len(parts) > 1:
        w.extra[name] = parts = [{c: np.concatenate([x[c] for x in parts]) for c in parts[0]}]
    return parts[0]


def _contact_info(w: World) -> dict[str, np.ndarray]:
    return _info(w, "contact_info")


def _clean_hosts(
    w: World, p: Persons, rec: Records, n: int, kind: str, system: str, make: Callable[..., np.ndarray]
) -> np.ndarray:
    """Keys of ``n`` distinct in-scope ``kind`` records (bulk contacts or visits) of clean patients.

    The pool (``w.extra[kind + "_pool"]``, shuffled once) hands each out once; when the extract has
    too few, ``make`` (``add_contacts`` / ``add_visits``) makes new ones for clean patients of ``system``.
    """
    pool_key = f"{kind}_pool"
    if pool_key not in w.extra:
        keys, in_scope, person = w.extra[f"bulk_{kind}s"]
        pool = keys[in_scope & ~p.reserved[person]]
        w.extra[pool_key] = [pool[w.rng.permutation(len(pool))], 0]
    pool, head = w.extra[pool_key]
    take = pool[head : head + n]
    w.extra[pool_key][1] = head + len(take)
    if len(take) < n:
        r, person = clean_records(w, p, rec, system, n - len(take))
        take = np.concatenate([take, make(w, p, r, person)])
    return take


def clean_contacts(w: World, p: Persons, rec: Records, n: int) -> np.ndarray:
    """Keys of ``n`` distinct in-scope contacts of clean patients that no other defect uses yet.

    They host a defective diagnosis or procedure row; new contacts are made when the extract has too few.
    """
    return _clean_hosts(w, p, rec, n, "contact", "pas", add_contacts)


def _unused_code(w: World, n_codes: int, base: np.ndarray, step: np.ndarray, count: np.ndarray) -> np.ndarray:
    j = count + (w.rng.random(len(count)) * (n_codes - count)).astype(np.int64)
    return (base + j * step) % n_codes


def add_diagnoses_on_clean(w: World, p: Persons, rec: Records, n: int, over: dict[str, Any]) -> np.ndarray:
    """One secondary diagnosis row each on ``n`` clean contacts, with a code the contact does not have yet."""
    ck = clean_contacts(w, p, rec, n)
    info, codes = _contact_info(w), w.extra["codes"]
    code = _unused_code(w, len(codes.icd_nodot), info["dx_base"][ck], info["dx_step"][ck], info["ndx"][ck])
    cols = {
        "_pk": ck,
        "DIAGNOSKOD": vocab(codes.icd_nodot, code),
        "DIAGNOSTYP": "B",
        "REGDATUM": cal.day_text(info["day"][ck]),
    }
    return w.add("diagnos", **_over(cols, over))


def add_procedures_on_clean(w: World, p: Persons, rec: Records, n: int, over: dict[str, Any]) -> np.ndarray:
    """One procedure row each on ``n`` clean contacts, with a code the contact does not have yet."""
    ck = clean_contacts(w, p, rec, n)
    info, codes = _contact_info(w), w.extra["codes"]
    code = _unused_code(w, len(codes.kva), info["at_base"][ck], info["at_step"][ck], info["nat"][ck])
    cols = {"_pk": ck, "KVAKOD": vocab(codes.kva, code), "DATUM": cal.day_text(info["day"][ck])}
    return w.add("atgard", **_over(cols, over))


# ------------------------------------------------------------------------------------------------
# PCS: visits and their diagnoses


def visit_starts(w: World, p: Persons, person: np.ndarray) -> np.ndarray:
    """Start wall time of a visit: a weekday-like daytime slot 08:00-16:45."""
    lo, hi = _window_or_all(p, person)
    day = cal.uniform_days(w.rng, lo, hi)
    return cal.skip_gap(day * 1440 + 480 + w.rng.integers(0, 106, len(person)) * 5)


def add_visits(
    w: World,
    p: Persons,
    rec: np.ndarray,
    person: np.ndarray,
    *,
    start: np.ndarray | None = None,
    end: np.ndarray | None = None,
    has_end: np.ndarray | bool = True,
    status: Any = "signed",
    n_dx: np.ndarray | int = 1,
    ghost: Any = -1,
    over: dict[str, Any] | None = None,
) -> np.ndarray:
    """Visits of PCS records ``rec`` with ``n_dx`` distinct diagnoses each (the first primary); their keys."""
    r, n, codes = w.rng, len(rec), w.extra["codes"]
    if start is None:
        start = visit_starts(w, p, person)
    if end is None:
        end = cal.skip_gap(start + r.integers(2, 13, n) * 5)
    has_end = np.broadcast_to(np.asarray(has_end, dtype=bool), (n,))
    vtype = r.choice(4, n, p=_VISIT_TYPE_P)
    home = (r.random(n) < 0.85) & (person >= 0)
    unit = np.where(home, p.home_unit[np.maximum(person, 0)], r.integers(0, len(codes.pcs_units), n))
    keys = w.add(
        "visits",
        **_over(
            {
                "_pk": rec,
                "_ghost": ghost,
                "type": vocab(VISIT_TYPES, vtype),
                "unitHsaId": vocab(codes.pcs_units, unit),
                "start": cal.pcs_ts(start),
                "end": keep(cal.pcs_ts(end), has_end),
                "status": status,
                "_sort": start,
            },
            over,
        ),
    )
    n_dx = np.broadcast_to(np.asarray(n_dx, dtype=np.int64), (n,))
    _, _, par, j, code = _draw(w, len(codes.icd_dot), n_dx, codes.icd_steps)
    if len(par):
        w.add("vdx", _pk=keys[par], code=vocab(codes.icd_dot, code), primary=j == 0)
    w.extra.setdefault("visit_info", []).append({"key": keys, "start": start})
    return keys


def bulk_pcs(w: World, p: Persons, rec: Records) -> None:
    """Visits, medications, allergies and lab results of every PCS record (fewer for duplicates)."""
    r = w.rng
    scale = np.where(rec.cr_seq == 0, 1.0, 0.5)
    blocked = p.no_children[rec.cr_person]

    def parents(lam: float) -> tuple[np.ndarray, np.ndarray]:
        c = r.poisson(lam * scale)
        c[blocked] = 0
        pk = np.repeat(np.arange(len(rec.cr_person)), c)
        return pk, rec.cr_person[pk]

    pk, person = parents(3.0)
    n = len(pk)
    start = visit_starts(w, p, person)
    u = r.random(n)
    status = np.where(u < 0.03, 1, np.where(u < 0.06, 2, 0))
    keys = add_visits(
        w,
        p,
        pk,
        person,
        start=start,
        has_end=r.random(n) >= 0.05,
        status=vocab(("signed", "draft", "deleted"), status),
        n_dx=r.choice([0, 1, 2, 3], n, p=[0.25, 0.45, 0.22, 0.08]),
    )
    w.extra["bulk_visits"] = (keys, status == 0, person)
    on = np.repeat(np.arange(n), r.choice(4, n, p=_NOTES_PER_VISIT_P))  # drafts and deleted too (out of scope)
    add_pcs_notes(w, keys[on], start=start[on], signed=r.random(len(on)) >= _UNSIGNED_P)
    pk, person = parents(1.6)
    add_medications(w, p, pk, person, bulk=True)
    add_bulk_allergies(w, p, rec, blocked)
    pk, person = parents(2.5)
    add_labs(w, p, pk, person)


# ------------------------------------------------------------------------------------------------
# PCS: medications, allergies, lab results


def add_medications(
    w: World,
    p: Persons,
    rec: np.ndarray,
    person: np.ndarray,
    *,
    bulk: bool = False,
    ghost: Any = -1,
    over: dict[str, Any] | None = None,
) -> np.ndarray:
    """Medications of PCS records ``rec``; appended ones (not ``bulk``) have no end date."""
    r, n, codes = w.rng, len(rec), w.extra["codes"]
    lo, hi = _window_or_all(p, person)
    sday = cal.uniform_days(r, lo, hi)
    a = r.integers(0, len(codes.atc), n)
    dose = vocab(codes.doses, codes.dose_off[a] + r.integers(0, 1 << 30, n) % codes.dose_cnt[a])
    eday = sday + r.integers(7, 720, n)
    has_end = (r.random(n) < 0.45) & (eday <= cal.W_HI) if bulk else np.zeros(n, dtype=bool)
    cols = {
        "_pk": rec,
        "_ghost": ghost,
        "atc": vocab(codes.atc, a),
        "name": vocab(codes.atc_name, a),
        "dose": dose,
        "start": cal.day_text(sday),
        "end": keep(cal.day_text(eday), has_end),
        "_sort": sday,
    }
    return w.add("medications", **_over(cols, over))


def _allergies(
    w: World, p: Persons, rec: np.ndarray, person: np.ndarray, kind: Any, value: Any, known: Any, ghost: Any, over: Any
) -> np.ndarray:
    r, n = w.rng, len(rec)
    lo, hi = _window_or_all(p, person)
    rday = cal.uniform_days(r, lo, hi)
    cols = {
        "_pk": rec,
        "_ghost": ghost,
        "sub_kind": kind,
        "sub_value": value,
        "severity": vocab(SEVERITIES, r.choice(3, n, p=_SEVERITY_P)),
        "recorded": keep(cal.day_text(rday), known),
        "_sort": rday,
    }
    return w.add("allergies", **_over(cols, over))


def add_bulk_allergies(w: World, p: Persons, rec: Records, blocked: np.ndarray) -> None:
    """0-3 allergies per PCS record, distinct substances (coded ATC or free text) per record."""
    r = w.rng
    atc_set = set(w.ref.atc)
    subs = [("atc", a) for a in V.ALLERGY_ATC if a in atc_set] + [("text", t) for t in V.ALLERGY_TEXT]
    kinds, values = tuple(s[0] for s in subs), tuple(s[1] for s in subs)
    na = r.choice([0, 1, 2, 3], len(rec.cr_person), p=[0.74, 0.19, 0.05, 0.02])
    na[blocked] = 0
    _, _, par, _, s_idx = _draw(w, len(subs), na, _coprime_steps(len(subs)))
    if len(par):
        known = r.random(len(par)) >= 0.03
        _allergies(w, p, par, rec.cr_person[par], vocab(kinds, s_idx), vocab(values, s_idx), known, -1, None)


def add_allergies(
    w: World, p: Persons, rec: np.ndarray, person: np.ndarray, *, ghost: Any = -1, over: dict[str, Any] | None = None
) -> np.ndarray:
    """Allergies of PCS records ``rec`` with a free-text substance no record has otherwise."""
    value = vocab(APPENDED_ALLERGENS, w.rng.integers(0, len(APPENDED_ALLERGENS), len(rec)))
    return _allergies(w, p, rec, person, "text", value, True, ghost, over)


def add_labs(
    w: World, p: Persons, rec: np.ndarray, person: np.ndarray, *, over: dict[str, Any] | None = None
) -> np.ndarray:
    """Lab results of PCS records ``rec``, taken in the morning (out of scope for the migration)."""
    r, n = w.rng, len(rec)
    lo, hi = window(p, person)
    taken = cal.uniform_days(r, lo, hi) * 1440 + 420 + r.integers(0, 60, n) * 5
    labs = V.LAB_ANALYSES
    a = r.integers(0, len(labs), n)
    npu_codes = tuple(lab[0] for lab in labs)
    low = np.array([lab[2] for lab in labs], dtype=float)[a]
    high = np.array([lab[3] for lab in labs], dtype=float)[a]
    dec = np.array([lab[4] for lab in labs], dtype=np.int64)[a]
    level = low + r.random(n) * (high - low)
    scaled = np.rint(level * 10.0**dec).astype(np.int64)
    c = pl.col
    value = pl.DataFrame(
        {
            "i": scaled // 10**dec,
            "f": scaled % 10**dec,
            "d": dec,
            "lt5": (np.array(npu_codes)[a] == "NPU19748") & (level < 5),
        }
    ).select(
        pl.when("lt5")
        .then(pl.lit("<5"))
        .when(c("d") == 0)
        .then(c("i").cast(pl.String))
        .otherwise(c("i").cast(pl.String) + "." + c("f").cast(pl.String).str.zfill(c("d")))
    )
    cols = {
        "_pk": rec,
        "npu": vocab(npu_codes, a),
        "value": value.to_series(),
        "unit": vocab(tuple(lab[1] for lab in labs), a),
        "taken": cal.pcs_ts(taken),
        "_sort": taken,
    }
    return w.add("labresults", **_over(cols, over))


# ------------------------------------------------------------------------------------------------
# clinical notes


def _unambiguous(t: np.ndarray) -> np.ndarray:
    """Wall times moved out of the skipped spring hour and out of the repeated October hour (one hour on)."""
    t = cal.skip_gap(t)
    fold = cal.AUTUMN_DAY[cal.year_index(t // 1440)] * 1440 + 120  # 02:00-02:59 happens twice that day
    return np.where((t >= fold) & (t < fold + 60), t + 60, t)


def note_contacts(w: World, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, contact type) of contacts ``keys``."""
    info = _contact_info(w)
    return info["start"][keys], info["ctype"][keys]


def note_visit_starts(w: World, keys: np.ndarray) -> np.ndarray:
    """Start wall time of visits ``keys``."""
    return _info(w, "visit_info")["start"][keys]


def add_pas_notes(
    w: World,
    contact: np.ndarray,
    *,
    start: np.ndarray,
    ctype: np.ndarray,
    signed: np.ndarray | bool = True,
    ghost: Any = -1,
    over: dict[str, Any] | None = None,
) -> np.ndarray:
    """Notes on PAS contacts ``contact`` (started at ``start``, of type ``ctype``); their keys.

    The note type follows the contact type (an epikris on an inpatient stay, an operation report on
    day surgery); the signature follows the start by minutes (RTG, OPB) to days (EPI).
    """
    r, n = w.rng, len(contact)
    cum = np.cumsum(np.array(_NOTE_TYPE_P), axis=1)
    typ = np.minimum((r.random(n)[:, None] > cum[ctype]).sum(axis=1), len(T.PAS_TYPES) - 1)
    lo, hi = (np.array(x, dtype=np.int64) for x in zip(*_PAS_SIGN_DELAY, strict=True))
    at = _unambiguous(start + lo[typ] + (r.random(n) * (hi[typ] - lo[typ])).astype(np.int64))
    cols = {
        "_pk": contact,
        "_ghost": ghost,
        "TYP": vocab(T.PAS_TYPES, typ),
        "SIGNERAD": keep(cal.pas_ts(at), signed, ""),
        "TEXT": T.build(r, typ, True),
    }
    return w.add("anteckning", **_over(cols, over))


def add_pcs_notes(
    w: World,
    visit: np.ndarray,
    *,
    start: np.ndarray,
    signed: np.ndarray | bool = True,
    ghost: Any = -1,
    over: dict[str, Any] | None = None,
) -> np.ndarray:
    """Notes on PCS visits ``visit`` (started at ``start``): journal notes, some referral answers; their keys."""
    r, n = w.rng, len(visit)
    typ = (r.random(n) < _REFERRAL_ANSWER_P).astype(np.int64)
    journal = start + r.integers(5, 241, n)  # signed after the visit, the same day
    answer = start + r.integers(1, 31, n) * 1440 + r.integers(-120, 241, n)  # an answer days later
    at = _unambiguous(np.where(typ == 0, journal, answer))
    cols = {
        "_pk": visit,
        "_ghost": ghost,
        "type": vocab(T.PCS_TYPES, typ),
        "signed": keep(cal.pcs_ts(at), signed),
        "text": T.build(r, len(T.PAS_TYPES) + typ, r.random(n) < _PCS_CRLF_P),
        "_sort": at,
    }
    return w.add("notes", **_over(cols, over))


def clean_visits(w: World, p: Persons, rec: Records, n: int) -> np.ndarray:
    """Keys of ``n`` distinct in-scope (signed) visits of clean patients that no other defect uses yet.

    They host a defective note; new visits are made when the extract has too few.
    """
    return _clean_hosts(w, p, rec, n, "visit", "pcs", add_visits)
