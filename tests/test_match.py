"""``match_on_key`` (pairs on key hashes, settles the rest exactly) against the plain exact match it
stands for: rows of equal key ranked (expected by source_ref, target by id) and joined on
(key, rank). Hypothesis draws both sides with few key values, repeated keys, nulls and changed
values, and the key hash is the real one, a weak one (three values: keys share hashes all the
time) or a constant (every row in one group)."""

from __future__ import annotations

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.reconcile import key_hash, match_on_key, ranked

KEY = ["k1", "k2"]
VCOLS = ["v", "w"]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

small = st.one_of(st.none(), st.integers(0, 3))
text = st.sampled_from(["a", "b", None])
rows = st.lists(st.tuples(small, text, small, st.sampled_from(["x", "ö", ""])), max_size=25)


def _frames(e_rows: list[tuple], t_rows: list[tuple]) -> tuple[pl.DataFrame, pl.DataFrame]:
    schema = {"k1": pl.Int64, "k2": pl.String, "v": pl.Int64, "w": pl.String}
    et = pl.DataFrame(e_rows, schema=schema, orient="row").with_columns(
        # unique, and not in row order, so the rank order is not the row order
        pl.format("r{}", (pl.int_range(pl.len()) * 7919) % 10007).alias("source_ref")
    )
    tt = pl.DataFrame(t_rows, schema=schema, orient="row").with_columns(
        ((pl.int_range(pl.len()) * 31) % 101 + 1000).alias("_id"),
        pl.lit([], dtype=pl.List(pl.String)).alias("_invalid"),
    )
    return et, tt


def _exact(et: pl.DataFrame, tt: pl.DataFrame) -> dict[str, set]:
    """The straightforward match: every row ranked among its equal keys, joined on (key, rank)."""
    e = ranked(et.with_row_index("_e").with_columns(pl.col("_e").cast(pl.Int64)), KEY, "source_ref", "_rank")
    t = ranked(tt, KEY, "_id", "_rank")
    j = e.join(t, on=[*KEY, "_rank"], how="inner", nulls_equal=True, suffix="__act")
    differ = j.filter(pl.any_horizontal(~pl.col(c).eq_missing(pl.col(f"{c}__act")) for c in VCOLS))
    return {
        "pairs": set(j.select("source_ref", "_rank", "_id").iter_rows()),
        "differing": set(differ.select("source_ref", "_id", *VCOLS, *[f"{c}__act" for c in VCOLS]).iter_rows()),
        "missing": set(e.join(j.select("_e"), on="_e", how="anti").select("source_ref", "_rank").iter_rows()),
        "unexpected": set(t.join(j.select("_id"), on="_id", how="anti").select("_id", "_rank").iter_rows()),
    }


def _weak(key: list[str]) -> pl.Expr:
    return key_hash(key) % 3


def _constant(key: list[str]) -> pl.Expr:
    return pl.lit(7, dtype=pl.UInt64)


@SETTINGS
@given(rows, rows, st.sampled_from([key_hash, _weak, _constant]), st.booleans())
def test_match_on_key_is_the_exact_match(e_rows, t_rows, hash_key, lazy):
    et, tt = _frames(e_rows, t_rows)
    m = match_on_key(et.lazy() if lazy else et, tt.lazy() if lazy else tt, KEY, VCOLS, "orders", hash_key=hash_key)
    want = _exact(et, tt)
    assert m.expected_rows == et.height
    assert set(m.pairs.select("source_ref", "_rank", "_id").iter_rows()) == want["pairs"]
    assert m.pairs.height == len(want["pairs"])
    assert m.pairs["_e"].is_sorted()  # in expected row order
    assert m.pairs["_target_ref"].to_list() == [f"orders:{i}" for i in m.pairs["_id"]]
    got_differ = m.differing.select("source_ref", "_id", *VCOLS, *[f"{c}__act" for c in VCOLS])
    assert set(got_differ.iter_rows()) == want["differing"]
    assert set(m.missing.select("source_ref", "_rank").iter_rows()) == want["missing"]
    assert m.missing.height == len(want["missing"])
    assert set(m.unexpected.select("_id", "_rank").iter_rows()) == want["unexpected"]
    assert m.unexpected.height == len(want["unexpected"])


def test_a_changed_value_in_a_repeated_key_is_found_and_nothing_else():
    """Two loads of one key, one of them changed: one differing pair, nothing missing or unexpected."""
    et, tt = _frames([(1, "a", 5, "x"), (1, "a", 6, "x")], [(1, "a", 5, "x"), (1, "a", 6, "ö")])
    m = match_on_key(et, tt, KEY, VCOLS, "orders")
    assert m.missing.height == 0 and m.unexpected.height == 0
    assert m.differing.select("v", "w", "w__act").rows() == [(6, "x", "ö")]
