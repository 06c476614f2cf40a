"""Which records and target rows must be computed together: the connected components of persons.

Persons and encounters cannot be cut just anywhere: legacy patient records merge across systems by
identity, repeated encounter keys fold into one, and a target person or encounter is matched
through its identity, MRN and VISITID aliases. Records and rows that any of these can bring
together belong to one *component*, and a partition holds whole components, so that the persons
and encounters of one partition, computed and reconciled alone, come out exactly as in the whole
load.

Everything is reduced to 64-bit *nodes* (``node``): a legacy record kind and key, an identity value,
a target person id, a target encounter id. Each record and target row has an *anchor* node:

* a legacy patient record: its own key (``record_node``);
* a legacy encounter: the key of the patient it hangs under (its own key where it names none);
* a target person and its aliases: the person id;
* a target encounter and its aliases: its person id (the encounter id where it has no person).

*Edges* join anchors that may interact: a patient record and its identity value; an identity
alias and its target person; an MRN alias's legacy patient key and its target person; the
anchors of encounters that share a legacy key; a VISITID alias's legacy encounter and its target
encounter. Components are found by label propagation with pointer jumping (a few passes of joins
on 64-bit columns) and each goes to ``hash(smallest node) % n``. Two values that share a hash only
join two components: a partition may hold more than it must, never less. Pure polars.
"""

from __future__ import annotations

import polars as pl

from checks.mapping import Mappings, SourceMap
from checks.reconcile import IDENTITY_TYPES

#: the seed of node ids and of a component's partition (any fixed value)
NODE_SEED = 0x6D6967
#: the joiner of a node's tag and values (a byte no legacy value or code holds)
_SEP = "\x1f"
#: stands for a missing key: all records of a kind without a key are one node (they may fold together)
NO_KEY = "\x00"
EDGE_SCHEMA = {"a": pl.UInt64, "b": pl.UInt64}


def node(tag: str, *values: pl.Expr) -> pl.Expr:
    """The node of ``tag`` and ``values`` (as text); null where a value is null."""
    parts = [v.cast(pl.String) for v in values]
    text = pl.concat_str([pl.lit(tag), *parts], separator=_SEP)
    return pl.when(pl.all_horizontal([p.is_not_null() for p in parts])).then(text.hash(seed=NODE_SEED))


def record_node(records: str, key: pl.Expr) -> pl.Expr:
    """The node of a legacy record kind's key; the records of a kind without a key share one."""
    return node("k", pl.lit(records), key.cast(pl.String).fill_null(NO_KEY))


def identity_node(value: pl.Expr) -> pl.Expr:
    """The node of an identity value (a legacy identity number, a target identity alias)."""
    return node("id", value)


def person_node(person_id: pl.Expr) -> pl.Expr:
    """The node of a target person id."""
    return node("tp", person_id)


def encounter_node(encntr_id: pl.Expr) -> pl.Expr:
    """The node of a target encounter id."""
    return node("te", encntr_id)


def target_encounter_anchor(person_id: pl.Expr, encntr_id: pl.Expr) -> pl.Expr:
    """A target encounter's anchor: its person, else the encounter itself."""
    return pl.coalesce(person_node(person_id), encounter_node(encntr_id))


def person_keys(records: str, df: pl.DataFrame, src: SourceMap) -> pl.DataFrame:
    """Per legacy patient record: its ``anchor`` (its key's node) and its ``identity`` value's node."""
    key = pl.col(src.key) if src.key else pl.lit(None, dtype=pl.String)
    ident = identity_node(pl.col(src.identity.value)) if src.identity else pl.lit(None, dtype=pl.UInt64)
    return df.select(record_node(records, key).alias("anchor"), ident.alias("identity"))


def encounter_keys(records: str, df: pl.DataFrame, src: SourceMap) -> pl.DataFrame:
    """Per legacy encounter record: its own ``key``'s node and its ``anchor`` (its patient's key)."""
    own = record_node(records, pl.col(src.key) if src.key else pl.lit(None, dtype=pl.String))
    if src.parent is None:
        return df.select(own.alias("key"), own.alias("anchor"))
    column = pl.col(src.parent.column)
    parent = pl.when(column.is_not_null()).then(record_node(src.parent.records, column))
    return df.select(own.alias("key"), pl.coalesce(parent, own).alias("anchor"))


