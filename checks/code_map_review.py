"""Code-map review: which entries a load relies on, how far it is covered by approved ones, and the steward's edits.

Every code map entry carries a ``review_state`` (``unchecked``, ``approved``, ``flagged``), its
``reviewer``, ``reviewed_on`` and a ``comment`` (``checks.mapping.read_code_map``). Here:

- ``code_map_usage``: per code map entry (and per unmapped code), how many records of a load look
  their code up through it and the first of them, from the staged records of one part of a run;
  ``merge_usage`` adds the parts of a partitioned run (the same for any number of partitions);
- ``review_findings``: one ``{entity}.source.code_map_review`` warning per entry that records rely
  on and that is not approved (``docs/decisions.md`` D59a);
- ``coverage``: per code map, the share of records whose code maps through an approved entry;
- ``review_rows``: the code-map review worklist (unmapped codes with their candidates, entries not
  approved);
- ``apply_review``: the rows a steward filled in, checked, as the new contents of the code maps.

Pure: frames in, frames out; the files are ``pipelines.io.code_map_review``'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from checks.catalogue import CODE_MAP_REVIEW
from checks.decisions import SheetRow, cell_date, cell_text, is_empty
from checks.expected import CODE_LABELS
from checks.findings import FINDING_SCHEMA
from checks.mapping import CODE_MAP_COLUMNS, REVIEW_STATES, ColumnMap, Mappings, SourceMap
from checks.suggest import raw_codes
from checks.transforms import TRANSFORMS

USAGE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "code_map": pl.String,
    "entity": pl.String,
    "source_system": pl.String,
    "column": pl.String,
    "code": pl.String,  # the code as the map looks it up ("" for an empty code an entry maps)
    "state": pl.String,  # the entry's review_state; null: no entry (unmapped)
    "records": pl.Int64,
    "first_ref": pl.String,  # the first record holding it, in extract order
    "_kind": pl.String,
    "_line": pl.Int64,
}
#: the code-map review worklist: what the steward reads, then what the steward fills in
REVIEW_DATA_COLUMNS = [
    "kind",
    "code_map",
    "entity",
    "source_system",
    "column",
    "source_code",
    "records",
    "candidates",
    "mapped_to",
    "current_state",
    "current_review",
]
REVIEW_STEWARD_COLUMNS = ["target_cdf_meaning", "review_state", "reviewer", "reviewed_on", "comment"]
REVIEW_ROW_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    **{c: pl.String for c in REVIEW_DATA_COLUMNS},
    "records": pl.Int64,
    **{c: pl.String for c in REVIEW_STEWARD_COLUMNS},
}


@dataclass(frozen=True)
class _Coded:
    """A target column whose legacy code is looked up through a code map."""

    code_map: str
    table: str
    system: str
    column: str
    src: SourceMap
    cm: ColumnMap


def _coded_columns(m: Mappings) -> list[_Coded]:
    return [
        _Coded(cm.code_map, table, src.system, col, src, cm)
        for table, tm in m.tables.items()
        for src in tm.sources
        for col, cm in src.columns.items()
        if cm.code_map is not None and cm.source is not None
    ]


def code_map_usage(
    staged: dict[str, pl.DataFrame], m: Mappings, frames: dict[str, pl.DataFrame] | None = None
) -> pl.DataFrame:
    """Per code map entry (and unmapped code) of every coded column: records relying on it, the first of them.

    ``staged``: the staged records of one part of a run (``Expected.staged``), each with its
    ``disposition``; records out of scope rely on nothing and a record with no code is not
    counted. ``frames``: the extract frames of that part, for a raw code the staged records no
    longer hold (persons).
    """
    parts = []
    for c in _coded_columns(m):
        st = staged.get(c.src.records)
        if st is None or st.height == 0:
            continue
        raw = raw_codes(st, c.src, c.column, frames)
        if raw is None:
            continue
        cmap = m.code_maps[c.code_map]
        key = TRANSFORMS[c.cm.transform](pl.col("_raw"), c.cm).value
        if "" in set(cmap["source_code"].to_list()):
            key = key.fill_null("")
        entries = cmap.select(pl.col("source_code").alias("code"), pl.col("review_state").alias("state")).unique(
            "code", keep="last", maintain_order=True
        )
        df = (
            st.select(
                pl.col("disposition") if "disposition" in st.columns else pl.lit("expected").alias("disposition"),
                pl.col("source_ref").cast(pl.String),
                (pl.col("_line") if "_line" in st.columns else pl.int_range(pl.len())).cast(pl.Int64).alias("_line"),
            )
            .with_columns(raw.alias("_raw"))
            .filter(pl.col("disposition") != "out_of_scope")
            .with_columns(key.cast(pl.String).alias("code"))
            .filter(pl.col("code").is_not_null())
            .join(entries, on="code", how="left", maintain_order="left")
        )
        if df.height == 0:
            continue
        agg = (
            df.sort("_line")
            .group_by("code", "state", maintain_order=True)
            .agg(
                pl.len().cast(pl.Int64).alias("records"),
                pl.col("source_ref").first().alias("first_ref"),
                pl.col("_line").first(),
            )
            .with_columns(
                pl.lit(c.code_map).alias("code_map"),
                pl.lit(c.table).alias("entity"),
                pl.lit(c.system).alias("source_system"),
                pl.lit(c.column).alias("column"),
                pl.lit(c.src.records).alias("_kind"),
            )
        )
        parts.append(agg.select(list(USAGE_SCHEMA)).cast(USAGE_SCHEMA))  # type: ignore[arg-type]
    return merge_usage(parts)


def merge_usage(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The usage of several parts of a run as one: records added up, the first record of all."""
    frames = [p for p in parts if p.height]
    if not frames:
        return pl.DataFrame(schema=USAGE_SCHEMA)
    keys = ["code_map", "entity", "source_system", "column", "code", "state"]
    return (
        pl.concat(frames, how="vertical_relaxed")
        .sort("_kind", "_line")
        .group_by(keys, maintain_order=True)
        .agg(pl.col("records").sum(), pl.col("first_ref").first(), pl.col("_kind").first(), pl.col("_line").first())
        .sort("code_map", "entity", "source_system", "column", "code", nulls_last=True)
        .select(list(USAGE_SCHEMA))
    )


