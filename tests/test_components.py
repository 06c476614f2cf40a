"""``checks.components.components`` against a plain union-find on random graphs: same components."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.components import components

edges = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=80)


def _union_find(pairs: list[tuple[int, int]]) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


@settings(max_examples=200, deadline=None)
@given(edges)
def test_components_are_those_of_union_find(pairs):
    pairs = [(a, b) for a, b in pairs if a != b]
    df = pl.DataFrame(pairs, schema={"a": pl.UInt64, "b": pl.UInt64}, orient="row")
    got = dict(components(df).iter_rows()) if pairs else {}
    assert got == _union_find(pairs)  # the root is the smallest node of the component


def test_a_long_chain_is_one_component():
    """A path of 2,000 nodes in shuffled order (label propagation alone would take 2,000 passes)."""
    import random

    order = list(range(2000))
    random.Random(3).shuffle(order)
    pairs = list(zip(order, order[1:], strict=False))
    got = components(pl.DataFrame(pairs, schema={"a": pl.UInt64, "b": pl.UInt64}, orient="row"))
    assert got.height == 2000 and got["root"].unique().to_list() == [0]


small = st.integers(1, 30)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(small, small), max_size=15),  # legacy patient record: anchor, identity
    st.lists(st.tuples(st.integers(100, 120), small), max_size=25),  # legacy encounter: key, anchor
    st.lists(st.tuples(small, st.integers(200, 215)), max_size=15),  # target alias: value, person
    st.lists(st.tuples(st.integers(300, 320), st.integers(200, 215)), max_size=25),  # target encounter
    st.lists(st.tuples(st.integers(100, 120), st.integers(300, 320)), max_size=25),  # VISITID: key, te
    st.integers(1, 5),
)
def test_what_interacts_shares_a_partition(persons, encounters, aliases, tencs, visits, n):
    """Every pair ``parent_parts`` is told may interact lands in one partition; one row per node."""
    from checks.components import parent_parts, partition_by_node

    u64 = pl.UInt64

    def frame(rows, a, b):
        return pl.DataFrame(rows, schema={a: u64, b: u64}, orient="row")

    tencs = list({te: (te, anchor) for te, anchor in tencs}.values())  # a target encounter id is a key
    parts = parent_parts(
        [frame(persons, "anchor", "identity")],
        [frame(encounters, "key", "anchor")],
        frame(aliases, "a", "b"),
        frame(tencs, "te", "anchor"),
        frame(visits, "key", "te"),
        n,
    )
    assert parts["node"].is_sorted() and parts["node"].n_unique() == parts.height

    def part(values):
        df = pl.DataFrame({"v": values}, schema={"v": u64})
        return partition_by_node(df, "v", parts, n)["_part"].to_list()

    for pairs in (persons, encounters, aliases, tencs, visits):
        if pairs:
            a, b = zip(*pairs, strict=True)
            assert part(list(a)) == part(list(b)), pairs