def target_keys(table: str, df: pl.DataFrame, m: Mappings) -> pl.DataFrame | None:
    """What a target parent table (after ``logical_target``) gives the components, per row.

    ``person_alias``: edges (``a``, ``b``) of identity aliases (value ↔ person) and MRN aliases
    (the legacy patient key of their pool ↔ person); ``encounter``: ``te`` and its ``anchor``;
    ``encntr_alias``: per VISITID alias the legacy encounter ``key`` it names and its ``te``.
    """
    if table == "person_alias":
        pools = {f"{s.system.upper()}_MRN": s.records for s in m.tables["person"].sources}
        person = person_node(pl.col("person_id"))
        kind = pl.col("alias_pool_cd").replace_strict(pools, default=None, return_dtype=pl.String)
        typ = pl.col("person_alias_type_cd")
        ident = df.filter(typ.is_in(IDENTITY_TYPES)).select(
            identity_node(pl.col("alias")).alias("a"), person.alias("b")
        )
        mrn = df.filter((typ == "MRN") & pl.col("alias").is_not_null()).select(
            node("k", kind, pl.col("alias")).alias("a"), person.alias("b")
        )
        return pl.concat([ident, mrn])
    if table == "encounter":
        return df.select(
            encounter_node(pl.col("encntr_id")).alias("te"),
            target_encounter_anchor(pl.col("person_id"), pl.col("encntr_id")).alias("anchor"),
        )
    if table == "encntr_alias":
        kinds = {s.system.upper(): s.records for s in m.tables["encounter"].sources}
        kind = pl.col("contributor_system_cd").replace_strict(kinds, default=None, return_dtype=pl.String)
        visits = df.filter((pl.col("encntr_alias_type_cd") == "VISITID") & pl.col("alias").is_not_null())
        return visits.select(
            node("k", kind, pl.col("alias")).alias("key"), encounter_node(pl.col("encntr_id")).alias("te")
        )
    return None


def _edges(frames: list[pl.LazyFrame]) -> pl.DataFrame:
    """Edges (``a``, ``b``) of several frames as one, without nulls, loops or repeats.

    Lazy: each frame's loops and repeats go before the frames are put together, so the edges of
    every encounter (most of them loops or repeats of their person's) are never all in memory.
    """
    if not frames:
        return pl.DataFrame(schema=EDGE_SCHEMA)
    each = [
        f.select("a", "b").cast(EDGE_SCHEMA).drop_nulls().filter(pl.col("a") != pl.col("b")).unique()  # type: ignore[arg-type]
        for f in frames
    ]
    return pl.concat(each).unique().collect()


def components(edges: pl.DataFrame) -> pl.DataFrame:
    """``node → root`` of every node of ``edges`` (``a``, ``b``): the smallest node of its component.

    Label propagation: each node takes the smallest label among its own and its neighbours', then
    the label of its label (pointer jumping), until no label changes.
    """
    e = pl.concat([edges.select("a", "b"), edges.select(pl.col("b").alias("a"), pl.col("a").alias("b"))])
    label = (
        e.group_by("a")
        .agg(pl.col("b").min().alias("_m"))
        .select(pl.col("a").alias("node"), pl.min_horizontal("a", "_m").alias("root"))
    )
    while True:
        nb = e.join(label, left_on="b", right_on="node").group_by("a").agg(pl.col("root").min().alias("_nb"))
        step = label.join(nb, left_on="node", right_on="a", how="left").select(
            "node", pl.min_horizontal("root", "_nb").alias("root")
        )
        step = step.join(step.rename({"node": "root", "root": "_rr"}), on="root", how="left").select(
            "node", pl.min_horizontal("root", "_rr").alias("root")
        )
        changed = step.join(label, on="node", suffix="_was").filter(pl.col("root") != pl.col("root_was")).height
        label = step
        if not changed:
            return label


def _part(root: pl.Expr, n: int) -> pl.Expr:
    return (root.hash(seed=NODE_SEED) % n).cast(pl.UInt32)


