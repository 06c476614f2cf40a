"""The reconciliation core for one keyed table pair, as pure lazy polars (issue #6, item 2).

How migcheck should reconcile a large table pair: both sides are scanned from Parquet, each row's
compared columns are reduced to one 64-bit hash, and only (key, hash) of both sides are joined
(streaming engine). That single join yields the missing keys (expected only), the unexpected keys
(actual only) and the keys whose hashes differ. Full rows are read again only for those few keys,
and compared column by column, null-safely (``eq_missing``), into one row per differing value:
``key…, column, expected, actual`` (values rendered as text, as in migcheck's findings).

Two ways to join in phase 1 (``join_on``):

- ``"key"``: (key, row hash) joined on the key itself.
- ``"key_hash"`` (default): (hash of the key, hash of key and row) joined on the key hash, so the
  join holds two 64-bit numbers per row and no key text. A key-hash group in which every pairing
  has equal hashes is settled (the row hash covers the key: one key, equal rows); every other group
  (a row on one side only, a differing row, two keys sharing a key hash) is read again in full and
  settled exactly on the key. On the 10M-row encounter pair: ~6.1 s and ~0.95 GB against ~7.6 s and
  ~2.1 GB for ``"key"`` (benchmarks/RESULTS.md).

    .venv/bin/python benchmarks/recon_core.py EXPECTED.parquet ACTUAL.parquet --key encounter_id
    .venv/bin/python benchmarks/recon_core.py --self-test [--rows 100000]

``--self-test`` generates a pair with ``peer_compare.generate_pair`` (single and composite key) and
hand-made edge cases (null ↔ value, empty string ↔ null, -0.0 ↔ 0.0, NaN ↔ NaN, an all-null row, a
missing and an unexpected row with the same values) and asserts that both joins, and ``key_hash``
with a deliberately weak key hash (16 bits; first letter), give exactly the counts, differences,
missing and unexpected keys of a straightforward full-join comparison (``reconcile_full_join``).

Assumptions, and why they hold for migcheck:

- The key is unique on each side (an encounter's source_ref, a target primary key). Child tables
  that are matched as multisets (``reconcile_child``) get their ``_rank`` first and pass
  ``[*match_key, "_rank"]`` as the key. ``check_unique=True`` verifies it, at the price of
  hashing the key column once more.
- Compared columns have the same dtypes on both sides: the actual side is cast to the expected
  side's dtypes first (a cast that fails gives null, which then shows as a difference).
- Equal hashes mean equal rows. polars hashes null apart from every value and ``-0.0``/``0.0`` and
  NaNs alike, as ``eq_missing`` compares them. A 64-bit collision between a changed row and its
  original would hide that one difference; with ~10^5 changed rows the chance is ~10^-14. (Key-hash
  collisions cost nothing but a re-read: they are settled on the key.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

HASH_SEED = 0x6D6967  # any fixed seed: both sides must use the same one
_H, _HA, _K = "__h", "__h_act", "__kh"


@dataclass(frozen=True)
class CoreResult:
    counts: dict[str, int]  # expected, actual, matched, missing, unexpected, rows_with_differences, value_differences
    missing: pl.DataFrame  # key columns of rows only in expected
    unexpected: pl.DataFrame  # key columns of rows only in actual
    differences: pl.DataFrame  # key columns, column, expected, actual (one row per differing value)


def _lazy(src: str | Path | pl.LazyFrame) -> pl.LazyFrame:
    return src if isinstance(src, pl.LazyFrame) else pl.scan_parquet(src)


def _row_hash(columns: list[str]) -> pl.Expr:
    return pl.struct(columns).hash(HASH_SEED)


def _key_hash(keys: list[str]) -> pl.Expr:
    return (pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)).hash(HASH_SEED + 1)


def _value_differences(e_rows: pl.DataFrame, a_rows: pl.DataFrame, keys: list[str], columns: list[str]) -> pl.DataFrame:
    """One row per differing value of the rows present on both sides (null-safe)."""
    pair = e_rows.join(a_rows.rename({c: f"{c}__act" for c in columns}), on=keys, how="inner", nulls_equal=True)
    per_col = [
        pair.filter(~pl.col(c).eq_missing(pl.col(f"{c}__act"))).select(
            *keys,
            pl.lit(c).alias("column"),
            pl.col(c).cast(pl.String).alias("expected"),
            pl.col(f"{c}__act").cast(pl.String).alias("actual"),
        )
        for c in columns
    ]
    if per_col:
        return pl.concat(per_col)
    schema = {**{k: e_rows.schema[k] for k in keys}, "column": pl.String, "expected": pl.String, "actual": pl.String}
    return pl.DataFrame(schema=schema)


def reconcile_pair(
    expected: str | Path | pl.LazyFrame,
    actual: str | Path | pl.LazyFrame,
    key: str | list[str],
    columns: list[str] | None = None,
    *,
    join_on: str = "key_hash",
    engine: str = "streaming",
    check_unique: bool = False,
) -> CoreResult:
    """Reconcile ``actual`` against ``expected`` (Parquet paths or lazy frames) on ``key``.

    ``columns``: the compared columns (default: every non-key column of the expected side that the
    actual side also has).

    ``join_on="key"``: phase 1 joins (key, row hash) of both sides on the key itself.
    ``join_on="key_hash"`` (default): phase 1 joins only two 64-bit numbers per row, a hash of the
    key and a hash of key and row, so no key text is held in memory; every key-hash group that is
    not perfectly matched (an extra or a lacking row, a differing hash, two keys sharing a key hash)
    is read again in full and settled exactly on the key in phase 2. Same result, less time and
    memory (module docstring).
    """
    keys = [key] if isinstance(key, str) else list(key)
    exp, act = _lazy(expected), _lazy(actual)
    es, as_ = exp.collect_schema(), act.collect_schema()
    if columns is None:
        columns = [c for c in es.names() if c not in keys and c in as_]
    casts = [pl.col(c).cast(es[c], strict=False) for c in [*keys, *columns] if as_[c] != es[c]]
    if casts:
        act = act.with_columns(casts)
    if check_unique:
        dup = (pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)).is_duplicated().any()
        d_e, d_a = pl.collect_all([exp.select(dup), act.select(dup)], engine=engine)
        if d_e.item() or d_a.item():
            raise ValueError(f"key {keys} is not unique (expected: {d_e.item()}, actual: {d_a.item()})")
    n_exp, n_act = (f.item() for f in pl.collect_all([exp.select(pl.len()), act.select(pl.len())], engine=engine))
    full = [*keys, *columns]

    if join_on == "key":
        # phase 1: (key, row hash) of both sides, one full join, keep only the rows that are not equal
        odd = (
            exp.select(*keys, _row_hash(columns).alias(_H))
            .join(
                act.select(*keys, _row_hash(columns).alias(_HA)), on=keys, how="full", coalesce=True, nulls_equal=True
            )
            .filter(pl.col(_H).ne_missing(pl.col(_HA)))
            .collect(engine=engine)
        )
        missing = odd.filter(pl.col(_HA).is_null()).select(keys)
        unexpected = odd.filter(pl.col(_H).is_null()).select(keys)
        changed = odd.filter(pl.col(_H).is_not_null() & pl.col(_HA).is_not_null()).select(keys)
        # phase 2: full rows only for the keys whose hashes differ
        if len(keys) == 1:
            wanted = pl.col(keys[0]).is_in(changed[keys[0]].implode(), nulls_equal=True)
            e_rows, a_rows = pl.collect_all([exp.filter(wanted).select(full), act.filter(wanted).select(full)])
        else:
            e_rows, a_rows = pl.collect_all(
                [lf.select(full).join(changed.lazy(), on=keys, how="semi", nulls_equal=True) for lf in (exp, act)]
            )
    elif join_on == "key_hash":
        # phase 1: (key hash, hash of key and row); a key-hash group is settled when every pairing
        # in it has equal hashes: the row hash covers the key, so that means one key, equal rows
        kh, rh = _key_hash(keys).alias(_K), _row_hash(full)
        flagged = (
            exp.select(kh, rh.alias(_H))
            .join(act.select(kh, rh.alias(_HA)), on=_K, how="full", coalesce=True)
            .filter(pl.col(_H).ne_missing(pl.col(_HA)))
            .select(_K)
            .unique()
            .collect(engine=engine)
        )
        # phase 2: full rows of the unsettled groups, matched exactly on the key
        wanted = _key_hash(keys).is_in(flagged[_K].implode())
        e_rows, a_rows = pl.collect_all([exp.filter(wanted).select(full), act.filter(wanted).select(full)])
        missing = e_rows.join(a_rows, on=keys, how="anti", nulls_equal=True).select(keys)
        unexpected = a_rows.join(e_rows, on=keys, how="anti", nulls_equal=True).select(keys)
    else:
        raise ValueError(f"join_on must be 'key' or 'key_hash', not {join_on!r}")

    differences = _value_differences(e_rows, a_rows, keys, columns)
    counts = {
        "expected": n_exp,
        "actual": n_act,
        "matched": n_exp - missing.height,
        "missing": missing.height,
        "unexpected": unexpected.height,
        "rows_with_differences": differences.select(keys).unique().height,
        "value_differences": differences.height,
    }
    return CoreResult(counts, missing, unexpected, differences)


def reconcile_full_join(
    expected: str | Path | pl.LazyFrame,
    actual: str | Path | pl.LazyFrame,
    key: str | list[str],
    columns: list[str] | None = None,
) -> CoreResult:
    """The straightforward comparison the core must agree with: one full join of whole rows."""
    keys = [key] if isinstance(key, str) else list(key)
    exp, act = _lazy(expected).collect(), _lazy(actual).collect()
    if columns is None:
        columns = [c for c in exp.columns if c not in keys and c in act.columns]
    act = act.with_columns(
        [pl.col(c).cast(exp.schema[c], strict=False) for c in [*keys, *columns] if act.schema[c] != exp.schema[c]]
    )
    j = exp.select(*keys, *columns, pl.lit(True).alias("_in_e")).join(
        act.select(*keys, *columns, pl.lit(True).alias("_in_a")),
        on=keys,
        how="full",
        coalesce=True,
        nulls_equal=True,
        suffix="__act",
    )
    both = j.filter(pl.col("_in_e") & pl.col("_in_a"))
    diffs = pl.concat(
        [
            both.filter(~pl.col(c).eq_missing(pl.col(f"{c}__act"))).select(
                *keys,
                pl.lit(c).alias("column"),
                pl.col(c).cast(pl.String).alias("expected"),
                pl.col(f"{c}__act").cast(pl.String).alias("actual"),
            )
            for c in columns
        ]
    )
    missing = j.filter(pl.col("_in_a").is_null()).select(keys)
    unexpected = j.filter(pl.col("_in_e").is_null()).select(keys)
    rows = diffs.select(keys).unique().height
    counts = {
        "expected": exp.height,
        "actual": act.height,
        "matched": both.height,
        "missing": missing.height,
        "unexpected": unexpected.height,
        "rows_with_differences": rows,
        "value_differences": diffs.height,
    }
    return CoreResult(counts, missing, unexpected, diffs)


def _same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    by = a.columns
    return a.sort(by, nulls_last=True).equals(b.select(by).sort(by, nulls_last=True))


def _edge_pair() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hand-made rows where a hash or a comparison could go wrong."""
    e = pl.DataFrame(
        {
            "k": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "x1"],
            "n": [1, None, 3, 4, 5, 6, None, 8, 9, 7],
            "s": ["x", "y", "", None, "ö", "x", None, "ab", "z", "q"],
            "f": [0.0, 1.0, float("nan"), 2.0, 3.0, None, None, 1.0, 1.0, 1.0],
            "t": pl.Series([0, 1, 2, 3, None, 5, None, 7, 8, 9]).cast(pl.Datetime("us", "UTC")),
        }
    )
    a = pl.DataFrame(
        {
            "k": ["a", "b", "c", "d", "e", "f", "g", "h", "j", "x2"],
            # a: -0.0 vs 0.0 (equal); b: null→0; c: '' vs null, NaN vs NaN; d: null→'';
            # e: timestamp null→value; f: all equal incl. nulls; g: all-null row equal;
            # h: 'ab' vs 'a'; i missing; j unexpected; x1 missing and x2 unexpected with the same
            # values (under a key hash on the first letter they share a group: still not a match)
            "n": [1, 0, 3, 4, 5, 6, None, 8, 10, 7],
            "s": ["x", "y", None, "", "ö", "x", None, "a", "z", "q"],
            "f": [-0.0, 1.0, float("nan"), 2.0, 3.0, None, None, 1.0, 1.0, 1.0],
            "t": pl.Series([0, 1, 2, 3, 4, 5, None, 7, 8, 9]).cast(pl.Datetime("us", "UTC")),
        }
    )
    return e, a