def _shown(code: str | None) -> str:
    return "(empty)" if not code else code


def review_findings(usage: pl.DataFrame, m: Mappings) -> pl.DataFrame:
    """One warning per code map entry that records rely on and that is not approved (``FINDING_SCHEMA``).

    Named by the first record relying on it (``source_ref``), the target column, the map file, the
    code, what it maps to and its state; ``implausible`` (the contract's warning category): the
    records load as the entry maps them.
    """
    rows = []
    pending = usage.filter(pl.col("state").is_not_null() & (pl.col("state") != "approved"))
    for r in pending.iter_rows(named=True):
        cmap = m.code_maps[r["code_map"]]
        meaning = cmap.filter(pl.col("source_code") == r["code"])["target_cdf_meaning"]
        target = meaning[-1] if meaning.len() else None
        path = f"mappings/code_maps/{r['code_map']}.csv"
        label = CODE_LABELS.get((r["entity"], r["column"]), r["column"])
        n = r["records"]
        chk = CODE_MAP_REVIEW[r["entity"]]
        rows.append(
            {
                "check": chk.id,
                "category": chk.category,
                "entity": r["entity"],
                "source_system": r["source_system"],
                "source_ref": r["first_ref"],
                "target_ref": None,
                "column": r["column"],
                "expected": f"an approved entry of {path}",
                "actual": f"{_shown(r['code'])} → {target} ({r['state']})",
                "nature": None,
                "message": f"{label} code '{_shown(r['code'])}' maps to {target} through an entry of {path} that is "
                f"{r['state']}, not approved; {n} record{'s rely' if n != 1 else ' relies'} on it",
            }
        )
    return pl.DataFrame(rows, schema=FINDING_SCHEMA)


def coverage(usage: pl.DataFrame, m: Mappings) -> list[dict]:
    """Per code map (file name order): records with a code, by the state of their entry, and the approved share.

    ``coverage`` is ``approved / records`` (four decimals), null when no record has a code.
    """
    out = []
    for name in sorted(m.code_maps):
        u = usage.filter(pl.col("code_map") == name)
        by = {s: int(n) for s, n in u.group_by("state").agg(pl.col("records").sum()).iter_rows() if s is not None}
        unmapped = int(u.filter(pl.col("state").is_null())["records"].sum())
        records = sum(by.values()) + unmapped
        approved = by.get("approved", 0)
        out.append(
            {
                "code_map": name,
                "records": records,
                "approved": approved,
                "unchecked": by.get("unchecked", 0),
                "flagged": by.get("flagged", 0),
                "unmapped": unmapped,
                "coverage": round(approved / records, 4) if records else None,
            }
        )
    return out


