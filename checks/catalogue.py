"""Every check migcheck runs, declared once: its id, what it is about, who acts on it and how.

A check is a ``Check``: its stable ``id`` (the ``check`` column of a finding), the ``entity`` it
reports on, its ``layer`` (``source``: a rule on the extract's records; ``extract``: a file of the
extract; ``reconcile``: expected against actual target; ``target``: a rule the target must pass on
its own; ``count``: rows per table), its report ``category``, its ``severity`` (a ``row_count``
that matches is ``info``, decided per finding), its ``owner`` (who must act), its ``action`` (a
template rendered per finding, see ``render_action``) and a one-line ``description``.

``REGISTRY`` (id → ``Check``) holds every id that can ever be emitted; families generated from the
schema (target checks per column, counts and reconciliation per table, source rules per entity)
are generated here, and emitters take their ``Check`` from the family dicts (``SOURCE``,
``SCHEMA``, ``EXTRACT_FILE``, ``COUNT``, ``RECONCILE``, ``TARGET``) instead of writing ids.
``checks_run`` says which of them a run performs (the JUnit test cases and the gates).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import polars as pl

from checks import target_schema
from checks.records import FILE_ENTITY, SOURCE_REF
from checks.target_schema import CHUNK_TABLES, CODE_SETS, DATA_TABLES, NOMENCLATURE, REFERENCES, TEXT_BLOBS

if TYPE_CHECKING:
    from checks.mapping import Mappings

#: the report's categories (the contract's ``category`` values), in report order
CATEGORIES = [
    "row_count",
    "missing_in_target",
    "unexpected_in_target",
    "value_mismatch",
    "text_altered",
    "mandatory_missing",
    "invalid_identifier",
    "unmapped_code",
    "invalid_code",
    "duplicate",
    "orphan",
    "implausible",
    "confidentiality",
    "unparseable",
    "missing_in_archive",
    "archive_altered",
]
#: the categories of the load rules' warnings (the record loads as it stands); every other is an error
CATEGORY_SEVERITY = {"duplicate": "warning", "implausible": "warning"}
LAYERS = ("source", "extract", "reconcile", "target", "count", "archive")


@dataclass(frozen=True)
class OwnerGroup:
    """Who must act on a group of findings, and how the report and the worklists present it."""

    label: str  # how an action names the owner: every action of its checks begins so
    title: str  # the report's tab title
    report_text: str  # who acts, in the report
    worklist_text: str  # what the worklist holds, on its cover sheet

    @property
    def file(self) -> str:
        """The worklist's file name without ``.xlsx`` (``code map`` → ``code-map``)."""
        return self.title.lower().replace(" ", "-")


#: the owner groups, in report order; a check names one by its key
OWNER_GROUPS: dict[str, OwnerGroup] = {
    "source system": OwnerGroup(
        "Source system:",
        "Source system",
        "PAS / PCS data stewards correct the legacy record before the next extract.",
        "Findings the legacy source systems (PAS, PCS) must correct before the next extract.",
    ),
    "code map": OwnerGroup(
        "Code map owner:",
        "Code map",
        "The code-map owner adds or corrects codes in mappings/code_maps/ (see Unmapped codes).",
        "Codes with no mapping or mapped to an inactive value: correct the code maps in mappings/ "
        "(or the code in the source system).",
    ),
    "vendor load": OwnerGroup(
        "Vendor load:",
        "Vendor load",
        "The vendor corrects the load: rows missing, unexpected, changed or inconsistent.",
        "Findings in what the vendor's trial load wrote: the vendor must correct its load.",
    ),
    "archive": OwnerGroup(
        "Archive:",
        "Archive",
        "The migration team archives the extract again (migcheck archive) and keeps the bag untouched.",
        "Legacy records the preservation archive does not hold, or holds changed: archive the extract again.",
    ),
}
#: who must act on a finding, in report order
OWNERS = list(OWNER_GROUPS)
#: how an action names its owner: every action begins so
OWNER_LABEL = {o: g.label for o, g in OWNER_GROUPS.items()}
#: what an action template may name, filled per finding (``render_action``)
PLACEHOLDERS = {
    "system": "the source system of the finding (PAS, PCS)",
    "code_map": "the code map file or nomenclature of the finding's column",
    "column": "the target column of the finding (else 'the value')",
    "field": "the target column of the finding (else 'the line': the whole line cannot be read)",
    "file": "the extract file of the finding's entity and source system",
}
#: the entities with a target table whose records the load rules judge, in load order
SOURCE_TABLES = ["person", "encounter", "diagnosis", "procedure", "orders", "allergy", "clinical_event"]
#: the target tables a mapping file fills, in report order (``mappings/<table>.yaml``)
TABLES = [
    "person",
    "person_alias",
    "encounter",
    "encntr_alias",
    "diagnosis",
    "procedure",
    "orders",
    "allergy",
    "clinical_event",
]
#: the entities of the report, in the order they are shown: the tables, the chunk tables checked in
#: the target, and the records no table is mapped for
ENTITIES = [*TABLES, *sorted(CHUNK_TABLES), "labresult"]
#: the extract files of each entity (one per source system)
FILES_OF: dict[str, list[str]] = {}
for _file, _entity in FILE_ENTITY.items():
    FILES_OF.setdefault(_entity, []).append(_file)


