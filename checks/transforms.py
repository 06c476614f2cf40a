"""Value transforms and code lookups named in the mapping files, as polars expressions.

``column_exprs`` turns one ``ColumnMap`` into the expressions the engine needs: the target value
and the conditions that block or flag a record (missing, unreadable, unmapped, inactive, a local
time that does not exist).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from checks.note_text import normalise
from checks.target_schema import VOCABULARY_CODE_SET

if TYPE_CHECKING:  # the mapping models name these transforms: no import cycle at run time
    from checks.mapping import ColumnMap, Mappings

TZ = "Europe/Stockholm"
_TS = pl.Datetime("us")
_OFFSET_FORMATS = [
    "%Y-%m-%dT%H:%M:%S%:z",
    "%Y-%m-%dT%H:%M%:z",
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.fZ",
]
_FALSE = pl.lit(False)


@dataclass(frozen=True)
class ColumnExprs:
    """Expressions for one target column over a staged legacy frame."""

    value: pl.Expr
    missing: pl.Expr  # no value where one is mandatory
    unreadable: pl.Expr  # a value present that cannot be read (date, time)
    unmapped: pl.Expr  # a code with no mapping / not in the nomenclature
    inactive: pl.Expr  # a code mapping to an inactive code value / nomenclature row
    nonexistent: pl.Expr  # a local time in the spring-forward gap


def normalise_icd10se(e: pl.Expr) -> pl.Expr:
    """Upper case, no spaces, dot after the third character when missing (``j189`` → ``J18.9``)."""
    u = e.str.to_uppercase().str.replace_all(r"\s+", "")
    return (
        pl.when(~u.str.contains(".", literal=True) & (u.str.len_chars() > 3))
        .then(u.str.slice(0, 3) + "." + u.str.slice(3))
        .otherwise(u)
    )


def upper_nospace(e: pl.Expr) -> pl.Expr:
    """Upper case without any whitespace (KVÅ, ATC)."""
    return e.str.to_uppercase().str.replace_all(r"\s+", "")


def local_to_utc(parsed: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Stockholm wall time → naive UTC, and whether the time did not exist.

    An ambiguous time (the repeated October hour) takes the earlier instant; a skipped time (the
    March gap) is moved forward one hour.
    """
    loc = parsed.dt.replace_time_zone(TZ, ambiguous="earliest", non_existent="null")
    nonexistent = parsed.is_not_null() & loc.is_null()
    shifted = (parsed + pl.duration(hours=1)).dt.replace_time_zone(TZ, ambiguous="earliest", non_existent="null")
    utc = pl.coalesce(loc, shifted).dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return utc.cast(_TS), nonexistent