def parent_parts(
    persons: list[pl.DataFrame],
    encounters: list[pl.DataFrame],
    target_aliases: pl.DataFrame,
    target_encounters: pl.DataFrame,
    visits: pl.DataFrame,
    n: int,
) -> pl.DataFrame:
    """``node → _part`` for the anchors, legacy encounter keys and target encounters of a load.

    ``persons``: per legacy patient record ``anchor`` and ``identity`` (nodes);
    ``encounters``: per legacy encounter record ``key`` (its own key's node) and ``anchor``;
    ``target_aliases``: edges (``a``, ``b``) of the target's identity and MRN aliases;
    ``target_encounters``: per target encounter ``te`` (``encounter_node``) and ``anchor``;
    ``visits``: per VISITID alias ``key`` (the legacy encounter key's node it names) and ``te``.

    A node missing from the result is a component of its own (``partition_by_node``).
    """
    enc = pl.concat(encounters) if encounters else pl.DataFrame(schema={"key": pl.UInt64, "anchor": pl.UInt64})
    # a legacy encounter key stands for its records' anchor; several anchors of one key are joined
    key_anchor = enc.group_by("key").agg(pl.col("anchor").min().alias("_to"))
    folded = enc.lazy().join(key_anchor.lazy(), on="key").select(pl.col("anchor").alias("a"), pl.col("_to").alias("b"))
    te_anchor = target_encounters.lazy().select(pl.col("te").alias("_te"), pl.col("anchor").alias("_t"))
    visit = (
        visits.lazy()
        .join(key_anchor.lazy(), on="key", how="left")
        .join(te_anchor, left_on="te", right_on="_te", how="left")
        .select(
            pl.coalesce("_to", "key").alias("a"),
            pl.coalesce("_t", "te").alias("b"),
        )
    )
    person = [p.lazy().select(pl.col("anchor").alias("a"), pl.col("identity").alias("b")) for p in persons]
    roots = components(_edges([*person, target_aliases.lazy(), folded, visit]))
    parts = roots.select("node", _part(pl.col("root"), n).alias("_part"))
    # the legacy encounter keys and the target encounters, by their anchors: a node of the graph
    # keeps its own partition (the first of equal nodes in a stable sort: the graph's come first)
    by_anchor = pl.concat(
        [
            key_anchor.lazy().select(pl.col("key").alias("node"), pl.col("_to").alias("_a")),
            te_anchor.select(pl.col("_te").alias("node"), pl.col("_t").alias("_a")),
        ]
    )
    derived = by_anchor.join(roots.lazy(), left_on="_a", right_on="node", how="left").select(
        "node", _part(pl.coalesce("root", "_a"), n).alias("_part")
    )
    node = pl.col("node")
    return (
        pl.concat([parts.lazy(), derived])
        .sort("node", maintain_order=True)
        .filter(node.shift(1).is_null() | (node != node.shift(1)))
        .collect()
    )


def partition_by_node(df: pl.DataFrame, column: str | pl.Expr, parts: pl.DataFrame, n: int) -> pl.DataFrame:
    """``df`` with ``_part``: the partition of the component of its node (``column``).

    ``parts`` is sorted by node (``parent_parts``): each node is found by a binary search, so
    routing a block of records costs no hash table of the whole map. A node not in ``parts`` is a
    component of its own, ``hash(node) % n`` as ``parent_parts`` gives a root; a null node goes to
    partition 0. Row order is kept.
    """
    expr = pl.col(column) if isinstance(column, str) else column
    nodes = df.select(expr.alias("node")).to_series()
    keys = parts["node"]
    if keys.len() == 0:
        found = pl.repeat(False, nodes.len(), eager=True)
        got = pl.repeat(0, nodes.len(), dtype=pl.UInt32, eager=True)
    else:
        at = keys.search_sorted(nodes.fill_null(0), side="left").clip(0, keys.len() - 1)
        found = (keys.gather(at) == nodes).fill_null(False)
        got = parts["_part"].gather(at)
    part = pl.select(
        pl.when(found)
        .then(got)
        .when(nodes.is_not_null())
        .then(_part(pl.lit(nodes), n))
        .otherwise(pl.lit(0, dtype=pl.UInt32))
    ).to_series()
    return df.with_columns(part.alias("_part"))