class UndeclaredCheck(LookupError):
    """A finding names a check id ``REGISTRY`` does not declare: a bug in migcheck, not a user error."""


@dataclass(frozen=True)
class Check:
    """One check, declared once."""

    id: str
    entity: str
    layer: str
    category: str
    owner: str
    action: str
    description: str

    @property
    def severity(self) -> str:
        """``error`` or ``warning``, by category (a matching ``row_count`` is ``info`` per finding)."""
        return CATEGORY_SEVERITY.get(self.category, "error")

    def __post_init__(self) -> None:
        named = {f for _, f, _, _ in string.Formatter().parse(self.action) if f is not None}
        problems = [
            f"layer {self.layer!r}" if self.layer not in LAYERS else "",
            f"category {self.category!r}" if self.category not in CATEGORIES else "",
            f"owner {self.owner!r}" if self.owner not in OWNERS else "",
            f"action not beginning {OWNER_LABEL.get(self.owner)!r}"
            if not self.action.startswith(OWNER_LABEL.get(self.owner, "\0"))
            else "",
            f"placeholders {sorted(named - set(PLACEHOLDERS))}" if named - set(PLACEHOLDERS) else "",
            f"id not of entity {self.entity!r}" if not self.id.startswith(self.entity + ".") else "",
            "no description" if not self.description else "",
        ]
        bad = [p for p in problems if p]
        if bad:
            raise ValueError(f"check {self.id}: {', '.join(bad)}")


# ---------------------------------------------------------------------------------------------
# source: the load rules on the extract's records (checks.expected, checks.schemas)

_FIX_RECORD = "Source system: correct this record in {system} before the next extract"
_SOURCE_RULES: dict[str, tuple[str, str, str]] = {
    # category: (owner, action, description)
    "mandatory_missing": (
        "source system",
        _FIX_RECORD,
        "A value the load rules require is missing from the record; the record is rejected.",
    ),
    "unparseable": (
        "source system",
        "Source system: {field} cannot be read; correct it in {system} or in its export",
        "A line of the extract, or a date or time in a record, cannot be read; the record is rejected.",
    ),
    "invalid_identifier": (
        "source system",
        _FIX_RECORD,
        "The identity number is not a valid personnummer, samordningsnummer or reservnummer (or not of "
        "its declared kind); the record is rejected.",
    ),
    "unmapped_code": (
        "code map",
        "Code map owner: add this code to {code_map}, or correct the code in {system}",
        "A legacy code has no mapping in its code map or nomenclature; the record is rejected.",
    ),
    "invalid_code": (
        "code map",
        "Code map owner: map the code to an active value in {code_map}, or close/move the record in {system}",
        "A legacy code maps to an inactive code value or nomenclature row; the record is rejected.",
    ),
    "orphan": (
        "source system",
        _FIX_RECORD,
        "The parent record the record refers to is not in the extract; the record is rejected.",
    ),
}
#: the rules only some entities have: (entity, category) → (owner, action, description)
_SOURCE_SPECIAL: dict[tuple[str, str], tuple[str, str, str]] = {
    ("person", "duplicate"): (
        "source system",
        "Source system: confirm the duplicate patient records are one person (merge in {system}), "
        "or correct the identity number",
        "Records of one system carry the same identity number: they are merged into one person.",
    ),
    ("person", "implausible"): (
        "source system",
        "Source system: check the dates/sex of this record in {system} and correct them if wrong "
        "(it is loaded as it stands)",
        "The person loads, but a date of death lies in the future or the recorded sex contradicts the identity number.",
    ),
    ("encounter", "duplicate"): (
        "source system",
        "Source system: remove the repeated rows of this contact id in {system} (the first row loads)",
        "The same contact id occurs more than once among loaded records: the first row loads.",
    ),
    ("encounter", "implausible"): (
        "source system",
        "Source system: check the dates/sex of this record in {system} and correct them if wrong "
        "(it is loaded as it stands)",
        "The contact loads, but it ends before it starts, starts before the birth or long after the death "
        "of its patient, or at a local time that does not exist.",
    ),
    ("labresult", "unparseable"): (
        "source system",
        _SOURCE_RULES["unparseable"][1],
        "A line of the laboratory results cannot be read.",
    ),
    ("labresult", "unmapped_code"): (
        "code map",
        "Code map owner: map a target table for these records in mappings/, or take them out of scope "
        "in mappings/scope.yaml",
        "Records of a kind no target table is mapped for, and not out of scope (mappings/scope.yaml); they "
        "are rejected.",
    ),
}

