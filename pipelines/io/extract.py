"""Read a legacy extract (``legacy-exports.md``) into polars frames, keeping every record.

Every line of every file ends up in exactly one place: a row of its file's frame, or a row of
``Extract.unparseable`` with its line number. Missing and empty files are listed in
``Extract.files`` (the run goes on). Values are trimmed; an empty value is null.

PAS: cp1252, ``;``, ``"``, CRLF, header line 1. PCS: UTF-8 JSON Lines, first record line 1.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import polars as pl

from checks.errors import MigcheckError
from checks.records import FILE_ENTITY, PAS_COLUMNS, PAS_TEXT_COLUMNS, PCS_SCHEMAS, PCS_TEXT_FIELDS, SOURCE_REF


@dataclass(frozen=True)
class Extract:
    """One legacy extract as frames of trimmed text (PAS) or typed JSON values (PCS)."""

    root: Path
    frames: dict[str, pl.DataFrame]  # "pas/patient", ..., "pcs/visit_diagnosis"
    unparseable: pl.DataFrame  # source_system, file, line, entity, source_ref, reason
    files: pl.DataFrame  # file, status (ok/missing/empty), records
    extra: dict[str, str] = field(default_factory=dict)

    def frame(self, name: str) -> pl.DataFrame:
        """The frame of one file (``pas/patient``), empty with the right columns if absent."""
        return self.frames[name]


UNPARSEABLE_SCHEMA = {
    "source_system": pl.String,
    "file": pl.String,
    "line": pl.Int64,
    "entity": pl.String,
    "source_ref": pl.String,
    "reason": pl.String,
}


def _bad(system: str, fname: str, lines: list[int], reasons: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source_system": [system] * len(lines),
            "file": [fname] * len(lines),
            "line": lines,
            "entity": [FILE_ENTITY[f"{system}/{fname}"]] * len(lines),
            "source_ref": [f"{system}:{fname}#{n}" for n in lines],
            "reason": reasons,
        },
        schema=UNPARSEABLE_SCHEMA,
    )


def _split_lines(raw: bytes, keep_blank: bool = False, first: int = 1) -> tuple[list[bytes], list[int]]:
    """Physical lines without their ending, with 1-based numbers; blank lines dropped (D2).

    ``keep_blank``: keep them (a file whose quoted values may span lines: a blank line inside a
    note is part of its text). ``first``: the number of the first line of ``raw`` (a block of a file).
    """
    parts = raw.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    keep = [
        (p[:-1] if p.endswith(b"\r") else p, i + first)
        for i, p in enumerate(parts)
        if keep_blank or p not in (b"", b"\r")
    ]
    return [k[0] for k in keep], [k[1] for k in keep]


def _decode(lines: list[bytes], numbers: list[int], encoding: str) -> tuple[list[str], list[int], list[int]]:
    """Decode each line; returns texts, their numbers, and numbers of lines that do not decode."""
    if not lines:
        return [], [], []
    try:
        text = b"\n".join(lines).decode(encoding)
        return text.split("\n"), numbers, []
    except UnicodeDecodeError:
        pass
    good, good_n, bad_n = [], [], []
    for b, n in zip(lines, numbers, strict=True):
        try:
            good.append(b.decode(encoding))
            good_n.append(n)
        except UnicodeDecodeError:
            bad_n.append(n)
    return good, good_n, bad_n


def _decode_whole(raw: bytes) -> pl.Series | None:
    """Every physical line of a cp1252 file, blank ones too, without line endings; None if it does not decode."""
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        return None
    lines = pl.Series([text], dtype=pl.String).str.split("\n").explode()
    if lines.len() and lines[-1] == "":
        lines = lines.head(-1)
    return lines.str.strip_suffix("\r")


def _check_pas_encoding(path: Path, raw: bytes) -> None:
    """PAS exports are Windows-1252; a UTF-8 file would turn every å into Ã¥ unnoticed."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise MigcheckError(
            f"{path}: starts with a UTF-8 byte-order mark; PAS exports must be Windows-1252 "
            "(re-export, or convert with iconv -f utf-8 -t cp1252)"
        )
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return
        raise MigcheckError(
            f"{path}: is UTF-8 text, not Windows-1252 as PAS exports must be "
            "(re-export, or convert with iconv -f utf-8 -t cp1252)"
        )


