"""The declarative mapping: one YAML file per target table, code maps, scope, reference data.

``load_mappings(Path("mappings"))`` reads and validates everything under ``mappings/`` through
typed models that reject unknown keys, naming the file and line of the fault. The rules engine
(``checks.expected``) interprets these declarations; nothing here runs a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from checks.catalogue import TABLES
from checks.errors import MigcheckError
from checks.implausible import RULES as IMPLAUSIBLE
from checks.records import PAS_COLUMNS, PCS_SCHEMAS, SOURCE_REF
from checks.transforms import TRANSFORMS

#: the implausible rules a table may name (``checks.implausible``)
IMPLAUSIBLE_RULES = set(IMPLAUSIBLE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnMap(_Strict):
    """How one target column is filled from a legacy record."""

    source: str | None = Field(None, alias="from")
    from_parent: str | None = None
    const: str | None = None
    transform: str = "text"
    code_map: str | None = None
    code_set: int | None = None
    nomenclature: Literal["ICD10SE", "KVA", "ATC"] | None = None
    mandatory: bool = False
    present: str | None = None
    absent: str | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> ColumnMap:
        origins = [x for x in (self.source, self.from_parent, self.const) if x is not None]
        if len(origins) != 1:
            raise ValueError("give exactly one of from, from_parent, const")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r}; known: {sorted(TRANSFORMS)}")
        if self.transform == "presence" and (self.present is None or self.absent is None):
            raise ValueError("transform presence needs present and absent")
        return self


class Identity(_Strict):
    """Where a patient record holds its identity number (and, for PCS, its declared kind)."""

    value: str
    declared_type: str | None = None


class Parent(_Strict):
    """The legacy record a record hangs under: ``column`` of this record = ``key`` of ``records``."""

    records: str
    column: str
    key: str


class SourceMap(_Strict):
    """One legacy record kind feeding the table."""

    system: Literal["pas", "pcs"]
    records: str
    key: str | None = None
    key_order: Literal["numeric", "text"] = "text"
    parent: Parent | None = None
    identity: Identity | None = None
    protected: ColumnMap | None = None
    require_one_of: list[str] = []
    require_one_of_column: str | None = None
    columns: dict[str, ColumnMap]


class TableMap(_Strict):
    """``mappings/<table>.yaml``: how legacy records become rows of one target table."""

    table: str
    description: str
    sources: list[SourceMap] = []
    implausible: list[str] = []
    match_key: list[str] = []
    derived_from: str | None = None

    @model_validator(mode="after")
    def _known(self) -> TableMap:
        if self.table not in TABLES:
            raise ValueError(f"unknown table {self.table!r}")
        bad = set(self.implausible) - IMPLAUSIBLE_RULES
        if bad:
            raise ValueError(f"unknown implausible rules {sorted(bad)}")
        for s in self.sources:
            if s.records not in SOURCE_REF:
                raise ValueError(f"unknown records {s.records!r}; known: {sorted(SOURCE_REF)}")
        return self


class ScopeRule(_Strict):
    """Records taken out of scope: all of ``records``, or those whose ``column`` is ``in`` a list or ``empty``."""

    records: str
    column: str | None = None
    values: list[str] = Field(default_factory=list, alias="in")
    empty: bool = False
    reason: str

    @model_validator(mode="after")
    def _one_test(self) -> ScopeRule:
        if self.empty and self.values:
            raise ValueError("give either in or empty, not both")
        if (self.empty or self.values) and self.column is None:
            raise ValueError("in and empty need a column")
        return self


class NoteText(_Strict):
    """``mappings/note_text.yaml``: the words whose loss can turn a note's meaning around."""

    negation_words: list[str] = Field(min_length=1)


class Scope(_Strict):
    """``mappings/scope.yaml``."""

    out_of_scope: list[ScopeRule]


@dataclass(frozen=True)
class Mappings:
    """Everything under ``mappings/``, validated."""

    root: Path
    tables: dict[str, TableMap]
    code_maps: dict[str, pl.DataFrame]  # name → CODE_MAP_COLUMNS (source_code, target_cdf_meaning, review)
    code_value: pl.DataFrame
    nomenclature: pl.DataFrame
    scope: Scope
    #: negation words (lower case) whose loss from a note is named first (``checks.note_text``)
    negation_words: frozenset[str] = frozenset()

    def source_columns(self, records: str) -> list[str]:
        """The columns of a record kind's frame."""
        kind, name = records.split("/")
        if kind == "pas":
            return PAS_COLUMNS[name]
        return list(PCS_SCHEMAS.get(name, {}))


