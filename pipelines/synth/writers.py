"""Writing the extract: external ids, file order, PAS cp1252 CSV, PCS JSON Lines, and ``defects.csv``.

Ids are assigned in file order with random gaps; the ids of orphans' missing parents are taken from
those gaps. Every line is built by polars expressions and written straight from the Arrow buffer of
the line column (PAS text turned into Windows-1252 bytes on the way), so no line becomes a Python
string except the few broken ones.

The notes files: ``anteckning.csv`` always quotes TEXT (``"`` doubled, CRLF line breaks inside the
quotes), so one record may span several physical lines and an unparseable note is named by the line
it starts on; ``notes.jsonl`` escapes its text (line breaks, tabs, quotes, backslashes), one record a line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.synth.scoring import TRUTH_COLUMNS
from pipelines.synth.world import World

PAS_HEADERS = {
    "patient.csv": ["PATID", "PNR", "ENAMN", "FNAMN", "KON", "AVLIDEN", "SKYDD", "POSTNR", "KOMMUN"],
    "kontakt.csv": ["KONTAKTID", "PATID", "KONTAKTTYP", "ENHET", "INDATUM", "UTDATUM", "STATUS"],
    "diagnos.csv": ["KONTAKTID", "DIAGNOSKOD", "DIAGNOSTYP", "REGDATUM"],
    "atgard.csv": ["KONTAKTID", "KVAKOD", "DATUM"],
}
PCS_FILES = ["patients.jsonl", "visits.jsonl", "medications.jsonl", "allergies.jsonl", "labresults.jsonl"]
#: the clinical notes (``clinical-notes.md``): ``pas/anteckning.csv`` and ``pcs/notes.jsonl``
NOTE_HEADER = ["ANTID", "KONTAKTID", "TYP", "SIGNERAD", "TEXT"]
NOTE_KEYS = ["id", "visitId", "type", "signed", "text"]
NOTE_FILES = {"pas/anteckning.csv": NOTE_HEADER, "pcs/notes.jsonl": NOTE_KEYS}

c = pl.col


# ------------------------------------------------------------------------------------------------
# ids and order


def assign_ids(rng: np.random.Generator, n: int, start: int, n_ghosts: int) -> tuple[np.ndarray, np.ndarray]:
    """Increasing ids with gaps, and ``n_ghosts`` unused ids from those gaps (orphans' parents)."""
    ids = start + np.cumsum(rng.integers(1, 4, n))
    lo = start + 1
    hi = int(ids[-1]) if n else start + 1
    used = np.zeros(hi - lo + 1, dtype=bool)
    used[ids - lo] = True
    free = np.flatnonzero(~used) + lo
    if len(free) < n_ghosts:
        free = np.concatenate([free, hi + 1 + np.arange(n_ghosts - len(free))])
    ghosts = free[np.sort(rng.choice(len(free), n_ghosts, replace=False))] if n_ghosts else free[:0]
    return ids, rng.permutation(ghosts)


def _parent_ids(df: pl.DataFrame, id_of_key: np.ndarray, ghost_ids: np.ndarray) -> np.ndarray:
    """The parent's external id per row: a ghost's id for orphans, -1 for an empty parent id."""
    pk = df["_pk"].to_numpy()
    out = np.full(len(pk), -1, dtype=np.int64)
    real = pk >= 0
    out[real] = id_of_key[pk[real]]
    if "_ghost" in df.columns:
        g = df["_ghost"].to_numpy()
        out[g >= 0] = ghost_ids[g[g >= 0]]
    return out


def _parent_text(df: pl.DataFrame, id_text: pl.Series, ghost_text: pl.Series) -> pl.Series:
    """The parent's external id per row as text (gathered, not formatted again); empty for none."""
    pk = df["_pk"].to_numpy()
    g = df["_ghost"].to_numpy() if "_ghost" in df.columns else np.full(len(pk), -1)
    n, ng = len(id_text), len(ghost_text)
    idx = np.where(pk >= 0, pk, np.where(g >= 0, n + g, n + ng))
    return pl.concat([id_text, ghost_text, pl.Series([""], dtype=pl.String)]).gather(idx)


def _diagnoses_text(vdx: pl.DataFrame, n_visits: int) -> pl.Series:
    """Per visit key, the JSON elements of its diagnoses joined by ", " (empty for none).

    The elements are put in visit order with ", " after all but a visit's last, so the text of visit
    ``k`` is one contiguous slice of their Arrow buffer: the result shares that buffer, with offsets
    of its own (no group-by, no copy).
    """
    pk = vdx["_pk"].to_numpy()
    order = np.argsort(pk, kind="stable")
    pk = pk[order]
    last = np.ones(len(pk), dtype=bool)
    last[:-1] = pk[1:] != pk[:-1]
    text = vdx[order].select(_DX_ELEMENT + pl.when(pl.lit(pl.Series(last))).then(pl.lit("")).otherwise(pl.lit(", ")))
    arr: Any = text.to_series().to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) == 0:
        return pl.repeat("", n_visits, dtype=pl.String, eager=True)
    arr = arr.cast(pa.large_string())
    _, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
    starts = off[np.searchsorted(pk, np.arange(n_visits + 1), side="left")]
    joined = pa.LargeStringArray.from_buffers(n_visits, pa.py_buffer(starts.astype(np.int64)), data)
    return pl.Series(pl.from_arrow(joined))


