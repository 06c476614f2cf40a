"""Swedish identity numbers: personnummer, samordningsnummer and the regional reservnummer.

Two faces of one rule set (``legacy-exports.md``, "Identity numbers"):

* scalar helpers (``luhn_digit``, ``classify``) for single values, property tests and the
  synthetic generator;
* ``with_identity``, polars passes that validate a whole column at once.

Both are tested against each other, so they cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

#: Digit that stands for the reservnummer sex letter in the Luhn input.
RESNR_LETTER_DIGIT = {"K": 5, "M": 7, "X": 8}

PNR, SAMNR, RESNR = "PNR", "SAMNR", "RESNR"
#: PCS ``identity.type`` → alias type meaning.
DECLARED_TYPES = {"pnr": PNR, "samnr": SAMNR, "resnr": RESNR}


def luhn_digit(digits: str) -> int:
    """Check digit over ``digits`` with weights 2,1,2,1,… and digit sums (Swedish Luhn)."""
    total = 0
    for i, ch in enumerate(digits):
        p = int(ch) * (2 if i % 2 == 0 else 1)
        total += p // 10 + p % 10
    return (10 - total % 10) % 10


@dataclass(frozen=True)
class IdentityCheck:
    """The verdict on one identity value."""

    kind: str | None  # PNR, SAMNR, RESNR, or None when the form fits no kind
    valid: bool
    birth_date: dt.date | None
    sex: str | None  # MALE / FEMALE from the sex digit; None for reservnummer or invalid
    reason: str | None  # why it is invalid, without echoing the value


def _form(value: str) -> str | None:
    if len(value) != 12:
        return None
    if value.isdigit():
        return SAMNR if 61 <= int(value[6:8]) <= 91 else PNR
    if value[:8].isdigit() and value[8] in RESNR_LETTER_DIGIT and value[9:].isdigit():
        return RESNR
    return None


def classify(value: str | None, as_of: dt.date, declared: str | None = None) -> IdentityCheck:
    """Validate one identity value (12 characters, no hyphen) as of a date."""
    if value is None or value == "":
        return IdentityCheck(None, False, None, None, "no identity value")
    kind = _form(value)
    if kind is None:
        return IdentityCheck(None, False, None, None, "not 12 characters of a known form")
    if declared is not None and DECLARED_TYPES.get(declared) != kind:
        return IdentityCheck(kind, False, None, None, "declared type disagrees with the form")
    day = int(value[6:8]) - (60 if kind == SAMNR else 0)
    try:
        birth = dt.date(int(value[0:4]), int(value[4:6]), day)
    except ValueError:
        return IdentityCheck(kind, False, None, None, "no such calendar date")
    if birth > as_of:
        return IdentityCheck(kind, False, None, None, "date in the future")
    if kind == RESNR:
        letter, gg = value[8], int(value[9:11])
        ok_gg = (80 <= gg <= 89) if letter == "X" else (6 <= gg <= 79 and gg % 2 == (1 if letter == "M" else 0))
        if not ok_gg:
            return IdentityCheck(kind, False, None, None, "reserve number serial does not fit its sex letter")
        luhn_in = value[2:8] + str(RESNR_LETTER_DIGIT[letter]) + value[9:11]
        sex = None
    else:
        luhn_in = value[2:11]
        sex = "MALE" if int(value[10]) % 2 == 1 else "FEMALE"
    if luhn_digit(luhn_in) != int(value[11]):
        return IdentityCheck(kind, False, None, None, "check digit does not match")
    return IdentityCheck(kind, True, birth, sex, None)


#: the columns ``with_identity`` adds, in order
IDENTITY_COLUMNS = ("id_kind", "id_valid", "id_birth", "id_sex", "id_reason")


def _luhn_of(digits: pl.Expr, n: int) -> pl.Expr:
    """The Swedish Luhn check digit of ``n`` digits given as one integer (``digits``).

    Weights 2,1,2,1,… from the first digit, as ``luhn_digit``; each digit by integer arithmetic, so
    no string is sliced per digit.
    """
    total = pl.lit(0, dtype=pl.Int64)
    for i in range(n):
        p = (digits // 10 ** (n - 1 - i)) % 10 * (2 if i % 2 == 0 else 1)
        total = total + p // 10 + p % 10
    return (10 - total % 10) % 10


def with_identity(df: pl.DataFrame, value: pl.Expr, as_of: dt.date, declared: pl.Expr | None = None) -> pl.DataFrame:
    """``df`` with ``id_kind``, ``id_valid``, ``id_birth`` (Date), ``id_sex``, ``id_reason`` of ``value``.

    ``declared`` is the PCS ``identity.type`` (``pnr``/``samnr``/``resnr``); None for PAS, which
    does not say which kind a number is. Computed in three passes (the parts of the number, the
    reason, what follows from it), lazily, so that each part is computed once, not once per column
    that needs it.
    """
    v = value
    is12 = v.str.len_chars() == 12
    all_digits = v.str.contains(r"^[0-9]{12}$")
    res_form = v.str.contains(r"^[0-9]{8}[KMX][0-9]{3}$")
    day_raw = v.str.slice(6, 2).cast(pl.Int32, strict=False)
    kind = (
        pl.when(is12 & all_digits & day_raw.is_between(61, 91))
        .then(pl.lit(SAMNR))
        .when(is12 & all_digits)
        .then(pl.lit(PNR))
        .when(is12 & res_form)
        .then(pl.lit(RESNR))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    declared_kind = (
        pl.lit(None, dtype=pl.String)
        if declared is None
        else declared.replace_strict(DECLARED_TYPES, default=None, return_dtype=pl.String)
    )
    parts = df.lazy().with_columns(
        v.alias("_id_v"), kind.alias("_id_kind"), day_raw.alias("_id_day"), declared_kind.alias("_id_declared")
    )
    v, kind = pl.col("_id_v"), pl.col("_id_kind")
    day = pl.when(kind == SAMNR).then(pl.col("_id_day") - 60).otherwise(pl.col("_id_day"))
    letter = v.str.slice(8, 1)
    gg = v.str.slice(9, 2).cast(pl.Int32, strict=False)
    letter_digit = letter.replace_strict(RESNR_LETTER_DIGIT, default=None, return_dtype=pl.String)
    # the Luhn input: digits 3-11 of a personnummer or samordningsnummer; of a reservnummer, digits
    # 3-8, the digit of its sex letter and digits 10-11
    luhn_in = (
        pl.when(kind == RESNR).then(v.str.slice(2, 6) + letter_digit + v.str.slice(9, 2)).otherwise(v.str.slice(2, 9))
    )
    parts = parts.with_columns(
        (v.str.slice(0, 6) + day.cast(pl.String).str.zfill(2)).str.to_date("%Y%m%d", strict=False).alias("_id_birth"),
        pl.when(letter == "X")
        .then(gg.is_between(80, 89))
        .otherwise(gg.is_between(6, 79) & ((gg % 2 == 1) == (letter == "M")))
        .alias("_id_gg_ok"),
        (_luhn_of(luhn_in.cast(pl.Int64, strict=False), 9) == v.str.slice(11, 1).cast(pl.Int64, strict=False)).alias(
            "_id_luhn_ok"
        ),
    )
    birth = pl.col("_id_birth")
    declared_ok = pl.lit(True) if declared is None else pl.col("_id_declared").eq_missing(kind)
    reason = (
        pl.when(v.is_null() | (v == ""))
        .then(pl.lit("no identity value"))
        .when(kind.is_null())
        .then(pl.lit("not 12 characters of a known form"))
        .when(~declared_ok)
        .then(pl.lit("declared type disagrees with the form"))
        .when(birth.is_null())
        .then(pl.lit("no such calendar date"))
        .when(birth > pl.lit(as_of))
        .then(pl.lit("date in the future"))
        .when((kind == RESNR) & ~pl.col("_id_gg_ok"))
        .then(pl.lit("reserve number serial does not fit its sex letter"))
        .when(~pl.col("_id_luhn_ok"))
        .then(pl.lit("check digit does not match"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    parts = parts.with_columns(reason.alias("id_reason"))
    valid = pl.col("id_reason").is_null()
    sex = (
        pl.when(valid & (kind != RESNR))
        .then(
            pl.when(v.str.slice(10, 1).cast(pl.Int32, strict=False) % 2 == 1)
            .then(pl.lit("MALE"))
            .otherwise(pl.lit("FEMALE"))
        )
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    out = parts.with_columns(
        kind.alias("id_kind"),
        valid.alias("id_valid"),
        pl.when(valid).then(birth).otherwise(None).alias("id_birth"),
        sex.alias("id_sex"),
    )
    return (
        out.drop("_id_v", "_id_kind", "_id_day", "_id_declared", "_id_birth", "_id_gg_ok", "_id_luhn_ok")
        .select(pl.exclude(IDENTITY_COLUMNS), *IDENTITY_COLUMNS)
        .collect(engine="in-memory")
    )
