"""Gates: when does a trial load fail? Thresholds per check or category, as configuration.

``mappings/gates.yaml``::

    default: {max_count: 0}                 # any error fails (the default)
    categories:
      value_mismatch: {max_share: 0.001}    # at most 0.1 % of the entity's records
    checks:
      person.reconcile.confidentiality: {max_count: 0}

A gate counts the error findings of one check that no waiver covers; it fails when the count is
above ``max_count`` or above ``max_share`` of the entity's records (both when both are given).
The most specific entry wins: check, then category, then default. Warnings and infos never fail.
A check or category the catalogue (``checks.catalogue``) does not know is a fault of the file.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks import catalogue
from checks.mapping import load_yaml_model


class Threshold(BaseModel):
    """How many error findings a check may have."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_count: int | None = Field(default=None, ge=0)
    max_share: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _some(self) -> Threshold:
        if self.max_count is None and self.max_share is None:
            raise ValueError("give max_count, max_share or both")
        return self

    def describe(self, denominator: int) -> str:
        """The threshold in words."""
        parts = []
        if self.max_count is not None:
            parts.append(f"max {self.max_count} errors")
        if self.max_share is not None:
            parts.append(f"max {self.max_share:.2%} of {denominator}")
        return " and ".join(parts)

    def passes(self, errors: int, denominator: int) -> bool:
        """Whether ``errors`` is within the threshold."""
        ok = True
        if self.max_count is not None:
            ok &= errors <= self.max_count
        if self.max_share is not None:
            ok &= errors <= self.max_share * max(denominator, 0)
        return ok


class GateConfig(BaseModel):
    """``mappings/gates.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    default: Threshold = Threshold(max_count=0)
    categories: dict[str, Threshold] = {}
    checks: dict[str, Threshold] = {}

    @model_validator(mode="after")
    def _known(self) -> GateConfig:
        bad_cats = sorted(set(self.categories) - set(catalogue.CATEGORIES))
        if bad_cats:
            raise ValueError(f"unknown categories {bad_cats}; known: {catalogue.CATEGORIES}")
        bad_checks = catalogue.undeclared(self.checks)
        if bad_checks:
            raise ValueError(f"unknown checks {bad_checks} (see checks/catalogue.py, or junit.xml for the ids)")
        return self

    def threshold(self, check: str, category: str) -> Threshold:
        """The most specific threshold of a check."""
        return self.checks.get(check) or self.categories.get(category) or self.default


def load_gates(path: Path) -> GateConfig:
    """The gate configuration; the default (any error fails) when the file does not exist."""
    if not path.exists():
        return GateConfig()
    return load_yaml_model(path, GateConfig)


def evaluate_gates(
    disc: pl.DataFrame, checks_run: pl.DataFrame, denominators: dict[str, int], config: GateConfig
) -> pl.DataFrame:
    """One gate per check that ran: check, category, errors, warnings, waived, threshold, passed.

    ``disc`` carries ``waived``; ``checks_run`` has ``check`` and ``category`` for every check that
    ran, findings or not; ``denominators`` gives the records of each check's entity (for shares), the
    entity the catalogue declares.
    """
    live = disc.filter(pl.col("status") != "resolved")
    per = live.group_by("check").agg(
        (pl.col("severity").eq("error") & ~pl.col("waived")).sum().alias("errors"),
        (pl.col("severity").eq("warning") & ~pl.col("waived")).sum().alias("warnings"),
        pl.col("waived").sum().alias("waived"),
        pl.col("category").first().alias("_cat"),
    )
    allc = (
        checks_run.unique("check", keep="first")
        .join(per, on="check", how="full", coalesce=True)
        .with_columns(pl.coalesce("category", "_cat").alias("category"))
        .drop("_cat")
        .with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in ("errors", "warnings", "waived"))
        .sort("check")
    )
    rows = []
    for r in allc.iter_rows(named=True):
        denom = denominators.get(catalogue.check(r["check"]).entity, 0)
        th = config.threshold(r["check"], r["category"] or "")
        rows.append({**r, "threshold": th.describe(denom), "passed": th.passes(r["errors"], denom)})
    return pl.DataFrame(
        rows,
        schema={
            "check": pl.String,
            "category": pl.String,
            "errors": pl.Int64,
            "warnings": pl.Int64,
            "waived": pl.Int64,
            "threshold": pl.String,
            "passed": pl.Boolean,
        },
    )