SOURCE: dict[tuple[str, str], Check] = {}
for _e in SOURCE_TABLES:
    for _cat, (_owner, _action, _desc) in _SOURCE_RULES.items():
        SOURCE[(_e, _cat)] = Check(f"{_e}.source.{_cat}", _e, "source", _cat, _owner, _action, _desc)
for (_e, _cat), (_owner, _action, _desc) in _SOURCE_SPECIAL.items():
    SOURCE[(_e, _cat)] = Check(f"{_e}.source.{_cat}", _e, "source", _cat, _owner, _action, _desc)

#: the schema checks of the extract (``checks.schemas``): implausible warnings on loaded records
SCHEMA: dict[str, Check] = {
    e: Check(
        f"{e}.source.schema",
        e,
        "source",
        "implausible",
        "source system",
        "Source system: check {column} of this record in {system} and correct it if wrong (it is loaded as it stands)",
        "A field of the loaded record does not have its expected form (a postal code, municipality code, "
        "protection mark, record status or record id).",
    )
    for e in ("person", "encounter")
}


#: records that rely on a code map entry not approved by review (``checks.code_map_review``): one
#: warning per such entry, the load goes ahead as the entry maps
CODE_MAP_REVIEW: dict[str, Check] = {
    e: Check(
        f"{e}.source.code_map_review",
        e,
        "source",
        "implausible",
        "code map",
        "Code map owner: review this entry of {code_map} (approve it, or correct it) in the code-map review worklist",
        "Records rely on a code map entry whose review_state is not approved (unchecked or flagged); they load "
        "as the entry maps them.",
    )
    for e in SOURCE_TABLES
}


# ---------------------------------------------------------------------------------------------
# extract: a file of the extract missing or empty (pipelines.run.validate)

EXTRACT_FILE: dict[str, Check] = {
    e: Check(
        f"{e}.extract.file",
        e,
        "extract",
        "row_count",
        "source system",
        "Source system: deliver {file} in the next extract, with its records (or confirm it is meant to be empty)",
        f"The extract file of the {e} records ({' or '.join(files)}) is missing (error) or empty (info).",
    )
    for e, files in FILES_OF.items()
}


# ---------------------------------------------------------------------------------------------
# count and reconcile: expected against actual target (checks.discrepancies, checks.reconcile)

COUNT: dict[str, Check] = {
    t: Check(
        f"{t}.count",
        t,
        "count",
        "row_count",
        "vendor load",
        "Vendor load: see the missing/unexpected findings of this entity for the rows behind the count",
        f"The {t} rows of each contributor system: as many in the target as expected (info) or not (error).",
    )
    for t in TABLES
}

