"""Masking of personal data and the steward-language nature of a value difference.

Names, identity numbers, postal codes and birth (and death) dates never leave migcheck in clear.
A masked value keeps what a steward needs to see the nature of a difference: the first letter
(names only), the length and the character classes. Codes and encounter dates stay in clear.
"""

from __future__ import annotations

import datetime as dt

#: (table, column) pairs that identify a person
PERSONAL = {
    ("person", "name_last"),
    ("person", "name_first"),
    ("person", "birth_dt_tm"),
    ("person", "deceased_dt_tm"),
    ("person", "postal_code"),
    ("person", "identity"),
    ("person_alias", "alias"),
}
_NAMES = {"name_last", "name_first"}


def _classes(s: str) -> str:
    parts = [f"{len(s)} chars"]
    non_ascii = sum(1 for ch in s if ord(ch) > 127)
    digits = sum(ch.isdigit() for ch in s)
    spaces = sum(ch.isspace() for ch in s)
    upper = sum(ch.isupper() for ch in s)
    if non_ascii:
        parts.append(f"{non_ascii} non-ASCII")
    if digits:
        parts.append(f"{digits} digits")
    if spaces:
        parts.append(f"{spaces} spaces")
    if upper:
        parts.append(f"{upper} upper-case")
    return ", ".join(parts)


def mask(table: str, column: str, value: object) -> str | None:
    """The value as it may appear in a report: in clear unless it identifies a person."""
    if value is None:
        return None
    if (table, column) not in PERSONAL:
        if isinstance(value, dt.datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S")
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return "****-**-** (date masked)"
    s = str(value)
    if column in _NAMES and s:
        return f"{s[0]}… ({_classes(s)})"
    return f"*** ({_classes(s)})"


def mojibake(s: str) -> str:
    """What UTF-8 text looks like when read as Windows-1252 (``ö`` → ``Ã¶``)."""
    return s.encode("utf-8").decode("cp1252", errors="replace")


def _first_garbled_pair(expected: str) -> str:
    for ch in expected:
        if ord(ch) > 127:
            return f"{mojibake(ch)} for {ch}"
    return ""


def nature(column: str, expected: object, actual: object) -> str:
    """What kind of difference this is, in a phrase a data steward understands.

    No value of a person appears in it; the only characters shown are the generic garbled-letter
    example (``Ã¶ for ö``).
    """
    if actual is None and expected is not None:
        return "value lost (empty in the target)"
    if expected is None and actual is not None:
        return "value present in the target where the source has none"
    if isinstance(expected, dt.datetime) and isinstance(actual, dt.datetime):
        delta = actual - expected
        secs = delta.total_seconds()
        if secs % 86400 == 0:
            days = int(secs // 86400)
            return f"date moved by {days:+d} day{'s' if abs(days) != 1 else ''}"
        if secs % 3600 == 0:
            hours = int(secs // 3600)
            plural = "s" if abs(hours) != 1 else ""
            return f"time shifted by {hours:+d} hour{plural} (time zone or summer time handled wrongly)"
        return "time differs"
    if isinstance(expected, str) and isinstance(actual, str):
        if mojibake(expected) == actual:
            return f"UTF-8 text read as Windows-1252 ({_first_garbled_pair(expected)})"
        if expected.startswith(actual) and len(actual) < len(expected):
            return f"truncated to {len(actual)} of {len(expected)} characters"
        if " ".join(expected.split()).casefold() == " ".join(actual.split()).casefold():
            return "differs only in case or whitespace"
        if column.endswith("_cd") or column.endswith("nomenclature_id") or column == "substance_nom_id":
            return f"code swapped: {expected} expected, {actual} found"
        if column in ("person_ref", "encounter_ref"):
            return "attached to another record than the source says"
        return "text differs"
    return "differs"