def _yaml_line(path: Path, loc: tuple) -> int | None:
    """Line (1-based) of the YAML node at a pydantic error location, if it can be found."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == part:
                    nxt, line = v, k.start_mark.line + 1
                    break
            if nxt is None:
                return line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


_Model = TypeVar("_Model", bound=BaseModel)


def load_yaml_model(path: Path, model: type[_Model]) -> _Model:
    """A YAML file validated by a typed model; a fault names the file and line."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise MigcheckError(f"{path}: mapping file missing") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise MigcheckError(f"{path}{where}: not valid YAML") from e
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        line = _yaml_line(path, tuple(err["loc"]))
        where = f" line {line}" if line else ""
        loc = ".".join(str(p) for p in err["loc"])
        raise MigcheckError(f"{path}{where}: {loc}: {err['msg']}") from e


def _read_csv(path: Path, schema: dict) -> pl.DataFrame:
    try:
        df = pl.read_csv(path, schema=schema)
    except FileNotFoundError as e:
        raise MigcheckError(f"{path}: file missing") from e
    except Exception as e:  # noqa: BLE001 - polars raises several kinds for a bad CSV
        raise MigcheckError(f"{path}: not a valid CSV with columns {list(schema)}") from e
    # an empty source code is a real key (empty KON means unknown sex)
    return df.with_columns(pl.col(c).fill_null("") for c in ("source_code",) if c in df.columns)


#: the review state of a code map entry (``review_state``): only an approved entry is trusted
REVIEW_STATES = ("unchecked", "approved", "flagged")
#: the columns of a code map: the mapping, then its review (reviewer, ``reviewed_on`` YYYY-MM-DD, comment)
CODE_MAP_COLUMNS = ["source_code", "target_cdf_meaning", "review_state", "reviewer", "reviewed_on", "comment"]


def read_code_map(path: Path) -> pl.DataFrame:
    """One code map with its review columns; a fault names the file and line.

    A file without the review columns (``source_code,target_cdf_meaning`` only) still loads, its
    entries ``unchecked``; so does an entry whose ``review_state`` is empty. ``reviewed_on`` is
    ``YYYY-MM-DD`` or empty. All columns are text.
    """
    try:
        df = pl.read_csv(path, infer_schema=False)
    except FileNotFoundError as e:
        raise MigcheckError(f"{path}: file missing") from e
    except Exception as e:  # noqa: BLE001 - polars raises several kinds for a bad CSV
        raise MigcheckError(f"{path}: not a valid CSV with columns {CODE_MAP_COLUMNS}") from e
    unknown = [c for c in df.columns if c not in CODE_MAP_COLUMNS]
    if unknown or not {"source_code", "target_cdf_meaning"} <= set(df.columns):
        raise MigcheckError(f"{path} line 1: columns must be {', '.join(CODE_MAP_COLUMNS)} (the last four optional)")
    df = df.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in CODE_MAP_COLUMNS if c not in df.columns)
    # an empty source code is a real key (empty KON means unknown sex)
    df = df.select(CODE_MAP_COLUMNS).with_columns(
        pl.col("source_code").fill_null(""),
        pl.col("review_state").str.strip_chars().replace("", None).fill_null("unchecked"),
        pl.col("reviewed_on").str.strip_chars().replace("", None),
    )
    bad_state = df.with_row_index("_i").filter(~pl.col("review_state").is_in(REVIEW_STATES))
    if bad_state.height:
        i, state = bad_state["_i"][0], bad_state["review_state"][0]
        raise MigcheckError(f"{path} line {i + 2}: review_state {state!r} is not one of {', '.join(REVIEW_STATES)}")
    parsed = pl.col("reviewed_on").str.to_date("%Y-%m-%d", strict=False)
    bad_date = df.with_row_index("_i").filter(pl.col("reviewed_on").is_not_null() & parsed.is_null())
    if bad_date.height:
        i, when = bad_date["_i"][0], bad_date["reviewed_on"][0]
        raise MigcheckError(f"{path} line {i + 2}: reviewed_on {when!r} is not a date (YYYY-MM-DD)")
    return df


