"""Memory and time of ``checks.components.parent_parts`` on a graph shaped like a region's load.

    .venv/bin/python benchmarks/bench_components.py [--patients 3000000]

Random 64-bit nodes in the proportions of a generated load: per patient one legacy record (its
key and identity), one identity and one MRN alias on one target person; four encounters per
patient, each with its target encounter and VISITID alias. Prints the peak resident memory of
this process before and after the call (``ru_maxrss``) and the call's wall time. Run it in a fresh
process: the peak is the process's.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checks.components import parent_parts  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=3_000_000)
    ap.add_argument("--partitions", type=int, default=13)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    n_p, n_e = args.patients, 4 * args.patients

    def nodes(n: int) -> pl.Series:
        return pl.Series(rng.integers(1, 2**63, n, dtype=np.int64)).cast(pl.UInt64)

    anchor, identity, person = nodes(n_p), nodes(n_p), nodes(n_p)
    of_patient = pl.Series(rng.integers(0, n_p, n_e))
    key, te = nodes(n_e), nodes(n_e)
    persons = [pl.DataFrame({"anchor": anchor, "identity": identity})]
    encounters = [pl.DataFrame({"key": key, "anchor": anchor.gather(of_patient)})]
    aliases = pl.concat([pl.DataFrame({"a": identity, "b": person}), pl.DataFrame({"a": anchor, "b": person})])
    target_encounters = pl.DataFrame({"te": te, "anchor": person.gather(of_patient)})
    visits = pl.DataFrame({"key": key, "te": te})
    before = peak_mb()
    start = time.perf_counter()
    parts = parent_parts(persons, encounters, aliases, target_encounters, visits, args.partitions)
    wall = time.perf_counter() - start
    print(
        f"{args.patients:,} patients: inputs {before:,.0f} MB; peak {peak_mb():,.0f} MB after parent_parts; "
        f"{wall:.1f} s; {parts.height:,} nodes in {parts['_part'].n_unique()} partitions"
    )


if __name__ == "__main__":
    main()
