"""Persons of the synthetic extract: who is in which system, identities, names, places, patient records.

All of it column-wise with numpy/polars: one array element per person (or per patient record).
Identity numbers are computed as integers with a vectorised Luhn check digit and redrawn until
distinct; names and places are index arrays into the vocabularies of ``names.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from checks.errors import MigcheckError
from checks.identity import RESNR_LETTER_DIGIT
from pipelines.synth import calendar as cal
from pipelines.synth import names as V
from pipelines.synth.world import BOTH, KIND_NAME, PAS_ONLY, PCS_ONLY, PNR, RESNR, SAMNR, World, vocab

_HOME_UNIT = {
    "1490": ("VC_BORAS", "VC_NORRBY", "VC_HESTRA"),
    "1491": ("VC_ULRICE",),
    "1463": ("VC_KINNA",),
    "1465": ("VC_SVENLJ",),
    "1452": ("VC_TRANEMO",),
    "1443": ("VC_BOLLEB",),
}
_MUNICIPALITY_WEIGHTS = (30, 6, 6, 2, 2, 2, 2, 2, 3, 8)
_LUHN_W = np.array([2, 1, 2, 1, 2, 1, 2, 1, 2], dtype=np.int64)


@dataclass
class Persons:
    """One element per person."""

    system: np.ndarray  # PAS_ONLY / BOTH / PCS_ONLY
    kind: np.ndarray  # PNR / SAMNR / RESNR
    male: np.ndarray
    x_letter: np.ndarray  # a reservnummer of unknown sex, unless the sex must be known
    birth: np.ndarray  # day
    dead: np.ndarray
    u_death: np.ndarray
    death: np.ndarray  # day (meaningful where dead)
    protected: np.ndarray
    u_kon: np.ndarray
    u_pcs_sex: np.ndarray
    sex_known: np.ndarray  # forced by a defect host: the recorded sex must be known
    no_children: np.ndarray
    reserved: np.ndarray  # dedicated host of a defect
    n_pas_rec: np.ndarray  # patient records in PAS (0..3)
    n_pcs_rec: np.ndarray
    # derived by ``derive`` and ``identities``
    kon: Any = None  # PAS KON text
    pcs_sex: Any = None
    family: Any = None  # pl.Series
    given: Any = None
    first_given: Any = None
    kommun: Any = None
    postal: Any = None
    home_unit: Any = None  # index into the PCS units of the reference
    ident: Any = None  # pl.Series


@dataclass
class Records:
    """Patient records: the person of each PAS / PCS record and its sequence (1, 2: duplicate records)."""

    pr_person: np.ndarray
    pr_seq: np.ndarray
    cr_person: np.ndarray
    cr_seq: np.ndarray
    pas_rec_of: np.ndarray  # person -> first PAS record (-1: none)
    pcs_rec_of: np.ndarray


def plan(w: World, patients: int, n_dedicated: int) -> Persons:
    """Draw the persons; ``n_dedicated`` of them will be defect hosts, so there are enough."""
    r = w.rng
    n = w.n = max(patients, n_dedicated + max(n_dedicated, 30)) if n_dedicated else patients
    u = r.random(n)
    system = np.where(u < 0.40, PAS_ONLY, np.where(u < 0.70, BOTH, PCS_ONLY)).astype(np.int8)
    u = r.random(n)
    kind = np.where(u < 0.90, PNR, np.where(u < 0.96, SAMNR, RESNR)).astype(np.int8)
    male = r.random(n) < 0.5
    x_letter = r.random(n) < 0.15
    birth = r.integers(cal.B_LO, cal.B_HI + 1, n)
    dead = r.random(n) < np.where(birth < cal.OLD, 0.15, 0.02)
    p = Persons(
        system=system,
        kind=kind,
        male=male,
        x_letter=x_letter,
        birth=birth,
        dead=dead,
        u_death=r.random(n),
        death=np.zeros(n, dtype=np.int64),
        protected=r.random(n) < 0.015,
        u_kon=r.random(n),
        u_pcs_sex=r.random(n),
        sex_known=np.zeros(n, dtype=bool),
        no_children=np.zeros(n, dtype=bool),
        reserved=np.zeros(n, dtype=bool),
        n_pas_rec=(system <= BOTH).astype(np.int64),
        n_pcs_rec=(system >= BOTH).astype(np.int64),
    )
    _draw_death(p, np.arange(n))
    return p


def _draw_death(p: Persons, idx: np.ndarray, lo: int = cal.W_LO, hi: int = cal.DEATH_HI) -> None:
    first = np.maximum(p.birth[idx] + 1, lo)
    span = np.maximum(hi - first, 0)
    p.death[idx] = first + (p.u_death[idx] * (span + 1)).astype(np.int64)


def window(p: Persons, person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last day a person can have care events (inside life and the extract's years)."""
    lo = np.maximum(p.birth[person], cal.W_LO)
    hi = np.where(p.dead[person], np.minimum(p.death[person], cal.W_HI), cal.W_HI)
    return lo, np.maximum(hi, lo)


