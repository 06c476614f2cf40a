"""Unmapped codes with suggestions, so the code map owner can fix ``mappings/`` quickly.

``unmapped_code_suggestions(exp, m)`` takes every record rejected as ``unmapped_code`` (one row per
``unmapped_code`` discrepancy), finds its raw source code through the mapping, counts each code
per (entity, source system, target column), names every record holding it (``source_refs``, all of
them: a steward corrects records, not counts) and ranks candidates with rapidfuzz:

- a code-mapped column (``code_map``): the map's known source codes (``MED1 → SAS_MED1 — SÄS
  Medicinavdelning 1``) and the active values of the target code set that no map entry reaches yet
  (``→ SAS_GER — SÄS Geriatrik``);
- a nomenclature column: the active rows of that vocabulary (``J18.9 — Pneumoni, ospecificerad``),
  the code normalised as the load rules do (ICD-10-SE upper case with a dot after the third
  character, KVÅ/ATC upper case without spaces).

The score mixes code similarity (the whole code, and a code contained in a longer one) with text
similarity of the code against the candidate's meaning and display (``TEL`` → ``Telefonkontakt``).
Only columns with a code map or a nomenclature are read: never a name, identity or postal column.
Pure: frames in, a frame out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Prefix

from checks.expected import Expected
from checks.mapping import ColumnMap, Mappings, SourceMap
from checks.target_schema import VOCABULARY_CODE_SET

SUGGESTION_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "entity": pl.String,
    "source_system": pl.String,
    "column": pl.String,
    "code": pl.String,
    "count": pl.Int64,
    "candidates": pl.List(pl.String),
    "source_refs": pl.List(pl.String),
}
#: target columns that identify a person: never read, whatever the mapping says
PERSONAL_COLUMNS = {"name_last", "name_first", "postal_code", "birth_dt_tm", "identity", "alias"}
#: a candidate scoring below this is no suggestion at all
MIN_SCORE = 20
_CODE_WEIGHT = 0.6  # code score = 0.6 · indel ratio + 0.4 · share of the code that starts the candidate
_WORD_WEIGHT = 0.9  # a word-like code (letters only) found in the candidate's text
_CODE_TEXT_WEIGHT = 0.7  # a code with digits or signs found in the candidate's text
_SHORT_WEIGHT = 0.6  # a one- or two-letter code starting a word of the candidate's text


@dataclass(frozen=True)
class _Candidates:
    codes: list[str]  # the code compared first (source code of a map entry, or the identifier)
    alt_codes: list[str]  # a second code compared (the target meaning), or the same
    texts: list[str]  # meaning and display, compared as text
    labels: list[str]  # what the steward reads


def normalise_code(raw: str, cm: ColumnMap) -> str:
    """The code as the load rules compare it (ICD-10-SE: ``j189`` → ``J18.9``)."""
    u = "".join(raw.split()).upper()
    if cm.nomenclature == "ICD10SE" or cm.transform == "icd10se":
        if "." not in u and len(u) > 3:
            u = f"{u[:3]}.{u[3:]}"
    return u


def _code_map_candidates(cm: ColumnMap, m: Mappings) -> _Candidates:
    if cm.code_map is None:
        raise ValueError("code-map candidates need a column with a code_map")
    cmap = m.code_maps[cm.code_map]
    cv = m.code_value
    if cm.code_set is not None:
        cv = cv.filter(pl.col("code_set") == cm.code_set)
    display = dict(zip(cv["cdf_meaning"].to_list(), cv["display"].to_list(), strict=True))
    active = {k for k, a in zip(cv["cdf_meaning"].to_list(), cv["active_ind"].to_list(), strict=True) if a == 1}
    codes, alts, texts, labels = [], [], [], []
    reached = set()
    for src, meaning in cmap.select("source_code", "target_cdf_meaning").iter_rows():
        if meaning not in active:  # mapping to an inactive value is no fix
            continue
        reached.add(meaning)
        shown = src if src else "(empty)"
        disp = display.get(meaning) or ""
        codes.append((src or "").upper())
        alts.append(meaning.upper())
        texts.append(f"{meaning} {disp}".lower())
        labels.append(f"{shown} → {meaning}" + (f" — {disp}" if disp else ""))
    if cm.code_set is not None:
        for meaning in cv.filter(pl.col("active_ind") == 1)["cdf_meaning"].to_list():
            if meaning in reached:
                continue
            disp = display.get(meaning) or ""
            codes.append(meaning.upper())
            alts.append(meaning.upper())
            texts.append(f"{meaning} {disp}".lower())
            labels.append(f"→ {meaning}" + (f" — {disp}" if disp else ""))
    return _Candidates(codes, alts, texts, labels)


def _nomenclature_candidates(cm: ColumnMap, m: Mappings) -> _Candidates:
    vcd = m.code_value.filter((pl.col("code_set") == VOCABULARY_CODE_SET) & (pl.col("cdf_meaning") == cm.nomenclature))[
        "code_value"
    ]
    if vcd.len() == 0:
        return _Candidates([], [], [], [])
    nom = m.nomenclature.filter((pl.col("source_vocabulary_cd") == vcd[0]) & (pl.col("active_ind") == 1))
    ids = [s or "" for s in nom["source_identifier"].to_list()]
    strings = [s or "" for s in nom["source_string"].to_list()]
    return _Candidates(
        [i.upper() for i in ids],
        [i.upper().replace(".", "") for i in ids],
        [s.lower() for s in strings],
        [f"{i} — {s}" if s else i for i, s in zip(ids, strings, strict=True)],
    )


def _cd(queries: list[str], choices: list[str], scorer) -> np.ndarray:
    return process.cdist(queries, choices, scorer=scorer, dtype=np.float32, workers=1)


def _code_score(queries: list[str], codes: list[str]) -> np.ndarray:
    """Code similarity: the whole code (indel ratio) and how much of the code starts the candidate.

    ``MED9`` ~ ``MED1`` (75), ``J18`` ~ ``J18.9`` (85), ``R99.9`` prefers ``R50.9`` to ``A09.9``.
    """
    qlen = np.array([max(len(q), 1) for q in queries], dtype=np.float32)[:, None]
    prefix = _cd(queries, codes, Prefix.similarity) / qlen * 100
    return _CODE_WEIGHT * _cd(queries, codes, fuzz.ratio) + (1 - _CODE_WEIGHT) * prefix


def _text_score(queries: list[str], texts: list[str]) -> np.ndarray:
    """Text similarity of the code against meaning and display, weighted by how word-like the code is.

    A word-like code is looked up in the text (``TEL`` in ``Telefonkontakt``); a code with digits
    only counts a little; a one- or two-letter code counts where a word starts with it (``K`` →
    ``Kvinna``), never for a letter somewhere inside.
    """
    out = np.zeros((len(queries), len(texts)), dtype=np.float32)
    long_idx = [i for i, q in enumerate(queries) if len(q) >= 3]
    if long_idx:
        part = _cd([queries[i].lower() for i in long_idx], texts, fuzz.partial_ratio)
        w = np.array([_WORD_WEIGHT if queries[i].isalpha() else _CODE_TEXT_WEIGHT for i in long_idx], np.float32)
        out[long_idx] = part * w[:, None]
    words = [[w for w in re.split(r"[\W_]+", t) if w] for t in texts]
    for i, q in enumerate(queries):
        if 0 < len(q) < 3:
            ql = q.lower()
            out[i] = [_SHORT_WEIGHT * 100 if any(w.startswith(ql) for w in ws) else 0 for ws in words]
    return out


def _rank(queries: list[str], cands: _Candidates, limit: int) -> list[list[str]]:
    """The best ``limit`` candidate labels (with their score) per query."""
    if not queries or not cands.codes or limit <= 0:
        return [[] for _ in queries]
    q_code = [q.upper() for q in queries]
    q_nodot = [q.replace(".", "") for q in q_code]
    score = np.maximum(
        np.maximum(_code_score(q_code, cands.codes), _code_score(q_nodot, cands.alt_codes)),
        _text_score(queries, cands.texts),
    )
    score = np.round(score)
    out = []
    for i in range(len(queries)):
        s = score[i]
        order = np.lexsort((np.arange(len(s)), -s))  # best score, then map / nomenclature order
        best = [int(j) for j in order[:limit] if s[j] >= MIN_SCORE]
        out.append([f"{cands.labels[j]} ({int(s[j])})" for j in best])
    return out


def raw_codes(
    staged: pl.DataFrame, src: SourceMap, col: str, frames: dict[str, pl.DataFrame] | None
) -> pl.Series | None:
    """The raw source value of ``col`` for the rows of ``staged``; None when it cannot be found."""
    field = src.columns[col].source
    if field in staged.columns:
        return staged[field].cast(pl.String)
    # staged person records keep only the mapped columns: look the raw field up in the extract
    if frames is None or src.records not in frames:
        return None
    raw = frames[src.records]
    if field not in raw.columns or "source_ref" not in raw.columns:
        return None
    keys = [k for k in ("source_ref", "_line") if k in raw.columns and k in staged.columns]
    looked = staged.select(keys).join(
        raw.select(*keys, pl.col(field).cast(pl.String).alias("_raw")).unique(keys, keep="first"),
        on=keys,
        how="left",
        maintain_order="left",
    )
    return looked["_raw"]


ROWS_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "entity": pl.String,
    "records": pl.String,
    "source_system": pl.String,
    "column": pl.String,
    "code": pl.String,
    "source_ref": pl.String,
    "_row": pl.Int64,
}


def unmapped_code_rows(
    staged: dict[str, pl.DataFrame], m: Mappings, frames: dict[str, pl.DataFrame] | None = None
) -> pl.DataFrame:
    """One row per record rejected as ``unmapped_code``: its raw code and where it stands.

    ``_row`` is the record's position in its extract file (the frames' ``_row`` where a
    partitioned run keeps it, else its position in ``staged``): the rows of several partitions,
    concatenated, rank to what the whole extract gives (``rank_unmapped``).
    """
    parts = []
    for table, tm in m.tables.items():
        for src in tm.sources:
            st = staged.get(src.records)
            if st is None or "_block_cat" not in st.columns or st.height == 0:
                continue
            if "_row" not in st.columns:
                st = st.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"))
            cond = pl.col("_block_cat") == "unmapped_code"
            if "_finding" in st.columns:  # one row per unmapped_code discrepancy
                cond = cond & (pl.col("_finding") == "unmapped_code")
            if "disposition" in st.columns:
                cond = cond & (pl.col("disposition") == "rejected")
            rej = st.filter(cond.fill_null(False))
            if rej.height == 0:
                continue
            for col in rej["_block_col"].drop_nulls().unique().sort().to_list():
                cm = src.columns.get(col)
                if cm is None or cm.source is None or (cm.code_map is None and cm.nomenclature is None):
                    continue
                if col in PERSONAL_COLUMNS or (src.identity is not None and cm.source == src.identity.value):
                    continue
                rows = rej.filter(pl.col("_block_col") == col)
                raw = raw_codes(rows, src, col, frames)
                codes = raw.str.strip_chars() if raw is not None else pl.Series([None] * rows.height, dtype=pl.String)
                refs = (
                    rows["source_ref"].cast(pl.String)
                    if "source_ref" in rows.columns
                    else pl.Series([None] * rows.height, dtype=pl.String)
                )
                parts.append(
                    pl.DataFrame(
                        {
                            "entity": [table] * rows.height,
                            "records": [src.records] * rows.height,
                            "source_system": [src.system] * rows.height,
                            "column": [col] * rows.height,
                            "code": codes,
                            "source_ref": refs,
                            "_row": rows["_row"].cast(pl.Int64),
                        },
                        schema=ROWS_SCHEMA,
                    )
                )
    return pl.concat(parts) if parts else pl.DataFrame(schema=ROWS_SCHEMA)


def rank_unmapped(rows: pl.DataFrame, m: Mappings, limit: int = 3) -> pl.DataFrame:
    """Per unmapped code of ``rows`` (``unmapped_code_rows``): count, records and best candidates."""
    if rows.height == 0:
        return pl.DataFrame(schema=SUGGESTION_SCHEMA)
    sources = {(t, s.records): s for t, tm in m.tables.items() for s in tm.sources}
    counted = (
        rows.sort("_row")
        .group_by("entity", "records", "source_system", "column", "code", maintain_order=True)
        .agg(pl.len().cast(pl.Int64).alias("count"), pl.col("source_ref").drop_nulls().alias("source_refs"))
    )
    ranked: dict[tuple, list[str]] = {}
    groups = counted.select("entity", "records", "column").unique().sort("entity", "records", "column")
    for table, records, col in groups.iter_rows():
        cm = sources[(table, records)].columns[col]
        present = (
            counted.filter((pl.col("records") == records) & (pl.col("column") == col))["code"].drop_nulls().to_list()
        )
        cands = _nomenclature_candidates(cm, m) if cm.nomenclature else _code_map_candidates(cm, m)
        best = _rank([normalise_code(c, cm) for c in present], cands, limit)
        ranked.update({(records, col, c): b for c, b in zip(present, best, strict=True)})
    cands_col = [ranked.get((r, c, k), []) for r, c, k in counted.select("records", "column", "code").iter_rows()]
    return (
        counted.with_columns(pl.Series("candidates", cands_col, dtype=pl.List(pl.String)))
        .select(list(SUGGESTION_SCHEMA))
        .sort(
            ["count", "entity", "source_system", "column", "code"],
            descending=[True, False, False, False, False],
            nulls_last=True,
        )
    )


def unmapped_code_suggestions(
    exp: Expected,
    m: Mappings,
    limit: int = 3,
    frames: dict[str, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Per unmapped code: its count, its records and the best ``limit`` candidates, most frequent first.

    Columns ``entity, source_system, column, code, count, candidates`` (list of
    ``"label (score)"``), ``source_refs`` (list: every record holding the code, in extract order;
    source refs are no personal data). ``frames`` (the extract's frames, optional) is consulted only for a raw
    code the staged records no longer hold; without it such a code is empty (null) with no
    candidates, still counted.
    """
    return rank_unmapped(unmapped_code_rows(exp.staged, m, frames), m, limit)