def offset_to_utc(raw: pl.Expr) -> pl.Expr:
    """ISO 8601 with offset → naive UTC."""
    parsed = [raw.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC") for f in _OFFSET_FORMATS]
    return pl.coalesce(parsed).dt.replace_time_zone(None)


def _raw(cm: ColumnMap) -> pl.Expr:
    if cm.const is not None:
        return pl.lit(cm.const, dtype=pl.String)
    if cm.from_parent is not None:
        return pl.col(f"_parent_{cm.from_parent}")
    if cm.source is None:  # ColumnMap's validator demands exactly one of from, from_parent, const
        raise ValueError("a mapped column needs one of from, from_parent, const")
    return pl.col(cm.source).cast(pl.String)


def _code_lookup(value: pl.Expr, raw: pl.Expr, code_map: str, m: Mappings) -> tuple[pl.Expr, pl.Expr]:
    cmap = m.code_maps[code_map]
    mapping = dict(zip(cmap["source_code"].to_list(), cmap["target_cdf_meaning"].to_list(), strict=True))
    key = value.fill_null("") if "" in mapping else value
    mapped = key.replace_strict(mapping, default=None, return_dtype=pl.String)
    unmapped = raw.is_not_null() & mapped.is_null()
    return mapped, unmapped


def _active_in_set(meaning: pl.Expr, code_set: int, m: Mappings) -> pl.Expr:
    cv = m.code_value.filter(pl.col("code_set") == code_set)
    active = dict(zip(cv["cdf_meaning"].to_list(), cv["active_ind"].to_list(), strict=True))
    return meaning.is_not_null() & (meaning.replace_strict(active, default=0, return_dtype=pl.Int64) != 1)


def _nomenclature(value: pl.Expr, vocab: str, m: Mappings) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    vcd = m.code_value.filter((pl.col("code_set") == VOCABULARY_CODE_SET) & (pl.col("cdf_meaning") == vocab))[
        "code_value"
    ]
    nom = m.nomenclature.filter(pl.col("source_vocabulary_cd") == vcd.item())
    active = dict(zip(nom["source_identifier"].to_list(), nom["active_ind"].to_list(), strict=True))
    state = value.replace_strict(active, default=None, return_dtype=pl.Int64)
    unmapped = value.is_not_null() & state.is_null()
    inactive = state.is_not_null() & (state != 1)
    return pl.lit(f"{vocab}:") + value, unmapped, inactive


@dataclass(frozen=True)
class Parsed:
    """What a transform makes of a raw legacy value."""

    value: pl.Expr
    unreadable: pl.Expr = _FALSE  # present but not readable as the transform's type
    nonexistent: pl.Expr = _FALSE  # a local time in the spring-forward gap
    empty: pl.Expr = _FALSE  # present but nothing left after the transform (a note of blank lines)


def _local_timestamp(raw: pl.Expr, cm: ColumnMap) -> Parsed:
    parsed = raw.str.to_datetime("%Y-%m-%d %H:%M", strict=False, time_unit="us")
    value, nonexistent = local_to_utc(parsed)
    return Parsed(value, raw.is_not_null() & parsed.is_null(), nonexistent)


def _offset_timestamp(raw: pl.Expr, cm: ColumnMap) -> Parsed:
    value = offset_to_utc(raw)
    return Parsed(value, raw.is_not_null() & value.is_null())


def _note_text(raw: pl.Expr, cm: ColumnMap) -> Parsed:
    """A note's text by the load rules (line breaks, line ends, blank edge lines); empty when nothing is left."""
    value = normalise(raw)
    return Parsed(value, empty=raw.is_not_null() & (value == ""))


def _date(raw: pl.Expr, cm: ColumnMap) -> Parsed:
    value = raw.str.to_date("%Y-%m-%d", strict=False).cast(_TS)
    return Parsed(value, raw.is_not_null() & value.is_null())


#: every transform a mapping file may name (``transform:``), by name: raw value → ``Parsed``
TRANSFORMS: dict[str, Callable[[pl.Expr, ColumnMap], Parsed]] = {
    "text": lambda raw, cm: Parsed(raw),
    "upper_nospace": lambda raw, cm: Parsed(upper_nospace(raw)),
    "icd10se": lambda raw, cm: Parsed(normalise_icd10se(raw)),
    "postal_code": lambda raw, cm: Parsed(raw.str.replace_all(r"\s+", "")),
    "local_timestamp": _local_timestamp,
    "offset_timestamp": _offset_timestamp,
    "date": _date,
    "skydd": lambda raw, cm: Parsed(raw.is_not_null() & (raw.str.to_uppercase() != "N")),
    "flag": lambda raw, cm: Parsed(raw.fill_null("false").str.to_lowercase() == "true"),
    "note_text": _note_text,
    "presence": lambda raw, cm: Parsed(
        pl.when(raw.is_not_null()).then(pl.lit(cm.present)).otherwise(pl.lit(cm.absent))
    ),
}


def column_exprs(cm: ColumnMap, m: Mappings) -> ColumnExprs:
    """The expressions of one mapped column."""
    raw = _raw(cm)
    # a value taken from the parent record is the parent's target value already
    parsed = Parsed(raw) if cm.from_parent is not None else TRANSFORMS[cm.transform](raw, cm)
    value = parsed.value
    unmapped = inactive = _FALSE
    if cm.code_map is not None:
        value, unmapped = _code_lookup(value, raw, cm.code_map, m)
    if cm.nomenclature is not None:
        value, unmapped, inactive = _nomenclature(value, cm.nomenclature, m)
    elif cm.code_set is not None:
        inactive = _active_in_set(value, cm.code_set, m)
    missing = (raw.is_null() | parsed.empty) if cm.mandatory else _FALSE
    return ColumnExprs(value, missing, parsed.unreadable, unmapped, inactive, parsed.nonexistent)
