"""The state one generation run builds: persons, record tables (in chunks), ghosts and the defects listed.

Every table keeps its records as polars chunks with an internal key ``_k`` (0, 1, 2, … in the order
the records were made, so after concatenation the row index is the key), the parent's key ``_pk``
(-1 for none), ``_ghost`` (index of a non-existent parent id, -2 for an empty parent id, -1 for a real
parent), ``_sort`` (minutes or days, for the file order) and ``_break`` (how the written line is to be
broken, for unparseable lines). External ids are given only when the files are written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from pipelines.synth.reference import Reference

PNR, SAMNR, RESNR = 0, 1, 2
KIND_NAME = ("pnr", "samnr", "resnr")
ANY_KIND = (PNR, SAMNR, RESNR)
PNR_SAM = (PNR, SAMNR)
PAS_ONLY, BOTH, PCS_ONLY = 0, 1, 2

_S, _I, _B = pl.String, pl.Int64, pl.Boolean
SCHEMAS: dict[str, dict[str, pl.DataType | type[pl.DataType]]] = {
    "kontakt": {
        "_k": _I,
        "_pk": _I,
        "_ghost": _I,
        "KONTAKTTYP": _S,
        "ENHET": _S,
        "INDATUM": _S,
        "UTDATUM": _S,
        "STATUS": _S,
        "_sort": _I,
        "_break": _S,
    },
    "diagnos": {"_k": _I, "_pk": _I, "_ghost": _I, "DIAGNOSKOD": _S, "DIAGNOSTYP": _S, "REGDATUM": _S, "_break": _S},
    "atgard": {"_k": _I, "_pk": _I, "_ghost": _I, "KVAKOD": _S, "DATUM": _S, "_break": _S},
    "visits": {
        "_k": _I,
        "_pk": _I,
        "_ghost": _I,
        "type": _S,
        "unitHsaId": _S,
        "start": _S,
        "end": _S,
        "status": _S,
        "_sort": _I,
        "_break": _S,
    },
    "vdx": {"_k": _I, "_pk": _I, "code": _S, "primary": _B},
    "medications": {
        "_k": _I,
        "_pk": _I,
        "_ghost": _I,
        "atc": _S,
        "name": _S,
        "dose": _S,
        "start": _S,
        "end": _S,
        "_sort": _I,
        "_break": _S,
    },
    "allergies": {
        "_k": _I,
        "_pk": _I,
        "_ghost": _I,
        "sub_kind": _S,
        "sub_value": _S,
        "severity": _S,
        "recorded": _S,
        "_sort": _I,
        "_break": _S,
    },
    "labresults": {
        "_k": _I,
        "_pk": _I,
        "_ghost": _I,
        "npu": _S,
        "value": _S,
        "unit": _S,
        "taken": _S,
        "_sort": _I,
        "_break": _S,
    },
    # clinical notes: on a PAS contact (``_pk`` a kontakt key) and on a PCS visit (a visits key)
    "anteckning": {"_k": _I, "_pk": _I, "_ghost": _I, "TYP": _S, "SIGNERAD": _S, "TEXT": _S, "_break": _S},
    "notes": {
        "_k": _I,
        "_pk": _I,
        "_ghost": _I,
        "type": _S,
        "signed": _S,
        "text": _S,
        "_sort": _I,
        "_break": _S,
    },
}
_DEFAULTS = {"_pk": -1, "_ghost": -1}


_VOCAB: dict[tuple[str, ...], pl.Series] = {}


def vocab(values: tuple[str, ...], idx: np.ndarray) -> pl.Series:
    """``values[i]`` for each index (a gather: no Python string per element)."""
    if values not in _VOCAB:
        _VOCAB[values] = pl.Series(list(values), dtype=pl.String)
    return _VOCAB[values].gather(np.asarray(idx, dtype=np.int64))


def column(value: Any, n: int, dtype: pl.DataType | type[pl.DataType]) -> pl.Series:
    """A column of ``n`` values: a tuple is cycled over the instances, a scalar (or None) repeated."""
    if isinstance(value, pl.Series):
        return value.cast(dtype)
    if isinstance(value, tuple):
        value = [value[i % len(value)] for i in range(n)]
    if isinstance(value, np.ndarray | list):
        if dtype == pl.String and isinstance(value, np.ndarray) and value.dtype != object:
            value = value.astype(str)
        return pl.Series(value, dtype=dtype)
    return pl.repeat(value, n, dtype=dtype, eager=True)


@dataclass
class Hits:
    """Defective records one variant made: the table, the keys, and a note per record (or none)."""

    table: str
    keys: np.ndarray
    notes: list[str] | None = None


@dataclass
class World:
    """Everything one run draws, in one place; driven by one ``numpy.random.Generator``."""

    rng: np.random.Generator
    ref: Reference
    n: int  # persons
    per_variant: int  # instances of each defect variant (0: a clean extract)
    chunks: dict[str, list[pl.DataFrame]] = field(default_factory=lambda: {t: [] for t in SCHEMAS})
    size: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCHEMAS, 0))
    ghosts: dict[str, int] = field(
        default_factory=lambda: {"pas_patient": 0, "kontakt": 0, "pcs_patient": 0, "visits": 0}
    )
    hits: list[tuple[Any, Hits]] = field(default_factory=list)  # (variant, hits) in registry order
    hosts: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # per-run caches (pools of clean records)

    def add(self, table: str, **cols: Any) -> np.ndarray:
        """Append records to ``table``; columns not given are null (``_pk``/``_ghost``: -1). Returns the keys."""
        n = next(len(v) for v in cols.values() if isinstance(v, np.ndarray | list | pl.Series))
        keys = np.arange(self.size[table], self.size[table] + n, dtype=np.int64)
        self.size[table] += n
        data = {}
        for c, t in SCHEMAS[table].items():
            if c == "_k":
                data[c] = pl.Series(keys, dtype=t)
            else:
                data[c] = column(cols.pop(c, _DEFAULTS.get(c)), n, t)
        if cols:  # pragma: no cover - a programming error, not a user error
            raise KeyError(f"{table} has no columns {sorted(cols)}")
        self.chunks[table].append(pl.DataFrame(data))
        return keys

    def take(self, name: str) -> pl.DataFrame:
        """All records of ``name`` (row index = key), handed over: the chunks are released."""
        parts, self.chunks[name] = self.chunks[name], []
        if not parts:
            return pl.DataFrame(schema=SCHEMAS[name])
        return pl.concat(parts, rechunk=True) if len(parts) > 1 else parts[0]

    def ghost(self, table: str, n: int) -> np.ndarray:
        """``n`` fresh indexes of non-existent parents (their ids are drawn from the id gaps later)."""
        g = self.ghosts[table]
        self.ghosts[table] = g + n
        return np.arange(g, g + n, dtype=np.int64)

    def pick(self, seq: Any, n: int) -> np.ndarray:
        """``n`` random elements of ``seq`` (with replacement)."""
        arr = np.asarray(seq)
        return arr[self.rng.integers(0, len(arr), n)]
