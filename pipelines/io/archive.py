"""The preservation archive (``archive.md``): a BagIt bag of an extract, its Parquet access copy.

``write_archive`` copies the extract's legacy files byte for byte into ``data/original/``, reads
every legacy record of the copies into ``data/records/system=…/kind=…/year=…/part-0.parquet``
(zstd), adds ``data/codebook.json`` and, given a report, ``data/ledger.parquet``, and makes the
folder a bag (``bagit``, sha512). The archive is written owner-only (folders 0700, files 0600) to
a temporary sibling folder that is renamed into place at the end: a failed run leaves nothing.

``verify_archive`` checks the bag's fixity and that the access copy holds as many records per
file as the originals; ``archive_records`` and ``record_hashes`` give validation the two sides of
its comparison.

Records are those of the readers (``pipelines/io/extract.py``), found with the readers' own
functions: ``_records_of`` (notes spanning lines), ``_join_quoted_records`` (other PAS files),
``_parse_json_lines`` and ``_flatten_pcs`` (PCS) and ``_with_source_ref``. A file is read in
chunks of about ``CHUNK_BYTES`` cut where the readers' record boundaries fall, so memory does not
grow with the file (``docs/decisions.md`` D70-D75). No value of the archive is logged or put in
an error message: messages name files and counts only.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import polars_hash as plh
import pyarrow.parquet as pq

from checks.archive import (
    UNKNOWN_YEAR,
    UNPARSEABLE,
    YEAR_FIELD,
    codebook,
    count_problems,
    diagnosis_suffix,
    partition_dir,
    record_kind,
    year_of,
)
from checks.codebook import diagnosis_columns
from checks.errors import MigcheckError
from checks.records import PAS_COLUMNS, PAS_TEXT_COLUMNS, PCS_SCHEMAS
from pipelines.io.extract import (
    EXTRACT_FILES,
    MAX_LINES_PER_RECORD,
    NOT_A_RECORD,
    _flatten_pcs,
    _join_quoted_records,
    _parse_json_lines,
    _record_reasons,
    _records_of,
    _with_source_ref,
    check_extract_root,
    extract_file_path,
)
from pipelines.io.outputs import MARKER, _same_or_nested, read_marker, version

#: about this many bytes of a file are read into memory at a time
CHUNK_BYTES = 48 << 20
#: the scan of a file's lines reads this many bytes at a time
_BLOCK = 64 << 20
#: bytes Windows-1252 leaves undefined: a PAS line holding one is unparseable
_UNDEFINED_CP1252 = np.zeros(256, dtype=bool)
_UNDEFINED_CP1252[[0x81, 0x8D, 0x8F, 0x90, 0x9D]] = True
_BOM = b"\xef\xbb\xbf"
_ACCESS_SCHEMA = {"source_ref": pl.String, "file": pl.String, "line": pl.Int64, "record_hash": pl.String}
_ZSTD_LEVEL = 3

# ---------------------------------------------------------------------------------------------
# The lines of a file


@dataclass(frozen=True)
class _Lines:
    """The physical lines of one file, found by one streaming pass (no line is kept in memory)."""

    start: np.ndarray  # int64: offset of the line's first byte
    end: np.ndarray  # int64: offset after its content (its "\n" and one "\r" before it excluded)
    quotes: np.ndarray  # int32: number of '"' in its content
    undefined: np.ndarray  # bool: holds a byte Windows-1252 does not define
    is_ascii: bool
    is_utf8: bool
    bom: bool


def _scan_lines(path: Path, pas: bool) -> _Lines:
    """Offsets, quote counts and undefined bytes of every physical line of ``path``."""
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    quotes: list[np.ndarray] = []
    undef: list[np.ndarray] = []
    is_ascii, is_utf8, bom = True, True, False
    utf8 = codecs.getincrementaldecoder("utf-8")()
    base, carry, first = 0, b"", True
    with path.open("rb") as f:
        while True:
            block = f.read(_BLOCK)
            eof = not block
            if first:
                bom, first = block.startswith(_BOM), False
            if pas and is_utf8 and not (is_ascii and block.isascii()):
                is_ascii = False
                try:
                    utf8.decode(block, final=eof)
                except UnicodeDecodeError:
                    is_utf8 = False
            buf = carry + block
            if eof:
                body, carry = buf, b""
            else:
                cut = buf.rfind(b"\n") + 1
                body, carry = buf[:cut], buf[cut:]
            if body:
                arr = np.frombuffer(body, dtype=np.uint8)
                nl = np.flatnonzero(arr == 10)
                le = nl if arr[-1] == 10 else np.append(nl, len(arr))
                ls = np.concatenate(([0], nl + 1))[: len(le)]
                content = le - ((le > ls) & (arr[np.maximum(le - 1, 0)] == 13))
                q = np.flatnonzero(arr == 34)
                quotes.append((np.searchsorted(q, content) - np.searchsorted(q, ls)).astype(np.int32))
                u = np.zeros(len(le), dtype=bool)
                if pas:
                    bad = np.flatnonzero(_UNDEFINED_CP1252[arr])
                    u[np.searchsorted(ls, bad, side="right") - 1] = True
                undef.append(u)
                starts.append(ls.astype(np.int64) + base)
                ends.append(content.astype(np.int64) + base)
                base += len(body)
            if eof:
                break
    cat = lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dtype=dt)  # noqa: E731
    return _Lines(
        cat(starts, np.int64),
        cat(ends, np.int64),
        cat(quotes, np.int32),
        cat(undef, bool),
        is_ascii,
        is_utf8,
        bom,
    )


def _read_range(path: Path, lo: int, hi: int) -> bytes:
    with path.open("rb") as f:
        f.seek(lo)
        return f.read(hi - lo)


def _hashes(raw: list[bytes]) -> pl.Series:
    """SHA-256 (hex) of each byte string, vectorised."""
    s = pl.Series("b", raw, dtype=pl.Binary)
    return s.to_frame().select(plh.col("b").chash.sha2_256())["b"].alias("record_hash")


def _chunks(offsets: np.ndarray, lo: int, hi: int) -> Iterator[tuple[int, int]]:
    """Consecutive ranges of positions ``lo``…``hi`` of about ``CHUNK_BYTES`` each (by ``offsets``)."""
    while lo < hi:
        e = int(np.searchsorted(offsets, offsets[lo] + CHUNK_BYTES, side="left"))
        e = min(max(e, lo + 1), hi)
        yield lo, e
        lo = e


# ---------------------------------------------------------------------------------------------
# Records of one file


def _unparseable(system: str, fname: str, lines: list[int], reasons: list[str], raw: list[bytes]) -> pl.DataFrame:
    file = f"{system}/{fname}"
    return pl.DataFrame(
        {
            "source_ref": [f"{system}:{fname}#{n}" for n in lines],
            "file": [file] * len(lines),
            "line": lines,
            "record_hash": _hashes(raw) if raw else pl.Series([], dtype=pl.String),
            "reason": reasons,
            "raw": pl.Series(raw, dtype=pl.Binary),
            "year": [UNKNOWN_YEAR] * len(lines),
        },
        schema={**_ACCESS_SCHEMA, "reason": pl.String, "raw": pl.Binary, "year": pl.String},
    )


#: a record every field of which is either quoted whole or holds no quote and no line break: polars'
#: CSV reader splits it as the csv module does
_SIMPLE_RECORD = r'^(?:"(?:[^"]|"")*"|[^";\r\n]*)(?:;(?:"(?:[^"]|"")*"|[^";\r\n]*))*$'


def _csv_fields(texts: list[str], n: int) -> pl.DataFrame:
    """CSV fields (``;``, ``"``) of records known to hold ``n``, quotes removed, as the readers split them.

    Polars reads the simple ones at once; the csv module (the reader's) the others, one by one.
    """
    cols = [f"f{i}" for i in range(n)]
    schema = dict.fromkeys(cols, pl.String)
    t = pl.Series("t", texts, dtype=pl.String)
    simple = t.str.contains(_SIMPLE_RECORD).to_numpy()
    out = pl.DataFrame({c: [None] * len(texts) for c in cols}, schema=schema)
    fast = np.flatnonzero(simple)
    if len(fast):
        body = "\n".join(texts[i] for i in fast).encode("utf-8")
        parsed = pl.read_csv(io.BytesIO(body), has_header=False, separator=";", quote_char='"', schema=schema)
        if parsed.height != len(fast):
            simple[:] = False
            fast = fast[:0]
        elif len(fast) == len(texts):
            return parsed.fill_null("")
        else:
            out = (
                out.with_row_index("_i")
                .update(parsed.fill_null("").with_columns(pl.Series("_i", fast, dtype=pl.UInt32)), on="_i")
                .drop("_i")
            )
    slow = np.flatnonzero(~simple)
    if len(slow):
        rows = [
            next(csv.reader(io.StringIO(texts[i], newline=""), delimiter=";", quotechar='"', strict=False))
            for i in slow
        ]
        if any(len(r) != n for r in rows):
            raise RuntimeError("a record's fields could not be split as the reader split them")
        part = pl.DataFrame(rows, schema=schema, orient="row").with_columns(pl.Series("_i", slow, dtype=pl.UInt32))
        out = out.with_row_index("_i").update(part, on="_i").drop("_i")
    return out


def _pas_frame(name: str, df: pl.DataFrame, lines: list[int], raw: list[bytes]) -> pl.DataFrame:
    """The access copy's rows of good PAS records: fields as they stand, source_ref as the reader gives it."""
    cols = PAS_COLUMNS[name]
    keys = df.select(
        pl.col(c).str.replace_all("\r\n", "\n", literal=True).str.strip_chars().replace("", None) for c in cols
    )
    year = YEAR_FIELD[f"pas/{name}"]
    return pl.concat(
        [
            _with_source_ref(f"pas/{name}", keys).select("source_ref"),
            pl.DataFrame(
                {"file": [f"pas/{name}.csv"] * len(lines), "line": lines, "record_hash": _hashes(raw)},
                schema={"file": pl.String, "line": pl.Int64, "record_hash": pl.String},
            ),
            df,
        ],
        how="horizontal",
    ).with_columns(year_of(year) if year else pl.lit(UNKNOWN_YEAR).alias("year"))


def _check_pas_header(path: Path, lines: _Lines, cols: list[str]) -> None:
    """The reader's checks of a PAS file's encoding and header (its messages, no values)."""
    if lines.bom:
        raise MigcheckError(
            f"{path}: starts with a UTF-8 byte-order mark; PAS exports must be Windows-1252 "
            "(re-export, or convert with iconv -f utf-8 -t cp1252)"
        )
    if not lines.is_ascii and lines.is_utf8:
        raise MigcheckError(
            f"{path}: is UTF-8 text, not Windows-1252 as PAS exports must be "
            "(re-export, or convert with iconv -f utf-8 -t cp1252)"
        )
    if lines.undefined[0]:
        raise MigcheckError(f"{path}: the header line cannot be read as Windows-1252")
    text = _read_range(path, int(lines.start[0]), int(lines.end[0])).decode("cp1252")
    header = [h.strip() for h in next(csv.reader([text], delimiter=";", quotechar='"'))]
    if header != cols:
        if header and header[0].isdigit():
            raise MigcheckError(f"{path}: has no header line (line 1 is data); expected {';'.join(cols)!r}")
        raise MigcheckError(f"{path}: header does not match the PAS layout; expected {';'.join(cols)!r}")


def _pas_records(path: Path, name: str) -> Iterator[tuple[str, pl.DataFrame]]:
    """Every legacy record of one PAS file: (kind, frame) per chunk."""
    cols = PAS_COLUMNS[name]
    fname = f"{name}.csv"
    text_file = name in PAS_TEXT_COLUMNS
    lines = _scan_lines(path, pas=True)
    blank = lines.end == lines.start
    if not len(lines.start) or (not text_file and blank.all()):
        return
    if blank[0] and not text_file:
        raise MigcheckError(f"{path}: the header line cannot be read as Windows-1252")
    _check_pas_header(path, lines, cols)
    pos = np.arange(1, len(lines.start))
    undefined = pos[lines.undefined[pos] & (text_file | ~blank[pos])]
    if len(undefined):
        raw = [_read_range(path, int(lines.start[i]), int(lines.end[i])) for i in undefined]
        bad = (undefined + 1).tolist()
        yield f"pas/{UNPARSEABLE}", _unparseable("pas", fname, bad, ["not Windows-1252 text"] * len(bad), raw)
    kept = pos[~lines.undefined[pos] & (text_file | ~blank[pos])]
    if text_file:
        yield from _text_records(path, name, lines, kept)
    else:
        yield from _row_records(path, name, lines, kept)


def _replace_rows(f: pl.Series, at: np.ndarray, rows: list[list[str]]) -> pl.Series:
    """``f`` (lists of fields) with the rows at positions ``at`` replaced."""
    new: list[list[str] | None] = [None] * len(f)
    for i, r in zip(at.tolist(), rows, strict=True):
        new[i] = r
    repl = pl.Series("r", new, dtype=pl.List(pl.String))
    return pl.select(pl.when(repl.is_not_null()).then(repl).otherwise(f).alias(f.name)).to_series()


def _row_records(path: Path, name: str, lines: _Lines, kept: np.ndarray) -> Iterator[tuple[str, pl.DataFrame]]:
    """A PAS file of one-line records (a quoted field may span at most 20 lines: ``_join_quoted_records``)."""
    cols = PAS_COLUMNS[name]
    n = len(cols)
    fname = f"{name}.csv"
    odd = (lines.quotes[kept] % 2).astype(bool)
    offsets = lines.start[kept]
    lo = 0
    while lo < len(kept):
        # cut where no quote opened in the last MAX_LINES_PER_RECORD - 1 lines: no join crosses the cut
        e = min(max(int(np.searchsorted(offsets, offsets[lo] + CHUNK_BYTES)), lo + 1), len(kept))
        while e < len(kept) and odd[max(lo, e - MAX_LINES_PER_RECORD + 1) : e].any():
            e += 1
        ks = kept[lo:e]
        base = int(lines.start[ks[0]])
        buf = _read_range(path, base, int(lines.end[ks[-1]]))
        text = buf.decode("cp1252", errors="replace")  # one character per byte: the offsets hold
        s_off = lines.start[ks] - base
        e_off = lines.end[ks] - base
        texts = [text[a:b] for a, b in zip(s_off.tolist(), e_off.tolist(), strict=True)]
        body, body_n, _ = _join_quoted_records(texts, (ks + 1).tolist(), n)
        t = pl.Series("t", body, dtype=pl.String)
        breaks = t.str.count_matches("\n", literal=True).cast(pl.Int64).to_numpy()
        first = np.concatenate(([0], np.cumsum(breaks + 1)[:-1])).astype(np.int64)
        a_off, b_off = s_off[first].tolist(), e_off[first + breaks].tolist()
        raw = [buf[a:b] for a, b in zip(a_off, b_off, strict=True)]
        # the reader's split: ';' for a plain line, the csv module for a quoted one
        f = t.str.split(";")
        quoted = np.flatnonzero(t.str.contains('"', literal=True).to_numpy())
        if len(quoted):
            rows = [
                next(csv.reader(io.StringIO(body[i], newline=""), delimiter=";", quotechar='"', strict=False))
                for i in quoted
            ]
            f = _replace_rows(f, quoted, rows)
        nf = f.list.len().to_numpy()
        bad = np.flatnonzero(nf != n)
        if len(bad):
            yield (
                f"pas/{UNPARSEABLE}",
                _unparseable(
                    "pas",
                    fname,
                    [body_n[i] for i in bad],
                    [f"{nf[i]} fields instead of {n}" for i in bad],
                    [raw[i] for i in bad],
                ),
            )
        joined = np.flatnonzero((breaks > 0) & (nf == n))
        if len(joined):  # a record over several lines: its fields as they stand, line breaks included
            split = _csv_fields([text[a_off[i] : b_off[i]] for i in joined], n).rows()
            f = _replace_rows(f, joined, [list(r) for r in split])
        good = np.flatnonzero(nf == n)
        if len(good):
            g = f.gather(good)
            fields = pl.DataFrame([g.list.get(i).alias(c) for i, c in enumerate(cols)])
            yield f"pas/{name}", _pas_frame(name, fields, [body_n[i] for i in good], [raw[i] for i in good])
        lo = e


def _text_records(path: Path, name: str, lines: _Lines, kept: np.ndarray) -> Iterator[tuple[str, pl.DataFrame]]:
    """A PAS file whose text column spans lines: the reader's ``_read_text_records``, chunk by chunk.

    A line starts a record when the quotes before it (since the last restart) are closed; a chunk
    ends on such a line, so ``_records_of`` groups it as it groups the whole file. A record that does
    not close or lacks its fields reports its first line and reading restarts on the next line.
    """
    cols = PAS_COLUMNS[name]
    n = len(cols)
    fname = f"{name}.csv"
    total = len(kept)
    parity = np.zeros(total + 1, dtype=np.int8)  # quotes before each position, mod 2
    parity[1:] = np.bitwise_xor.accumulate((lines.quotes[kept] % 2).astype(np.int8))
    offsets = lines.start[kept]
    r = 0
    while r < total:
        target = parity[r]
        e0 = min(max(int(np.searchsorted(offsets, offsets[r] + CHUNK_BYTES)), r + 1), total)
        if e0 < total:
            ahead = np.flatnonzero(parity[e0 : total + 1] == target)
            if len(ahead):
                e = e0 + int(ahead[0])
            else:  # the record open at e0 never closes: stop before it, or judge it as the reader does
                g = r + int(np.flatnonzero(parity[r:e0] == target)[-1])
                if g == r:
                    ln = int(kept[r]) + 1
                    raw = [_read_range(path, int(lines.start[kept[r]]), int(lines.end[kept[r]]))]
                    yield f"pas/{UNPARSEABLE}", _unparseable("pas", fname, [ln], [NOT_A_RECORD], raw)
                    r += 1
                    continue
                e = g
        else:
            e = total
        ks = kept[r:e]
        base = int(lines.start[ks[0]])
        buf = _read_range(path, base, int(lines.end[ks[-1]]))
        text = buf.decode("cp1252", errors="replace")
        s_off = lines.start[ks] - base
        e_off = lines.end[ks] - base
        numbers = ks + 1
        texts = [text[a:b] for a, b in zip(s_off.tolist(), e_off.tolist(), strict=True)]
        recs = _records_of(pl.DataFrame({"t": texts, "_line": numbers}, schema={"t": pl.String, "_line": pl.Int64}), n)
        wrong = ~pl.col("_ok")
        first_bad = recs.with_row_index("_i").filter(wrong & (pl.col("_line") != pl.col("_last")))
        cut = recs.height if first_bad.height == 0 else int(first_bad["_i"][0])
        head = recs.head(cut)
        single_bad = head.filter(wrong)
        bad_n = single_bad["_line"].to_list()
        bad_r = _record_reasons(single_bad, n)
        if first_bad.height:
            bad_n.append(int(first_bad["_line"][0]))
            bad_r.append(NOT_A_RECORD)
        if bad_n:
            at = np.searchsorted(numbers, bad_n)
            raw = [buf[a:b] for a, b in zip(s_off[at].tolist(), e_off[at].tolist(), strict=True)]
            yield f"pas/{UNPARSEABLE}", _unparseable("pas", fname, bad_n, bad_r, raw)
        good = head.filter(~wrong)
        if good.height:
            a_off = s_off[np.searchsorted(numbers, good["_line"].to_numpy())].tolist()
            b_off = e_off[np.searchsorted(numbers, good["_last"].to_numpy())].tolist()
            raw = [buf[a:b] for a, b in zip(a_off, b_off, strict=True)]
            fields = _csv_fields([text[a:b] for a, b in zip(a_off, b_off, strict=True)], n)
            fields.columns = cols
            yield f"pas/{name}", _pas_frame(name, fields, good["_line"].to_list(), raw)
        if first_bad.height:
            r = int(np.searchsorted(kept, int(first_bad["_line"][0]) - 1)) + 1
        else:
            r = e


#: lines handed to the reader's ``_parse_json_lines`` at a time when a chunk holds a bad line
_JSON_PIECE = 256


def _json_lines(raw: list[bytes], numbers: list[int], schema: dict) -> tuple[list[pl.DataFrame], list[int], list[str]]:
    """The reader's ``_parse_json_lines``, on pieces of ``_JSON_PIECE`` lines when the chunk holds a bad one.

    Each line is judged alone either way; small pieces keep the reader's line-by-line search for
    the bad ones to the few pieces that hold one.
    """
    try:
        df = pl.read_ndjson(io.BytesIO(b"\n".join(raw)), schema=schema)
        if df.height == len(raw):
            return [df.with_columns(pl.Series("_line", numbers, dtype=pl.Int64))], [], []
    except Exception:  # noqa: BLE001 - a bad line somewhere: piece by piece below
        pass
    frames: list[pl.DataFrame] = []
    bad_n: list[int] = []
    bad_r: list[str] = []
    for i in range(0, len(raw), _JSON_PIECE):
        f, n, r = _parse_json_lines(raw[i : i + _JSON_PIECE], numbers[i : i + _JSON_PIECE], schema)
        frames += f
        bad_n += n
        bad_r += r
    return frames, bad_n, bad_r


def _json_text(values: list[object]) -> list[str | None]:
    """Top-level JSON values as the access copy holds them: strings as they are, others as JSON text."""
    return [v if isinstance(v, str) or v is None else json.dumps(v, ensure_ascii=False) for v in values]


def _pcs_fields(name: str, good: list[bytes]) -> pl.DataFrame:
    """Each top-level field of good PCS lines as text (polars' JSON reader; per line where it refuses)."""
    keys = list(PCS_SCHEMAS[name])
    schema = dict.fromkeys(keys, pl.String)
    try:
        df = pl.read_ndjson(io.BytesIO(b"\n".join(good)), schema=schema) if good else pl.DataFrame(schema=schema)
        if df.height == len(good):
            return df
    except Exception:  # noqa: BLE001 - read these lines one by one below
        pass
    objs = [json.loads(b) for b in good]
    return pl.DataFrame({k: _json_text([o.get(k) for o in objs]) for k in keys}, schema=schema)


def _pcs_records(path: Path, name: str) -> Iterator[tuple[str, pl.DataFrame]]:
    """Every legacy record of one PCS file: (kind, frame) per chunk; lines stand alone."""
    schema = PCS_SCHEMAS[name]
    fname = f"{name}.jsonl"
    file = f"pcs/{fname}"
    frame = f"pcs/{name}"
    lines = _scan_lines(path, pas=False)
    kept = np.flatnonzero(lines.end > lines.start)
    if not len(kept):
        return
    starts = lines.start.copy()
    if lines.bom:  # the byte-order mark is the file's, not its first record's (as the reader reads it)
        starts[kept[0]] += 3
    year = YEAR_FIELD[frame]
    empty = pl.DataFrame(schema={**schema, "_line": pl.Int64})
    for lo, hi in _chunks(starts[kept], 0, len(kept)):
        ks = kept[lo:hi]
        base = int(starts[ks[0]])
        buf = _read_range(path, base, int(lines.end[ks[-1]]))
        raw = [buf[a:b] for a, b in zip((starts[ks] - base).tolist(), (lines.end[ks] - base).tolist(), strict=True)]
        numbers = (ks + 1).tolist()
        frames, bad_n, bad_r = _json_lines(raw, numbers, schema)
        if bad_n:
            at = np.searchsorted(ks + 1, bad_n)
            order = np.argsort(bad_n)
            yield (
                f"pcs/{UNPARSEABLE}",
                _unparseable(
                    "pcs",
                    fname,
                    [bad_n[i] for i in order],
                    [bad_r[i] for i in order],
                    [raw[at[i]] for i in order],
                ),
            )
        df = pl.concat(frames) if frames else empty
        if not df.height:
            continue
        flat = {k: _with_source_ref(k, v) for k, v in _flatten_pcs(name, df).items()}
        at = np.searchsorted(ks + 1, df["_line"].to_numpy())
        good = [raw[i] for i in at]
        fields = _pcs_fields(name, good)
        main = pl.concat(
            [
                flat[frame].select("source_ref", pl.col("_line").alias("line")),
                pl.DataFrame({"file": [file] * df.height, "record_hash": _hashes(good)}),
                fields,
            ],
            how="horizontal",
        ).with_columns(year_of(year) if year else pl.lit(UNKNOWN_YEAR).alias("year"))
        yield frame, main.select("source_ref", "file", "line", "record_hash", *fields.columns, "year")
        if name == "visits":
            yield (
                "pcs/visit_diagnosis",
                _diagnoses(flat["pcs/visit_diagnosis"], main, dict(zip(numbers, raw, strict=True))),
            )


def _diagnoses(reader: pl.DataFrame, visits: pl.DataFrame, raw_of: dict[int, bytes]) -> pl.DataFrame:
    """One record per element of a visit's ``diagnoses``: its fields as they stand, the reader's source_ref."""
    cols = diagnosis_columns()
    element = pl.Struct(dict.fromkeys(cols, pl.String))
    elements = (
        visits.select(
            "line",
            pl.col("id").alias("visit_id"),
            "year",
            pl.col("diagnoses").str.json_decode(pl.List(element)).alias("_d"),
        )
        .filter(pl.col("_d").list.len() > 0)
        .with_columns(pl.int_ranges(pl.col("_d").list.len()).alias("index"))
        .explode("_d", "index")
        .select(
            "line",
            "index",
            "visit_id",
            *[pl.col("_d").struct.field(c).alias(c) for c in cols],
            "year",
        )
    )
    out = reader.select(
        pl.col("_line").alias("line"), pl.col("_index").cast(pl.Int64).alias("index"), "source_ref"
    ).join(
        elements.with_columns(pl.col("index").cast(pl.Int64)), on=["line", "index"], how="left", maintain_order="left"
    )
    raw = [
        raw_of[ln] + diagnosis_suffix(i) for ln, i in zip(out["line"].to_list(), out["index"].to_list(), strict=True)
    ]
    return out.with_columns(
        pl.lit("pcs/visits.jsonl").alias("file"), _hashes(raw), pl.col("year").fill_null(UNKNOWN_YEAR)
    ).select("source_ref", "file", "line", "record_hash", "visit_id", "index", *cols, "year")


def file_records(path: Path, system: str, name: str) -> Iterator[tuple[str, pl.DataFrame]]:
    """Every legacy record of one extract file as (``system/kind``, frame) pieces, in chunks.

    Columns: ``source_ref``, ``file``, ``line``, ``record_hash``, the record's fields as text as they
    stand (``codebook.json``), ``year``. Unparseable lines come as kind ``unparseable`` with
    ``reason`` and ``raw``. A missing file gives nothing.
    """
    if not path.is_file():
        return
    pieces = _pas_records(path, name) if system == "pas" else _pcs_records(path, name)
    for frame, df in pieces:
        s, kind = (system, UNPARSEABLE) if frame.endswith(UNPARSEABLE) else record_kind(frame)
        yield f"{s}/{kind}", df


def record_rows(root: Path) -> Iterator[tuple[str, pl.DataFrame]]:
    """Every legacy record of every file of the extract at ``root``: (``system/kind``, frame) pieces.

    One kind may come in several pieces (a file is read in chunks); ``file_records`` says what a
    piece holds.
    """
    root = check_extract_root(root)
    for system, name in EXTRACT_FILES:
        yield from file_records(extract_file_path(root, system, name), system, name)


def record_hashes(root: Path) -> pl.DataFrame:
    """``source_ref``, ``file``, ``record_hash`` of every legacy record of the extract at ``root``."""
    parts = [df.select("source_ref", "file", "record_hash") for _, df in record_rows(root)]
    cols = ("source_ref", "file", "record_hash")
    return pl.concat(parts) if parts else pl.DataFrame(schema={c: _ACCESS_SCHEMA[c] for c in cols})


def count_records(root: Path) -> dict[str, int]:
    """Legacy records per file (``pas/patient.csv``: n) of the extract at ``root``, files present only."""
    counts: dict[str, int] = {}
    for system, name in EXTRACT_FILES:
        path = extract_file_path(Path(root), system, name)
        if path.is_file():
            counts[f"{system}/{path.name}"] = sum(df.height for _, df in file_records(path, system, name))
    return counts


# ---------------------------------------------------------------------------------------------
# Writing the bag


@dataclass(frozen=True)
class ArchiveResult:
    """What ``write_archive`` wrote: where, how many records per file, payload size."""

    path: Path
    records: dict[str, int]  # file → legacy records
    payload_bytes: int
    payload_files: int
    ledger: bool
    not_archived: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """Plain values (paths as text) for flows and JSON."""
        return {
            "path": str(self.path),
            "records": dict(self.records),
            "total_records": sum(self.records.values()),
            "payload_bytes": self.payload_bytes,
            "payload_files": self.payload_files,
            "ledger": self.ledger,
            "not_archived": list(self.not_archived),
        }


class _PartitionWriter:
    """One Parquet file per (system, kind, year), written a row group per piece."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.writers: dict[Path, pq.ParquetWriter] = {}
        self.records: Counter[str] = Counter()

    def write(self, kind: str, df: pl.DataFrame) -> None:
        system, k = kind.split("/")
        for (year,), part in df.partition_by("year", as_dict=True).items():
            folder = self.data / partition_dir(system, k, str(year))
            table = part.drop("year").to_arrow(compat_level=pl.CompatLevel.oldest())
            path = folder / "part-0.parquet"
            w = self.writers.get(path)
            if w is None:
                folder.mkdir(parents=True, exist_ok=True)
                w = self.writers[path] = pq.ParquetWriter(
                    path, table.schema, compression="zstd", compression_level=_ZSTD_LEVEL
                )
            w.write_table(table.cast(w.schema))
        for f, n in df.group_by("file").len().iter_rows():
            self.records[f] += n

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def _claim_archive(out: Path, source: Path, report: Path | None) -> Path:
    """``--out`` as an absolute path, or a one-line refusal: new or empty, outside source and reports."""
    given = out
    out = Path(out).expanduser().resolve()
    where = f"--out {given}"
    if out.exists() and not out.is_dir():
        raise MigcheckError(f"{where}: is a file, not a folder; give a new or empty folder for the archive")
    if out.is_dir():
        try:
            entries = next(out.iterdir(), None)
        except OSError as e:
            raise MigcheckError(f"{where}: cannot be read ({e.strerror})") from e
        if entries is not None:
            raise MigcheckError(f"{where}: exists and is not empty; an archive is written to a new or empty folder")
    if not out.parent.is_dir():
        raise MigcheckError(f"{where}: folder {out.parent} does not exist (create it first)")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise MigcheckError(f"{where}: no permission to write in {out.parent}")
    for name, other in (("--source", source), ("--report", report)):
        if other is not None:
            how = _same_or_nested(out, Path(other).expanduser().resolve())
            if how:
                raise MigcheckError(f"{where}: {how} {name} {other}; write the archive elsewhere")
    for folder in (out, *out.parents):
        marker = read_marker(folder) if (folder / MARKER).is_file() else None
        if marker is not None and marker.kind == "report":
            raise MigcheckError(
                f"{where}: lies inside the migcheck report folder {folder}; the archive holds personal data "
                "in clear and is never written inside a report"
            )
    return out


def _report_ledger(report: Path) -> Path:
    """The ledger of the report folder ``--report``, or a one-line refusal."""
    marker = read_marker(report) if Path(report).is_dir() else None
    if marker is None or marker.kind != "report":
        raise MigcheckError(f"--report {report}: is not a migcheck report folder (no report .migcheck marker)")
    ledger = Path(report) / "ledger.parquet"
    if not ledger.is_file():
        raise MigcheckError(f"--report {report}: holds no ledger.parquet")
    return ledger


def check_archive_args(source: Path, out: Path, report: Path | None) -> tuple[Path, Path | None]:
    """``--out`` (absolute) and the report's ledger, or a one-line ``MigcheckError`` before any work."""
    source = check_extract_root(Path(source)).resolve()
    ledger = _report_ledger(Path(report)) if report is not None else None
    return _claim_archive(Path(out), source, report), ledger


def _owner_only(root: Path) -> None:
    """Folders 0700, files 0600 under ``root`` (and ``root``); checked after setting."""
    os.chmod(root, 0o700)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(Path(dirpath) / d, 0o700)
        for f in filenames:
            os.chmod(Path(dirpath) / f, 0o600)
    for dirpath, _, filenames in os.walk(root):
        for p in [Path(dirpath)] + [Path(dirpath) / f for f in filenames]:
            want = 0o700 if p.is_dir() else 0o600
            if p.stat().st_mode & 0o777 != want:
                raise MigcheckError(f"{p}: cannot be made owner-only ({oct(want)})")


def write_archive(
    source: Path, out: Path, report: Path | None = None, organization: str | None = None
) -> ArchiveResult:
    """Archive the extract at ``source`` as a BagIt bag at ``out`` (see the module's docstring).

    ``report``: a validation report folder of this extract; its ``ledger.parquet`` joins the
    payload. ``organization``: bag-info's Source-Organization (default
    ``$MIGCHECK_SOURCE_ORGANIZATION``, else ``unspecified``). Raises ``MigcheckError`` (exit 2)
    before writing anything when ``out`` is not a new or empty folder outside the extract and any
    report folder.
    """
    import bagit

    out, ledger = check_archive_args(source, out, report)
    source = Path(source).resolve()
    org = organization or os.environ.get("MIGCHECK_SOURCE_ORGANIZATION") or "unspecified"
    not_archived = tuple(
        sorted(
            f"{p.parent.name}/{p.name}"
            for system in ("pas", "pcs")
            if (source / system).is_dir()
            for p in (source / system).iterdir()
            if p.name not in {extract_file_path(source, s, n).name for s, n in EXTRACT_FILES if s == system}
        )
    )
    old_mask = os.umask(0o077)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        original = tmp / "original"
        present: list[str] = []
        for system, name in EXTRACT_FILES:
            src = extract_file_path(source, system, name)
            if src.is_file():
                (original / system).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, original / system / src.name)
                present.append(f"{system}/{src.name}")
        writer = _PartitionWriter(tmp)
        try:
            for system, name in EXTRACT_FILES:
                path = extract_file_path(original, system, name)
                for kind, df in file_records(path, system, name):
                    writer.write(kind, df)
        finally:
            writer.close()
        records = {f: writer.records.get(f, 0) for f in present}
        (tmp / "codebook.json").write_text(json.dumps(codebook(version()), indent=1, ensure_ascii=False) + "\n")
        if ledger is not None:
            shutil.copyfile(ledger, tmp / "ledger.parquet")
            rows = pl.scan_parquet(tmp / "ledger.parquet").select(pl.len()).collect().item()
            if rows != sum(records.values()):
                raise MigcheckError(
                    f"--report {report}: its ledger holds {rows} records, the extract {sum(records.values())} "
                    "(a report of another extract?); nothing was written"
                )
        info = {
            "Source-Organization": org,
            "External-Identifier": source.name,
            "External-Description": "legacy PAS and PCS extract: original files and a Parquet access copy",
            "Bag-Software-Agent": f"migcheck {version()} (bagit.py {bagit.VERSION})",
            "Migcheck-Version": version(),
            "Record-Count": [f"{f} {n}" for f, n in records.items()],
            "Record-Total": str(sum(records.values())),
        }
        bag = bagit.make_bag(str(tmp), info, checksums=["sha512"])
        _owner_only(tmp)
        oxum = str(bag.info["Payload-Oxum"]).split(".")
        try:
            os.rename(tmp, out)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise MigcheckError(f"--out {out}: is no longer empty; nothing was written") from e
            raise
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        where = e.filename or out
        raise MigcheckError(f"archive: {where}: {e.strerror or type(e).__name__}; nothing was written") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.umask(old_mask)
    return ArchiveResult(out, records, int(oxum[0]), int(oxum[1]), ledger is not None, not_archived)


# ---------------------------------------------------------------------------------------------
# Reading and verifying it


def _record_files(path: Path) -> list[Path]:
    return sorted((Path(path) / "data" / "records").glob("system=*/kind=*/year=*/*.parquet"))


def archive_records(path: Path) -> pl.LazyFrame:
    """``source_ref``, ``record_hash``, ``file`` of every record of the archive's access copy (lazy)."""
    path = Path(path)
    if not (path / "bagit.txt").is_file() or not (path / "data" / "records").is_dir():
        raise MigcheckError(f"--archive {path}: is not a migcheck archive (no bagit.txt or data/records/)")
    cols = ["source_ref", "record_hash", "file"]
    scans = [pl.scan_parquet(f).select(cols) for f in _record_files(path)]
    return pl.concat(scans) if scans else pl.LazyFrame(schema={c: pl.String for c in cols})


def verify_archive(path: Path) -> list[str]:
    """Problems of the archive at ``path``, one line each naming its file; empty when intact.

    Checks every checksum of the bag, that no payload file is missing or added, and that the access
    copy holds as many records per file as the originals (counted by the readers' boundaries) and
    as bag-info.txt declares. Raises ``MigcheckError`` when ``path`` is no bag at all.
    """
    import bagit

    path = Path(path)
    if not path.is_dir():
        raise MigcheckError(f"{path}: no such archive folder")
    try:
        bag = bagit.Bag(str(path))
    except bagit.BagError as e:
        raise MigcheckError(f"{path}: is not a BagIt bag (bagit.txt or a manifest cannot be read)") from e
    if not list(bag.manifest_files()):
        raise MigcheckError(f"{path}: is not a BagIt bag (no manifest)")
    if not (path / "data").is_dir():
        return ["data/: the payload folder is missing"]
    problems: list[str] = []
    missing: set[str] = set()
    # bagit's validate() stops at the Payload-Oxum before naming files: its steps, one by one
    try:
        bag._validate_completeness()
    except bagit.BagValidationError as e:
        for d in e.details:
            if isinstance(d, bagit.FileMissing):
                missing.add(str(d.path))
                problems.append(f"{d.path}: missing (listed in the manifest)")
            elif isinstance(d, bagit.UnexpectedFile):
                problems.append(f"{d.path}: added (not in the manifest)")
    try:
        bag._validate_entries(1)
    except bagit.BagValidationError as e:
        for d in e.details:
            if isinstance(d, bagit.ChecksumMismatch) and str(d.path) not in missing:
                if (path / str(d.path)).is_file():
                    problems.append(f"{d.path}: altered ({d.algorithm} checksum differs)")
                else:
                    problems.append(f"{d.path}: missing (listed in the tag manifest)")
    if not problems:
        try:
            bag._validate_oxum()
        except bagit.BagError:
            problems.append("bag-info.txt: Payload-Oxum does not match the payload's size and file count")
    originals: dict[str, int] = {}
    for system, name in EXTRACT_FILES:
        f = extract_file_path(path / "data" / "original", system, name)
        if f.is_file():
            try:
                originals[f"{system}/{f.name}"] = sum(df.height for _, df in file_records(f, system, name))
            except MigcheckError as e:
                problems.append(f"data/original/{system}/{f.name}: cannot be read as a legacy file ({e.reason})")
    access: Counter[str] = Counter()
    for f in _record_files(path):
        try:
            for file, n in pl.read_parquet(f, columns=["file"]).group_by("file").len().iter_rows():
                access[file] += n
        except Exception:  # noqa: BLE001 - any damage: name the file, read the rest
            problems.append(f"{f.relative_to(path)}: cannot be read as Parquet")
    declared: dict[str, int] = {}
    counts = bag.info.get("Record-Count", [])
    for entry in [counts] if isinstance(counts, str) else counts:
        file, _, n = str(entry).rpartition(" ")
        if n.isdigit():
            declared[file] = int(n)
    problems += count_problems(originals, dict(access), declared)
    return problems


__all__ = [
    "ArchiveResult",
    "archive_records",
    "check_archive_args",
    "count_records",
    "file_records",
    "record_hashes",
    "record_rows",
    "verify_archive",
    "write_archive",
]
