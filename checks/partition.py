"""Partitions by person: where each record and each target row of a load goes.

A validation cuts a load into partitions by person (``pipelines/run/staging.py``). Persons and
encounters, legacy and target, go by the connected component of their person
(``checks.components``): all that can merge, fold or be matched together. A record goes with its
parent, a target child row with the parent it is matched through. A child
table matched on content (``match_key``) has the source ref of the row's parent (``encounter_ref``
or ``person_ref``) in its key, which the relaxed second pass never relaxes: a row can only ever
match, pair with or be ranked against rows of the same parent. A table matched on an identifier
(notes: system and legacy note id) has none: its target rows follow the expected row of their key
(``keyed_parts``), and nothing is paired on part of the key. So every group that matching looks at
lies inside one partition, and merging the parts of a table (``merge_parts``) gives what
reconciling it whole gives.

Pure polars, no I/O.
"""

from __future__ import annotations

import polars as pl

from checks.components import encounter_node, node, partition_by_node, person_node, record_node
from checks.mapping import SourceMap
from checks.reconcile import EntityFindings

PARENT_REFS = ("encounter_ref", "person_ref")


def parent_ref(key: tuple[str, ...]) -> str:
    """The parent ref of a match key (the column partitions are cut on)."""
    for ref in PARENT_REFS:
        if ref in key:
            return ref
    raise ValueError(f"match key {list(key)} holds no parent ref ({', '.join(PARENT_REFS)})")


def merge_parts(parts: list[EntityFindings]) -> EntityFindings:
    """One entity's findings and counts from those of its partitions (counts add up; findings are concatenated)."""
    if not parts:
        raise ValueError("no parts to merge")
    if len(parts) == 1:
        return parts[0]
    entity = parts[0].entity
    if any(p.entity != entity for p in parts):
        raise ValueError("parts of different entities cannot be merged")
    counts: dict[str, str | int] | None = None
    if parts[0].counts is not None:
        each = [p.counts for p in parts if p.counts is not None]
        if len(each) != len(parts):
            raise ValueError("parts with and without counts cannot be merged")
        counts = {"entity": entity}
        for k in each[0]:
            if k != "entity":
                counts[k] = sum(c[k] for c in each)
    return EntityFindings(entity, pl.concat([p.findings for p in parts], how="vertical_relaxed"), counts)


# --------------------------------------------------------------------------------------------
# partitioned by person: where each record and each target row goes (pipelines/run/staging.py)


def record_route(records: str, src: SourceMap | None, parents: set[str]) -> pl.Expr:
    """The node a legacy record of kind ``records`` is partitioned by (``checks.components``).

    A person or encounter record goes with its own key (whose component ``parent_parts`` knows); a
    record that hangs under a parent with its parent's key (a diagnosis with its encounter's); any
    other by its ref.
    """
    if src is not None and records in parents:
        return record_node(records, pl.col(src.key) if src.key else pl.lit(None, dtype=pl.String))
    if src is not None and src.parent is not None:
        return record_node(src.parent.records, pl.col(src.parent.column))
    return node("src", pl.col("source_ref"))


#: the target node each parent table's rows are partitioned by
TARGET_ROUTES = {
    "person": person_node(pl.col("person_id")),
    "person_alias": person_node(pl.col("person_id")),
    "encounter": encounter_node(pl.col("encntr_id")),
    "encntr_alias": encounter_node(pl.col("encntr_id")),
}


def keyed_parts(records: pl.DataFrame, key: dict[str, pl.Expr]) -> pl.DataFrame:
    """``key`` columns → ``_part`` of routed records whose table is matched on an identifier.

    A table whose match key holds no parent ref (notes: system and legacy note id) is matched on
    that identifier alone, so a target row must go where the expected row of its key went, not by
    the parent the vendor happened to load it on (a note on the wrong encounter is a value
    difference, and must meet its expected row to be found as one). The first record of a key
    decides.
    """
    return records.select(*[e.alias(c) for c, e in key.items()], "_part").unique(
        list(key), keep="first", maintain_order=True
    )


def routed_target(
    tt: pl.DataFrame, key: tuple[str, ...], parts: pl.DataFrame, n: int, keyed: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Target child rows with their partition (``_part``): the component of the parent they are matched through.

    A child row can only match an expected row with the same parent ref (the match key holds it),
    and an expected row goes with its parent; a target encounter (or person) and the legacy one it
    is matched to are in one component (``checks.components``). So an encounter child goes with its
    encounter id, a person child with its person id. A table matched on an identifier (no parent
    ref in its key) goes by ``keyed`` (``keyed_parts``): where the expected row of its key went; a
    row whose key no record holds goes by its parent as above.
    """
    if any(r in key for r in PARENT_REFS):
        ref = parent_ref(key)
    else:
        ref = "encounter_ref" if "encounter_ref" in tt.columns else "person_ref"
    route = encounter_node(pl.col("encntr_id")) if ref == "encounter_ref" else person_node(pl.col("person_id"))
    routed = partition_by_node(tt, route, parts, n)
    if keyed is None or any(r in key for r in PARENT_REFS):
        return routed
    by_key = routed.join(
        keyed.rename({"_part": "_kpart"}), on=list(key), how="left", nulls_equal=True, maintain_order="left"
    )
    return by_key.with_columns(pl.coalesce(pl.col("_kpart"), pl.col("_part")).alias("_part")).drop("_kpart")
