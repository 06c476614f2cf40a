"""The implausible rules a mapping file may name (``implausible:``), as a registry.

Each rule is a small function from the accepted records of its entity (persons, or encounters
with their patient's ``_birth`` and ``_death``) and the validation date to the rows it flags,
with the target column and the steward message of the warning. ``checks.mapping`` accepts
exactly the names of ``RULES``; ``checks.expected`` runs the ones a table names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from checks.transforms import TZ


def _local_date(e: pl.Expr) -> pl.Expr:
    return e.dt.replace_time_zone("UTC").dt.convert_time_zone(TZ).dt.date()


@dataclass(frozen=True)
class Rule:
    """One implausible rule: which entity it judges and how."""

    entity: str  # person | encounter
    column: str | None  # the target column the warning names (None: the rule gives it per row)
    message: str
    #: (accepted records, as_of) → the flagged rows, with a ``column`` column when ``column`` is None
    flag: Callable[[pl.LazyFrame, dt.date], pl.LazyFrame]


def _where(cond: Callable[[dt.date], pl.Expr]) -> Callable[[pl.LazyFrame, dt.date], pl.LazyFrame]:
    return lambda df, as_of: df.filter(cond(as_of))


def _nonexistent(df: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    if "_nonexistent" not in df.collect_schema().names():
        return df.clear().with_columns(pl.lit(None, dtype=pl.String).alias("column"))
    return (
        df.filter(pl.col("_nonexistent").list.len() > 0)
        .explode("_nonexistent")
        .with_columns(pl.col("_nonexistent").alias("column"))
    )


RULES: dict[str, Rule] = {
    "deceased_in_future": Rule(
        "person",
        "deceased_dt_tm",
        "date of death lies in the future",
        _where(lambda as_of: pl.col("deceased_dt_tm").dt.date() > as_of),
    ),
    "sex_contradicts_identity": Rule(
        "person",
        "sex_cd",
        "recorded sex contradicts the sex digit of the identity number; loaded as recorded",
        _where(
            lambda _: (
                pl.col("sex_cd").is_in(["MALE", "FEMALE"])
                & pl.col("id_sex").is_not_null()
                & (pl.col("sex_cd") != pl.col("id_sex"))
            )
        ),
    ),
    "end_before_start": Rule(
        "encounter",
        "disch_dt_tm",
        "the contact ends before it starts",
        _where(lambda _: pl.col("disch_dt_tm") < pl.col("reg_dt_tm")),
    ),
    "start_before_birth": Rule(
        "encounter",
        "reg_dt_tm",
        "the contact starts before the patient's birth date",
        _where(lambda _: _local_date(pl.col("reg_dt_tm")) < pl.col("_birth").dt.date()),
    ),
    "start_after_death": Rule(
        "encounter",
        "reg_dt_tm",
        "the contact starts more than 30 days after the patient's date of death",
        _where(lambda _: _local_date(pl.col("reg_dt_tm")) > pl.col("_death").dt.date() + pl.duration(days=30)),
    ),
    "nonexistent_local_time": Rule(
        "encounter",
        None,
        "local time does not exist (skipped hour when summer time starts); loaded one hour later",
        _nonexistent,
    ),
}


def flag(acc: pl.LazyFrame, rules: list[str], entity: str, as_of: dt.date) -> pl.DataFrame:
    """The warnings of the named ``rules`` of ``entity`` on the accepted records ``acc``.

    Columns: source_ref, source_system, entity, column, message; in the order of ``RULES``.
    ``acc`` is lazy: each rule reads only the columns it needs, never a copy of the whole records.
    """
    out = []
    for name, rule in RULES.items():
        if name not in rules or rule.entity != entity:
            continue
        hits = rule.flag(acc, as_of)
        column = pl.col("column") if rule.column is None else pl.lit(rule.column)
        out.append(
            hits.select(
                "source_ref",
                "source_system",
                "entity",
                column.cast(pl.String).alias("column"),
                pl.lit(rule.message).alias("message"),
            )
        )
    return pl.concat(pl.collect_all(out)) if out else pl.DataFrame()
