"""The checks the target must pass on its own, declared from ``checks.target_schema``.

``load-rules.md``, "What the validation checks on the target itself".

A declaration only: no Great Expectations, no I/O. ``pipelines.io.gx_checks`` turns every
``TargetCheck`` into a GX expectation that runs inside the target database.

Kinds:

* ``not_null`` — every NOT NULL column of the DDL except the primary key (``mandatory_missing``);
* ``in_set`` — every ``*_cd`` column in an active code value of its code set, every nomenclature
  reference in an active nomenclature row of its vocabulary (``invalid_code``); nulls pass, a
  missing mandatory value being the ``not_null`` check's finding;
* ``unexpected_rows`` — a SQL query returning the failing rows' ids as ``row_id`` and, where a
  value shows what is wrong, that value as ``value``: orphans (the reference that names no row),
  persons without identity alias (no value), identity values that sit twice (the value, masked in
  the finding), allergies with neither or both substance columns (which, in words).

Every check says, in steward words, what it expects (``expected``) and what a failing row is
(``message``, a template over the value found); ``TargetCheck.failure`` fills it in, the value
masked where it identifies a person (``checks.masking``).

An ``unexpected_rows`` check declares its rule (``RowsQuery``); ``pipelines.io.target_queries``
writes its SQL for the target's dialect, so this package needs no database library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import SupportsInt

import polars as pl

from checks.catalogue import TARGET, Check
from checks.errors import MigcheckError
from checks.identity import PNR, RESNR, SAMNR
from checks.masking import mask
from checks.target_schema import (
    CHUNK_TABLES,
    CODE_SETS,
    DATA_TABLES,
    NOMENCLATURE,
    PRIMARY_KEY,
    REFERENCES,
    TABLES,
    TEXT_BLOBS,
    VOCABULARY_CODE_SET,
)

KINDS = ("not_null", "in_set", "unexpected_rows")
#: alias types of the identity alias every person must have (code set 4)
IDENTITY_ALIAS_TYPES = (PNR, SAMNR, RESNR)
ALIAS_TYPE_CODE_SET = CODE_SETS[("person_alias", "person_alias_type_cd")]

#: what a steward calls a code set
CODE_SET_NAMES = {
    4: "alias type",
    17: "diagnosis type",
    57: "sex",
    71: "encounter type",
    87: "confidentiality",
    89: "contributor system",
    220: "nurse unit",
    263: "alias pool",
    319: "encounter alias type",
    6004: "order status",
    12022: "allergy severity",
}
#: how many meanings ``expected`` lists before it only counts
_LISTED = 8


@dataclass(frozen=True)
class RowsQuery:
    """An ``unexpected_rows`` rule, declared; ``pipelines.io.target_queries`` writes its SQL.

    ``rule``: ``orphan`` (rows of ``table`` whose ``column`` names no ``parent`` row by
    ``parent_key``), ``identity_missing`` (persons with no alias of a type in ``codes``),
    ``identity_duplicate`` (identity aliases, of a type in ``codes``, whose value sits on one with a
    lower id), ``substance_exactly_one`` (allergies with neither or both substance columns),
    ``without_children`` (rows of ``table`` no row of ``parent`` names by ``parent_key``: a note
    without text chunks; here ``parent`` is the child table), ``repeated_in_parent`` (rows whose
    ``column`` value sits on a row of the same ``parent_key`` with a lower id: a chunk number
    twice), ``longer_than`` (rows whose text ``column`` holds more than ``codes[0]`` characters).
    """

    rule: str
    table: str
    column: str | None = None
    parent: str | None = None
    parent_key: str | None = None
    codes: tuple[int, ...] = ()


@dataclass(frozen=True)
class TargetCheck:
    """One check of the target, run as one GX expectation on ``table``."""

    check_id: str  # stable id, e.g. "encounter.target.not_null.reg_dt_tm"
    table: str  # the table the expectation runs on
    kind: str  # "not_null" | "in_set" | "unexpected_rows"
    column: str | None
    category: str  # mandatory_missing | invalid_code | orphan | duplicate
    entity: str  # entity to report (the table, except identity_missing → "person_alias")
    value_set: tuple[int, ...] | None = None
    query: RowsQuery | None = None  # unexpected_rows: the rule whose SQL returns the failing ids as "row_id"
    ref_table: str | None = None  # table the returned row_id belongs to (for target_ref); default = table
    description: str = ""  # one sentence for stewards
    expected: str = ""  # what a row must hold, e.g. "an active code value of code set 57 (MALE, FEMALE, UNKNOWN)"
    message: str = ""  # a failing row in steward words; "{value}" = the value found, "{what}" = " (what it is)"
    #: what a failing value is, where known (a code value of another set, an inactive one): value → words
    known: Mapping[int, str] | None = field(default=None, compare=False, repr=False)

    @property
    def target_table(self) -> str:
        """The table a failing row's ``target_ref`` names."""
        return self.ref_table or self.table

    def failure(self, value: object) -> tuple[str | None, str]:
        """(the value as a report may show it, the message) of one failing row holding ``value``.

        The value is masked where the column identifies a person (``checks.masking.mask``).
        """
        shown = mask(self.table, self.column or "", value)
        what = ""
        if self.known and isinstance(value, str | bytes | SupportsInt):  # what ``int()`` may read
            try:
                what = self.known.get(int(value), "")
            except (TypeError, ValueError):
                what = ""
        text = self.message or self.description or f"the row fails {self.check_id}"
        return shown, text.format(value=shown if shown is not None else "(none)", what=f" ({what})" if what else "")