def reserve_hosts(w: World, p: Persons, variants: Sequence[Any]) -> None:
    """Pick and shape the dedicated host persons of each variant that has them (before any record exists).

    A host comes from the persons already in the system it needs where possible (so the share of
    persons in both systems stays as drawn) and is then forced to the identity kind and the
    properties (sex known, no children, infant, died, 2 or 3 records) the variant needs.
    """
    r = w.rng
    queues: dict[tuple[int, int | None], np.ndarray] = {}
    for s in (PAS_ONLY, PCS_ONLY):
        queues[(s, None)] = r.permutation(np.flatnonzero(p.system == s))
        for k in (PNR, SAMNR, RESNR):
            queues[(s, k)] = r.permutation(np.flatnonzero((p.system == s) & (p.kind == k)))
    queues[(-1, None)] = r.permutation(w.n)
    head = dict.fromkeys(queues, 0)

    def take(q: tuple[int, int | None]) -> int:
        """The next free person of a queue, or -1."""
        h, order = head[q], queues[q]
        while h < len(order) and p.reserved[order[h]]:
            h += 1
        head[q] = h + 1
        return int(order[h]) if h < len(order) else -1

    for v in variants:
        if not v.systems:
            continue
        m = w.per_variant
        systems = np.array([v.systems[i % len(v.systems)] for i in range(m)], dtype=np.int8)
        kinds = [v.kinds[i % len(v.kinds)] if v.kinds else None for i in range(m)]
        hosts = np.empty(m, dtype=np.int64)
        for i, (s, kind) in enumerate(zip(systems.tolist(), kinds, strict=True)):
            person = take((s, kind))
            if person < 0 and kind is not None:
                person = take((s, None))
            if person < 0:
                person = take((-1, None))
            if person < 0:  # pragma: no cover - the plan is sized for every dedicated host
                raise MigcheckError("internal: too few synthetic persons for the defect hosts")
            p.reserved[person] = True
            hosts[i] = person
        p.system[hosts] = systems
        if v.kinds:
            p.kind[hosts] = np.array([v.kinds[i % len(v.kinds)] for i in range(m)], dtype=np.int8)
        k = 3 if "records3" in v.force else 2 if "records2" in v.force else 1
        p.n_pas_rec[hosts] = np.where(systems == PAS_ONLY, k, 0)
        p.n_pcs_rec[hosts] = np.where(systems == PCS_ONLY, k, 0)
        if "sex_known" in v.force:
            p.sex_known[hosts] = True
        if "no_children" in v.force:
            p.no_children[hosts] = True
        if "infant" in v.force:
            p.birth[hosts] = r.integers(cal.days(dt.date(2016, 6, 1)), cal.days(dt.date(2024, 6, 30)) + 1, m)
            p.dead[hosts] = False
        if "died" in v.force:
            late = hosts[p.birth[hosts] > cal.days(dt.date(2005, 1, 1))]
            p.birth[late] = r.integers(cal.days(dt.date(1930, 1, 1)), cal.days(dt.date(2005, 1, 1)), len(late))
            p.dead[hosts] = True
            _draw_death(p, hosts, cal.days(dt.date(2016, 1, 1)), cal.days(dt.date(2024, 12, 31)))
        w.hosts[v.name] = hosts


