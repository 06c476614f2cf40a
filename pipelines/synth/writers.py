"""Writing the extract: external ids, file order, PAS cp1252 CSV, PCS JSON Lines, and ``defects.csv``.

Ids are assigned in file order with random gaps; the ids of orphans' missing parents are taken from
those gaps. Every line is built by polars expressions and written straight from the Arrow buffer of
the line column (PAS text turned into Windows-1252 bytes on the way), so no line becomes a Python
string except the few broken ones.
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


def _csv_line(df: pl.DataFrame, header: list[str], end: str) -> pl.Expr:
    """A PAS line: fields quoted only when they hold the separator, a quote or a line break."""
    parts: list[pl.Expr] = []
    for i, h in enumerate(header):
        e = c(h).fill_null("") if df[h].null_count() else c(h)
        if _needs(df[h], _CSV_SPECIAL):
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


def to_cp1252(data: memoryview) -> bytes | memoryview:
    """UTF-8 bytes as Windows-1252.

    Done on the bytes for Latin-1 letters (all the PAS text has), through Python's codec otherwise.
    """
    a = np.frombuffer(data, dtype=np.uint8)
    high = np.flatnonzero(a >= 0x80)
    if not len(high):
        return data
    lead = high[(a[high] == 0xC2) | (a[high] == 0xC3)]
    nxt = a[np.minimum(lead + 1, len(a) - 1)]
    simple = (
        2 * len(lead) == len(high)
        and bool(np.all((nxt >= 0x80) & (nxt < 0xC0)))
        and not bool(np.any((a[lead] == 0xC2) & (nxt < 0xA0)))  # U+0080-U+009F differ in cp1252
    )
    if not simple:
        return bytes(data).decode("utf-8").encode("cp1252")
    out = a.copy()
    out[lead + 1] = np.where(a[lead] == 0xC3, nxt + 0x40, nxt)
    keep = np.ones(len(a), dtype=bool)
    keep[lead] = False
    return out[keep].tobytes()


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
}


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

    def _write(self, rel: str, head: bytes, body: memoryview, cp1252: bool) -> None:
        with open(self.out_dir / rel, "wb") as f:
            f.write(head)
            f.write(to_cp1252(body) if cp1252 else body)

    def write(self, rel: str, head: bytes, lines: pl.Series, cp1252: bool) -> None:
        self.records[rel] = len(lines)
        self.pending.append(self.pool.submit(self._write, rel, head, _buffer(lines), cp1252))

    def close(self) -> None:
        """Wait for the files (an OSError of a write is raised here)."""
        self.pool.shutdown(wait=True)
        for f in self.pending:
            f.result()

    def pas(self, fname: str, df: pl.DataFrame, order: np.ndarray | None) -> None:
        header = PAS_HEADERS[fname]
        lines = _lines(df, _csv_line(df, header, "\r\n"), _break_csv, "\r\n")
        head = (";".join(header) + "\r\n").encode("cp1252")
        self.write(f"pas/{fname}", head, lines if order is None else lines.gather(order), True)

    def jsonl(self, fname: str, df: pl.DataFrame, fields: Json, order: np.ndarray | None) -> None:
        lines = _lines(df, _json_line(df, fields), _break_json, "\n")
        self.write(f"pcs/{fname}", b"", lines if order is None else lines.gather(order), False)

    def note_refs(self, table: str, df: pl.DataFrame, order: np.ndarray | None) -> None:
        """Remember the source_ref of the defective records of ``table`` (``df`` in key order)."""
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

    # PCS: patients in record order, the rest by time
    pid, ghost_pid = assign_ids(r, pcs.height, 1_000, w.ghosts["pcs_patient"])
    pcs = pcs.with_columns(_id_text(pid, "P-", 7).alias("id"))
    out.jsonl("patients.jsonl", pcs, _PATIENT_JSON, None)
    out.note_refs("pcs_patient", pcs, None)
    pid_text, ghost_pid_text = pcs["id"], _id_text(ghost_pid, "P-", 7)
    del pcs
    for name, prefix, start, fields in (
        ("visits", "V", 100_000, _VISIT_JSON),
        ("medications", "M", 10_000, _plain("id", "patientId", "atc", "name", "dose", "start", "end")),
        ("allergies", "A", 1_000, _ALLERGY_JSON),
        ("labresults", "L", 100_000, _plain("id", "patientId", "npu", "value", "unit", "taken")),
    ):
        df = w.take(name)
        order = _file_order(df["_sort"].to_numpy())
        ids, _ = assign_ids(r, df.height, start, 0)
        id_of_key = np.empty(df.height, dtype=np.int64)
        id_of_key[order] = ids
        id_text = _id_text(id_of_key, f"{prefix}-", 8)
        df = df.with_columns(id_text.alias("id"), _parent_text(df, pid_text, ghost_pid_text).alias("patientId"))
        if name == "visits":
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
