"""Pandera schemas of the extracted frames; their failures become discrepancies.

The schemas describe what each legacy field should look like beyond the blocking load rules
(those live in the mapping engine). A failure on a record that is loaded is an ``implausible``
warning naming the target column; failures on rejected or out-of-scope records are not reported
again (the record already has its one disposition and finding). The failing value itself is
never copied into a finding: it may be a postal code.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from checks.catalogue import SCHEMA

_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"


class PasPatient(pa.DataFrameModel):
    """pas/patient.csv after trimming (all text)."""

    PATID: str = pa.Field(nullable=True, str_matches=r"^\d+$")
    POSTNR: str = pa.Field(nullable=True, str_matches=r"^\d{3} ?\d{2}$")
    KOMMUN: str = pa.Field(nullable=True, str_matches=r"^\d{4}$")
    SKYDD: str = pa.Field(nullable=True, isin=["J", "N"])

    class Config:
        strict = False


class PasKontakt(pa.DataFrameModel):
    """pas/kontakt.csv."""

    KONTAKTID: str = pa.Field(nullable=True, str_matches=r"^\d+$")
    STATUS: str = pa.Field(nullable=True, isin=["A", "M"])

    class Config:
        strict = False


class PcsPatient(pa.DataFrameModel):
    """pcs/patients.jsonl, flattened."""

    postal_code: str = pa.Field(nullable=True, str_matches=r"^\d{3} ?\d{2}$")
    municipality: str = pa.Field(nullable=True, str_matches=r"^\d{4}$")

    class Config:
        strict = False


class PcsVisit(pa.DataFrameModel):
    """pcs/visits.jsonl."""

    status: str = pa.Field(nullable=True, isin=["signed", "draft", "deleted"])

    class Config:
        strict = False


#: records → (schema, {source column: (target column, what is wrong, in steward words)})
SCHEMAS: dict[str, tuple[type[pa.DataFrameModel], dict[str, tuple[str, str]]]] = {
    "pas/patient": (
        PasPatient,
        {
            "PATID": ("alias", "patient id is not a whole number"),
            "POSTNR": ("postal_code", "postal code is not five digits (NNN NN)"),
            "KOMMUN": ("municipality_code", "municipality code is not four digits"),
            "SKYDD": ("confid_level_cd", "protection mark is neither J nor N (treated as protected)"),
        },
    ),
    "pas/kontakt": (
        PasKontakt,
        {
            "KONTAKTID": ("alias", "contact id is not a whole number"),
            "STATUS": ("active_ind", "record status is neither A nor M (treated as active)"),
        },
    ),
    "pcs/patients": (
        PcsPatient,
        {
            "postal_code": ("postal_code", "postal code is not five digits (NNN NN)"),
            "municipality": ("municipality_code", "municipality code is not four digits"),
        },
    ),
    "pcs/visits": (
        PcsVisit,
        {
            "status": ("active_ind", "visit status is not signed, draft or deleted (treated as signed)"),
        },
    ),
}
ENTITY = {"pas/patient": "person", "pas/kontakt": "encounter", "pcs/patients": "person", "pcs/visits": "encounter"}


def schema_failures(records: str, df: pl.DataFrame) -> pl.DataFrame:
    """Row positions and columns of one frame that fail its schema."""
    schema, _ = SCHEMAS[records]
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as e:
        fc = e.failure_cases
        return fc.filter(pl.col("index").is_not_null()).select(
            pl.col("index").cast(pl.Int64).alias("_pos"), pl.col("column").cast(pl.String)
        )
    return pl.DataFrame(schema={"_pos": pl.Int64, "column": pl.String})


def schema_findings(frames: dict[str, pl.DataFrame], ledger: pl.DataFrame) -> pl.DataFrame:
    """``implausible`` warnings for loaded records whose fields do not look as they should."""
    loaded = ledger.filter(pl.col("disposition").is_in(["expected", "merged"])).select("source_ref").unique()
    out = []
    for records, (_, cols) in SCHEMAS.items():
        df = frames[records].with_row_index("_pos").with_columns(pl.col("_pos").cast(pl.Int64))
        fails = schema_failures(records, frames[records])
        if fails.height == 0:
            continue
        hits = fails.join(df.select("_pos", "source_ref"), on="_pos").join(loaded, on="source_ref", how="semi")
        chk = SCHEMA[ENTITY[records]]
        text = {k: v[1] for k, v in cols.items()}
        target = {k: v[0] for k, v in cols.items()}
        out.append(
            hits.select(
                pl.lit(chk.category).alias("category"),
                pl.lit(chk.entity).alias("entity"),
                pl.lit(records.split("/")[0]).alias("source_system"),
                "source_ref",
                pl.col("column").replace_strict(target, default=None).alias("column"),
                pl.col("column").replace_strict(text, default="field has an unexpected form").alias("message"),
                pl.lit(chk.id).alias("check"),
            )
        )
    if not out:
        return pl.DataFrame(
            schema={
                "category": pl.String,
                "entity": pl.String,
                "source_system": pl.String,
                "source_ref": pl.String,
                "column": pl.String,
                "message": pl.String,
                "check": pl.String,
            }
        )
    return pl.concat(out).unique(maintain_order=True)
