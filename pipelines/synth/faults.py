"""Load faults a real vendor trial load shows, injected into the simulated target rows.

Each fault touches a person (or its records) no other fault touches, so every defect has one
cause and the ground truth (``load_faults.csv``) names exactly the finding a correct validation
must report: category, entity, ``source_ref`` and/or ``target_ref``, column, and for a changed
value its ``nature`` (``encoding``, ``truncated``, ``time_shift``, ``code_swapped``).

Kinds: rows dropped at every entity; extra rows (copies, invented persons and contacts, an
out-of-scope record loaded); names garbled (UTF-8 read as Windows-1252) or truncated; times shifted
an hour; codes swapped; children pointing at missing parents; invalid code values; a protected
person loaded ROUTINE; identity aliases missing or doubled. Then one ``row_count`` defect per
entity and source system whose count no longer matches.
"""

from __future__ import annotations

import datetime as dt
import random
import re

import polars as pl

from checks.components import identity_node
from checks.expected import Expected
from checks.identity import luhn_digit
from checks.mapping import Mappings
from checks.note_text import CHUNK, chunked
from checks.target_schema import PRIMARY_KEY, TEXT_BLOBS
from pipelines.synth.scoring import TRUTH_COLUMNS

_CHILD_TABLES = ["diagnosis", "procedure", "orders", "allergy"]
_HOUR = dt.timedelta(hours=1)


#: the most faults of one kind in one trial load
MAX_PER_KIND = 60


def _codes(m: Mappings) -> dict[tuple[int, str], int]:
    return {(r["code_set"], r["cdf_meaning"]): r["code_value"] for r in m.code_value.iter_rows(named=True)}


