"""How the report writes numbers, times and long labels (plain text: the templates escape it)."""

from __future__ import annotations

import datetime as dt

#: a figure as summary.json gives it: usually a count, shown as given otherwise
Figure = int | float | str | None


def count_text(value: object) -> str:
    """A count with a narrow space as thousands separator (Swedish style); '—' when unknown."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return f"{value:,.1f}".replace(",", "\u202f")
        return f"{int(value):,}".replace(",", "\u202f")
    return str(value)


def short(label: str, n: int = 14) -> str:
    """``label`` cut to ``n`` characters with an ellipsis."""
    return label if len(label) <= n else label[: n - 1] + "…"


def text(value: object) -> str:
    """``value`` as text; empty for None."""
    return "" if value is None else str(value)


def opt_text(value: object) -> str | None:
    """``value`` as text, None kept."""
    return None if value is None else str(value)


def when(iso: object) -> str:
    """ISO time as 'YYYY-MM-DD HH:MM UTC' (or as given when it does not parse)."""
    if not iso:
        return ""
    try:
        t = dt.datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if t.tzinfo is not None:
        return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return t.strftime("%Y-%m-%d %H:%M")


def coord(value: float) -> str:
    """An SVG coordinate: at most two decimals, no trailing zeros."""
    s = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s
