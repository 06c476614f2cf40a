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
