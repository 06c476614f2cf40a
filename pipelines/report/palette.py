"""The report's colours, defined once.

The charts take their fills from here, and the page template writes ``COLOURS`` as the CSS custom
properties ``--c-<name>`` that ``assets/report.css`` uses, so a colour changes in this file only.
"""

from __future__ import annotations

from typing import Final

#: severity, waived and status colours (charts, tiles, badges, row markers)
COLOURS: Final[dict[str, str]] = {
    "error": "#c62828",
    "warning": "#e08600",
    "info": "#78909c",
    "waived": "#9e9e9e",
    "new": "#1565c0",
    "persisting": "#7b1fa2",
    "resolved": "#2e7d32",
}

#: where the records of an entity went: (count key in summary.json, label, colour), in bar order
FATES: Final[tuple[tuple[str, str, str], ...]] = (
    ("migrated", "migrated", "#43a047"),
    ("with_differences", "with differences", "#fb8c00"),
    ("merged", "merged", "#8e24aa"),
    ("rejected", "rejected", "#e53935"),
    ("missing", "missing", "#b71c1c"),
    ("out_of_scope", "out of scope", "#b0bec5"),
)