def _id_text(ids: np.ndarray, prefix: str = "", width: int = 0) -> pl.Series:
    """Ids as text (``prefix`` + zero-padded to ``width``); empty for -1 (no parent)."""
    txt = pl.Series(ids).cast(pl.String)
    if width:
        txt = txt.str.zfill(width)
    if prefix:
        txt = prefix + txt
    if len(ids) and ids.min() < 0:
        txt = txt.zip_with(pl.Series(ids >= 0), pl.repeat("", len(ids), dtype=pl.String, eager=True))
    return txt


def _file_order(first: np.ndarray) -> np.ndarray:
    """The keys in file order: by ``first``, then by key (the permutation file position -> key)."""
    bits = max(1, len(first)).bit_length()
    return np.argsort((first.astype(np.int64) << bits) + np.arange(len(first), dtype=np.int64))


# ------------------------------------------------------------------------------------------------
# lines and bytes: one flat concat_str per line (quotes and separators as literals), so polars makes
# each line in one pass; a column is escaped, quoted or null-filled only where its values need it


_CSV_SPECIAL = [";", '"', "\r", "\n"]
_JSON_SPECIAL = ['"', "\\"]


def _needs(s: pl.Series, special: list[str]) -> bool:
    return bool(s.str.contains_any(special).any())


def _csv_line(df: pl.DataFrame, header: list[str], end: str, always_quoted: tuple[str, ...] = ()) -> pl.Expr:
    """A PAS line: fields quoted when they hold the separator, a quote or a line break (``always_quoted``: always)."""
    parts: list[pl.Expr] = []
    for i, h in enumerate(header):
        e = c(h).fill_null("") if df[h].null_count() else c(h)
        if h in always_quoted:
            e = pl.lit('"') + e.str.replace_all('"', '""', literal=True) + pl.lit('"')
        elif _needs(df[h], _CSV_SPECIAL):
            quoted = pl.lit('"') + e.str.replace_all('"', '""', literal=True) + pl.lit('"')
            e = pl.when(e.str.contains('[;"\r\n]')).then(quoted).otherwise(e)
        parts += [e, pl.lit(";" if i < len(header) - 1 else end)]
    return pl.concat_str(parts)


Json = list[tuple[str, Any]]  # (key, column name | raw JSON expression | nested object)