_RECONCILE_KINDS: dict[str, tuple[str, str]] = {
    # kind: (category, action)
    "missing": ("missing_in_target", "Vendor load: load this record (it passes every load rule)"),
    "unexpected": ("unexpected_in_target", "Vendor load: remove this row, or tell which legacy record it comes from"),
    "value": (
        "value_mismatch",
        "Vendor load: correct {column} to the source value (see message for the nature of the difference)",
    ),
    "confidentiality": (
        "confidentiality",
        "Vendor load: mark the person PROTECTED at once and review who has seen the record",
    ),
    "text": (
        "text_altered",
        "Vendor load: reload the note's text unchanged from the source (see message for what changed; "
        "the note may now say something else than the clinician wrote)",
    ),
}
#: which reconciliation each table has, and what it finds
_RECONCILED: dict[str, dict[str, str]] = {
    "person": {
        "missing": "A person expected from the legacy records is not in the target.",
        "unexpected": "A person in the target that no legacy record accounts for.",
        "value": "A person found in the target differs from its legacy records in a column.",
        "confidentiality": "A person protected in a source system is not marked PROTECTED in the target.",
    },
    "person_alias": {
        "missing": "A person's MRN alias (its legacy patient id) is missing in the target.",
        "unexpected": "An MRN alias in the target that no legacy record accounts for.",
    },
    "encounter": {
        "missing": "An expected encounter is not in the target.",
        "unexpected": "An encounter in the target that no legacy record accounts for, or whose legacy record "
        "is out of scope or rejected, or a second encounter for a legacy record already loaded.",
        "value": "An encounter found in the target differs from its legacy record in a column.",
    },
    "encntr_alias": {
        "missing": "An encounter is loaded without its VISITID alias (found by its content).",
    },
}
for _t in ("diagnosis", "procedure", "orders", "allergy"):
    _RECONCILED[_t] = {
        "missing": f"An expected {_t} row is not in the target (matched on its content).",
        "unexpected": f"A {_t} row in the target that no legacy record accounts for, or one loaded twice.",
        "value": f"A {_t} row found in the target differs from its legacy record in a column.",
    }
_RECONCILED["clinical_event"] = {
    "missing": "An expected note is not in the target (matched by its system and legacy note id).",
    "unexpected": "A note in the target that no legacy note accounts for, or one loaded twice.",
    "value": "A note found in the target differs from its legacy note in its person, encounter, type or signing time.",
    "text": "A note's text in the target (its chunks joined in order) is not word for word the legacy text "
    "under the load rules; the nature says what changed.",
}

RECONCILE: dict[tuple[str, str], Check] = {
    (t, kind): Check(
        f"{t}.reconcile.{kind}",
        t,
        "reconcile",
        _RECONCILE_KINDS[kind][0],
        "vendor load",
        _RECONCILE_KINDS[kind][1],
        desc,
    )
    for t, kinds in _RECONCILED.items()
    for kind, desc in kinds.items()
}


# ---------------------------------------------------------------------------------------------
# target: the checks the target must pass on its own (checks.target_checks), from the schema

#: (entity, rule, column) → Check; rule is not_null, code, nomenclature, orphan or a named rule
TARGET: dict[tuple[str, str, str | None], Check] = {}


def _target(entity: str, rule: str, column: str | None, category: str, action: str, description: str) -> None:
    suffix = f"{rule}.{column}" if rule in ("not_null", "code", "nomenclature", "orphan") else rule
    TARGET[(entity, rule, column)] = Check(
        f"{entity}.target.{suffix}", entity, "target", category, "vendor load", action, description
    )


def _code_action(column: str) -> str:
    return f"Vendor load: use an active code value of the right code set / vocabulary for {column}"


