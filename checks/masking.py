"""Masking of personal data, and the nature of a value difference: a word and a steward's phrase.

Names, identity numbers, postal codes and birth (and death) dates never leave migcheck in clear.
A masked value keeps what a steward needs to see the nature of a difference: the first letter
(names only), the length and the character classes. Codes and encounter dates stay in clear.
"""

from __future__ import annotations

import datetime as dt

from checks.target_schema import CODE_SETS, NOMENCLATURE, REFERENCES, TEXT_BLOBS

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
#: (table, column) pairs holding free text (a note): only its profile is ever shown
TEXT_COLUMNS = {(t, b.column) for t, b in TEXT_BLOBS.items()}


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
    if (table, column) in TEXT_COLUMNS:
        from checks.note_text import profile  # noqa: PLC0415 - note_text uses this module's helpers

        return profile(str(value))
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


#: the words of ``nature`` for a ``value_mismatch``, in the order the first that applies is taken
NATURES = (
    "encoding",
    "truncated",
    "case_whitespace",
    "time_shift",
    "date_shift",
    "code_swapped",
    "value_lost",
    "value_added",
    "other",
)
_DAY = 86400
_HOUR = 3600


def _is_blank(v: object) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _folded(v: object) -> str:
    return " ".join(str(v or "").split()).casefold()


def _as_datetime(v: object) -> dt.datetime | None:
    if isinstance(v, dt.datetime):
        return v
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day)
    return None


def _seconds_apart(expected: object, actual: object) -> float | None:
    e, a = _as_datetime(expected), _as_datetime(actual)
    return (a - e).total_seconds() if e is not None and a is not None else None


def _is_coded(table: str, column: str) -> bool:
    return (table, column) in CODE_SETS or (table, column) in NOMENCLATURE


def _is_reference(table: str, column: str) -> bool:
    return (table, column) in REFERENCES


def value_nature(table: str, column: str, expected: object, actual: object) -> str:
    """The ``nature`` of a difference between an expected and an actual value: one of ``NATURES``.

    ``column`` is the target column; codes arrive as their meanings (``SAS_MED1``,
    ``ICD10SE:J18.9``), a code that is no active value of its set never gets here. The first that
    applies: text read in the wrong encoding, cut short, or equal but for case and spaces
    (references to a parent row are not text); timestamps a whole number of hours apart, but not of
    days (``time_shift``), or of days (``date_shift``: a date moved, whatever its time of day);
    another code of the same code set or vocabulary; the value lost in the target, or added where
    the source has none; anything else. Computed on the values before masking.
    """
    e_blank, a_blank = _is_blank(expected), _is_blank(actual)
    text = not _is_reference(table, column)
    if text and isinstance(expected, str) and isinstance(actual, str) and not e_blank and not a_blank:
        if mojibake(expected) == actual:
            return "encoding"
        if len(actual) < len(expected) and expected.startswith(actual):
            return "truncated"
    if (
        text
        and isinstance(expected, (str, type(None)))
        and isinstance(actual, (str, type(None)))
        and _folded(expected) == _folded(actual)
    ):
        return "case_whitespace"
    secs = _seconds_apart(expected, actual)
    if secs is not None and secs % _HOUR == 0 and secs % _DAY != 0:
        return "time_shift"
    if secs is not None and secs % _DAY == 0:
        return "date_shift"
    if _is_coded(table, column) and not e_blank and not a_blank:
        return "code_swapped"
    if a_blank and not e_blank:
        return "value_lost"
    if e_blank and not a_blank:
        return "value_added"
    return "other"


def describe(nature: str, table: str, column: str, expected: object, actual: object) -> str:
    """What the difference of ``nature`` (``value_nature``) is, in a phrase a data steward understands.

    No value of a person appears in it; the only characters shown are the generic garbled-letter
    example (``Ã¶ for ö``), lengths, shifts, and codes (which are not personal).
    """
    if nature == "encoding":
        return f"UTF-8 text read as Windows-1252 ({_first_garbled_pair(str(expected))})"
    if nature == "truncated":
        return f"truncated to {len(str(actual))} of {len(str(expected))} characters"
    if nature == "case_whitespace":
        return "differs only in case or whitespace"
    secs = _seconds_apart(expected, actual)
    if nature == "date_shift" and secs is not None:
        days = int(secs // _DAY)
        return f"date moved by {days:+d} day{'s' if abs(days) != 1 else ''}"
    if nature == "time_shift" and secs is not None:
        hours = int(secs // _HOUR)
        plural = "s" if abs(hours) != 1 else ""
        return f"time shifted by {hours:+d} hour{plural} (time zone or summer time handled wrongly)"
    if nature == "code_swapped":
        return f"code swapped: {expected} expected, {actual} found"
    if nature == "value_lost":
        return "value lost (empty in the target)"
    if nature == "value_added":
        return "value present in the target where the source has none"
    if _is_reference(table, column):
        return "attached to another record than the source says"
    if secs is not None:
        return "time differs"
    if isinstance(expected, str) and isinstance(actual, str):
        return "text differs"
    return "differs"


def nature(table: str, column: str, expected: object, actual: object) -> tuple[str, str]:
    """The ``nature`` word of a difference and the phrase the message gives for it (one classification)."""
    word = value_nature(table, column, expected, actual)
    return word, describe(word, table, column, expected, actual)