def load_mappings(root: Path) -> Mappings:
    """Load and cross-check ``mappings/``; a fault is a ``MigcheckError`` naming file and line."""
    root = Path(root)
    if not root.is_dir():
        raise MigcheckError(f"{root}: mappings directory not found")
    tables = {}
    for t in TABLES:
        tm = load_yaml_model(root / f"{t}.yaml", TableMap)
        if tm.table != t:
            raise MigcheckError(f"{root / f'{t}.yaml'}: says table {tm.table!r}, expected {t!r}")
        tables[t] = tm
    code_maps = {p.stem: read_code_map(p) for p in sorted((root / "code_maps").glob("*.csv"))}
    code_value = _read_csv(
        root / "reference" / "code_value.csv",
        {
            "code_value": pl.Int64,
            "code_set": pl.Int64,
            "cdf_meaning": pl.String,
            "display": pl.String,
            "active_ind": pl.Int64,
        },
    )
    nomenclature = _read_csv(
        root / "reference" / "nomenclature.csv",
        {
            "nomenclature_id": pl.Int64,
            "source_vocabulary_cd": pl.Int64,
            "source_identifier": pl.String,
            "source_string": pl.String,
            "active_ind": pl.Int64,
        },
    )
    scope = load_yaml_model(root / "scope.yaml", Scope)
    notes = load_yaml_model(root / "note_text.yaml", NoteText)
    negations = frozenset(w.strip().casefold() for w in notes.negation_words if w.strip())
    m = Mappings(root, tables, code_maps, code_value, nomenclature, scope, negations)
    _cross_check(m)
    return m


#: the tables whose records every other record hangs on (a ``parent:`` names one of their sources)
PARENT_TABLES = ("person", "encounter")


def _cross_check(m: Mappings) -> None:
    from checks.target_schema import columns_of, logical_columns_of

    meanings = {(r["code_set"], r["cdf_meaning"]) for r in m.code_value.iter_rows(named=True)}
    parents = {s.records for t in PARENT_TABLES if t in m.tables for s in m.tables[t].sources}
    for t, tm in m.tables.items():
        path = m.root / f"{t}.yaml"
        for i, s in enumerate(tm.sources):
            # a run partitions by person through these parents (pipelines/run/staging.py)
            if s.parent is not None and t != "person" and s.parent.records not in parents:
                line = _yaml_line(path, ("sources", i, "parent"))
                raise MigcheckError(
                    f"{path}{f' line {line}' if line else ''}: parent {s.parent.records!r} is not a person or "
                    f"encounter record kind ({', '.join(sorted(parents))})"
                )
        known = set(columns_of(t)) | set(logical_columns_of(t))
        for i, s in enumerate(tm.sources):
            for col in s.columns:
                if col not in known:  # identifiers from configuration must be columns of the schema
                    line = _yaml_line(path, ("sources", i, "columns", col))
                    raise MigcheckError(
                        f"{path}{f' line {line}' if line else ''}: {col!r} is no column of target table {t}"
                    )
        for s in tm.sources:
            cols = set(m.source_columns(s.records)) | {
                "identity_type",
                "identity_value",
                "name_family",
                "name_given",
                "postal_code",
                "municipality",
                "substance_atc",
                "substance_text",
                "visit_id",
                "code",
                "primary",
            }
            for name, c in [*s.columns.items(), *([("protected", s.protected)] if s.protected else [])]:
                if c.source is not None and c.source not in cols:
                    raise MigcheckError(f"{path}: column {name}: {s.records} has no field {c.source!r}")
                if c.code_map is not None:
                    if c.code_map not in m.code_maps:
                        raise MigcheckError(f"{path}: column {name}: no code map mappings/code_maps/{c.code_map}.csv")
                    if c.code_set is not None:
                        unknown = [
                            v
                            for v in m.code_maps[c.code_map]["target_cdf_meaning"].to_list()
                            if (c.code_set, v) not in meanings
                        ]
                        if unknown:
                            raise MigcheckError(
                                f"{m.root}/code_maps/{c.code_map}.csv: {unknown[0]!r} is no meaning of code set "
                                f"{c.code_set}"
                            )
                if c.const is not None and c.code_set is not None and (c.code_set, c.const) not in meanings:
                    raise MigcheckError(f"{path}: column {name}: {c.const!r} is no meaning of code set {c.code_set}")
