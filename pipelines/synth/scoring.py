"""Score a report against the ground truth of its synthetic defects (``shared/spec/README.md``).

A defect is found when the report has a discrepancy of the same category naming the same
``source_ref`` (or, for a target row with no legacy counterpart, the same ``target_ref``; for a
count, the same entity); a ``value_mismatch`` only when that discrepancy also gives the defect's
``nature``. A false alarm is an error or warning discrepancy that points at no injected defect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

#: the one layout of the ground truth: ``defects.csv`` (generate) and ``load_faults.csv`` (trial-load)
TRUTH_COLUMNS = [
    "defect_id",
    "layer",
    "category",
    "entity",
    "source_ref",
    "target_ref",
    "column",
    "nature",
    "description",
]


@dataclass(frozen=True)
class Score:
    """Recall per category and the false alarms."""

    recall: dict[str, float]
    missed: pl.DataFrame
    false_alarms: pl.DataFrame


def read_truth(extract: Path) -> pl.DataFrame:
    """defects.csv and load_faults.csv together (empty text as empty string).

    A file an older migcheck wrote, without ``nature``, is read with it empty.
    """
    parts = [
        pl.read_csv(p, infer_schema_length=0)
        for p in (extract / "defects.csv", extract / "load_faults.csv")
        if p.exists()
    ]
    return pl.concat(parts, how="diagonal").fill_null("") if parts else pl.DataFrame()


def _anchor(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(
        pl.when(pl.col("category") == "row_count")
        .then(pl.lit("count:") + pl.col("entity"))
        .when(pl.col("source_ref") != "")
        .then(pl.col("source_ref"))
        .otherwise(pl.col("target_ref"))
        .alias("_anchor")
    )


def _with_nature(df: pl.DataFrame) -> pl.DataFrame:
    """``nature`` as text, empty where absent or not given."""
    if "nature" not in df.columns:
        return df.with_columns(pl.lit("").alias("nature"))
    return df.with_columns(pl.col("nature").fill_null(""))


def score(truth: pl.DataFrame, disc: pl.DataFrame) -> Score:
    """Recall per category of ``truth`` in ``disc``, and ``disc``'s false alarms.

    ``missed`` holds the defects not found, with ``reported_nature``: the natures the report gave
    for the same category and record where it named the record but not with the defect's nature.
    Rows of status ``resolved`` describe the previous load (``--baseline``, history) and are left out.
    """
    if "status" in disc.columns:
        disc = disc.filter(pl.col("status").fill_null("") != "resolved")
    d = _with_nature(disc).with_columns(
        pl.col("source_ref").fill_null(""), pl.col("target_ref").fill_null(""), pl.col("entity").fill_null("")
    )
    # a discrepancy naming both refs can satisfy a defect by either
    d_src = _anchor(d)
    d_tgt = d.filter(pl.col("target_ref") != "").with_columns(pl.col("target_ref").alias("_anchor"))
    found = pl.concat([d_src.select("category", "_anchor", "nature"), d_tgt.select("category", "_anchor", "nature")])
    t = _anchor(_with_nature(truth)).with_row_index("_t")
    pairs = t.join(found.rename({"nature": "_reported"}), on=["category", "_anchor"], how="inner")
    # a value_mismatch defect is found only with its nature (a truth without one: by its anchor)
    same_nature = (
        ~pl.col("category").is_in(["value_mismatch", "text_altered"])
        | (pl.col("nature") == "")
        | (pl.col("nature") == pl.col("_reported"))
    )
    reported = pairs.group_by("_t").agg(
        pl.col("_reported").filter(pl.col("_reported") != "").unique().sort().str.join(", ").alias("reported_nature")
    )
    missed = (
        t.join(pairs.filter(same_nature).select("_t"), on="_t", how="anti")
        .join(reported, on="_t", how="left")
        .sort("_t")
        .drop("_t")
    )
    recall = {}
    for cat in sorted(set(t["category"].to_list())):
        n = t.filter(pl.col("category") == cat).height
        m = missed.filter(pl.col("category") == cat).height
        recall[cat] = (n - m) / n if n else 1.0
    truth_keys = pl.concat(
        [
            t.select("category", "_anchor"),
            t.filter(pl.col("target_ref") != "").select("category", pl.col("target_ref").alias("_anchor")),
        ]
    ).unique()
    alarms = d.filter(pl.col("severity").is_in(["error", "warning"]))
    a_src = _anchor(alarms).with_row_index("_i")
    hit_src = a_src.join(truth_keys, on=["category", "_anchor"], how="semi")["_i"]
    a_tgt = a_src.filter(pl.col("target_ref") != "").with_columns(pl.col("target_ref").alias("_anchor"))
    hit_tgt = a_tgt.join(truth_keys, on=["category", "_anchor"], how="semi")["_i"]
    hits = set(hit_src.to_list()) | set(hit_tgt.to_list())
    false_alarms = a_src.filter(~pl.col("_i").is_in(list(hits))).drop("_i", "_anchor")
    return Score(recall=recall, missed=missed.drop("_anchor"), false_alarms=false_alarms)