def derive(w: World, p: Persons) -> None:
    """Attributes that follow from the (possibly forced) plan: recorded sex, names, places."""
    r, n = w.rng, w.n
    x = (p.kind == RESNR) & p.x_letter & ~p.sex_known
    p.x_letter = x  # from here on: a reservnummer with the letter X
    p.kon = vocab(("", "M", "K"), np.where(x | ((p.u_kon < 0.02) & ~p.sex_known), 0, np.where(p.male, 1, 2)))
    pcs = np.where(p.male, 1, 2)
    pcs = np.where((p.u_pcs_sex < 0.015) & ~p.sex_known, 0, pcs)
    pcs = np.where((p.u_pcs_sex > 0.995) & ~p.sex_known, 9, pcs)
    p.pcs_sex = vocab(("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"), np.where(x, 0, pcs))

    nf = len(V.FAMILY_NAMES)
    f1 = r.integers(0, nf, n)
    f2 = (f1 + r.integers(1, nf, n)) % nf
    double = pl.Series(r.random(n) < 0.07)
    fam1, fam2 = vocab(V.FAMILY_NAMES, f1), vocab(V.FAMILY_NAMES, f2)
    given_all = V.FEMALE_GIVEN + V.MALE_GIVEN
    nfe, nma = len(V.FEMALE_GIVEN), len(V.MALE_GIVEN)
    g1 = np.where(p.male, nfe + r.integers(0, nma, n), r.integers(0, nfe, n))
    g2 = np.where(p.male, nfe + r.integers(0, nma, n), r.integers(0, nfe, n))
    two = pl.Series((r.random(n) < 0.25) & (g1 != g2))
    giv1, giv2 = vocab(given_all, g1), vocab(given_all, g2)
    frame = pl.DataFrame({"d": double, "f1": fam1, "f2": fam2, "t": two, "g1": giv1, "g2": giv2}).select(
        pl.when("d").then(pl.col("f1") + "-" + pl.col("f2")).otherwise("f1").alias("family"),
        pl.when("t").then(pl.col("g1") + " " + pl.col("g2")).otherwise("g1").alias("given"),
    )
    p.family, p.given, p.first_given = frame["family"], frame["given"], giv1

    muns = V.MUNICIPALITIES
    weights = np.array(_MUNICIPALITY_WEIGHTS[: len(muns)], dtype=float)
    mun = r.choice(len(muns), n, p=weights / weights.sum())
    pre = r.integers(0, 1 << 30, n)
    last = r.integers(10, 100, n)
    p.kommun = vocab(tuple(m[0] for m in muns), mun)
    flat = tuple(x for m in muns for x in m[1])
    cnt = np.array([len(m[1]) for m in muns])
    off = np.cumsum(cnt) - cnt
    p.postal = vocab(flat, off[mun] + pre % cnt[mun]) + pl.Series(last).cast(pl.String)
    units = list(w.ref.pcs_units)
    opts = []
    for code, _ in muns:
        mine = [w.ref.pcs_unit_meaning[u] for u in _HOME_UNIT.get(code, ()) if u in w.ref.pcs_unit_meaning]
        opts.append([units.index(u) for u in mine] or list(range(len(units))))
    hcnt = np.array([len(o) for o in opts])
    hoff = np.cumsum(hcnt) - hcnt
    p.home_unit = np.array([u for o in opts for u in o], dtype=np.int64)[hoff[mun] + pre % hcnt[mun]]