def _active_codes(code_value: pl.DataFrame, code_set: int) -> tuple[int, ...]:
    ids = code_value.filter((pl.col("code_set") == code_set) & (pl.col("active_ind") == 1))["code_value"]
    if ids.len() == 0:
        raise MigcheckError(f"mappings/reference/code_value.csv: no active code value in code set {code_set}")
    return tuple(sorted(int(v) for v in ids))


def _code_of(code_value: pl.DataFrame, code_set: int, meaning: str) -> int:
    hit = code_value.filter((pl.col("code_set") == code_set) & (pl.col("cdf_meaning") == meaning))["code_value"]
    if hit.len() != 1:
        raise MigcheckError(
            f"mappings/reference/code_value.csv: expected one code value {meaning!r} in code set {code_set}, "
            f"found {hit.len()}"
        )
    return int(hit[0])


def _active_nomenclature(code_value: pl.DataFrame, nomenclature: pl.DataFrame, vocabulary: str) -> tuple[int, ...]:
    vocab_cd = _code_of(code_value, VOCABULARY_CODE_SET, vocabulary)
    ids = nomenclature.filter((pl.col("source_vocabulary_cd") == vocab_cd) & (pl.col("active_ind") == 1))[
        "nomenclature_id"
    ]
    if ids.len() == 0:
        raise MigcheckError(f"mappings/reference/nomenclature.csv: no active nomenclature row of {vocabulary}")
    return tuple(sorted(int(v) for v in ids))


class _Known(Mapping):
    """What a value of another set, or an inactive one of the check's own set, is: id → words.

    One shared table of every code value (or nomenclature row) as ``id → (set, name, active)``,
    read relative to the set ``own`` the check expects: ``SAS_MED3, inactive`` in its own set,
    ``MALE of code set 57`` in another.
    """

    def __init__(self, rows: dict[int, tuple[str, str, bool]], own: str) -> None:
        self._rows, self._own = rows, own

    def __getitem__(self, key: int) -> str:
        group, name, active = self._rows[key]
        if group == self._own:
            return name if active else f"{name}, inactive"
        return f"{name} of {group}"

    def __iter__(self):  # noqa: ANN204 - Mapping protocol
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def _code_rows(code_value: pl.DataFrame) -> dict[int, tuple[str, str, bool]]:
    return {
        int(v): (f"code set {cs}", str(meaning), a == 1)
        for v, cs, meaning, a in code_value.select("code_value", "code_set", "cdf_meaning", "active_ind").iter_rows()
    }


def _nomenclature_rows(code_value: pl.DataFrame, nomenclature: pl.DataFrame) -> dict[int, tuple[str, str, bool]]:
    vocabularies = code_value.filter(pl.col("code_set") == VOCABULARY_CODE_SET)
    vocab = dict(vocabularies.select("code_value", "cdf_meaning").iter_rows())
    return {
        int(i): (str(vocab.get(v, f"vocabulary {v}")), str(ident), a == 1)
        for i, v, ident, a in nomenclature.select(
            "nomenclature_id", "source_vocabulary_cd", "source_identifier", "active_ind"
        ).iter_rows()
    }


def _meanings(code_value: pl.DataFrame, code_set: int) -> str:
    """The active meanings of a code set, listed up to ``_LISTED``: ``MALE, FEMALE, UNKNOWN``."""
    cv = code_value.filter((pl.col("code_set") == code_set) & (pl.col("active_ind") == 1)).sort("code_value")
    names = [str(m) for m in cv["cdf_meaning"].to_list()]
    if len(names) <= _LISTED:
        return ", ".join(names)
    return ", ".join(names[:_LISTED]) + f", … ({len(names)} in all)"