def _json_parts(df: pl.DataFrame, fields: Json, parts: list[pl.Expr]) -> None:
    for i, (key, val) in enumerate(fields):
        parts.append(pl.lit(("{" if i == 0 else ", ") + f'"{key}": '))
        if isinstance(val, list):
            _json_parts(df, val, parts)
        elif isinstance(val, str):
            e = c(val)
            if _needs(df[val], _JSON_SPECIAL):
                e = e.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
            if df[val].null_count():
                parts.append(pl.concat_str([pl.lit('"'), e, pl.lit('"')]).fill_null(pl.lit("null")))
            else:
                parts += [pl.lit('"'), e, pl.lit('"')]
        else:
            parts.append(val)
    parts.append(pl.lit("}"))


def _json_line(df: pl.DataFrame, fields: Json) -> pl.Expr:
    parts: list[pl.Expr] = []
    _json_parts(df, fields, parts)
    parts.append(pl.lit("\n"))
    return pl.concat_str(parts)


def _jb(e: pl.Expr) -> pl.Expr:
    return pl.when(e).then(pl.lit("true")).otherwise(pl.lit("false"))


def _break_csv(line: str, how: str) -> str:
    if how == "extra":
        return line + ";X"
    if how == "drop_typ":  # ANTID;KONTAKTID;TYP;SIGNERAD;"TEXT" -> ANTID;KONTAKTID;SIGNERAD;TEXT (a plain text)
        f = line.split(";")
        return ";".join([f[0], f[1], f[3], f[4].strip('"')])
    return line.rsplit(";", int(how[len("missing") :]))[0]