_ORPHAN_ACTION = "Vendor load: the parent row this row refers to does not exist; load the parent or fix the reference"
for _t in DATA_TABLES:
    for _c in target_schema.TABLES[_t]:
        if not _c.nullable and not _c.primary_key:
            _target(
                _t,
                "not_null",
                _c.name,
                "mandatory_missing",
                f"Vendor load: fill {_c.name}",
                f"Every {_t} row must have {_c.name} filled.",
            )
    for (_tt, _col), _cs in CODE_SETS.items():
        if _tt == _t:
            _target(
                _t,
                "code",
                _col,
                "invalid_code",
                _code_action(_col),
                f"{_t}.{_col} must be an active code value of code set {_cs}.",
            )
    for (_tt, _col), _voc in NOMENCLATURE.items():
        if _tt == _t:
            _target(
                _t,
                "nomenclature",
                _col,
                "invalid_code",
                _code_action(_col),
                f"{_t}.{_col} must name an active {_voc} nomenclature row.",
            )
    for (_tt, _col), (_parent, _key) in REFERENCES.items():
        if _tt == _t:
            _target(_t, "orphan", _col, "orphan", _ORPHAN_ACTION, f"{_t}.{_col} must name an existing {_parent} row.")
    if _t == "person":
        _target(
            "person_alias",
            "identity_missing",
            None,
            "mandatory_missing",
            "Vendor load: fill alias",
            "Every person must have an identity alias (personnummer, samordningsnummer or reservnummer).",
        )
    if _t == "person_alias":
        _target(
            "person_alias",
            "identity_duplicate",
            None,
            "duplicate",
            "Vendor load: keep one identity alias per identity value",
            "An identity value must sit on one identity alias only; every later copy is named.",
        )
    if _t in TEXT_BLOBS:
        _blobs = TEXT_BLOBS[_t]
        _target(
            _blobs.table,
            "text_without_chunks",
            None,
            "mandatory_missing",
            f"Vendor load: load the text of this {_t} row into {_blobs.table}",
            f"Every {_t} row must have its text in at least one {_blobs.table} row.",
        )
    if _t in CHUNK_TABLES:
        _target(
            _t,
            "chunk_repeated",
            None,
            "duplicate",
            "Vendor load: keep one chunk per number; remove the repeated chunk",
            "A chunk number may occur once per text; every later copy is named.",
        )
        _target(
            _t,
            "chunk_too_long",
            None,
            "implausible",
            "Vendor load: cut the text into chunks of at most 4000 characters",
            "A text chunk holds at most 4000 characters.",
        )
    if _t == "allergy":
        _target(
            "allergy",
            "substance_exactly_one",
            None,
            "mandatory_missing",
            "Vendor load: fill the mandatory value",
            "An allergy must name its substance exactly once: a nomenclature id or a free text, not neither "
            "and not both.",
        )


# ---------------------------------------------------------------------------------------------
# the registry


# ---------------------------------------------------------------------------------------------
# archive: every legacy record kept in the preservation archive, unchanged (checks.archive)

_REARCHIVE = "Archive: archive the extract again with migcheck archive (the archive must hold every record as read)"
ARCHIVE: dict[tuple[str, str], Check] = {}
for _e in FILES_OF:
    ARCHIVE[(_e, "missing")] = Check(
        f"{_e}.archive.missing",
        _e,
        "archive",
        "missing_in_archive",
        "archive",
        _REARCHIVE,
        f"A legacy {_e} record of the extract is not in the preservation archive (or not as often).",
    )
    ARCHIVE[(_e, "altered")] = Check(
        f"{_e}.archive.altered",
        _e,
        "archive",
        "archive_altered",
        "archive",
        _REARCHIVE,
        f"The preservation archive holds this {_e} record with other bytes than the extract.",
    )
ARCHIVE[("archive", "fixity")] = Check(
    "archive.archive.fixity",
    "archive",
    "archive",
    "archive_altered",
    "archive",
    "Archive: restore the bag from a good copy, or archive the extract again; a bag that fails its fixity "
    "check is no proof",
    "A file of the archive's bag is changed, missing or added (BagIt fixity check).",
)


def _registry() -> dict[str, Check]:
    out: dict[str, Check] = {}
    families = [
        SOURCE.values(),
        SCHEMA.values(),
        CODE_MAP_REVIEW.values(),
        EXTRACT_FILE.values(),
        COUNT.values(),
        RECONCILE.values(),
        ARCHIVE.values(),
    ]
    for c in [c for fam in families for c in fam] + list(TARGET.values()):
        if c.id in out:
            raise ValueError(f"check {c.id} declared twice")
        out[c.id] = c
    return out


#: every check, by id
REGISTRY: dict[str, Check] = _registry()
_OWNER_BY_ID = {i: c.owner for i, c in REGISTRY.items()}
_ACTION_BY_ID = {i: c.action for i, c in REGISTRY.items()}
_LAYER_BY_ID = {i: c.layer for i, c in REGISTRY.items()}


def check(check_id: str) -> Check:
    """The declaration of ``check_id``; ``UndeclaredCheck`` when there is none."""
    try:
        return REGISTRY[check_id]
    except KeyError:
        raise UndeclaredCheck(f"check {check_id!r} is not declared in checks/catalogue.py") from None


def undeclared(check_ids: Iterable[str | None]) -> list[str | None]:
    """The ids among ``check_ids`` that the catalogue does not declare (a null id included)."""
    return sorted({i for i in check_ids if i not in REGISTRY}, key=lambda i: (i is None, i or ""))


