"""Partitions by person: where each record and each target row of a load goes.

A validation cuts everything but persons and encounters into partitions by person
(``pipelines/run/staging.py``): a record goes to the partition of the person its parent belongs
to, a target child row to the partition of the person of the parent it is matched through. A child
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

from checks.reconcile import EntityPart

PARENT_REFS = ("encounter_ref", "person_ref")


def parent_ref(key: tuple[str, ...]) -> str:
    """The parent ref of a match key (the column partitions are cut on)."""
    for ref in PARENT_REFS:
        if ref in key:
            return ref
    raise ValueError(f"match key {list(key)} holds no parent ref ({', '.join(PARENT_REFS)})")


def partition_of(ref: pl.Expr, n: int) -> pl.Expr:
    """Partition number of a (person) ref: a hash of it modulo n; no ref → partition 0."""
    return pl.when(ref.is_null()).then(pl.lit(0, dtype=pl.UInt64)).otherwise(ref.hash(seed=0) % n).alias("_part")


def merge_parts(parts: list[EntityPart]) -> EntityPart:
    """One entity's part from the parts of its partitions (counts add up; rows are concatenated)."""
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
    return EntityPart(
        entity,
        pl.concat([p.findings for p in parts], how="vertical_relaxed"),
        pl.concat([p.links for p in parts], how="vertical_relaxed"),
        pl.concat([p.status for p in parts], how="vertical_relaxed"),
        counts,
    )


# --------------------------------------------------------------------------------------------
# partitioned by person: where each record and each target row goes (pipelines/run/staging.py)


def parent_routes(staged: pl.DataFrame) -> pl.DataFrame:
    """``_pkey → _route`` of staged parent records: the person a child of that legacy key belongs to.

    A child finds its parent as ``checks.expected`` does: the first record by line with that key.
    The route is that parent's (merged) person_ref, or, for a parent not loaded, its own ref.
    """
    route = (
        pl.coalesce(pl.col("person_ref"), pl.col("source_ref"))
        if "person_ref" in staged.columns
        else pl.col("source_ref")
    )
    return (
        staged.filter(pl.col("_key").is_not_null())
        .sort("_line")
        .unique("_key", keep="first", maintain_order=True)
        .select(pl.col("_key").alias("_pkey"), route.cast(pl.String).alias("_route"))
    )


def routed_records(df: pl.DataFrame, parent_column: str | None, routes: pl.DataFrame | None, n: int) -> pl.DataFrame:
    """Extract records with their partition (``_part``): their parent's person, else their own ref."""
    if parent_column is None or routes is None:
        return df.with_columns(partition_of(pl.col("source_ref"), n))
    route = df.select(pl.col(parent_column).cast(pl.String).alias("_pkey")).join(
        routes, on="_pkey", how="left", maintain_order="left"
    )["_route"]
    return (
        df.with_columns(route.alias("_route"))
        .with_columns(partition_of(pl.coalesce(pl.col("_route"), pl.col("source_ref")), n))
        .drop("_route")
    )


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
    tt: pl.DataFrame, key: tuple[str, ...], enc_person: pl.DataFrame, n: int, keyed: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Target child rows with their partition (``_part``): the person of the parent they are matched through.

    ``tt`` carries its parents' refs (``checks.reconcile.resolved_parents``). A child row can only
    match an expected row with the same parent ref (the match key holds it), and an expected row
    goes to its parent's person: an encounter child to the person of its encounter (``enc_person``:
    source_ref → person_ref of the expected encounters, one row each, as the expected encounter
    table holds them), a person child to its person. A row
    whose parent was not reconciled matches nothing: partition 0. A table matched on an
    identifier (no parent ref in its key) goes by ``keyed`` (``keyed_parts``): where the expected
    row of its key went; a row whose key no record holds goes by its parent as above.
    """
    if any(r in key for r in PARENT_REFS):
        ref = parent_ref(key)
    else:
        ref = "encounter_ref" if "encounter_ref" in tt.columns else "person_ref"
    routed = _routed_by_parent(tt, ref, enc_person, n)
    if keyed is None or any(r in key for r in PARENT_REFS):
        return routed
    by_key = routed.join(
        keyed.rename({"_part": "_kpart"}), on=list(key), how="left", nulls_equal=True, maintain_order="left"
    )
    return by_key.with_columns(pl.coalesce(pl.col("_kpart"), pl.col("_part")).alias("_part")).drop("_kpart")


def _routed_by_parent(tt: pl.DataFrame, ref: str, enc_person: pl.DataFrame, n: int) -> pl.DataFrame:
    if ref == "encounter_ref":
        e2p = enc_person.select(pl.col("source_ref").alias("_eref"), pl.col("person_ref").alias("_route"))
        route = tt.select(pl.col("encounter_ref").alias("_eref")).join(
            e2p, on="_eref", how="left", maintain_order="left"
        )["_route"]
    else:
        route = tt["person_ref"]
    return tt.with_columns(route.alias("_route")).with_columns(partition_of(pl.col("_route"), n)).drop("_route")


def split_by_person(df: pl.DataFrame, person: pl.Expr, n: int) -> list[pl.DataFrame]:
    """``df`` cut into ``n`` frames by the partition of ``person`` (a person_ref); null → partition 0."""
    parts = df.with_columns(partition_of(person, n)).partition_by("_part", as_dict=True, include_key=False)
    empty = df.head(0)
    return [parts.get((p,), empty) for p in range(n)]


def split_lookup(lookup: pl.DataFrame, routes: pl.DataFrame, n: int) -> list[pl.DataFrame]:
    """Staged parent records cut by the partition their children go to (the route of their key).

    Every record with a given legacy key lands where the children of that key do, so a partition's
    children find the same parent (the first by line) as in the whole extract. A record without a
    key can be no one's parent and is left out.
    """
    keyed = lookup.filter(pl.col("_key").is_not_null()).join(
        routes.rename({"_pkey": "_key"}), on="_key", how="left", maintain_order="left"
    )
    return [p.drop("_route") for p in split_by_person(keyed, pl.col("_route"), n)]