def _review_text(e: dict) -> str | None:
    """An entry's review in words: ``by unit steward on 2026-10-01: two wards share this code``."""
    parts = [f"by {e['reviewer']}" if e["reviewer"] else "", f"on {e['reviewed_on']}" if e["reviewed_on"] else ""]
    head = " ".join(p for p in parts if p)
    text = f"{head}: {e['comment']}" if head and e["comment"] else head or e["comment"]
    return text or None


def review_rows(unmapped: pl.DataFrame, usage: pl.DataFrame, m: Mappings) -> pl.DataFrame:
    """The code-map review worklist: every unmapped code of a code-mapped column, then every entry not approved.

    ``unmapped``: ``checks.suggest.rank_unmapped`` (codes of a nomenclature or of records no table
    maps are not a code map's and stay out). An entry shows its meaning (``mapped_to``), state and
    review (``current_review``: by whom, when, the comment); the steward's columns are left empty,
    so a row left as it is changes nothing, whatever happens to the map meanwhile.
    """
    coded = _coded_columns(m)
    where = {(c.table, c.system, c.column): c.code_map for c in coded}
    first_use: dict[str, tuple[str | None, str | None, str | None]] = {}
    for c in coded:
        first_use.setdefault(c.code_map, (c.table, c.system, c.column))
    rows = []
    for r in unmapped.iter_rows(named=True):
        name = where.get((r["entity"], r["source_system"], r["column"]))
        if name is None:
            continue
        rows.append(
            {
                "kind": "unmapped",
                "code_map": name,
                "entity": r["entity"],
                "source_system": r["source_system"],
                "column": r["column"],
                "source_code": r["code"] or "",
                "records": r["count"],
                "candidates": " | ".join(r["candidates"] or []),
            }
        )
    used = {(r["code_map"], r["code"]): r for r in usage.filter(pl.col("state").is_not_null()).iter_rows(named=True)}
    entries = []
    for name in sorted(m.code_maps):
        for e in m.code_maps[name].filter(pl.col("review_state") != "approved").iter_rows(named=True):
            u = used.get((name, e["source_code"]))
            ent, system, col = (
                (u["entity"], u["source_system"], u["column"]) if u else first_use.get(name, (None, None, None))
            )
            entries.append(
                {
                    "kind": "entry",
                    "code_map": name,
                    "entity": ent,
                    "source_system": system,
                    "column": col,
                    "source_code": e["source_code"],
                    "records": u["records"] if u else 0,
                    "mapped_to": e["target_cdf_meaning"],
                    "current_state": e["review_state"],
                    "current_review": _review_text(e),
                }
            )
    entries.sort(key=lambda x: (-x["records"], x["code_map"], x["source_code"]))
    out = pl.DataFrame(rows + entries, schema=REVIEW_ROW_SCHEMA, orient="row") if rows or entries else None
    return out if out is not None else pl.DataFrame(schema=REVIEW_ROW_SCHEMA)


# ---------------------------------------------------------------------------------------------
# importing the steward's rows


@dataclass(frozen=True)
class ReviewCheck:
    """What the steward's rows make of the code maps: the new contents of each map they change."""

    maps: dict[str, pl.DataFrame]  # name → the whole map (CODE_MAP_COLUMNS), only maps that change
    added: tuple[tuple[str, str], ...]  # (map, source_code)
    updated: tuple[tuple[str, str], ...]
    problems: tuple[str, ...]


def _code_sets(m: Mappings) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for c in _coded_columns(m):
        if c.cm.code_set is not None:
            out.setdefault(c.code_map, set()).add(c.cm.code_set)
    return out