#: bytes of a large extract file read at a time (at a line end): never the whole file in memory
CHUNK_BYTES = 16 * 2**20

#: at most this many physical lines make one record (a quoted field with line breaks)
MAX_LINES_PER_RECORD = 20


def _fields(text: str) -> int:
    return len(next(csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"', strict=False)))


def _join_quoted_records(
    texts: list[str], numbers: list[int], n_fields: int, final: bool = True
) -> tuple[list[str], list[int], int]:
    """Join physical lines inside an open quote into one record (numbered by its first line).

    The join is kept only when it gives a record of the right number of fields; a quote that
    never closes (within ``MAX_LINES_PER_RECORD`` lines), or closes into a malformed record, leaves
    the lines as they are: each is then read or reported on its own, none is swallowed.
    Returns the records, their numbers and how many lines were used: ``final=False`` (a block of
    the file) stops at an open quote whose ``MAX_LINES_PER_RECORD`` lines the block does not hold
    all of, so that the lines from there are read with the next block.
    """
    if not any(t.count('"') % 2 for t in texts if '"' in t):
        return texts, numbers, len(texts)
    out_t: list[str] = []
    out_n: list[int] = []
    i = 0
    while i < len(texts):
        t = texts[i]
        if t.count('"') % 2:
            if not final and i + MAX_LINES_PER_RECORD > len(texts):
                break
            j, joined = i + 1, t
            while j < len(texts) and j - i < MAX_LINES_PER_RECORD and joined.count('"') % 2:
                joined += "\n" + texts[j]
                j += 1
            if joined.count('"') % 2 == 0 and _fields(joined) == n_fields:
                out_t.append(joined)
                out_n.append(numbers[i])
                i = j
                continue
        out_t.append(t)
        out_n.append(numbers[i])
        i += 1
    return out_t, out_n, i


#: a quoted CSV value as written: ``"`` … ``"`` with ``""`` for a quote inside
_QUOTED = r'"(?:[^"]|"")*"'


def _record_pattern(n: int) -> str:
    """A whole record of ``n`` fields as CSV writes it: each value bare (no ``;`` or ``"``) or quoted."""
    value = rf'(?:[^";\n]*|{_QUOTED})'
    return rf"^{value}(?:;{value}){{{n - 1}}}$"


def _records_of(lines: pl.DataFrame, n: int) -> pl.DataFrame:
    """Physical lines (``t``, ``_line``) grouped into records by the quotes they open and close.

    A line starts a record when every quote before it is closed; the lines of one record are
    joined with a line break. Blank lines between records are dropped (D2). ``_ok``: the record is
    ``n`` values, each bare or quoted (``_record_pattern``); otherwise ``_closed`` (its quoted
    values taken out, no quote is left) and ``_nf`` (its fields outside quotes) say what is wrong.
    """
    quotes = pl.col("t").str.count_matches('"', literal=True)
    grouped = (
        lines.with_columns(((quotes.cum_sum() - quotes) % 2 == 0).alias("_start"))
        .filter(~(pl.col("_start") & (pl.col("t") == "")))
        .with_columns(pl.col("_start").cum_sum().alias("_rec"))
        .group_by("_rec", maintain_order=True)
        .agg(pl.col("t").str.join("\n"), pl.col("_line").first(), pl.col("_line").last().alias("_last"))
    )
    outside = pl.col("t").str.replace_all(_QUOTED, "")
    return grouped.with_columns(
        (~outside.str.contains('"', literal=True)).alias("_closed"),
        (outside.str.count_matches(";", literal=True) + 1).alias("_nf"),
        pl.col("t").str.contains(_record_pattern(n)).alias("_ok"),
    )


def _parse_records(recs: pl.DataFrame, cols: list[str], text: str) -> pl.DataFrame:
    """Well-formed records (one per row of ``recs``) into their columns, ``text`` untouched.

    Polars' CSV reader parses them all at once (quoted values with ``;``, ``""`` and line breaks);
    should it disagree on the number of records, Python's csv module reads them one by one.
    """
    schema = dict.fromkeys(cols, pl.String)
    body = "\n".join(recs["t"].to_list())
    parsed: pl.DataFrame | None = None
    if body:
        try:
            parsed = pl.read_csv(
                io.BytesIO(body.encode("utf-8")),
                has_header=False,
                separator=";",
                quote_char='"',
                schema=schema,
            )
        except Exception:  # noqa: BLE001 - read them one by one below
            parsed = None
    if parsed is None or parsed.height != recs.height:
        rows = [
            next(csv.reader(io.StringIO(t, newline=""), delimiter=";", quotechar='"', strict=False))
            for t in recs["t"].to_list()
        ]
        parsed = pl.DataFrame(rows, schema=schema, orient="row")
    others = [c for c in cols if c != text]
    return parsed.with_columns(
        *[pl.col(c).str.strip_chars().replace("", None).alias(c) for c in others],
        pl.col(text).replace("", None),
        recs["_line"],
    )


#: the reason of a multi-line record that does not close into one of the layout (reading restarts after its first line)
NOT_A_RECORD = "a quoted value does not close into a record of the layout"


def _record_reasons(bad: pl.DataFrame, n: int) -> list[str]:
    """Why each record of ``bad`` (``_records_of`` rows that are not ``_ok``) is not a record of ``n`` fields."""
    return [
        "a quote opens and never closes"
        if not c
        else f"{k} fields instead of {n}"
        if k != n
        else "a quote stands inside a value that is not quoted"
        for c, k in zip(bad["_closed"].to_list(), bad["_nf"].to_list(), strict=True)
    ]


def _read_text_records(
    lines: pl.DataFrame, cols: list[str], text: str, final: bool = True
) -> tuple[pl.DataFrame, list[int], list[str], pl.DataFrame]:
    """Records of a file whose ``text`` column may span lines, from its lines (``t``, ``_line``).

    Returns (frame, bad line numbers, their reasons, carry). Vectorised over the lines. A record
    that does not close its quotes or has the wrong number of fields is rare: its first line is
    reported and reading starts again on the next line, so a stray quote costs one line, never the
    records after it. ``final=False``: the lines are a block of the file, and a last record whose
    quotes are still open is not judged but returned as ``carry``, to be read with the next block.
    """
    n = len(cols)
    good: list[pl.DataFrame] = []
    bad_n: list[int] = []
    bad_r: list[str] = []
    carry = lines.head(0)
    while lines.height:
        recs = _records_of(lines, n)
        carry = lines.head(0)
        if not final and lines["t"].str.count_matches('"', literal=True).sum() % 2:
            carry = lines.filter(pl.col("_line") >= recs["_line"][-1])
            recs = recs.head(-1)
        wrong = ~pl.col("_ok")
        first_bad = recs.with_row_index("_i").filter(wrong & (pl.col("_line") != pl.col("_last")))
        cut = recs.height if first_bad.height == 0 else int(first_bad["_i"][0])
        head = recs.head(cut)
        single_bad = head.filter(wrong)
        bad_n += single_bad["_line"].to_list()
        bad_r += _record_reasons(single_bad, n)
        good.append(head.filter(~wrong))
        if first_bad.height == 0:
            break
        start = int(first_bad["_line"][0])
        bad_n.append(start)
        bad_r.append(NOT_A_RECORD)
        lines = lines.filter(pl.col("_line") > start)
    recs = pl.concat(good) if good else pl.DataFrame(schema=_LINES)
    return _parse_records(recs, cols, text), bad_n, bad_r, carry


def _check_header(path: Path, line: str, cols: list[str]) -> None:
    header = [h.strip() for h in next(csv.reader([line], delimiter=";", quotechar='"'))]
    if header == cols:
        return
    if header and header[0].isdigit():
        raise MigcheckError(f"{path}: has no header line (line 1 is data); expected {';'.join(cols)!r}")
    missing = [c for c in cols if c not in header]
    extra = [h for h in header if h not in cols]
    detail = (
        (f"missing {', '.join(missing)}" if missing else "")
        + ("; " if missing and extra else "")
        + (f"unknown {', '.join(h[:20] for h in extra[:5])}" if extra else "")
    )
    raise MigcheckError(
        f"{path}: header does not match the PAS layout ({detail or 'columns out of order'}); "
        f"expected {';'.join(cols)!r}"
    )


def _open_file(path: Path) -> IO[bytes] | None:
    """The file opened for reading, None if it does not exist, or one line naming it."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        return None
    except IsADirectoryError as e:
        raise MigcheckError(f"{path}: is a directory, expected a file") from e
    except OSError as e:
        raise MigcheckError(f"{path}: cannot be read ({e.strerror})", transient=True) from e


def _blocks(path: Path, f: IO[bytes], size: int) -> Iterator[tuple[bytes, int]]:
    """The file in blocks of about ``size`` bytes, each ending at a line end: (block, number of its first line)."""
    line = 1
    try:
        while block := f.read(size):
            if not block.endswith(b"\n"):
                block += f.readline()
            yield block, line
            line += block.count(b"\n")
    except OSError as e:
        raise MigcheckError(f"{path}: cannot be read ({e.strerror})", transient=True) from e


_LINES = {"t": pl.String, "_line": pl.Int64}


def _pas_lines(raw: bytes, first: int) -> tuple[pl.DataFrame, list[int]]:
    """Every physical line of a block of a cp1252 file (blank ones too), numbered; and the lines that do not decode."""
    whole = _decode_whole(raw)
    if whole is not None:  # the usual case: split without a loop in Python
        lines = pl.DataFrame({"t": whole}).with_row_index("_line", offset=first)
        return lines.select("t", pl.col("_line").cast(pl.Int64)), []
    bl, numbers = _split_lines(raw, keep_blank=True, first=first)
    texts, numbers, undecodable = _decode(bl, numbers, "cp1252")
    return pl.DataFrame({"t": texts, "_line": numbers}, schema=_LINES), undecodable


def _pas_body(path: Path, f: IO[bytes], cols: list[str], size: int) -> Iterator[tuple[pl.DataFrame, list[int]]]:
    """The lines after the header of an open PAS file, block by block: (lines ``t``, ``_line``; undecodable).

    Blank lines are kept (in a note they are text). The encoding is decided by the first block
    holding a byte beyond ASCII (a UTF-8 file is refused). Line 1 must be the header: a blank or
    unreadable line 1 before any other line is one line naming the file; a file of blank lines
    gives nothing.
    """
    decided = header = False
    for raw, first in _blocks(path, f, size):
        if not decided:
            _check_pas_encoding(path, raw)
            decided = not raw.isascii()
        lines, undecodable = _pas_lines(raw, first)
        if not header:
            if not lines.filter(pl.col("t") != "").height and not undecodable:
                continue  # blank so far
            if not lines.height or int(lines["_line"][0]) != 1 or lines["t"][0] == "":
                raise MigcheckError(f"{path}: line 1 is not a header line (blank, or not Windows-1252 text)")
            _check_header(path, lines["t"][0], cols)
            lines, header = lines.slice(1), True
        yield lines, undecodable


def _pas_rows(body: list[str], body_n: list[int], cols: list[str]) -> tuple[pl.DataFrame, list[int], list[str]]:
    """Records of a PAS file of rows (each a line, or lines joined by ``_join_quoted_records``) into columns."""
    s = pl.DataFrame({"t": body, "_line": body_n}, schema=_LINES)
    quoted = s.filter(pl.col("t").str.contains('"', literal=True))
    plain = s.filter(~pl.col("t").str.contains('"', literal=True)).with_columns(pl.col("t").str.split(";").alias("f"))
    if quoted.height:
        rows = [
            next(csv.reader(io.StringIO(t, newline=""), delimiter=";", quotechar='"', strict=False))
            for t in quoted["t"]
        ]
        quoted = quoted.with_columns(pl.Series("f", rows, dtype=pl.List(pl.String)))
        plain = pl.concat([plain, quoted])
    n = len(cols)
    wrong = plain.filter(pl.col("f").list.len() != n)
    ok = plain.filter(pl.col("f").list.len() == n)
    frame = ok.select(
        *[pl.col("f").list.get(i).str.strip_chars().alias(c) for i, c in enumerate(cols)], "_line"
    ).with_columns([pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in cols])
    reasons = [f"{k} fields instead of {n}" for k in wrong["f"].list.len().to_list()]
    return frame.sort("_line"), wrong["_line"].to_list(), reasons


class _TextRecords:
    """The records of a PAS file whose text column may span lines, block by block (D77).

    A record that a block's end cuts in two (its quotes still open) is carried to the next block.
    """

    def __init__(self, cols: list[str], text: str) -> None:
        self.cols, self.text = cols, text
        self.carry = pl.DataFrame(schema=_LINES)

    def block(self, lines: pl.DataFrame, undecodable: list[int]) -> tuple[pl.DataFrame, list[int], list[str], str]:
        """(frame, bad lines, their reasons, status) of the records the lines close."""
        lines = pl.concat([self.carry, lines])
        frame, bad_n, bad_r, self.carry = _read_text_records(lines, self.cols, self.text, final=False)
        return frame.sort("_line"), bad_n, bad_r, "ok" if frame.height or bad_n or undecodable else "empty"

    def rest(self) -> tuple[pl.DataFrame, list[int], list[str]] | None:
        """The records carried past the last block, if any."""
        if not self.carry.height:
            return None
        frame, bad_n, bad_r, _ = _read_text_records(self.carry, self.cols, self.text)
        return frame.sort("_line"), bad_n, bad_r


class _RowRecords:
    """The records of a PAS file of rows, block by block.

    The last lines of a block that an open quote may join to the next block's are carried to it.
    """

    def __init__(self, cols: list[str]) -> None:
        self.cols = cols
        self.carry_t: list[str] = []
        self.carry_n: list[int] = []

    def block(self, lines: pl.DataFrame, undecodable: list[int]) -> tuple[pl.DataFrame, list[int], list[str], str]:
        """(frame, bad lines, their reasons, status) of the records the lines hold."""
        body_lines = lines.filter(pl.col("t") != "")  # blank lines between rows are no records (D2)
        texts = self.carry_t + body_lines["t"].to_list()
        numbers = self.carry_n + body_lines["_line"].to_list()
        body, body_n, used = _join_quoted_records(texts, numbers, len(self.cols), final=False)
        self.carry_t, self.carry_n = texts[used:], numbers[used:]
        return *_pas_rows(body, body_n, self.cols), "ok" if body else "empty"

    def rest(self) -> tuple[pl.DataFrame, list[int], list[str]] | None:
        """The lines carried past the last block, if any, as records."""
        if not self.carry_t:
            return None
        body, body_n, _ = _join_quoted_records(self.carry_t, self.carry_n, len(self.cols))
        return _pas_rows(body, body_n, self.cols)


def _pas_parts(path: Path, name: str, size: int) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, str]]:
    """A PAS file, block by block: (frame, unparseable rows, status).

    What a block's end cuts is carried to the next block (``_TextRecords``, ``_RowRecords``), so
    the records and unreadable lines are exactly those of the whole file read at once (D77).
    """
    cols = PAS_COLUMNS[name]
    fname = f"{name}.csv"
    empty = pl.DataFrame(schema={**{c: pl.String for c in cols}, "_line": pl.Int64})
    f = _open_file(path)
    if f is None:
        yield empty, _bad("pas", fname, [], []), "missing"
        return
    records = _TextRecords(cols, PAS_TEXT_COLUMNS[name]) if name in PAS_TEXT_COLUMNS else _RowRecords(cols)
    seen = False
    with f:
        for lines, undecodable in _pas_body(path, f, cols, size):
            frame, bad_n, bad_r, status = records.block(lines, undecodable)
            seen = True
            bad = _bad("pas", fname, undecodable + bad_n, ["not Windows-1252 text"] * len(undecodable) + bad_r)
            yield frame, bad.sort("line"), status
    rest = records.rest()
    if rest is not None:
        frame, bad_n, bad_r = rest
        yield frame, _bad("pas", fname, bad_n, bad_r).sort("line"), "ok"
    elif not seen:
        yield empty, _bad("pas", fname, [], []), "empty"


def read_pas_file(path: Path, name: str) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """One PAS CSV → (frame, unparseable rows, status)."""
    return _combined(list(_pas_parts(path, name, CHUNK_BYTES)))


def _status(statuses: list[str]) -> str:
    """A file's status from those of its blocks: missing, ok (any record or unreadable line), empty."""
    if "missing" in statuses:
        return "missing"
    return "ok" if "ok" in statuses else "empty"


def _combined(
    parts: list[tuple[pl.DataFrame, pl.DataFrame, str]],
) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    return (
        pl.concat([p[0] for p in parts]),
        pl.concat([p[1] for p in parts]).sort("line"),
        _status([p[2] for p in parts]),
    )


def _ndjson(lines: list[bytes], schema: dict) -> pl.DataFrame:
    return pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=schema)


def _parse_json_lines(
    lines: list[bytes], numbers: list[int], schema: dict
) -> tuple[list[pl.DataFrame], list[int], list[str]]:
    """Parse JSON lines with polars, keeping every good line when some are bad.

    Bad lines are found first by JSON syntax, then (wrong value types) by bisection.
    """
    bad_n: list[int] = []
    bad_r: list[str] = []
    try:
        df = _ndjson(lines, schema)
        if df.height == len(lines):
            return [df.with_columns(pl.Series("_line", numbers, dtype=pl.Int64))], bad_n, bad_r
    except Exception:  # noqa: BLE001 - a bad line somewhere: look closer below
        pass
    good_l: list[bytes] = []
    good_n: list[int] = []
    for b, n, ok in zip(lines, numbers, _json_objects(lines), strict=True):
        if ok:
            good_l.append(b)
            good_n.append(n)
        else:
            bad_n.append(n)
            bad_r.append(_json_reason(b))
    frames: list[pl.DataFrame] = []
    stack = [(0, len(good_l))] if good_l else []
    while stack:  # the rest can only fail on value types: bisect to the offending lines
        lo, hi = stack.pop()
        try:
            df = _ndjson(good_l[lo:hi], schema)
            if df.height != hi - lo:
                raise ValueError("line count differs")
            frames.append(df.with_columns(pl.Series("_line", good_n[lo:hi], dtype=pl.Int64)))
        except Exception:  # noqa: BLE001 - any parse failure means: look closer
            if hi - lo > 1:
                mid = (lo + hi) // 2
                stack.extend([(mid, hi), (lo, mid)])
                continue
            bad_n.append(good_n[lo])
            bad_r.append(_json_reason(good_l[lo]))
    frames.sort(key=lambda f: f["_line"][0] if f.height else 0)
    return frames, bad_n, bad_r


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


def _utf8(line: bytes) -> str | None:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _json_objects(lines: list[bytes]) -> list[bool]:
    """Which lines are JSON objects, as ``json.loads`` says.

    polars screens the block at once (``json_path_match``: null for a line that is not JSON); only
    the lines it does not take for an object are parsed one by one, since ``json.loads`` takes a
    few that polars does not (``NaN``, a byte-order mark). Every line polars takes, ``json.loads``
    takes too.
    """
    try:
        text = pl.Series(lines, dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.ComputeError:  # a line of bad bytes: decoded one by one, bad ones left to json.loads
        text = pl.Series([_utf8(b) for b in lines], dtype=pl.String)
    screened = (
        (text.str.strip_chars_start().str.starts_with("{") & text.str.json_path_match("$").is_not_null())
        .fill_null(False)
        .to_list()
    )
    return [ok or _is_json_object(b) for b, ok in zip(lines, screened, strict=True)]


def _json_reason(line: bytes) -> str:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return f"not valid JSON ({e.msg if hasattr(e, 'msg') else 'bad bytes'})"
    except RecursionError:
        return "not valid JSON (nested too deeply)"
    if not isinstance(obj, dict):
        return "not a JSON object"
    return "a value has the wrong JSON type"


def _flatten_pcs(name: str, df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    text = [c for c, t in df.schema.items() if t == pl.String and c != PCS_TEXT_FIELDS.get(name)]
    df = df.with_columns([pl.col(c).str.strip_chars().replace("", None) for c in text])
    if name == "patients":
        out = df.select(
            "id",
            pl.col("identity").struct.field("type").str.strip_chars().replace("", None).alias("identity_type"),
            pl.col("identity").struct.field("value").str.strip_chars().replace("", None).alias("identity_value"),
            pl.col("name").struct.field("family").str.strip_chars().replace("", None).alias("name_family"),
            pl.col("name").struct.field("given").str.strip_chars().replace("", None).alias("name_given"),
            "sex",
            "deceased",
            "protected",
            pl.col("address").struct.field("postalCode").str.strip_chars().replace("", None).alias("postal_code"),
            pl.col("address").struct.field("municipality").str.strip_chars().replace("", None).alias("municipality"),
            "_line",
        )
        return {"pcs/patients": out}
    if name == "visits":
        diag = (
            df.select(pl.col("id").alias("visit_id"), "_line", "status", pl.col("diagnoses"))
            .with_columns(pl.col("diagnoses").list.eval(pl.element().struct.field("code")).alias("_codes"))
            .with_row_index("_v")
            .explode("diagnoses")
            .filter(pl.col("diagnoses").is_not_null() | pl.col("_codes").list.len().gt(0))
            .with_columns(pl.int_range(pl.len()).over("_v").alias("_index"))
            .select(
                "visit_id",
                pl.col("diagnoses").struct.field("code").str.strip_chars().replace("", None).alias("code"),
                pl.col("diagnoses").struct.field("primary").alias("primary"),
                "_line",
                "_index",
            )
        )
        return {"pcs/visits": df.drop("diagnoses"), "pcs/visit_diagnosis": diag}
    if name == "allergies":
        out = df.select(
            "id",
            "patientId",
            pl.col("substance").struct.field("atc").str.strip_chars().replace("", None).alias("substance_atc"),
            pl.col("substance").struct.field("text").str.strip_chars().replace("", None).alias("substance_text"),
            "severity",
            "recorded",
            "_line",
        )
        return {"pcs/allergies": out}
    return {f"pcs/{name}": df}


def _pcs_parts(path: Path, name: str, size: int) -> Iterator[tuple[dict[str, pl.DataFrame], pl.DataFrame, str]]:
    """One PCS JSON Lines file, block by block: (frames, unparseable rows, status); each line is its own record."""
    schema = PCS_SCHEMAS[name]
    fname = f"{name}.jsonl"
    empty_df = pl.DataFrame(schema={**schema, "_line": pl.Int64})
    f = _open_file(path)
    if f is None:
        yield _flatten_pcs(name, empty_df), _bad("pcs", fname, [], []), "missing"
        return
    seen = False
    with f:
        for raw, first in _blocks(path, f, size):
            lines, numbers = _split_lines(raw, first=first)
            if first == 1 and raw.startswith(b"\xef\xbb\xbf") and lines:
                lines[0] = lines[0][3:]
            frames, bad_n, bad_r = _parse_json_lines(lines, numbers, schema) if lines else ([], [], [])
            seen = True
            df = pl.concat(frames) if frames else empty_df
            yield _flatten_pcs(name, df), _bad("pcs", fname, bad_n, bad_r).sort("line"), ("ok" if lines else "empty")
    if not seen:
        yield _flatten_pcs(name, empty_df), _bad("pcs", fname, [], []), "empty"


def read_pcs_file(path: Path, name: str) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, str]:
    """One PCS JSON Lines file → (frames, unparseable rows, status)."""
    parts = list(_pcs_parts(path, name, CHUNK_BYTES))
    frames = {k: pl.concat([p[0][k] for p in parts]) for k in parts[0][0]}
    return frames, pl.concat([p[1] for p in parts]).sort("line"), _status([p[2] for p in parts])


#: every file of an extract, in reading order: (system, name)
EXTRACT_FILES: list[tuple[str, str]] = [("pas", n) for n in PAS_COLUMNS] + [("pcs", n) for n in PCS_SCHEMAS]


@dataclass(frozen=True)
class FilePart:
    """What one extract file gave: its frames, its unreadable lines, its status row."""

    frames: dict[str, pl.DataFrame]
    unparseable: pl.DataFrame
    file: dict


def check_extract_root(root: Path) -> Path:
    """The extract directory, or a ``MigcheckError`` naming ``--source``."""
    root = Path(root)
    if not root.is_dir():
        raise MigcheckError(f"--source {root}: no such extract directory")
    if not (root / "pas").is_dir() and not (root / "pcs").is_dir():
        raise MigcheckError(f"--source {root}: holds neither pas/ nor pcs/ (not an extract)")
    return root


def extract_file_path(root: Path, system: str, name: str) -> Path:
    """Where a file of the extract lives."""
    return Path(root) / system / (f"{name}.csv" if system == "pas" else f"{name}.jsonl")


def read_file_parts(root: Path, system: str, name: str, size: int | None = None) -> Iterator[FilePart]:
    """One file of an extract a block at a time: a ``FilePart`` per block of about ``size`` bytes.

    No file is ever whole in memory. The parts' records, unreadable lines and line numbers are
    exactly those of the whole file (``read_extract_file``); its status is ``file_status`` of theirs.
    """
    size = size or CHUNK_BYTES
    path = extract_file_path(root, system, name)
    if system == "pcs":
        parts: Iterator[tuple[dict[str, pl.DataFrame], pl.DataFrame, str]] = _pcs_parts(path, name, size)
    else:
        parts = (({f"pas/{name}": df}, bad, st) for df, bad, st in _pas_parts(path, name, size))
    for frames, bad, status in parts:
        n = frames[f"{system}/{name}"].height + bad.height
        frames = {k: _with_source_ref(k, v) for k, v in frames.items()}
        yield FilePart(frames, bad, {"file": f"{system}/{path.name}", "status": status, "records": n})


def file_status(parts: list[dict]) -> dict:
    """The status row of a file from those of its parts."""
    return {
        "file": parts[0]["file"],
        "status": _status([p["status"] for p in parts]),
        "records": sum(p["records"] for p in parts),
    }


def read_extract_file(root: Path, system: str, name: str) -> FilePart:
    """Read one file of an extract (``pas``/``patient`` …) with its source_refs."""
    parts = list(read_file_parts(root, system, name))
    if len(parts) == 1:
        return parts[0]
    frames = {k: pl.concat([p.frames[k] for p in parts]) for k in parts[0].frames}
    bad = pl.concat([p.unparseable for p in parts]).sort("line")
    return FilePart(frames, bad, file_status([p.file for p in parts]))


def assemble_extract(root: Path, parts: list[FilePart]) -> Extract:
    """One ``Extract`` from the parts of all its files."""
    frames: dict[str, pl.DataFrame] = {}
    for p in parts:
        frames.update(p.frames)
    return Extract(
        root=Path(root),
        frames=frames,
        unparseable=pl.concat([p.unparseable for p in parts]),
        files=pl.DataFrame(
            [p.file for p in parts], schema={"file": pl.String, "status": pl.String, "records": pl.Int64}
        ),
    )


def read_extract(root: Path) -> Extract:
    """Read every file of an extract; missing/empty files are listed, never fatal."""
    root = check_extract_root(root)
    return assemble_extract(root, [read_extract_file(root, s, n) for s, n in EXTRACT_FILES])


def _with_source_ref(name: str, df: pl.DataFrame) -> pl.DataFrame:
    parts = []
    for part in SOURCE_REF[name]:
        if part.startswith("{"):
            col = part[1:-1]
            parts.append(pl.col(col).cast(pl.String).fill_null(""))
        else:
            parts.append(pl.lit(part))
    return df.with_columns(pl.concat_str(parts).alias("source_ref"))
