"""Calendar of the synthetic extract: days and Stockholm wall-clock minutes as integers, and their text.

Dates are days since 1970-01-01, local wall times minutes since 1970-01-01 00:00. The EU summer-time
rule (last Sunday of March 02:00 → 03:00, last Sunday of October 03:00 → 02:00) is tabulated per year,
so a whole column of times is checked or shifted with a few numpy operations.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

EPOCH = dt.date(1970, 1, 1)


def days(d: dt.date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


def _last_sunday(year: int, month: int) -> dt.date:
    d = dt.date(year, month, 31)
    return d - dt.timedelta(days=(d.weekday() + 1) % 7)


_Y0, _Y1 = 1996, 2100  # EU summer-time rules hold unchanged over these years
SPRING_DAY = np.array([days(_last_sunday(y, 3)) for y in range(_Y0, _Y1 + 1)], dtype=np.int64)
AUTUMN_DAY = np.array([days(_last_sunday(y, 10)) for y in range(_Y0, _Y1 + 1)], dtype=np.int64)
_GAP_START = SPRING_DAY * 1440 + 120  # 02:00 local: clocks go to 03:00
_SUMMER_END = AUTUMN_DAY * 1440 + 180  # 03:00 summer time: clocks go back to 02:00

B_LO, B_HI = days(dt.date(1925, 1, 1)), days(dt.date(2024, 12, 31))  # birth dates
W_LO, W_HI = days(dt.date(2015, 1, 1)), days(dt.date(2025, 10, 31))  # care events
DEATH_HI = days(dt.date(2025, 6, 30))
OLD = days(dt.date(1960, 1, 1))
SELF_CHECK_DAY = dt.date(2026, 1, 1)  # "today" for internal checks only; the output never depends on it


def year_index(d: np.ndarray) -> np.ndarray:
    """Index into the per-year tables of the year of each day."""
    years = d.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    return np.clip(years - _Y0, 0, _Y1 - _Y0)


def skip_gap(t: np.ndarray) -> np.ndarray:
    """Move wall times inside the skipped spring hour one hour forward (they do not exist)."""
    g = _GAP_START[year_index(t // 1440)]
    return np.where((t >= g) & (t < g + 60), t + 60, t)


def is_summer(t: np.ndarray) -> np.ndarray:
    """Summer time (UTC+2) for a Stockholm wall time; the repeated October hour reads as summer."""
    y = year_index(t // 1440)
    return (t >= _GAP_START[y]) & (t < _SUMMER_END[y])


_D0, _D1 = days(dt.date(1900, 1, 1)), days(dt.date(2199, 12, 31))
_TEXT: dict[str, pl.Series] = {}


def _table(name: str) -> pl.Series:
    """Text of every day 1900-2199 and of every minute of a day (made once, then only gathered)."""
    if name not in _TEXT:
        if name == "day":
            d = np.arange(_D0, _D1 + 1).astype("datetime64[D]")
            _TEXT[name] = pl.Series(d).dt.strftime("%Y-%m-%d")
        else:
            m = np.arange(1440)
            _TEXT[name] = pl.Series([f"{h:02d}:{mm:02d}" for h, mm in zip(m // 60, m % 60, strict=True)])
    return _TEXT[name]


def day_text(d: np.ndarray) -> pl.Series:
    """``YYYY-MM-DD``."""
    d = np.asarray(d, dtype=np.int64)
    if len(d) and (d.min() < _D0 or d.max() > _D1):  # pragma: no cover - the generator stays in 1900-2199
        return pl.Series(d.astype("datetime64[D]")).dt.strftime("%Y-%m-%d")
    return _table("day").gather(d - _D0)


def _parts(t: np.ndarray) -> tuple[pl.Series, pl.Series]:
    t = np.asarray(t, dtype=np.int64)
    return day_text(t // 1440), _table("minute").gather(t % 1440)


def pas_ts(t: np.ndarray) -> pl.Series:
    """``YYYY-MM-DD HH:MM`` (PAS local time)."""
    d, m = _parts(t)
    return pl.select(pl.format("{} {}", pl.lit(d), pl.lit(m))).to_series()


_OFFSET = pl.Series(["+01:00", "+02:00"])


def pcs_ts(t: np.ndarray) -> pl.Series:
    """``YYYY-MM-DDTHH:MM:00+01:00`` / ``+02:00`` (PCS, with the Stockholm offset of that wall time)."""
    d, m = _parts(t)
    off = _OFFSET.gather(is_summer(np.asarray(t, dtype=np.int64)).astype(np.int64))
    return pl.select(pl.format("{}T{}:00{}", pl.lit(d), pl.lit(m), pl.lit(off))).to_series()


def uniform_days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One day drawn uniformly from ``lo..hi`` (inclusive) per element."""
    return lo + (rng.random(len(lo)) * (hi - lo + 1)).astype(np.int64)