def luhn(digits: np.ndarray) -> np.ndarray:
    """Swedish Luhn check digit of each row of a (n, 9) digit matrix (weights 2,1,2,…; digit sums)."""
    prod = digits * _LUHN_W
    return (10 - (prod // 10 + prod % 10).sum(axis=1) % 10) % 10


def _digits(value: np.ndarray, width: int) -> np.ndarray:
    """The decimal digits of each value as columns (most significant first)."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (value[:, None] // powers) % 10


def identities(w: World, p: Persons) -> None:
    """A distinct, valid identity number per person, of the person's kind, agreeing with its sex."""
    r, n = w.rng, w.n
    ymd = p.birth.astype("datetime64[D]")
    y = ymd.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = ymd.astype("datetime64[M]").astype(np.int64) % 12 + 1
    d = (ymd - ymd.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    date8 = y * 10_000 + mo * 100 + d
    yymmdd = (y % 100) * 10_000 + mo * 100 + d
    res = p.kind == RESNR
    digit = RESNR_LETTER_DIGIT
    letter = np.where(p.x_letter, digit["X"], np.where(p.male, digit["M"], digit["K"]))
    day60 = np.where(p.kind == SAMNR, 60, 0)
    key = np.empty(n, dtype=np.int64)
    g = np.empty(n, dtype=np.int64)
    check = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    for _ in range(1000):
        m = len(todo)
        serial = r.integers(0, 100, m)
        sexd = r.integers(0, 5, m) * 2 + p.male[todo]
        gg = r.integers(0, 1000, m)
        rs = res[todo]
        body = (yymmdd[todo] + day60[todo]) * 1000 + serial * 10 + sexd  # YYMMDDNNN
        g[todo] = np.where(p.x_letter[todo], 80 + gg % 10, np.where(p.male[todo], 7, 6) + 2 * (gg % 37))
        res_in = yymmdd[todo] * 1000 + letter[todo] * 100 + g[todo]  # YYMMDD, letter digit, gg
        check[todo] = luhn(_digits(np.where(rs, res_in, body), 9))
        key[todo] = np.where(
            rs,
            10**13 + (date8[todo] * 10 + letter[todo]) * 1000 + g[todo] * 10 + check[todo],
            (y[todo] // 100) * 10**10 + body * 10 + check[todo],  # the 12 digits of the number
        )
        _, first = np.unique(key, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        todo = np.flatnonzero(dup)
        if not len(todo):
            break
    else:  # pragma: no cover - there are far more numbers than persons
        raise MigcheckError("internal: could not draw distinct identity numbers")
    frame = pl.DataFrame(
        {
            "res": res,
            "num": pl.Series(key % 10**12).cast(pl.String).str.zfill(12),
            "date8": pl.Series(date8).cast(pl.String),
            "letter": vocab(("K", "M", "X"), np.where(p.x_letter, 2, np.where(p.male, 1, 0))),
            "g": pl.Series(g).cast(pl.String).str.zfill(2),
            "c": pl.Series(check).cast(pl.String),
        }
    )
    p.ident = frame.select(
        pl.when("res").then(pl.concat_str("date8", "letter", "g", "c")).otherwise("num").alias("ident")
    )["ident"]


def allocate_records(w: World, p: Persons) -> Records:
    """Patient records in file order: every person's first record, then the second ones, then the third."""
    n = w.n
    persons = np.arange(n)

    def records(count: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray]:
        person = np.concatenate([persons[count >= s + 1] for s in range(most)])
        seq = np.concatenate([np.full(int((count >= s + 1).sum()), s, dtype=np.int64) for s in range(most)])
        return person, seq

    pr_person, pr_seq = records(p.n_pas_rec, 3)
    cr_person, cr_seq = records(p.n_pcs_rec, 3)
    pas_rec_of = np.full(n, -1, dtype=np.int64)
    first = np.flatnonzero(pr_seq == 0)
    pas_rec_of[pr_person[first]] = first
    pcs_rec_of = np.full(n, -1, dtype=np.int64)
    first = np.flatnonzero(cr_seq == 0)
    pcs_rec_of[cr_person[first]] = first
    return Records(pr_person, pr_seq, cr_person, cr_seq, pas_rec_of, pcs_rec_of)


def _override(df: pl.DataFrame, over: dict[str, dict[int, Any]]) -> pl.DataFrame:
    """Replace single values: ``over[column][record key] = value`` (None: null)."""
    exprs = []
    for c, vals in over.items():
        keys = pl.Series(list(vals), dtype=pl.Int64)
        new = pl.Series(list(vals.values()), dtype=df.schema[c])
        exprs.append(pl.col("_k").replace_strict(keys, new, default=pl.col(c), return_dtype=df.schema[c]).alias(c))
    return df.with_columns(exprs) if exprs else df


def pas_patients(w: World, p: Persons, rec: Records, over: dict[str, dict[int, Any]]) -> pl.DataFrame:
    """``patient.csv`` records (internal columns ``_k``, ``_break``), with the defect hosts' overrides."""
    r = w.rng
    m = len(rec.pr_person)
    idx = pl.Series(rec.pr_person)
    u = r.random((m, 4))
    u_fmt = r.random(m)
    u_sk = r.random(m)
    alt = r.integers(10, 100, m)
    death = cal.day_text(p.death).gather(idx)
    c = pl.col
    df = pl.DataFrame(
        {
            "_k": np.arange(m, dtype=np.int64),
            "seq": rec.pr_seq,
            "ident": p.ident.gather(idx),
            "family": p.family.gather(idx),
            "given": p.given.gather(idx),
            "first": p.first_given.gather(idx),
            "kon": p.kon.gather(idx),
            "dead": p.dead[rec.pr_person],
            "death": death,
            "prot": p.protected[rec.pr_person],
            "postal": p.postal.gather(idx),
            "kommun": p.kommun.gather(idx),
            "u0": u[:, 0],
            "u1": u[:, 1],
            "u2": u[:, 2],
            "u3": u[:, 3],
            "fmt": u_fmt,
            "sk": u_sk,
            "alt": pl.Series(alt).cast(pl.String),
        }
    )
    postal = pl.when(c("seq") == 0).then(c("postal")).otherwise(c("postal").str.slice(0, 3) + c("alt"))
    postal = pl.when(c("fmt") < 0.12).then(postal.str.slice(0, 3) + " " + postal.str.slice(3)).otherwise(postal)
    df = df.select(
        "_k",
        pl.when(c("u0") > 0.004).then(c("ident")).otherwise(" " + c("ident")).alias("PNR"),
        pl.when(c("u1") > 0.02)
        .then(c("family"))
        .when(c("u1") < 0.01)
        .then(" " + c("family"))
        .otherwise(c("family") + "  ")
        .alias("ENAMN"),
        (
            pl.when(c("seq") == 0).then(c("given")).otherwise(c("first"))
            + pl.when(c("u2") < 0.01).then(pl.lit(" ")).otherwise(pl.lit(""))
        ).alias("FNAMN"),
        c("kon").alias("KON"),
        pl.when(c("dead")).then(c("death")).otherwise(pl.lit("")).alias("AVLIDEN"),
        pl.when(c("prot")).then(pl.lit("J")).when(c("sk") < 0.7).then(pl.lit("N")).otherwise(pl.lit("")).alias("SKYDD"),
        pl.when(c("u3") > 0.01).then(postal).otherwise(postal + " ").alias("POSTNR"),
        c("kommun").alias("KOMMUN"),
        pl.lit(None, dtype=pl.String).alias("_break"),
    )
    return _override(df, over)


def pcs_patients(w: World, p: Persons, rec: Records, over: dict[str, dict[int, Any]]) -> pl.DataFrame:
    """``patients.jsonl`` records (internal columns ``_k``, ``_break``), with the defect hosts' overrides."""
    r = w.rng
    m = len(rec.cr_person)
    idx = pl.Series(rec.cr_person)
    u = r.random((m, 4))
    person = rec.cr_person
    both = p.system[person] == BOTH
    c = pl.col
    df = pl.DataFrame(
        {
            "_k": np.arange(m, dtype=np.int64),
            "id_type": pl.Series(list(KIND_NAME)).gather(p.kind[person].astype(np.int64)),
            "id_value": p.ident.gather(idx),
            "family": p.family.gather(idx),
            "given": pl.Series(np.where(rec.cr_seq == 0, True, False)),
            "g": p.given.gather(idx),
            "first": p.first_given.gather(idx),
            "sp": u[:, 0] < 0.01,
            "sex": p.pcs_sex.gather(idx),
            "deceased": cal.day_text(p.death).gather(idx),
            "has_death": p.dead[person] & (~both | (u[:, 1] < 0.85)),
            "protected": p.protected[person],
            "postalCode": p.postal.gather(idx),
            "no_postal": u[:, 2] < np.where(both, 0.10, 0.03),
            "municipality": p.kommun.gather(idx),
            "no_mun": u[:, 3] < 0.02,
        }
    )
    df = df.select(
        "_k",
        "id_type",
        "id_value",
        "family",
        (
            pl.when(c("given")).then(c("g")).otherwise(c("first"))
            + pl.when(c("sp")).then(pl.lit(" ")).otherwise(pl.lit(""))
        ).alias("given"),
        "sex",
        pl.when(c("has_death")).then(c("deceased")).alias("deceased"),
        "protected",
        pl.when(~c("no_postal")).then(c("postalCode")).alias("postalCode"),
        pl.when(~c("no_mun")).then(c("municipality")).alias("municipality"),
        pl.lit(None, dtype=pl.String).alias("_break"),
    )
    return _override(df, over)