class _Faults:
    def __init__(
        self, rows: dict[str, pl.DataFrame], exp: Expected, m: Mappings, seed: int, known: pl.Series | None = None
    ) -> None:
        self.rows = {k: v.clone() for k, v in rows.items()}
        self.exp = exp
        self.rng = random.Random(seed)
        self.truth: list[dict] = []
        self.used: set[str] = set()  # person_refs already faulted
        self.known = known  # sorted identity nodes of the whole extract (a partition's faults), or None
        self.codes = _codes(m)
        n_persons = rows["person"].height
        # faults of each kind: one per 700 persons, at most MAX_PER_KIND (a sample; region-sized
        # loads stay cheap to fault, since each fault is applied to the whole table)
        self.n = max(2, min(n_persons // 700, MAX_PER_KIND))
        icd = m.code_value.filter((pl.col("code_set") == 400) & (pl.col("cdf_meaning") == "ICD10SE"))["code_value"]
        self.icd_ids = sorted(m.nomenclature.filter(pl.col("source_vocabulary_cd") == icd.item())["nomenclature_id"])
        pr = rows["person_alias"]
        self.sources_per_person = (
            pr.filter(pl.col("person_alias_type_cd") == self.codes[(4, "MRN")]).group_by("person_ref").len()
        )

    # -- helpers -----------------------------------------------------------------------------
    def add(
        self,
        category: str,
        entity: str,
        source_ref: str = "",
        target_ref: str = "",
        column: str = "",
        description: str = "",
        nature: str = "",
    ) -> None:
        """One defect of the ground truth; ``nature`` for a value_mismatch (``checks.masking.NATURES``)."""
        differs = category in ("value_mismatch", "text_altered")
        if differs != bool(nature):
            raise ValueError(f"a {category} fault {'needs' if differs else 'has no'} nature")
        self.truth.append(
            dict(
                category=category,
                entity=entity,
                source_ref=source_ref or "",
                target_ref=target_ref or "",
                column=column or "",
                nature=nature,
                description=description,
            )
        )

    def pick(self, df: pl.DataFrame, k: int | None = None, person_col: str = "person_ref") -> list[dict]:
        """K random rows whose person is not yet used; marks their persons used."""
        k = self.n if k is None else k
        cand = df.filter(~pl.col(person_col).is_in(list(self.used))) if self.used else df
        if cand.height == 0:
            return []
        idx = sorted(self.rng.sample(range(cand.height), min(k, cand.height)))
        chosen = cand[idx].to_dicts()
        for r in chosen:
            self.used.add(r[person_col])
        return chosen

    def next_id(self, table: str) -> int:
        pk = PRIMARY_KEY[table]
        cur = self.rows[table].select(pl.col(pk).max()).item()
        return int(cur or 0) + 1

    def append(self, table: str, row: dict) -> int:
        rid = self.next_id(table)
        row = {**row, PRIMARY_KEY[table]: rid}
        df = self.rows[table]
        self.rows[table] = pl.concat([df, pl.DataFrame([row], schema=df.schema)], how="vertical")
        return rid

    def update(self, table: str, rid: int, **values) -> None:
        pk = PRIMARY_KEY[table]
        df = self.rows[table]
        self.rows[table] = df.with_columns(
            pl.when(pl.col(pk) == rid).then(pl.lit(v, dtype=df.schema[c])).otherwise(pl.col(c)).alias(c)
            for c, v in values.items()
        )

    def drop(self, table: str, cond: pl.Expr) -> None:
        self.rows[table] = self.rows[table].filter(~cond)

    # -- candidate sets ------------------------------------------------------------------------
    def leaf_persons(self) -> pl.DataFrame:
        """Persons with one contributing record and nothing hanging under them but aliases."""
        busy = pl.concat([self.rows[t].select("person_ref") for t in ("encounter", "orders", "allergy")])
        single = self.sources_per_person.filter(pl.col("len") == 1).select("person_ref")
        return self.rows["person"].join(single, on="person_ref").join(busy, on="person_ref", how="anti")

    def childless_encounters(self) -> pl.DataFrame:
        kids = pl.concat([self.rows[t].select("encntr_id") for t in ("diagnosis", "procedure", "clinical_event")])
        return self.rows["encounter"].join(kids, on="encntr_id", how="anti")

    def unique_children(self, table: str) -> pl.DataFrame:
        df = self.rows[table]
        return df.filter(pl.len().over("_ref") == 1)

    # -- faults --------------------------------------------------------------------------------
    def missing_rows(self) -> None:
        for p in self.pick(self.leaf_persons()):
            self.drop("person", pl.col("person_id") == p["person_id"])
            self.drop("person_alias", pl.col("person_id") == p["person_id"])
            self.add("missing_in_target", "person", p["person_ref"], "", "", "person not loaded (with its aliases)")
        for e in self.pick(self.childless_encounters()):
            self.drop("encounter", pl.col("encntr_id") == e["encntr_id"])
            self.drop("encntr_alias", pl.col("encntr_id") == e["encntr_id"])
            self.add("missing_in_target", "encounter", e["_ref"], "", "", "encounter not loaded (with its alias)")
        for t in _CHILD_TABLES:
            for r in self.pick(self.unique_children(t)):
                self.drop(t, pl.col(PRIMARY_KEY[t]) == r[PRIMARY_KEY[t]])
                self.add("missing_in_target", t, r["_ref"], "", "", f"{t} row not loaded")
        mrn = self.codes[(4, "MRN")]
        aliases = self.rows["person_alias"].filter(pl.col("person_alias_type_cd") == mrn)
        for a in self.pick(aliases):
            self.drop("person_alias", pl.col("person_alias_id") == a["person_alias_id"])
            self.add("missing_in_target", "person_alias", a["_ref"], "", "alias", "MRN alias not loaded")
        ident = self.rows["person_alias"].filter(pl.col("person_alias_type_cd") != mrn)
        for a in self.pick(ident):
            self.drop("person_alias", pl.col("person_alias_id") == a["person_alias_id"])
            self.add(
                "mandatory_missing",
                "person_alias",
                a["person_ref"],
                f"person:{a['person_id']}",
                "alias",
                "identity alias not loaded",
            )
        for e in self.pick(self.rows["encounter"]):
            self.drop("encntr_alias", pl.col("encntr_id") == e["encntr_id"])
            self.add(
                "missing_in_target",
                "encntr_alias",
                e["_ref"],
                f"encounter:{e['encntr_id']}",
                "alias",
                "encounter loaded without its alias",
            )

    def _new_pnr(self) -> str:
        taken = set(self.exp.tables["person"]["identity"].to_list())
        while True:
            y, mth, d = self.rng.randint(1930, 2010), self.rng.randint(1, 12), self.rng.randint(1, 28)
            serial = f"{self.rng.randint(0, 999):03d}"
            body = f"{y:04d}{mth:02d}{d:02d}{serial}"
            value = body + str(luhn_digit(body[2:]))
            if value not in taken and not self._known(value):
                return value

    def _known(self, value: str) -> bool:
        """An identity number of a person of the whole extract (beyond this partition's)."""
        if self.known is None or self.known.len() == 0:
            return False
        h = pl.select(identity_node(pl.lit(value))).item()
        i = int(self.known.search_sorted(h))
        return i < self.known.len() and self.known[i] == h

    def extra_rows(self) -> None:
        pcodes = {"PNR": self.codes[(4, "PNR")]}
        for p in self.pick(self.rows["person"]):
            new = {**p, "_ref": None, "person_ref": None}
            pid = self.append("person", new)
            alias_row: dict[str, object] = {c: None for c in self.rows["person_alias"].columns}
            alias_row.update(
                person_id=pid,
                person_alias_type_cd=pcodes["PNR"],
                alias=self._new_pnr(),
                contributor_system_cd=p["contributor_system_cd"],
                active_ind=1,
            )
            self.append("person_alias", alias_row)
            self.add("unexpected_in_target", "person", "", f"person:{pid}", "", "a person with no legacy record")
        for e in self.pick(self.rows["encounter"]):
            eid = self.append("encounter", {**e, "_ref": None})
            alias_row = {c: None for c in self.rows["encntr_alias"].columns}
            alias_row.update(
                encntr_id=eid,
                encntr_alias_type_cd=self.codes[(319, "VISITID")],
                # a form no legacy visit id takes (KONTAKTID is digits, a PCS visit "V-…"): a
                # number could be a real record's id in a large extract and name that record
                alias=f"X-{eid}",
                contributor_system_cd=e["contributor_system_cd"],
                active_ind=1,
            )
            self.append("encntr_alias", alias_row)
            self.add(
                "unexpected_in_target", "encounter", "", f"encounter:{eid}", "", "an encounter with no legacy record"
            )
        self._out_of_scope_loaded()
        for t in _CHILD_TABLES:
            for r in self.pick(self.unique_children(t)):
                rid = self.append(t, {**r, "_ref": None})
                self.add("unexpected_in_target", t, "", f"{t}:{rid}", "", f"{t} row loaded twice")

    def _out_of_scope_loaded(self) -> None:
        """Voided contacts / draft visits loaded as if active."""
        staged = [df for k, df in self.exp.staged.items() if k in ("pas/kontakt", "pcs/visits")]
        oos = pl.concat(
            [
                d.select(
                    "source_ref",
                    "_key",
                    "source_system",
                    "_parent_person_ref",
                    "_scope",
                    "encntr_type_cd",
                    "loc_nurse_unit_cd",
                    "reg_dt_tm",
                    "disch_dt_tm",
                    "contributor_system_cd",
                    "_block_cat",
                )
                for d in staged
            ],
            how="vertical_relaxed",
        )
        oos = oos.filter(
            pl.col("_scope").is_not_null()
            & pl.col("_parent_person_ref").is_not_null()
            & pl.col("_block_cat").is_null()
            & pl.col("reg_dt_tm").is_not_null()
        )
        pid = self.rows["person"].select(pl.col("person_ref").alias("_parent_person_ref"), "person_id")
        oos = oos.join(pid, on="_parent_person_ref").rename({"_parent_person_ref": "person_ref"})
        for r in self.pick(oos):
            row: dict[str, object] = {c: None for c in self.rows["encounter"].columns}
            row.update(
                person_id=r["person_id"],
                encntr_type_cd=self.codes[(71, r["encntr_type_cd"])],
                loc_nurse_unit_cd=self.codes[(220, r["loc_nurse_unit_cd"])],
                reg_dt_tm=r["reg_dt_tm"],
                disch_dt_tm=r["disch_dt_tm"],
                contributor_system_cd=self.codes[(89, r["contributor_system_cd"])],
                active_ind=1,
                person_ref=r["person_ref"],
            )
            eid = self.append("encounter", row)
            alias_row: dict[str, object] = {c: None for c in self.rows["encntr_alias"].columns}
            alias_row.update(
                encntr_id=eid,
                encntr_alias_type_cd=self.codes[(319, "VISITID")],
                alias=r["_key"],
                contributor_system_cd=row["contributor_system_cd"],
                active_ind=1,
            )
            self.append("encntr_alias", alias_row)
            self.add(
                "unexpected_in_target",
                "encounter",
                r["source_ref"],
                f"encounter:{eid}",
                "",
                "out-of-scope record (voided contact / draft or deleted visit) loaded",
            )

    def value_faults(self) -> None:
        persons = self.rows["person"].filter(pl.col("person_ref").is_not_null())
        accented = persons.filter(pl.col("name_last").str.contains("[åäöÅÄÖéü]"))
        for p in self.pick(accented):
            bad = p["name_last"].encode("utf-8").decode("cp1252", errors="replace")
            self.update("person", p["person_id"], name_last=bad)
            self.add(
                "value_mismatch",
                "person",
                p["person_ref"],
                f"person:{p['person_id']}",
                "name_last",
                "family name garbled: UTF-8 read as Windows-1252",
                nature="encoding",
            )
        accented_first = persons.filter(pl.col("name_first").str.contains("[åäöÅÄÖéü]"))
        for p in self.pick(accented_first, max(1, self.n // 2)):
            bad = p["name_first"].encode("utf-8").decode("cp1252", errors="replace")
            self.update("person", p["person_id"], name_first=bad)
            self.add(
                "value_mismatch",
                "person",
                p["person_ref"],
                f"person:{p['person_id']}",
                "name_first",
                "given name garbled: UTF-8 read as Windows-1252",
                nature="encoding",
            )
        long_names = persons.filter(pl.col("name_last").str.len_chars() >= 7)
        for p in self.pick(long_names):
            self.update("person", p["person_id"], name_last=p["name_last"][:5])
            self.add(
                "value_mismatch",
                "person",
                p["person_ref"],
                f"person:{p['person_id']}",
                "name_last",
                "family name truncated",
                nature="truncated",
            )
        doses = self.rows["orders"].filter(pl.col("simplified_display_line").str.len_chars() >= 8)
        for o in self.pick(self.unique_children("orders").join(doses.select("order_id"), on="order_id")):
            self.update("orders", o["order_id"], simplified_display_line=o["simplified_display_line"][:6])
            self.add(
                "value_mismatch",
                "orders",
                o["_ref"],
                f"orders:{o['order_id']}",
                "simplified_display_line",
                "dose text truncated",
                nature="truncated",
            )
        for e in self.pick(self.rows["encounter"].filter(pl.col("_ref").is_not_null())):
            shift = self.rng.choice([-1, 1])
            self.update("encounter", e["encntr_id"], reg_dt_tm=e["reg_dt_tm"] + shift * _HOUR)
            self.add(
                "value_mismatch",
                "encounter",
                e["_ref"],
                f"encounter:{e['encntr_id']}",
                "reg_dt_tm",
                f"start time shifted {shift:+d} hour",
                nature="time_shift",
            )
        for d in self.pick(self.unique_children("diagnosis")):
            self.update("diagnosis", d["diagnosis_id"], diag_dt_tm=d["diag_dt_tm"] + _HOUR)
            self.add(
                "value_mismatch",
                "diagnosis",
                d["_ref"],
                f"diagnosis:{d['diagnosis_id']}",
                "diag_dt_tm",
                "diagnosis time shifted +1 hour",
                nature="time_shift",
            )
        self._swap_codes()

    def _swap_codes(self) -> None:
        c = self.codes
        swaps = [
            (
                "encounter",
                "encntr_type_cd",
                {
                    c[(71, "INPATIENT")]: c[(71, "OUTPATIENT")],
                    c[(71, "OUTPATIENT")]: c[(71, "INPATIENT")],
                    c[(71, "PCVISIT")]: c[(71, "PCPHONE")],
                    c[(71, "PCPHONE")]: c[(71, "PCVISIT")],
                },
            ),
            (
                "encounter",
                "loc_nurse_unit_cd",
                {
                    c[(220, "SAS_MED1")]: c[(220, "SAS_MED2")],
                    c[(220, "SAS_MED2")]: c[(220, "SAS_MED1")],
                    c[(220, "VC_BORAS")]: c[(220, "VC_NORRBY")],
                    c[(220, "VC_NORRBY")]: c[(220, "VC_BORAS")],
                },
            ),
            ("person", "sex_cd", {c[(57, "MALE")]: c[(57, "FEMALE")], c[(57, "FEMALE")]: c[(57, "MALE")]}),
            (
                "allergy",
                "severity_cd",
                {c[(12022, "MILD")]: c[(12022, "SEVERE")], c[(12022, "SEVERE")]: c[(12022, "MILD")]},
            ),
        ]
        for table, col, mapping in swaps:
            df = self.rows[table].filter(pl.col(col).is_in(list(mapping)) & pl.col("_ref").is_not_null())
            if table in _CHILD_TABLES:
                df = df.filter(pl.len().over("_ref") == 1)
            pk = PRIMARY_KEY[table]
            for r in self.pick(df):
                self.update(table, r[pk], **{col: mapping[r[col]]})
                self.add(
                    "value_mismatch",
                    table,
                    r["_ref"],
                    f"{table}:{r[pk]}",
                    col,
                    f"{col} swapped for another code",
                    nature="code_swapped",
                )

    def key_faults(self) -> None:
        """Wrong values in the columns children are matched on; the record itself is still there.

        A diagnosis code swapped, a diagnosis type swapped, an order's start shifted an hour.
        """
        c = self.codes
        diag = self.unique_children("diagnosis")
        codes_of = diag.group_by("encntr_id").agg(pl.col("nomenclature_id").alias("_codes"))
        cand = diag.join(codes_of, on="encntr_id").filter(pl.len().over("encntr_id", "nomenclature_id") == 1)
        for d in self.pick(cand):
            new = self.rng.choice([i for i in self.icd_ids if i not in d["_codes"]])
            self.update("diagnosis", d["diagnosis_id"], nomenclature_id=new)
            self.add(
                "value_mismatch",
                "diagnosis",
                d["_ref"],
                f"diagnosis:{d['diagnosis_id']}",
                "nomenclature_id",
                "diagnosis code swapped for another ICD-10-SE code",
                nature="code_swapped",
            )
        swap = {c[(17, "PRINCIPAL")]: c[(17, "SECONDARY")], c[(17, "SECONDARY")]: c[(17, "PRINCIPAL")]}
        for d in self.pick(cand):
            self.update("diagnosis", d["diagnosis_id"], diag_type_cd=swap[d["diag_type_cd"]])
            self.add(
                "value_mismatch",
                "diagnosis",
                d["_ref"],
                f"diagnosis:{d['diagnosis_id']}",
                "diag_type_cd",
                "diagnosis type swapped (principal/secondary)",
                nature="code_swapped",
            )
        orders = self.unique_children("orders").filter(pl.len().over("person_id", "atc_nomenclature_id") == 1)
        for o in self.pick(orders):
            self.update("orders", o["order_id"], orig_order_dt_tm=o["orig_order_dt_tm"] + _HOUR)
            self.add(
                "value_mismatch",
                "orders",
                o["_ref"],
                f"orders:{o['order_id']}",
                "orig_order_dt_tm",
                "order start shifted +1 hour",
                nature="time_shift",
            )

    def reference_faults(self) -> None:
        c = self.codes
        # children pointing at parents that do not exist: extra rows, so nothing else goes missing
        for t, col in (
            ("diagnosis", "encntr_id"),
            ("procedure", "encntr_id"),
            ("orders", "person_id"),
            ("allergy", "person_id"),
        ):
            ghost_parent = 90_000_000
            for r in self.pick(self.unique_children(t), max(1, self.n // 2)):
                rid = self.append(t, {**r, col: ghost_parent + r[PRIMARY_KEY[t]], "_ref": None})
                self.add("orphan", t, "", f"{t}:{rid}", col, f"{t} row points at a {col} that does not exist")
        invalid = [
            ("encounter", "loc_nurse_unit_cd", c[(220, "SAS_MED3")], "unit loaded as an inactive location"),
            ("encounter", "encntr_type_cd", c[(57, "MALE")], "encounter type from the wrong code set"),
            ("person", "sex_cd", 999_999, "sex code that is no code value"),
            ("orders", "order_status_cd", 999_998, "order status that is no code value"),
        ]
        for table, col, value, what in invalid:
            df = self.rows[table].filter(pl.col("_ref").is_not_null())
            if table in _CHILD_TABLES:
                df = df.filter(pl.len().over("_ref") == 1)
            pk = PRIMARY_KEY[table]
            for r in self.pick(df, max(1, self.n // 2)):
                self.update(table, r[pk], **{col: value})
                ref = r["person_ref"] if table == "person" else r["_ref"]
                self.add("invalid_code", table, ref, f"{table}:{r[pk]}", col, what)

    def identity_faults(self) -> None:
        c = self.codes
        prot = self.rows["person"].filter(pl.col("confid_level_cd") == c[(87, "PROTECTED")])
        for p in self.pick(prot):
            self.update("person", p["person_id"], confid_level_cd=c[(87, "ROUTINE")])
            self.add(
                "confidentiality",
                "person",
                p["person_ref"],
                f"person:{p['person_id']}",
                "confid_level_cd",
                "protected identity loaded as ROUTINE",
            )
        ident = self.rows["person_alias"].filter(pl.col("person_alias_type_cd") != c[(4, "MRN")])
        for a in self.pick(ident, max(1, self.n // 2)):
            aid = self.append("person_alias", {**a, "_ref": None})
            self.add(
                "duplicate",
                "person_alias",
                a["person_ref"],
                f"person_alias:{aid}",
                "alias",
                "identity alias loaded twice on one person",
            )

    def row_counts(self, before: pl.DataFrame, after: pl.DataFrame) -> None:
        """A row_count fault per table and system whose rows ``after`` differ from ``before`` (``system_counts``)."""
        sys = {self.codes[(89, "PAS")]: "pas", self.codes[(89, "PCS")]: "pcs"}
        for t in COUNTED_TABLES:
            a = before.filter(pl.col("table") == t).drop("table")
            b = after.filter(pl.col("table") == t).drop("table")
            j = a.join(b, on="contributor_system_cd", how="full", coalesce=True).fill_null(0)
            for r in j.filter(pl.col("len") != pl.col("len_right")).sort("contributor_system_cd").iter_rows(named=True):
                s = sys.get(r["contributor_system_cd"], "?")
                self.add(
                    "row_count", t, "", "", "", f"{s.upper()} {t} rows: {r['len']} expected, {r['len_right']} loaded"
                )


#: the tables whose rows per contributor system a row_count fault is about
COUNTED_TABLES = ("person", "person_alias", "encounter", "encntr_alias", *_CHILD_TABLES, "clinical_event")


def system_counts(rows: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Rows per table and contributor system (``table``, ``contributor_system_cd``, ``len``) of ``COUNTED_TABLES``."""
    return pl.concat(
        [
            rows[t].group_by("contributor_system_cd").len().with_columns(pl.lit(t).alias("table"))
            for t in COUNTED_TABLES
        ],
        how="vertical_relaxed",
    ).select("table", "contributor_system_cd", pl.col("len").cast(pl.Int64))


def sum_system_counts(counts: list[pl.DataFrame]) -> pl.DataFrame:
    """``system_counts`` of several partitions as those of the whole load."""
    return pl.concat(counts).group_by("table", "contributor_system_cd", maintain_order=True).agg(pl.col("len").sum())


def inject_faults(
    rows: dict[str, pl.DataFrame],
    exp: Expected,
    m: Mappings,
    seed: int,
    *,
    known: pl.Series | None = None,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Faulted copies of the target rows and the ground truth of every fault but the row counts.

    The row_count faults the others cause are the whole load's (``row_count_truth``, once over
    every partition); ``known``: the sorted identity nodes (``checks.components.identity_node``) of
    the whole extract, which a made-up identity number must not clash with (where ``rows`` are one
    partition's).
    """
    f = _Faults(rows, exp, m, seed, known)
    f.missing_rows()
    f.extra_rows()
    f.value_faults()
    f.key_faults()
    f.reference_faults()
    f.identity_faults()
    NoteFaults(f, m).inject()
    return f.rows, numbered(f.truth)


def row_count_truth(before: pl.DataFrame, after: pl.DataFrame, m: Mappings) -> pl.DataFrame:
    """The row_count faults of a whole load.

    ``before`` and ``after``: its rows per table and system before and after the other faults
    (``system_counts``, summed over the partitions).
    """
    f = _Faults.__new__(_Faults)
    f.codes = _codes(m)
    f.truth = []
    f.row_counts(before, after)
    return numbered(f.truth)


def numbered(truth: list[dict] | pl.DataFrame) -> pl.DataFrame:
    """Ground-truth rows with their ``defect_id`` (L0001, …, in order) and layer, in ``TRUTH_COLUMNS``."""
    df = (
        truth
        if isinstance(truth, pl.DataFrame)
        else pl.DataFrame(truth, schema={c: pl.String for c in TRUTH_COLUMNS[2:]})
    )
    return (
        df.select(TRUTH_COLUMNS[2:])
        .with_columns(
            pl.format("L{}", pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(4)).alias("defect_id"),
            pl.lit("load").alias("layer"),
        )
        .select(TRUTH_COLUMNS)
    )


# ------------------------------------------------------------------------------------------------
# clinical notes (clinical-notes.md): every nature of a text change, and notes missing, moved, added

_MOJIBAKE_LETTERS = re.compile("[åäöÅÄÖéü]")


def _rtf(text: str) -> str:
    """The text as an RTF document whose markup arrived as text."""
    body = text.replace("\n", "\\par\n")
    return "{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Arial;}}\\f0\\fs20 " + body + "\\par}"


def _html(text: str) -> str:
    """The text as HTML whose tags arrived as text."""
    return "<p>" + text.replace("\n", "<br>\n") + "</p>"


class NoteFaults:
    """Faults in the notes and their text chunks, each on a note of a person no other fault touches.

    Text faults are collected and applied to ``ce_blob`` at once (``_apply``): a note's new text
    replaces its chunks, a dropped chunk or two swapped chunk numbers change its chunk rows.
    """

    def __init__(self, f: _Faults, m: Mappings) -> None:
        self.f = f
        self.negations = m.negation_words
        self.texts: dict[int, str] = {}  # clinical_event_id → its new text
        self.dropped: set[tuple[int, int]] = set()  # (clinical_event_id, blob_seq_num)
        self.swapped: set[int] = set()  # clinical_event_id: chunks 1 and 2 swapped

    def _notes(self) -> pl.DataFrame:
        ce = self.f.rows["clinical_event"].filter(pl.col("_ref").is_not_null())
        return ce.filter(pl.len().over("_ref") == 1)

    def _text_fault(self, note: dict, nature: str, what: str) -> None:
        self.f.add(
            "text_altered",
            "clinical_event",
            note["_ref"],
            f"clinical_event:{note['clinical_event_id']}",
            "note_text",
            what,
            nature=nature,
        )

    def inject(self) -> None:
        """Every kind of note fault, ``max(1, n // 2)`` of each."""
        if "clinical_event" not in self.f.rows or self.f.rows["clinical_event"].height == 0:
            return
        notes = self._notes()
        k = max(1, self.f.n // 2)
        rng = self.f.rng
        long_notes = notes.filter(pl.col("note_text").str.len_chars() > CHUNK)
        for n in self.f.pick(long_notes, k):
            chunks = (len(n["note_text"]) + CHUNK - 1) // CHUNK
            seq = rng.randint(1, chunks)
            self.dropped.add((n["clinical_event_id"], seq))
            self._text_fault(n, "chunk_missing", f"text chunk {seq} of {chunks} not loaded")
        for n in self.f.pick(long_notes, k):
            self.swapped.add(n["clinical_event_id"])
            self._text_fault(n, "chunk_order", "text chunks 1 and 2 loaded in the wrong order")
        for n in self.f.pick(notes.filter(pl.col("note_text").str.len_chars() > 200), k):
            text = n["note_text"]
            cut = rng.randint(len(text) // 3, len(text) - 20)
            if cut % CHUNK == 0:
                cut -= 1
            self.texts[n["clinical_event_id"]] = text[:cut]
            self._text_fault(n, "truncated", f"text cut short after {cut} of {len(text)} characters")
        for n in self.f.pick(notes.filter(pl.col("note_text").str.contains(_MOJIBAKE_LETTERS.pattern)), k):
            self.texts[n["clinical_event_id"]] = n["note_text"].encode("utf-8").decode("cp1252", errors="replace")
            self._text_fault(n, "encoding", "text garbled: UTF-8 read as Windows-1252")
        for i, n in enumerate(self.f.pick(notes.filter(pl.col("note_text").str.contains("\n")), k)):
            self.texts[n["clinical_event_id"]] = (_rtf if i % 2 else _html)(n["note_text"])
            kind = "RTF" if i % 2 else "HTML"
            self._text_fault(n, "markup", f"{kind} formatting code loaded as text")
        self._word_faults(notes, k)
        for n in self.f.pick(notes.filter(pl.col("note_text").str.contains("\n")), k):
            self.texts[n["clinical_event_id"]] = n["note_text"].replace("\n", " ")
            self._text_fault(n, "line_breaks_lost", "line breaks loaded as spaces")
        self._rows_faults(notes, k)
        self._apply()
        self._chunk_faults(notes, k)

    def _word_faults(self, notes: pl.DataFrame, k: int) -> None:
        """A negation word removed from some notes; another word (never a negation) from others."""
        neg = "|".join(sorted(self.negations))
        with_neg = notes.filter(pl.col("note_text").str.contains(f"(?i)\\b(?:{neg})\\b"))
        for n in self.f.pick(with_neg, k):
            text = n["note_text"]
            hits = [m for m in re.finditer(r"[^\W_]+", text) if m.group().casefold() in self.negations]
            m = hits[self.f.rng.randrange(len(hits))]
            self.texts[n["clinical_event_id"]] = _without_word(text, m.start(), m.end())
            self._text_fault(n, "negation_lost", "a negation word removed from the text")
        for n in self.f.pick(notes.filter(pl.col("note_text").str.len_chars() > 100), k):
            text = n["note_text"]
            found = [
                m
                for m in re.finditer(r"[^\W_]+", text)
                if len(m.group()) >= 4 and m.group().casefold() not in self.negations and not m.group().isdigit()
            ]
            if not found:
                continue
            m = found[self.f.rng.randrange(len(found))]
            self.texts[n["clinical_event_id"]] = _without_word(text, m.start(), m.end())
            self._text_fault(n, "words_lost", "a word removed from the text")

    def _rows_faults(self, notes: pl.DataFrame, k: int) -> None:
        """A note missing, a note on another encounter of its person, a note added."""
        f = self.f
        for n in f.pick(notes, k):
            f.drop("clinical_event", pl.col("clinical_event_id") == n["clinical_event_id"])
            f.drop("ce_blob", pl.col("clinical_event_id") == n["clinical_event_id"])
            f.add("missing_in_target", "clinical_event", n["_ref"], "", "", "note not loaded")
        enc = f.rows["encounter"].filter(pl.col("_ref").is_not_null())
        several = (
            enc.group_by("person_id")
            .agg(pl.col("encntr_id").sort().alias("_encs"))
            .filter(pl.col("_encs").list.len() > 1)
        )
        movable = notes.join(several, on="person_id")
        for n in f.pick(movable, k):
            other = [e for e in n["_encs"] if e != n["encntr_id"]]
            new = other[f.rng.randrange(len(other))]
            f.update("clinical_event", n["clinical_event_id"], encntr_id=new)
            f.add(
                "value_mismatch",
                "clinical_event",
                n["_ref"],
                f"clinical_event:{n['clinical_event_id']}",
                "encntr_id",
                "note loaded on another encounter of its patient",
                nature="other",
            )
        for n in f.pick(notes, k):
            eid = f.next_id("clinical_event")
            f.append("clinical_event", {**n, "_ref": None, "reference_nbr": f"X{eid}"})
            blobs = f.rows["ce_blob"]
            first = f.next_id("ce_blob")
            added = chunked(
                pl.DataFrame({"clinical_event_id": [eid], "note_text": [n["note_text"]]}),
                "clinical_event_id",
                "note_text",
            ).with_row_index("ce_blob_id", offset=first)
            f.rows["ce_blob"] = pl.concat([blobs, added.select(blobs.columns).cast(blobs.schema)])
            f.add(
                "unexpected_in_target", "clinical_event", "", f"clinical_event:{eid}", "", "a note with no legacy note"
            )

    def _chunk_faults(self, notes: pl.DataFrame, k: int) -> None:
        """The chunk table's own faults: a note without any chunk, a chunk twice, a chunk of no note."""
        f = self.f
        spec = TEXT_BLOBS["clinical_event"]
        for n in f.pick(notes, k):
            f.drop(spec.table, pl.col("clinical_event_id") == n["clinical_event_id"])
            f.add(
                "mandatory_missing",
                spec.table,
                n["_ref"],
                f"clinical_event:{n['clinical_event_id']}",
                spec.contents,
                "note loaded without its text (no ce_blob row)",
            )
        for n in f.pick(notes, k):
            first = f.rows[spec.table].filter(
                (pl.col("clinical_event_id") == n["clinical_event_id"]) & (pl.col(spec.seq) == 1)
            )
            if first.height == 0:
                continue
            rid = f.append(spec.table, first.row(0, named=True))
            f.add("duplicate", spec.table, "", f"{spec.table}:{rid}", spec.seq, "a text chunk loaded twice")
        for n in f.pick(notes, max(1, k // 2)):
            chunk = f.rows[spec.table].filter(pl.col("clinical_event_id") == n["clinical_event_id"]).head(1)
            if chunk.height == 0:
                continue
            ghost = 90_000_000 + n["clinical_event_id"]
            rid = f.append(spec.table, {**chunk.row(0, named=True), "clinical_event_id": ghost})
            f.add(
                "orphan",
                spec.table,
                "",
                f"{spec.table}:{rid}",
                "clinical_event_id",
                "a text chunk of a note that does not exist",
            )

    def _apply(self) -> None:
        """The collected text faults, applied to the chunk rows at once."""
        f = self.f
        blobs = f.rows["ce_blob"]
        spec = TEXT_BLOBS["clinical_event"]
        if self.dropped:
            gone = pl.DataFrame(
                list(self.dropped),
                schema={"clinical_event_id": pl.Int64, spec.seq: blobs.schema[spec.seq]},
                orient="row",
            )
            blobs = blobs.join(gone, on=["clinical_event_id", spec.seq], how="anti", maintain_order="left")
        if self.swapped:
            ids = pl.Series(sorted(self.swapped), dtype=pl.Int64)
            swap = pl.col("clinical_event_id").is_in(ids.implode())
            seq = pl.col(spec.seq)
            blobs = blobs.with_columns(
                pl.when(swap & (seq == 1))
                .then(2)
                .when(swap & (seq == 2))
                .then(1)
                .otherwise(seq)
                .cast(seq_dtype(blobs))
                .alias(spec.seq)
            )
        if self.texts:
            ids = pl.Series(sorted(self.texts), dtype=pl.Int64)
            blobs = blobs.filter(~pl.col("clinical_event_id").is_in(ids.implode()))
            new = pl.DataFrame(
                {"clinical_event_id": ids, spec.column: [self.texts[i] for i in ids.to_list()]},
            )
            first = int(blobs.select(pl.col(PRIMARY_KEY[spec.table]).max().fill_null(0)).item()) + 1
            blobs = pl.concat([blobs, blob_chunks(new, first).select(blobs.columns).cast(blobs.schema)])
        f.rows["ce_blob"] = blobs


def seq_dtype(blobs: pl.DataFrame) -> pl.DataType:
    """The dtype of the chunk number column."""
    return blobs.schema[TEXT_BLOBS["clinical_event"].seq]


def blob_chunks(events: pl.DataFrame, first_id: int) -> pl.DataFrame:
    """Chunk rows of texts (``clinical_event_id``, ``note_text``) with ids from ``first_id``."""
    spec = TEXT_BLOBS["clinical_event"]
    return (
        chunked(events, "clinical_event_id", spec.column)
        .sort("clinical_event_id", spec.seq)
        .with_row_index(PRIMARY_KEY[spec.table], offset=first_id)
        .with_columns(pl.col(PRIMARY_KEY[spec.table]).cast(pl.Int64))
    )


def _without_word(text: str, start: int, end: int) -> str:
    """The text without the word at ``start:end`` and one space beside it (so no words join)."""
    if end < len(text) and text[end] == " ":
        return text[:start] + text[end + 1 :]
    if start > 0 and text[start - 1] == " ":
        return text[: start - 1] + text[end:]
    return text[:start] + text[end:]