def build_target_checks(code_value: pl.DataFrame, nomenclature: pl.DataFrame) -> list[TargetCheck]:
    """Every target check, in table order (``DATA_TABLES``)."""
    identity_types = tuple(sorted(_code_of(code_value, ALIAS_TYPE_CODE_SET, m) for m in IDENTITY_ALIAS_TYPES))
    # fmt: off
    checks: list[TargetCheck] = []

    def add(check: Check, table: str, kind: str, column: str | None, **kw) -> None:
        """The GX form of a check the catalogue declares (id, category, entity, description)."""
        checks.append(TargetCheck(check.id, table, kind, column, check.category, check.entity,
                                  description=check.description, **kw))

    code_rows = _code_rows(code_value)
    nom_rows = _nomenclature_rows(code_value, nomenclature)
    for table in DATA_TABLES:
        for c in TABLES[table]:
            if not c.nullable and not c.primary_key:
                add(TARGET[(table, "not_null", c.name)], table, "not_null", c.name,
                    expected="a value (NOT NULL)",
                    message=f"{c.name} is empty; every {table} row must have it")
        for col, code_set in ((col, cs) for (t, col), cs in CODE_SETS.items() if t == table):
            name = CODE_SET_NAMES.get(code_set, f"code set {code_set}")
            add(TARGET[(table, "code", col)], table, "in_set", col,
                value_set=_active_codes(code_value, code_set),
                expected=f"an active code value of code set {code_set} ({_meanings(code_value, code_set)})",
                message=f"{col} {{value}}{{what}} is not an active code value of code set {code_set} ({name})",
                known=_Known(code_rows, f"code set {code_set}"))
        for col, vocabulary in ((col, v) for (t, col), v in NOMENCLATURE.items() if t == table):
            add(TARGET[(table, "nomenclature", col)], table, "in_set", col,
                value_set=_active_nomenclature(code_value, nomenclature, vocabulary),
                expected=f"the nomenclature_id of an active {vocabulary} nomenclature row",
                message=f"{col} {{value}}{{what}} is not an active {vocabulary} nomenclature row",
                known=_Known(nom_rows, vocabulary))
        for col, (parent, key) in ((col, p) for (t, col), p in REFERENCES.items() if t == table):
            add(TARGET[(table, "orphan", col)], table, "unexpected_rows", col,
                query=RowsQuery("orphan", table, col, parent, key),
                expected=f"an existing {parent} row ({parent}.{key})",
                message=f"{col} {{value}} names no {parent} row (no {parent}.{key} {{value}})")
        if table == "person":
            add(TARGET[("person_alias", "identity_missing", None)], "person", "unexpected_rows", "alias",
                ref_table="person", query=RowsQuery("identity_missing", "person", codes=identity_types),
                expected=f"an identity alias ({', '.join(IDENTITY_ALIAS_TYPES[:-1])} or "
                f"{IDENTITY_ALIAS_TYPES[-1]}) in person_alias",
                message="the person has no identity alias (personnummer, samordningsnummer or reservnummer) "
                "in person_alias")
        if table == "person_alias":
            add(TARGET[("person_alias", "identity_duplicate", None)], "person_alias", "unexpected_rows", "alias",
                query=RowsQuery("identity_duplicate", "person_alias", codes=identity_types),
                expected="an identity value found on one identity alias only",
                message="identity value {value} already sits on an identity alias with a lower "
                "person_alias_id; this copy is extra")
        if table in TEXT_BLOBS:
            b = TEXT_BLOBS[table]
            add(TARGET[(b.table, "text_without_chunks", None)], table, "unexpected_rows", b.contents,
                query=RowsQuery("without_children", table, b.parent_key, b.table, b.parent_key),
                expected=f"at least one {b.table} row holding the text",
                message=f"{b.contents} missing: the {table} row has no {b.table} row, so its text is not in the target")
        if table in CHUNK_TABLES:
            b = next(x for x in TEXT_BLOBS.values() if x.table == table)
            add(TARGET[(table, "chunk_repeated", None)], table, "unexpected_rows", b.seq,
                query=RowsQuery("repeated_in_parent", table, b.seq, parent_key=b.parent_key),
                expected=f"each {b.seq} once per {b.parent_key}",
                message=f"{b.seq} {{value}} already occurs with a lower {PRIMARY_KEY[table]} for the same text; "
                "this chunk is extra")
            add(TARGET[(table, "chunk_too_long", None)], table, "unexpected_rows", b.contents,
                query=RowsQuery("longer_than", table, b.contents, codes=(b.chunk,)),
                expected=f"at most {b.chunk:,} characters",
                message=f"the chunk holds {{value}} characters, more than {b.chunk:,}")
        if table == "allergy":
            add(TARGET[("allergy", "substance_exactly_one", None)], "allergy", "unexpected_rows", None,
                query=RowsQuery("substance_exactly_one", "allergy"),
                expected="exactly one of substance_nom_id and substance_ftdesc",
                message="the allergy names its substance in {value}")
    # fmt: on
    ids = [c.check_id for c in checks]
    assert len(ids) == len(set(ids)), "check ids must be unique"
    return checks
