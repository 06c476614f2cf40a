"""Geometry of the report's inline SVG charts.

Each builder returns a frozen :class:`Chart` (or :class:`FateBar`) with every shape placed; the
macros in ``templates/macros/charts.html.j2`` only draw them. Labels are plain text (escaped by
the template).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from pipelines.report.fmt import count_text, short, text
from pipelines.report.palette import COLOURS, FATES


@dataclass(frozen=True)
class LegendItem:
    """One entry of a chart legend: a line, dashed line or box swatch in ``colour``."""

    label: str
    colour: str
    style: str  # "line" | "dash" | "box"


@dataclass(frozen=True)
class Segment:
    """A straight line from (x1, y1) to (x2, y2): a grid line ('grid') or an axis ('axis')."""

    kind: ClassVar[str] = "segment"
    cls: str
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Label:
    """A text in the chart: ``cls`` 'ax' (axis) or 'val' (a value); ``fill`` overrides the class colour."""

    kind: ClassVar[str] = "label"
    cls: str
    x: float
    y: float
    text: str
    anchor: str | None = None
    fill: str | None = None


@dataclass(frozen=True)
class Bar:
    """A filled rectangle with a tooltip."""

    kind: ClassVar[str] = "bar"
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str
    rx: float | None = None


@dataclass(frozen=True)
class Point:
    """A point of a line with a tooltip."""

    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Line:
    """A series of a line chart: its points, joined when there is more than one."""

    kind: ClassVar[str] = "line"
    colour: str
    dashed: bool
    points: tuple[Point, ...]

    @property
    def joined(self) -> bool:
        """Whether a polyline joins the points."""
        return len(self.points) > 1


Shape = Segment | Label | Bar | Line


@dataclass(frozen=True)
class Chart:
    """One SVG chart: its shapes in drawing order (later ones on top), then its legend."""

    aria: str
    width: float
    height: float
    shapes: tuple[Shape, ...]
    legend: tuple[LegendItem, ...]


@dataclass(frozen=True)
class FateBar:
    """Where the records of one entity went: a thin stacked bar 120 × 12."""

    bars: tuple[Bar, ...]


def axis(v: float, n: int = 4) -> tuple[float, list[float]]:
    """A round axis maximum at or above ``v`` and its ticks (at most ``n`` + 1, whole numbers)."""
    v = max(v, 1)
    raw = v / n
    exp = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next((m * exp for m in (1, 2, 5, 10) if m * exp >= raw), 10 * exp)
    step = max(1, int(step))
    top = step * math.ceil(v / step)
    return float(top), [float(step * i) for i in range(int(top // step) + 1)]


def _ticks(ticks: list[float], y: Callable[[float], float], x1: float, x2: float) -> list[Shape]:
    """A grid line across the plot per tick, each with its value left of the plot."""
    out: list[Shape] = []
    for t in ticks:
        out += [Segment("grid", x1, y(t), x2, y(t)), Label("ax", x1 - 6, y(t) + 4, count_text(t), "end")]
    return out


def trend_lines(trend: Sequence[dict]) -> Chart:
    """Open errors, warnings and waived findings per trial load (line chart)."""
    w, h, ml, mr, mt, mb = 440, 220, 40, 34, 14, 40
    pad = 26  # keeps the first and last trial-load names inside the chart
    series = (  # (key in the trend, label, colour, dashed)
        ("errors", "Errors", "error", False),
        ("warnings", "Warnings", "warning", False),
        ("waived", "Waived", "waived", True),
    )
    vals = [int(p.get(k) or 0) for p in trend for k, *_ in series]
    vmax, ticks = axis(max(vals or [0]))
    n = len(trend)
    pw, ph = w - ml - mr, h - mt - mb

    def x(i: int) -> float:
        return ml + (pw / 2 if n == 1 else pad + (pw - 2 * pad) * i / (n - 1))

    def y(v: float) -> float:
        return mt + ph - ph * v / vmax

    shapes = _ticks(ticks, y, ml, w - mr)
    step = max(1, math.ceil(n / 8))
    for i, p in enumerate(trend):
        if i % step == 0 or i == n - 1:
            shapes.append(Label("ax", x(i), h - mb + 18, short(text(p.get("trial_load", ""))), "middle"))
    ends: list[tuple[float, float, int, str]] = []  # (y, x, value, colour) of each series' last point
    for key, label, colour_name, dashed in series:
        colour = COLOURS[colour_name]
        values = [int(p.get(key) or 0) for p in trend]
        points = tuple(
            Point(x(i), y(v), f"{text(p.get('trial_load', ''))}: {v} {label.lower()}")
            for i, (p, v) in enumerate(zip(trend, values, strict=True))
        )
        shapes.append(Line(colour, dashed, points))
        if points:
            ends.append((points[-1].y, points[-1].x, values[-1], colour))
    # the last value of each series beside its point, pushed apart where they would overlap
    ends.sort()
    label_y = [ly for ly, *_ in ends]
    for i in range(1, len(label_y)):
        label_y[i] = max(label_y[i], label_y[i - 1] + 12)
    over = label_y[-1] - (mt + ph) if label_y else 0
    label_y = [ly - max(over, 0) for ly in label_y]  # keep the labels above the axis
    shapes += [
        Label("val", lx + 7, ly + 4, count_text(v), fill=colour)
        for ly, (_, lx, v, colour) in zip(label_y, ends, strict=True)
    ]
    shapes.append(Label("ax", ml + pw / 2, h - 6, "trial load", "middle"))
    legend = tuple(LegendItem(lbl, COLOURS[c], "dash" if d else "line") for _, lbl, c, d in series)
    return Chart("Open findings per trial load", w, h, tuple(shapes), legend)


def trend_changes(trend: Sequence[dict]) -> Chart:
    """New and persisting (stacked) and resolved findings per trial load (bar chart)."""
    w, h, ml, mr, mt, mb = 440, 220, 40, 12, 14, 40
    n = max(len(trend), 1)
    tot = [max(int(p.get("new") or 0) + int(p.get("persisting") or 0), int(p.get("resolved") or 0)) for p in trend]
    vmax, ticks = axis(max(tot or [0]))
    pw, ph = w - ml - mr, h - mt - mb
    slot = pw / n
    bw = min(34.0, slot * 0.32)

    def y(v: float) -> float:
        return mt + ph - ph * v / vmax

    shapes = _ticks(ticks, y, ml, w - mr)
    step = max(1, math.ceil(n / 8))
    for i, p in enumerate(trend):
        cx = ml + slot * (i + 0.5)
        tl = text(p.get("trial_load", ""))
        new, pers, res = (int(p.get(k) or 0) for k in ("new", "persisting", "resolved"))
        x0 = cx - bw - 1
        y_p, y_n, y_r = y(pers), y(pers + new), y(res)
        shapes += [
            Bar(x0, y_p, bw, y(0) - y_p, COLOURS["persisting"], f"{tl}: {pers} persisting"),
            Bar(x0, y_n, bw, y_p - y_n, COLOURS["new"], f"{tl}: {new} new"),
            Label("val", x0 + bw / 2, y_n - 4, count_text(new + pers), "middle"),
            Bar(cx + 1, y_r, bw, y(0) - y_r, COLOURS["resolved"], f"{tl}: {res} resolved"),
            Label("val", cx + 1 + bw / 2, y_r - 4, count_text(res), "middle"),
        ]
        if i % step == 0 or i == n - 1:
            shapes.append(Label("ax", cx, h - mb + 18, short(tl), "middle"))
    shapes.append(Segment("axis", ml, y(0), w - mr, y(0)))
    shapes.append(Label("ax", ml + pw / 2, h - 6, "trial load", "middle"))
    legend = tuple(LegendItem(k.capitalize(), COLOURS[k], "box") for k in ("new", "persisting", "resolved"))
    return Chart("New, persisting, resolved per load", w, h, tuple(shapes), legend)


def entity_bars(rows: Sequence[tuple[str, int, int, int]]) -> Chart:
    """Open findings per entity: (entity, errors, warnings, waived), stacked horizontal bars."""
    w, ml, mr, bh, gap, mt = 440, 92, 40, 15, 7, 6
    h = mt + len(rows) * (bh + gap) + 4
    vmax = max([a + b + c for _, a, b, c in rows] or [0]) or 1
    pw = w - ml - mr
    shapes: list[Shape] = []
    for i, (ent, err, warn, waived) in enumerate(rows):
        yy = mt + i * (bh + gap)
        shapes.append(Label("ax", ml - 8, yy + bh - 4, ent, "end"))
        xx = float(ml)
        for v, key in ((err, "error"), (warn, "warning"), (waived, "waived")):
            if v:
                ww = max(pw * v / vmax, 1.5)
                shapes.append(Bar(xx, yy, ww, bh, COLOURS[key], f"{ent}: {v} {key}", rx=2))
                xx += ww
        shapes.append(Label("val", xx + 6, yy + bh - 4, count_text(err + warn + waived)))
    shapes.append(Segment("axis", ml, mt - 2, ml, h - 2))
    if not any(a + b + c for _, a, b, c in rows):
        shapes.append(Label("val", ml + pw / 2, h / 2 + 4, "No open error, warning or waived finding", "middle"))
    legend = (
        LegendItem("Errors", COLOURS["error"], "box"),
        LegendItem("Warnings", COLOURS["warning"], "box"),
        LegendItem("Waived", COLOURS["waived"], "box"),
    )
    return Chart("Open findings per entity", w, h, tuple(shapes), legend)


def fate_bar(ent: dict) -> FateBar | None:
    """Where the records of one entity went (None when it read nothing)."""
    vals = [(label, int(ent.get(k) or 0), c) for k, label, c in FATES]
    total = sum(v for _, v, _ in vals)
    if not int(ent.get("records_read") or 0) or not total:
        return None
    bars, x = [], 0.0
    for label, v, c in vals:
        if v:
            ww = 120 * v / total
            bars.append(Bar(x, 0, ww, 12, c, f"{v} {label}"))
            x += ww
    return FateBar(tuple(bars))


def fate_legend() -> tuple[LegendItem, ...]:
    """The legend of the fate bars."""
    return tuple(LegendItem(label, colour, "box") for _, label, colour in FATES)