@cache
def catalogue_frame() -> pl.DataFrame:
    """The registry as a frame: check, entity, layer, category, severity, owner, action, description."""
    cols = ["check", "entity", "layer", "category", "severity", "owner", "action", "description"]
    fields = ["id", *cols[1:]]
    return pl.DataFrame(
        [tuple(getattr(c, f) for f in fields) for c in REGISTRY.values()],
        schema=cols,
        orient="row",
    )


def owner_of() -> pl.Expr:
    """The owner of each finding's ``check``; null for an id the catalogue does not declare."""
    return pl.col("check").replace_strict(_OWNER_BY_ID, default=None, return_dtype=pl.String)


def layer_of() -> pl.Expr:
    """The layer of each finding's ``check``; null for an id the catalogue does not declare."""
    return pl.col("check").replace_strict(_LAYER_BY_ID, default=None, return_dtype=pl.String)


def render_action(values: Mapping[str, pl.Expr]) -> pl.Expr:
    """Each finding's action: its check's template with every placeholder filled from ``values``.

    ``values``: placeholder → expression over the finding frame (one per name of ``PLACEHOLDERS``);
    a null value renders as empty text. Vectorised: one string replacement per placeholder.
    """
    if set(values) != set(PLACEHOLDERS):
        raise ValueError(f"render_action needs exactly the placeholders {sorted(PLACEHOLDERS)}")
    out = pl.col("check").replace_strict(_ACTION_BY_ID, default=None, return_dtype=pl.String)
    for name in sorted(PLACEHOLDERS):
        out = out.str.replace_all("{" + name + "}", values[name].cast(pl.String).fill_null(""), literal=True)
    return out


def entity_of_records(records: str) -> str:
    """The entity a record kind with no target table is reported as (its file's entity, else labresult)."""
    ext = ".csv" if records.startswith("pas") else ".jsonl"
    return FILE_ENTITY.get(records + ext, "labresult")


def source_checks_run(m: Mappings) -> list[Check]:
    """The source-layer checks the mappings make the rules engine run (``checks.expected``)."""
    run: list[Check] = []
    mapped = {s.records for tm in m.tables.values() for s in tm.sources}
    for e in SOURCE_TABLES:
        tm = m.tables[e]
        cols = [c for s in tm.sources for c in s.columns.values()]
        applies = {
            "mandatory_missing": any(c.mandatory for c in cols)
            or any(s.identity is not None or s.require_one_of for s in tm.sources),
            "unparseable": True,  # any line of any file can be unreadable
            "invalid_identifier": any(s.identity is not None for s in tm.sources),
            "unmapped_code": any(c.code_map is not None or c.nomenclature is not None for c in cols),
            "invalid_code": any(c.code_set is not None or c.nomenclature is not None for c in cols),
            "orphan": any(s.parent is not None for s in tm.sources),
            "duplicate": bool(tm.sources) and (e, "duplicate") in SOURCE,
            "implausible": bool(tm.implausible) and (e, "implausible") in SOURCE,
        }
        run += [SOURCE[(e, cat)] for cat, yes in applies.items() if yes]
        if e in SCHEMA:
            run.append(SCHEMA[e])
        if any(c.code_map is not None for c in cols):
            run.append(CODE_MAP_REVIEW[e])
    # records of a kind no table maps: rejected as unmapped (unless out of scope)
    no_table = {entity_of_records(r) for r in SOURCE_REF if r not in mapped}
    run += [SOURCE[(e, "unmapped_code")] for e in sorted(no_table) if SOURCE[(e, "unmapped_code")] not in run]
    run += [SOURCE[("labresult", "unparseable")]]
    return run


def checks_run(m: Mappings, target_check_ids: Iterable[str]) -> pl.DataFrame:
    """Every check a run performs, findings or not (``check``, ``category``): the JUnit test cases.

    The source rules the mappings apply, every extract file, count and reconciliation, and the
    target checks that ran (``target_check_ids``, none when they were switched off).
    """
    target = [check(i) for i in target_check_ids]
    wrong = [c.id for c in target if c.layer != "target"]
    if wrong:
        raise UndeclaredCheck(f"not target checks: {wrong}")
    run = [
        *source_checks_run(m),
        *EXTRACT_FILE.values(),
        *COUNT.values(),
        *RECONCILE.values(),
        *target,
    ]
    return pl.DataFrame(
        [(c.id, c.category) for c in run], schema={"check": pl.String, "category": pl.String}, orient="row"
    ).unique("check", keep="first", maintain_order=True)