def _weak_key_hash(keys: list[str]) -> pl.Expr:
    """A 16-bit key hash: many keys share one, to exercise how key_hash mode settles collisions."""
    return _strong_key_hash(keys) % 65_536


def _first_letter_key_hash(keys: list[str]) -> pl.Expr:
    """For the edge cases: only x1 and x2 share a key hash."""
    return pl.col(keys[0]).str.head(1).hash(HASH_SEED)


_strong_key_hash = _key_hash


def self_test(rows: int, workdir: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peer_compare import KEY, generate_pair

    global _key_hash
    workdir.mkdir(parents=True, exist_ok=True)
    e_path, a_path = generate_pair(rows, workdir, seed=7)
    ee, ea = _edge_pair()
    ee.write_parquet(workdir / "edge_e.parquet")
    ea.write_parquet(workdir / "edge_a.parquet")
    edge = (workdir / "edge_e.parquet", workdir / "edge_a.parquet")
    cases = [
        ("generated", e_path, a_path, KEY, _weak_key_hash),
        # a changed person_id makes that row missing + unexpected under this key
        ("generated, composite key", e_path, a_path, [KEY, "person_id"], _weak_key_hash),
        ("edge cases", *edge, "k", _first_letter_key_hash),
    ]
    for name, e, a, k, weak in cases:
        t0 = time.perf_counter()
        ref = reconcile_full_join(e, a, k)
        t_ref = time.perf_counter() - t0
        for join_on, key_hash in [
            ("key", _strong_key_hash),
            ("key_hash", _strong_key_hash),
            ("key_hash", weak),
        ]:
            _key_hash = key_hash
            t0 = time.perf_counter()
            core = reconcile_pair(e, a, k, join_on=join_on, check_unique=True)
            t_core = time.perf_counter() - t0
            _key_hash = _strong_key_hash
            how = join_on + (f" ({key_hash.__name__.strip('_')})" if key_hash is weak else "")
            assert core.counts == ref.counts, (name, how, core.counts, ref.counts)
            assert _same(core.missing, ref.missing), (name, how)
            assert _same(core.unexpected, ref.unexpected), (name, how)
            assert _same(core.differences, ref.differences), (name, how)
            print(f"self-test {name}, join on {how}: identical; core {t_core:.2f} s, full join {t_ref:.2f} s")
        print(f"  {ref.counts}")
    got = sorted(reconcile_pair(*edge, "k").differences.select("k", "column").iter_rows())
    assert got == [("b", "n"), ("c", "s"), ("d", "s"), ("e", "t"), ("h", "s")], got
    print("self-test: passed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("expected", nargs="?")
    ap.add_argument("actual", nargs="?")
    ap.add_argument("--key", default="encounter_id")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--workdir", default="/tmp/migcheck-recon-selftest")
    a = ap.parse_args()
    if a.self_test:
        self_test(a.rows, Path(a.workdir))
        return
    if not (a.expected and a.actual):
        ap.error("EXPECTED and ACTUAL are required (or --self-test)")
    r = reconcile_pair(a.expected, a.actual, a.key)
    print(json.dumps(r.counts))
    print(r.differences.head(10))


if __name__ == "__main__":
    main()
