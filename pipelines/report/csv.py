"""CSV files for people: a value that came from the data never runs as a formula in a spreadsheet.

Stewards open migcheck's CSV files in Excel or LibreOffice, which evaluate a cell that begins with
``=``, ``+``, ``-`` or ``@`` (and, in some versions, a tab or a carriage return) as a formula: a
legacy code ``=HYPERLINK(…)`` would become a live link, ``@SUM(1+1)*cmd|calc`` a command (CSV or
formula injection, CWE-1236). As OWASP recommends, such a cell is written with a leading
apostrophe, which the spreadsheet shows as text; a cell that is a number (``-3``, ``+4.5``,
``-1,5``) stays as it is. Every CSV migcheck writes for people goes through ``write_csv``; the
Parquet files keep the exact values for programs.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

#: what a spreadsheet may read as the start of a formula
FORMULA_START = r"^[=+\-@\t\r]"
#: a plain number, which keeps its sign
NUMBER = r"^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?$"


def neutralised(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with every text cell that a spreadsheet would run as a formula prefixed with ``'``."""
    text = [c for c, t in df.schema.items() if t == pl.String]
    return df.with_columns(
        pl.when(pl.col(c).str.contains(FORMULA_START) & ~pl.col(c).str.contains(NUMBER))
        .then(pl.lit("'") + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )


def write_csv(df: pl.DataFrame, path: Path) -> None:
    """Write ``df`` as a CSV file for people (UTF-8, header, formulas neutralised)."""
    neutralised(df).write_csv(path)