def _break_json(line: str, how: str) -> str:
    if how == "truncate":
        return line[: len(line) * 2 // 3]
    if how == "comma":
        return line[:-1] + ", }"
    if how == "single":
        return line.replace('"', "'")
    at = line.find('", "')  # drop the closing quote of the first string value
    return line[:at] + line[at + 1 :] if at > 0 else line[:-1]


def _lines(df: pl.DataFrame, expr: pl.Expr, breaker: Callable[[str, str], str], end: str) -> pl.Series:
    """One text line per row (ending in ``end``); lines with a ``_break`` broken as it says."""
    out = df.select(expr.alias("l"), "_break")
    lines, breaks = out["l"], out["_break"]
    at = breaks.is_not_null().arg_true()
    if len(at):
        old = lines.gather(at).to_list()
        broken = [breaker(x[: -len(end)], b) + end for x, b in zip(old, breaks.gather(at).to_list(), strict=True)]
        lines = lines.scatter(at, pl.Series(broken, dtype=pl.String))
    return lines


def _buffer(lines: pl.Series) -> memoryview:
    """The bytes of all values of a string column, one after the other (UTF-8)."""
    arr: Any = lines.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    if len(arr) == 0:
        return memoryview(b"")
    _, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
    return memoryview(data)[int(off[0]) : int(off[-1])] if data is not None else memoryview(b"")


def _cp1252_table() -> np.ndarray:
    """Windows-1252 byte of each code point below U+10000; 0xFFFF where it has none."""
    table = np.full(0x10000, 0xFFFF, dtype=np.uint16)
    for b in list(range(0x80)) + list(range(0xA0, 0x100)):
        table[b] = b
    for b in range(0x80, 0xA0):  # the letters and signs cp1252 puts where Latin-1 has controls
        try:
            table[ord(bytes([b]).decode("cp1252"))] = b
        except UnicodeDecodeError:
            pass
    return table


_CP1252 = _cp1252_table()


def to_cp1252(data: memoryview) -> bytes | memoryview:
    """UTF-8 bytes as Windows-1252.

    Done on the bytes for the two- and three-byte characters Windows-1252 has (the Latin-1 letters,
    and – € … and the like), through Python's codec otherwise (which raises for a character it lacks).
    """
    a = np.frombuffer(data, dtype=np.uint8)
    high = np.flatnonzero(a >= 0x80)
    if not len(high):
        return data
    lead = high[a[high] >= 0xC0]
    two = lead[a[lead] < 0xE0]
    three = lead[(a[lead] >= 0xE0) & (a[lead] < 0xF0)]
    if 2 * len(two) + 3 * len(three) != len(high) or len(two) + len(three) != len(lead):  # not well-formed
        return bytes(data).decode("utf-8").encode("cp1252")
    end = len(a) - 1
    cp2 = (a[two].astype(np.int64) & 0x1F) << 6 | (a[np.minimum(two + 1, end)] & 0x3F)
    cp3 = (a[three].astype(np.int64) & 0x0F) << 12 | (a[np.minimum(three + 1, end)] & 0x3F).astype(np.int64) << 6
    cp3 |= a[np.minimum(three + 2, end)] & 0x3F
    b2, b3 = _CP1252[cp2], _CP1252[cp3]
    if bool(np.any(b2 == 0xFFFF)) or bool(np.any(b3 == 0xFFFF)):
        return bytes(data).decode("utf-8").encode("cp1252")
    out = a.copy()
    out[two + 1] = b2
    out[three + 2] = b3
    keep = np.ones(len(a), dtype=bool)
    keep[lead] = False
    keep[three + 1] = False
    return out[keep].data


# ------------------------------------------------------------------------------------------------
# the extract


_REFS: dict[str, tuple[str, str, int, pl.Expr]] = {
    # table: (system, file, first data line, source_ref of an unbroken record)
    "pas_patient": ("pas", "patient.csv", 2, pl.lit("pas:patient:") + c("PATID")),
    "kontakt": ("pas", "kontakt.csv", 2, pl.lit("pas:kontakt:") + c("KONTAKTID")),
    "diagnos": (
        "pas",
        "diagnos.csv",
        2,
        pl.concat_str(
            [
                pl.lit("pas:diagnos"),
                c("KONTAKTID"),
                c("DIAGNOSKOD").fill_null("").str.strip_chars(),
                c("DIAGNOSTYP").fill_null("").str.strip_chars(),
            ],
            separator=":",
        ),
    ),
    "atgard": (
        "pas",
        "atgard.csv",
        2,
        pl.concat_str(
            [
                pl.lit("pas:atgard"),
                c("KONTAKTID"),
                c("KVAKOD").fill_null("").str.strip_chars(),
                c("DATUM").fill_null("").str.strip_chars(),
            ],
            separator=":",
        ),
    ),
    "pcs_patient": ("pcs", "patients.jsonl", 1, pl.lit("pcs:patient:") + c("id")),
    "visits": ("pcs", "visits.jsonl", 1, pl.lit("pcs:visit:") + c("id")),
    "vdx": ("pcs", "", 1, pl.lit("pcs:diagnosis:") + c("_vid") + ":" + c("code").fill_null("").str.strip_chars()),
    "medications": ("pcs", "medications.jsonl", 1, pl.lit("pcs:medication:") + c("id")),
    "allergies": ("pcs", "allergies.jsonl", 1, pl.lit("pcs:allergy:") + c("id")),
    "labresults": ("pcs", "labresults.jsonl", 1, pl.lit("pcs:labresult:") + c("id")),
    "anteckning": ("pas", "anteckning.csv", 2, pl.lit("pas:anteckning:") + c("ANTID")),
    "notes": ("pcs", "notes.jsonl", 1, pl.lit("pcs:note:") + c("id")),
}


_CHUNK_BYTES = 16 << 20  # about this much of a table is made into lines and written at a time


class _Out:
    """Writes the files and collects the rows written and the source_ref of every defective record.

    A file is written in a background thread while the next one is made.
    """

    def __init__(self, w: World, out_dir: Path) -> None:
        self.w = w
        self.out_dir = out_dir
        self.records: dict[str, int] = {}
        self.wanted: dict[str, list[np.ndarray]] = {}
        for _, hits in w.hits:
            self.wanted.setdefault(hits.table, []).append(hits.keys)
        self.refs: dict[tuple[str, int], str] = {}
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: list[Future[None]] = []

    def _write(self, rel: str, head: bytes, body: memoryview, cp1252: bool, append: bool) -> None:
        with open(self.out_dir / rel, "ab" if append else "wb") as f:
            f.write(head)
            f.write(to_cp1252(body) if cp1252 else body)

    def write(
        self,
        rel: str,
        head: bytes,
        df: pl.DataFrame,
        line: pl.Expr,
        broken: tuple[Callable[[str, str], str], str],
        order: np.ndarray | None,
        cp1252: bool,
    ) -> None:
        """Write ``df``'s lines in file order, a chunk at a time (one chunk made while the one before is written).

        A chunk is about ``_CHUNK_BYTES`` of the table (2,000-200,000 records), so long texts never
        have more than a few copies of themselves in memory.
        """
        self.records[rel] = df.height
        per_row = df.estimated_size() // max(df.height, 1)
        rows = int(np.clip(_CHUNK_BYTES // max(per_row, 1), 2_000, 200_000))
        last: Future[None] | None = None
        for s in range(0, max(df.height, 1), rows):
            if order is not None:
                part = df[order[s : s + rows]]
            else:
                part = df if df.height <= rows else df.slice(s, rows)
            body = _buffer(_lines(part, line, *broken))
            if last is not None:
                last.result()
            last = self.pool.submit(self._write, rel, b"" if s else head, body, cp1252, s > 0)
            self.pending.append(last)

    def close(self) -> None:
        """Wait for the files (an OSError of a write is raised here)."""
        self.pool.shutdown(wait=True)
        for f in self.pending:
            f.result()

    def pas(self, fname: str, df: pl.DataFrame, order: np.ndarray | None, always_quoted: tuple[str, ...] = ()) -> None:
        header = PAS_HEADERS.get(fname) or NOTE_FILES[f"pas/{fname}"]
        head = (";".join(header) + "\r\n").encode("cp1252")
        line = _csv_line(df, header, "\r\n", always_quoted)
        self.write(f"pas/{fname}", head, df, line, (_break_csv, "\r\n"), order, True)

    def jsonl(self, fname: str, df: pl.DataFrame, fields: Json, order: np.ndarray | None) -> None:
        self.write(f"pcs/{fname}", b"", df, _json_line(df, fields), (_break_json, "\n"), order, False)

    def note_refs(
        self, table: str, df: pl.DataFrame, order: np.ndarray | None, lines: np.ndarray | None = None
    ) -> None:
        """Remember the source_ref of the defective records of ``table`` (``df`` in key order).

        ``lines``: the physical lines each record takes, in key order (else one each).
        """
        if table not in self.wanted:
            return
        keys = np.concatenate(self.wanted[table])
        if order is None:
            pos = keys
        else:
            pos_of_key = np.empty(len(order), dtype=np.int64)
            pos_of_key[order] = np.arange(len(order))
            pos = pos_of_key[keys]
        system, fname, first, ref = _REFS[table]
        if lines is not None:  # the line a record starts on: the lines of the records before it
            in_file = lines if order is None else lines[order]
            pos = (np.cumsum(in_file) - in_file)[pos]
        rows = df[keys].with_columns(pl.Series("_pos", pos + first))
        if "_break" in rows.columns:
            broken = pl.lit(f"{system}:{fname}#") + c("_pos").cast(pl.String)
            ref = pl.when(c("_break").is_not_null()).then(broken).otherwise(ref)
        for k, r in zip(keys.tolist(), rows.select(ref.alias("r"))["r"].to_list(), strict=True):
            self.refs[(table, k)] = r


_PATIENT_JSON: Json = [
    ("id", "id"),
    ("identity", [("type", "id_type"), ("value", "id_value")]),
    ("name", [("family", "family"), ("given", "given")]),
    ("sex", "sex"),
    ("deceased", "deceased"),
    ("protected", _jb(c("protected"))),
    ("address", [("postalCode", "postalCode"), ("municipality", "municipality")]),
]
_VISIT_JSON: Json = [
    *[(k, k) for k in ("id", "patientId", "type", "unitHsaId", "start", "end", "status")],
    ("diagnoses", pl.concat_str([pl.lit("["), c("_dx"), pl.lit("]")])),
]
_SUBSTANCE = (
    pl.when(c("sub_kind") == "atc")
    .then(pl.lit('{"atc": "') + c("sub_value") + pl.lit('"}'))
    .when(c("sub_kind") == "text")
    .then(pl.lit('{"text": "') + c("sub_value") + pl.lit('"}'))
    .when(c("sub_kind") == "empty")
    .then(pl.lit("{}"))
    .otherwise(pl.lit("null"))
)
_ALLERGY_JSON: Json = [
    ("id", "id"),
    ("patientId", "patientId"),
    ("substance", _SUBSTANCE),
    ("severity", "severity"),
    ("recorded", "recorded"),
]
_DX_ELEMENT = pl.concat_str(
    [
        pl.lit('{"code": '),
        pl.concat_str([pl.lit('"'), c("code"), pl.lit('"')]).fill_null(pl.lit("null")),
        pl.lit(', "primary": '),
        _jb(c("primary")),
        pl.lit("}"),
    ]
)


_JSON_ESCAPES = (["\\", '"', "\n", "\r", "\t"], ["\\\\", '\\"', "\\n", "\\r", "\\t"])
_NOTE_JSON: Json = [
    ("id", "id"),
    ("visitId", "visitId"),
    ("type", "type"),
    ("signed", "signed"),
    ("text", pl.concat_str([pl.lit('"'), c("text").str.replace_many(*_JSON_ESCAPES), pl.lit('"')])),
]


def _plain(*keys: str) -> Json:
    return [(k, k) for k in keys]


def write_extract(w: World, pas: pl.DataFrame, pcs: pl.DataFrame, out_dir: Path) -> tuple[dict[str, int], int]:
    """Write ``pas/``, ``pcs/`` and ``defects.csv`` under ``out_dir``; (rows per file, defects listed)."""
    out = _Out(w, out_dir)
    try:
        _write_all(w, out, pas, pcs)
    finally:
        out.close()
    return out.records, _write_truth(w, out, out_dir)


def _write_all(w: World, out: _Out, pas: pl.DataFrame, pcs: pl.DataFrame) -> None:
    r = w.rng
    # PAS: patients in record order, contacts by start, their rows by contact
    patid, ghost_patid = assign_ids(r, pas.height, 100_000, w.ghosts["pas_patient"])
    pas = pas.with_columns(_id_text(patid).alias("PATID"))
    out.pas("patient.csv", pas, None)
    out.note_refs("pas_patient", pas, None)
    kc = w.take("kontakt")
    order = _file_order(kc["_sort"].to_numpy())
    kid, ghost_kid = assign_ids(r, kc.height, 5_000_000, w.ghosts["kontakt"])
    kid_of_key = np.empty(kc.height, dtype=np.int64)
    kid_of_key[order] = kid
    kid_text = _id_text(kid_of_key)
    kc = kc.with_columns(
        kid_text.alias("KONTAKTID"), _parent_text(kc, pas["PATID"], _id_text(ghost_patid)).alias("PATID")
    )
    out.pas("kontakt.csv", kc, order)
    out.note_refs("kontakt", kc, order)
    del kc, pas
    for name, fname in (("diagnos", "diagnos.csv"), ("atgard", "atgard.csv")):
        df = w.take(name)
        order = _file_order(_parent_ids(df, kid_of_key, ghost_kid))
        df = df.with_columns(_parent_text(df, kid_text, _id_text(ghost_kid)).alias("KONTAKTID"))
        out.pas(fname, df, order)
        out.note_refs(name, df, order)
        del df
    # notes by contact, ANTID in file order
    df = w.take("anteckning")
    order = _file_order(_parent_ids(df, kid_of_key, ghost_kid))
    antid, _ = assign_ids(r, df.height, 20_000_000, 0)
    antid_of_key = np.empty(df.height, dtype=np.int64)
    antid_of_key[order] = antid
    df = df.with_columns(
        _id_text(antid_of_key).alias("ANTID"), _parent_text(df, kid_text, _id_text(ghost_kid)).alias("KONTAKTID")
    )
    out.pas("anteckning.csv", df, order, always_quoted=("TEXT",))
    if "anteckning" in out.wanted:
        lines = df["TEXT"].fill_null("").str.count_matches("\r\n", literal=True).to_numpy().astype(np.int64) + 1
        out.note_refs("anteckning", df, order, lines)
    del df

    # PCS: patients in record order, the rest by time
    pid, ghost_pid = assign_ids(r, pcs.height, 1_000, w.ghosts["pcs_patient"])
    pcs = pcs.with_columns(_id_text(pid, "P-", 7).alias("id"))
    out.jsonl("patients.jsonl", pcs, _PATIENT_JSON, None)
    out.note_refs("pcs_patient", pcs, None)
    pid_text, ghost_pid_text = pcs["id"], _id_text(ghost_pid, "P-", 7)
    del pcs
    vid_text = ghost_vid_text = pl.Series([], dtype=pl.String)
    for name, prefix, start, fields in (
        ("visits", "V", 100_000, _VISIT_JSON),
        ("medications", "M", 10_000, _plain("id", "patientId", "atc", "name", "dose", "start", "end")),
        ("allergies", "A", 1_000, _ALLERGY_JSON),
        ("labresults", "L", 100_000, _plain("id", "patientId", "npu", "value", "unit", "taken")),
        ("notes", "N", 10, _NOTE_JSON),
    ):
        df = w.take(name)
        order = _file_order(df["_sort"].to_numpy())
        ids, ghost_ids = assign_ids(r, df.height, start, w.ghosts.get(name, 0))
        id_of_key = np.empty(df.height, dtype=np.int64)
        id_of_key[order] = ids
        id_text = _id_text(id_of_key, f"{prefix}-", 8)
        if name == "notes":  # on a visit
            df = df.with_columns(id_text.alias("id"), _parent_text(df, vid_text, ghost_vid_text).alias("visitId"))
        else:
            df = df.with_columns(id_text.alias("id"), _parent_text(df, pid_text, ghost_pid_text).alias("patientId"))
        if name == "visits":
            vid_text, ghost_vid_text = id_text, _id_text(ghost_ids, f"{prefix}-", 8)
            vdx = w.take("vdx")
            df = df.with_columns(_diagnoses_text(vdx, df.height).alias("_dx"))
            if "vdx" in out.wanted:
                out.note_refs("vdx", vdx.with_columns(id_text.gather(vdx["_pk"].to_numpy()).alias("_vid")), None)
        out.jsonl(f"{name}.jsonl", df, fields, order)
        out.note_refs(name, df, order)
        del df


def _write_truth(w: World, out: _Out, out_dir: Path) -> int:
    text = io.StringIO()
    wr = csv.writer(text, lineterminator="\n")
    wr.writerow(TRUTH_COLUMNS)
    n = 0
    for v, hits in w.hits:
        notes = hits.notes or [""] * len(hits.keys)
        for k, note in zip(hits.keys.tolist(), notes, strict=True):
            n += 1
            ref = out.refs[(hits.table, k)]
            # a source defect is never a value_mismatch: no nature
            row = [f"S{n:04d}", "source", v.category, v.entity, ref, "", v.column, "", v.description + note + "."]
            wr.writerow(row)
    (out_dir / "defects.csv").write_bytes(text.getvalue().encode("utf-8"))
    return n