def _review_entry(row: SheetRow, m: Mappings, as_of: dt.date) -> tuple[dict | None, list[str]]:
    """The entry a steward's row asks for, or why it cannot be; (None, []) for a row that asks nothing."""
    problems: list[str] = []
    v: dict[str, str | None] = {}
    for col in ("code_map", "source_code", "target_cdf_meaning", "review_state", "reviewer", "comment"):
        v[col], p = cell_text(row.values.get(col), col)
        if p:
            problems.append(p)
    on, p = cell_date(row.values.get("reviewed_on"), "reviewed_on")
    if p:
        problems.append(p)
    asked = [c for c in REVIEW_STEWARD_COLUMNS if not is_empty(row.values.get(c))]
    if not asked:
        return None, []
    if problems:
        return None, problems
    name, meaning = v["code_map"], v["target_cdf_meaning"]
    state = (v["review_state"] or "unchecked").lower()
    if name not in m.code_maps:
        problems.append(f"code_map {name!r} is no code map of {m.root}/code_maps/")
    current = (
        m.code_maps[name].filter(pl.col("source_code") == (v["source_code"] or "")) if name in m.code_maps else None
    )
    if meaning is None and current is not None and current.height:
        meaning = current["target_cdf_meaning"][-1]  # a review of an entry keeps its meaning unless it is given
    elif meaning is None and current is not None:
        problems.append("no target_cdf_meaning (a new entry needs the meaning its code maps to)")
    if state not in REVIEW_STATES:
        problems.append(f"review_state {v['review_state']!r} is not one of {', '.join(REVIEW_STATES)}")
    if state in ("approved", "flagged") and not v["reviewer"]:
        problems.append(f"{state} without reviewer")
    if on is not None and on > as_of:
        problems.append(f"reviewed_on {on.isoformat()} lies in the future")
    if problems:
        return None, problems
    if state != "unchecked" and on is None:
        on = as_of
    return {
        "code_map": name,
        "source_code": v["source_code"] or "",
        "target_cdf_meaning": meaning,
        "review_state": state,
        "reviewer": v["reviewer"],
        "reviewed_on": on.isoformat() if on is not None else None,
        "comment": v["comment"],
    }, []


def apply_review(rows: Sequence[SheetRow], m: Mappings, as_of: dt.date) -> ReviewCheck:
    """The code maps as the steward's review rows make them; every problem one line naming file, sheet and row.

    A row asks for an entry when any of its steward columns is filled: ``target_cdf_meaning``
    must then be an active meaning of the code set of the map's column
    (``mappings/reference/code_value.csv``; an unchanged meaning may stay inactive), and is
    required for a new entry (an existing one keeps its meaning when it is empty);
    ``review_state`` defaults to ``unchecked``; ``approved`` and ``flagged`` need a ``reviewer``
    and take the import's day when ``reviewed_on`` is empty; the review columns given replace the
    entry's review (an empty ``comment`` too). An existing entry is updated in
    place, a new one appended; two rows asking different entries for one code are refused.
    """
    sets = _code_sets(m)
    cv = m.code_value
    meanings = {(r["code_set"], r["cdf_meaning"]): r["active_ind"] for r in cv.iter_rows(named=True)}
    problems: list[str] = []
    wanted: dict[tuple[str, str], tuple[SheetRow, dict]] = {}
    for row in rows:
        entry, found = _review_entry(row, m, as_of)
        problems += [f"{row.where}: {p}" for p in found]
        if entry is None:
            continue
        name, code, meaning = entry["code_map"], entry["source_code"], entry["target_cdf_meaning"]
        current = m.code_maps[name].filter(pl.col("source_code") == code)
        old_meaning = current["target_cdf_meaning"][-1] if current.height else None
        for cs in sorted(sets.get(name, set())):
            active = meanings.get((cs, meaning))
            if active is None:
                problems.append(f"{row.where}: {meaning!r} is no meaning of code set {cs} (reference/code_value.csv)")
            elif active != 1 and meaning != old_meaning:
                problems.append(f"{row.where}: {meaning!r} is an inactive value of code set {cs}; choose an active one")
        key = (name, code)
        if key in wanted and wanted[key][1] != entry:
            problems.append(
                f"{row.where}: {name} code {_shown(code)!r} is reviewed differently in {wanted[key][0].where}"
            )
        wanted.setdefault(key, (row, entry))
    if problems:
        return ReviewCheck({}, (), (), tuple(problems))
    maps: dict[str, pl.DataFrame] = {}
    added, updated = [], []
    for (name, code), (_, entry) in wanted.items():
        cur = maps.get(name, m.code_maps[name])
        new = {c: entry.get(c) for c in CODE_MAP_COLUMNS}
        hit = cur.filter(pl.col("source_code") == code)
        if hit.height:
            old = hit.row(hit.height - 1, named=True)
            if all(old[c] == new[c] for c in CODE_MAP_COLUMNS):
                continue
            cur = cur.with_columns(
                pl.when(pl.col("source_code") == code)
                .then(pl.lit(new[c], dtype=pl.String))
                .otherwise(pl.col(c))
                .alias(c)
                for c in CODE_MAP_COLUMNS
                if c != "source_code"
            )
            updated.append((name, code))
        else:
            cur = pl.concat([cur, pl.DataFrame([new], schema={c: pl.String for c in CODE_MAP_COLUMNS})])
            added.append((name, code))
        maps[name] = cur
    return ReviewCheck(maps, tuple(added), tuple(updated), ())
