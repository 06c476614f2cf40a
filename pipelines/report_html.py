"""``report.html``: the data stewards' one-page report of a trial load.

One self-contained page that works offline: styles, scripts and charts (inline SVG drawn here)
are all in the file, and a Content-Security-Policy forbids the page from fetching anything. The
page shows, in this order:

1. the gate verdict (PASSED / FAILED) with the trial load, migration, date, open errors, warnings
   and waived findings, the ledger balance and the failing gates;
2. charts: the trend of open findings across the trial loads of the migration, what changed
   against the previous load (new / persisting / resolved), open findings per entity;
3. counts per entity and source system (read, out of scope, rejected, merged, migrated, with
   differences, missing, unexpected), the rejected records by reason, the extract files read;
4. findings per category and severity, with the gate state of each category;
5. the discrepancy lists grouped by who must act (source system, code map, vendor load), one tab
   each, filterable (text, category, severity, status, entity, waived) and sortable (click a
   header) by a small inline script. Filters can be preset by the URL fragment, e.g.
   ``report.html#lists?owner=vendor%20load&severity=error&q=name_last&sort=entity&dir=desc``
   (``focus=1`` hides the other sections); the filter in use is written back to the fragment, so
   a filtered view can be shared as a link;
6. unmapped codes with their best candidates, for the code-map owner;
7. waivers: applied (with match counts), unmatched, expired;
8. every gate with its threshold; links to discrepancies.csv, worklists/, junit.xml and the GX
   Data Docs (all relative).

All text from the data is escaped. Values that identify a person arrive masked in ``expected`` /
``actual`` (docs/decisions.md D29); this module adds no value of its own from the extract.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from pathlib import Path

import polars as pl

from checks.discrepancies import CATEGORIES, DISCREPANCY_COLUMNS, ENTITIES, OWNERS, owner, status_totals

MAX_ROWS_PER_OWNER = 2000
MAX_UNMAPPED_ROWS = 1000

ENTITY_ORDER = ENTITIES
OWNER_INFO = {
    "source system": ("Source system", "PAS / PCS data stewards correct the legacy record before the next extract."),
    "code map": ("Code map", "The code-map owner adds or corrects codes in mappings/code_maps/ (see Unmapped codes)."),
    "vendor load": ("Vendor load", "The vendor corrects the load: rows missing, unexpected, changed or inconsistent."),
}
SEV_RANK = {"error": 0, "warning": 1, "info": 2}
STATUS_RANK = {"new": 0, "persisting": 1, "resolved": 2}
COLOURS = {
    "error": "#c62828",
    "warning": "#e08600",
    "info": "#78909c",
    "waived": "#9e9e9e",
    "new": "#1565c0",
    "persisting": "#7b1fa2",
    "resolved": "#2e7d32",
}
_LIST_COLUMNS = [
    # (sort key, header, css class, width)
    ("severity", "Severity", "c-sev", 5.5),
    ("status", "Status", "c-status", 7),
    ("category", "Category / check / id", "c-cat", 12),
    ("entity", "Entity", "c-ent", 6.5),
    ("source_ref", "Source ref", "c-ref", 10),
    ("target_ref", "Target ref", "c-ref", 7),
    ("column", "Column", "c-col", 7.5),
    ("expected", "Expected → actual", "c-val", 13),
    ("message", "Message", "c-msg", 18.5),
    ("suggested_action", "Suggested action", "c-act", 13),
]


def e(value: object) -> str:
    """Escaped text of a value; empty for None."""
    if value is None:
        return ""
    return html.escape(str(value), quote=True)


def _n(value: object) -> str:
    """A count with a narrow space as thousands separator (Swedish style); '—' when unknown."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return f"{value:,.1f}".replace(",", "\u202f")
        return f"{int(value):,}".replace(",", "\u202f")
    return e(value)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


def _when(iso: object) -> str:
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


# ---------------------------------------------------------------------------------------------
# inputs


def _prepare(disc: pl.DataFrame) -> pl.DataFrame:
    """The discrepancies with every column the page uses, in the page's order."""
    for c in DISCREPANCY_COLUMNS:
        if c not in disc.columns:
            disc = disc.with_columns(pl.lit(None, dtype=pl.String).alias(c))
    if "owner" not in disc.columns:
        disc = disc.with_columns(owner().alias("owner"))
    if "waived" not in disc.columns:
        disc = disc.with_columns(pl.lit(False).alias("waived"))
    if "waiver" not in disc.columns:
        disc = disc.with_columns(pl.lit(None, dtype=pl.String).alias("waiver"))
    disc = disc.with_columns(
        pl.col("waived").cast(pl.Boolean).fill_null(False),
        pl.col("status").fill_null("new"),
        pl.col("owner").fill_null("vendor load"),
    )
    return (
        disc.with_columns(
            pl.col("severity").replace_strict(SEV_RANK, default=3, return_dtype=pl.Int8).alias("_sev"),
            pl.col("status").replace_strict(STATUS_RANK, default=3, return_dtype=pl.Int8).alias("_st"),
        )
        .sort(["_st", "_sev", "waived", "entity", "category", "source_ref", "target_ref", "column"], nulls_last=True)
        .drop("_sev", "_st")
    )


def _entities(summary: dict) -> dict[str, dict]:
    ents = summary.get("entities") or {}
    if isinstance(ents, list):  # tolerate a list of {entity: …, …}
        ents = {x.get("entity", str(i)): x for i, x in enumerate(ents) if isinstance(x, dict)}
    order = {n: i for i, n in enumerate(ENTITY_ORDER)}
    return dict(sorted(ents.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))


def _totals(open_: pl.DataFrame, disc: pl.DataFrame, summary: dict) -> dict:
    """Errors / warnings (open, not waived), waived (open), new / persisting / resolved."""
    t = {**status_totals(disc), "info": open_.filter(pl.col("severity") == "info").height}
    given = summary.get("totals")
    if isinstance(given, dict):  # the figures of summary.json win, so the page and CI agree
        t |= {k: v for k, v in given.items() if k in t and isinstance(v, int)}
    return t


def _gates(summary: dict) -> list[dict]:
    out = []
    for g in summary.get("gates") or []:
        if not isinstance(g, dict):
            continue
        name = g.get("gate") or g.get("check") or g.get("category") or "?"
        threshold = g.get("threshold")
        if threshold is None and g.get("max_errors") is not None:
            threshold = f"max {g['max_errors']} errors"
        out.append(
            {
                "gate": name,
                "category": g.get("category") or (name if name in CATEGORIES else ""),
                "errors": g.get("errors", 0) or 0,
                "warnings": g.get("warnings"),
                "waived": g.get("waived", 0) or 0,
                "threshold": threshold or "",
                "passed": bool(g.get("passed", True)),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# SVG charts


def _axis(v: float, n: int = 4) -> tuple[float, list[float]]:
    """A round axis maximum at or above ``v`` and its ticks (at most ``n`` + 1, whole numbers)."""
    v = max(v, 1)
    raw = v / n
    exp = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next((m * exp for m in (1, 2, 5, 10) if m * exp >= raw), 10 * exp)
    step = max(1, int(step))
    top = step * math.ceil(v / step)
    return float(top), [float(step * i) for i in range(int(top // step) + 1)]


def _legend(items: list[tuple[str, str, str]]) -> str:
    """items: (label, colour, style 'line'|'dash'|'box')."""
    parts = []
    for label, colour, style in items:
        if style == "box":
            sw = f'<span class="sw" style="background:{colour}"></span>'
        else:
            dash = " dashed" if style == "dash" else ""
            sw = f'<span class="sw line{dash}" style="border-color:{colour}"></span>'
        parts.append(f'<span class="lg">{sw}{e(label)}</span>')
    return f'<div class="legend">{"".join(parts)}</div>'


def _short(label: str, n: int = 14) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _trend_lines(trend: list[dict]) -> str:
    """Open errors, warnings and waived findings per trial load (line chart)."""
    w, h, ml, mr, mt, mb = 440, 220, 40, 34, 14, 40
    pad = 26  # keeps the first and last trial-load names inside the chart
    series = [("errors", "Errors", COLOURS["error"], ""), ("warnings", "Warnings", COLOURS["warning"], "")]
    series.append(("waived", "Waived", COLOURS["waived"], ' stroke-dasharray="5 4"'))
    vals = [int(p.get(k) or 0) for p in trend for k, *_ in series]
    vmax, ticks = _axis(max(vals or [0]))
    n = len(trend)
    pw, ph = w - ml - mr, h - mt - mb

    def x(i: int) -> float:
        return ml + (pw / 2 if n == 1 else pad + (pw - 2 * pad) * i / (n - 1))

    def y(v: float) -> float:
        return mt + ph - ph * v / vmax

    out = [f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="Open findings per trial load">']
    ends: list[list] = []
    for t in ticks:
        out.append(f'<line class="grid" x1="{ml}" x2="{w - mr}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>')
        out.append(f'<text class="ax" x="{ml - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_n(t)}</text>')
    step = max(1, math.ceil(n / 8))
    for i, p in enumerate(trend):
        if i % step == 0 or i == n - 1:
            label = _short(str(p.get("trial_load", "")))
            out.append(f'<text class="ax" x="{x(i):.1f}" y="{h - mb + 18}" text-anchor="middle">{e(label)}</text>')
    for key, label, colour, dash in series:
        pts = [(x(i), y(int(p.get(key) or 0))) for i, p in enumerate(trend)]
        if n > 1:
            d = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2.5"{dash} points="{d}"/>')
        for i, (px, py) in enumerate(pts):
            v = int(trend[i].get(key) or 0)
            tl = e(trend[i].get("trial_load", ""))
            out.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour}"><title>{tl}: {v} {label.lower()}</title>'
                "</circle>"
            )
        if trend:
            ends.append([pts[-1][1], pts[-1][0], int(trend[-1].get(key) or 0), colour])
    # the last value of each series beside its point, pushed apart where they would overlap
    ends.sort()
    for i in range(1, len(ends)):
        ends[i][0] = max(ends[i][0], ends[i - 1][0] + 12)
    over = ends[-1][0] - (mt + ph) if ends else 0
    for end in ends:  # keep the labels above the axis
        end[0] -= max(over, 0)
    for ly, lx, v, colour in ends:
        out.append(f'<text class="val" x="{lx + 7:.1f}" y="{ly + 4:.1f}" fill="{colour}">{_n(v)}</text>')
    out.append(f'<text class="ax" x="{ml + pw / 2:.1f}" y="{h - 6}" text-anchor="middle">trial load</text>')
    out.append("</svg>")
    legend = _legend([(lbl, c, "dash" if d else "line") for _, lbl, c, d in series])
    return "".join(out) + legend


def _trend_changes(trend: list[dict]) -> str:
    """New and persisting (stacked) and resolved findings per trial load (bar chart)."""
    w, h, ml, mr, mt, mb = 440, 220, 40, 12, 14, 40
    n = max(len(trend), 1)
    tot = [max(int(p.get("new") or 0) + int(p.get("persisting") or 0), int(p.get("resolved") or 0)) for p in trend]
    vmax, ticks = _axis(max(tot or [0]))
    pw, ph = w - ml - mr, h - mt - mb
    slot = pw / n
    bw = min(34.0, slot * 0.32)

    def y(v: float) -> float:
        return mt + ph - ph * v / vmax

    out = [f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="New, persisting, resolved per load">']
    for t in ticks:
        out.append(f'<line class="grid" x1="{ml}" x2="{w - mr}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>')
        out.append(f'<text class="ax" x="{ml - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_n(t)}</text>')
    step = max(1, math.ceil(n / 8))
    for i, p in enumerate(trend):
        cx = ml + slot * (i + 0.5)
        tl = e(p.get("trial_load", ""))
        new, pers, res = (int(p.get(k) or 0) for k in ("new", "persisting", "resolved"))
        x0 = cx - bw - 1
        y_p = y(pers)
        out.append(
            f'<rect x="{x0:.1f}" y="{y_p:.1f}" width="{bw:.1f}" height="{y(0) - y_p:.1f}" '
            f'fill="{COLOURS["persisting"]}"><title>{tl}: {pers} persisting</title></rect>'
        )
        y_n = y(pers + new)
        out.append(
            f'<rect x="{x0:.1f}" y="{y_n:.1f}" width="{bw:.1f}" height="{y_p - y_n:.1f}" '
            f'fill="{COLOURS["new"]}"><title>{tl}: {new} new</title></rect>'
        )
        out.append(
            f'<text class="val" x="{x0 + bw / 2:.1f}" y="{y_n - 4:.1f}" text-anchor="middle">{_n(new + pers)}</text>'
        )
        y_r = y(res)
        out.append(
            f'<rect x="{cx + 1:.1f}" y="{y_r:.1f}" width="{bw:.1f}" height="{y(0) - y_r:.1f}" '
            f'fill="{COLOURS["resolved"]}"><title>{tl}: {res} resolved</title></rect>'
        )
        out.append(
            f'<text class="val" x="{cx + 1 + bw / 2:.1f}" y="{y_r - 4:.1f}" text-anchor="middle">{_n(res)}</text>'
        )
        if i % step == 0 or i == n - 1:
            lab = e(_short(str(p.get("trial_load", ""))))
            out.append(f'<text class="ax" x="{cx:.1f}" y="{h - mb + 18}" text-anchor="middle">{lab}</text>')
    out.append(f'<line class="axis" x1="{ml}" x2="{w - mr}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>')
    out.append(f'<text class="ax" x="{ml + pw / 2:.1f}" y="{h - 6}" text-anchor="middle">trial load</text>')
    out.append("</svg>")
    legend = _legend(
        [
            ("New", COLOURS["new"], "box"),
            ("Persisting", COLOURS["persisting"], "box"),
            ("Resolved", COLOURS["resolved"], "box"),
        ]
    )
    return "".join(out) + legend


def _entity_bars(rows: list[tuple[str, int, int, int]]) -> str:
    """Open findings per entity: errors, warnings, waived, stacked horizontal bars."""
    w, ml, mr, bh, gap, mt = 440, 92, 40, 15, 7, 6
    h = mt + len(rows) * (bh + gap) + 4
    vmax = max([a + b + c for _, a, b, c in rows] or [0]) or 1
    pw = w - ml - mr
    out = [f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="Open findings per entity">']
    for i, (ent, err, warn, waived) in enumerate(rows):
        yy = mt + i * (bh + gap)
        out.append(f'<text class="ax" x="{ml - 8}" y="{yy + bh - 4}" text-anchor="end">{e(ent)}</text>')
        xx = float(ml)
        for v, key in ((err, "error"), (warn, "warning"), (waived, "waived")):
            if v:
                ww = max(pw * v / vmax, 1.5)
                out.append(
                    f'<rect x="{xx:.1f}" y="{yy}" width="{ww:.1f}" height="{bh}" fill="{COLOURS[key]}" rx="2">'
                    f"<title>{e(ent)}: {v} {key}</title></rect>"
                )
                xx += ww
        total = err + warn + waived
        out.append(f'<text class="val" x="{xx + 6:.1f}" y="{yy + bh - 4}">{_n(total)}</text>')
    out.append(f'<line class="axis" x1="{ml}" x2="{ml}" y1="{mt - 2}" y2="{h - 2}"/>')
    if not any(a + b + c for _, a, b, c in rows):
        out.append(
            f'<text class="val" x="{ml + pw / 2:.1f}" y="{h / 2 + 4:.1f}" text-anchor="middle">'
            "No open error, warning or waived finding</text>"
        )
    out.append("</svg>")
    legend = _legend(
        [
            ("Errors", COLOURS["error"], "box"),
            ("Warnings", COLOURS["warning"], "box"),
            ("Waived", COLOURS["waived"], "box"),
        ]
    )
    return "".join(out) + legend


def _fate_bar(ent: dict) -> str:
    """Where the records of one entity went: a thin stacked bar."""
    parts = [
        ("migrated", "migrated", "#43a047"),
        ("with_differences", "with differences", "#fb8c00"),
        ("merged", "merged", "#8e24aa"),
        ("rejected", "rejected", "#e53935"),
        ("missing", "missing", "#b71c1c"),
        ("out_of_scope", "out of scope", "#b0bec5"),
    ]
    vals = [(label, int(ent.get(k) or 0), c) for k, label, c in parts]
    total = sum(v for _, v, _ in vals)
    if not int(ent.get("records_read") or 0) or not total:
        return ""
    out = ['<svg class="fate" viewBox="0 0 120 12" preserveAspectRatio="none" role="img" aria-label="record fates">']
    x = 0.0
    for label, v, c in vals:
        if v:
            ww = 120 * v / total
            out.append(
                f'<rect x="{x:.2f}" y="0" width="{ww:.2f}" height="12" fill="{c}"><title>{v} {label}</title></rect>'
            )
            x += ww
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# sections


def _verdict(summary: dict, totals: dict, gates: list[dict], passed: bool, when: str) -> str:
    verdict = "PASSED" if passed else "FAILED"
    failing = [g for g in gates if not g["passed"]]
    balanced = summary.get("ledger_balanced")
    bal_txt = "unknown" if balanced is None else ("yes" if balanced else "NO")
    bal_cls = "" if balanced is None else ("ok" if balanced else "bad")
    read, rows = summary.get("records_read"), summary.get("ledger_rows")
    if passed:
        lead = (
            f"All {_n(len(gates))} gates pass." if gates else "No gate failed."
        ) + " The trial load may proceed as far as this validation can tell."
    else:
        lead = (
            f"{_n(len(failing))} of {_n(len(gates))} gates fail: error findings above their threshold, not waived."
            if gates
            else "The trial load fails its gate."
        )
    tiles = [
        ("Errors", totals["errors"], "error" if totals["errors"] else "zero", "open, not waived", "k-errors"),
        ("Warnings", totals["warnings"], "warning" if totals["warnings"] else "zero", "open, not waived", "k-warnings"),
        ("Waived", totals["waived"], "waived" if totals["waived"] else "zero", "accepted by stewards", "k-waived"),
        ("New", totals["new"], "new" if totals["new"] else "zero", "since the previous load", "k-new"),
        (
            "Persisting",
            totals["persisting"],
            "persisting" if totals["persisting"] else "zero",
            "still open",
            "k-persisting",
        ),
        ("Resolved", totals["resolved"], "resolved" if totals["resolved"] else "zero", "gone since last", "k-resolved"),
    ]
    tile_html = "".join(
        f'<div class="kpi {cls}" id="{kid}"><div class="kv">{_n(v)}</div><div class="kl">{e(label)}</div>'
        f'<div class="ks">{e(sub)}</div></div>'
        for label, v, cls, sub, kid in tiles
    )
    tile_html += (
        f'<div class="kpi ledger {bal_cls}" id="k-ledger"><div class="kv">{e(bal_txt)}</div>'
        f'<div class="kl">Ledger balanced</div><div class="ks">{_n(read)} records read, {_n(rows)} in the ledger</div>'
        "</div>"
    )
    fail_html = ""
    if failing:
        shown = sorted(failing, key=lambda g: -int(g["errors"]))[:8]
        trs = "".join(
            f'<tr><td class="mono">{e(g["gate"])}</td><td>{e(g["category"])}</td><td class="num">{_n(g["errors"])}</td>'
            f'<td class="num">{_n(g["waived"])}</td><td>{e(g["threshold"])}</td></tr>'
            for g in shown
        )
        more = (
            f'<p class="note">and {_n(len(failing) - len(shown))} more failing gates: '
            'see <a href="#gates">all gates</a>.</p>'
            if len(failing) > len(shown)
            else ""
        )
        fail_html = (
            '<div class="failing"><h3>Failing gates</h3><table class="grid-t compact" id="failing-gates">'
            "<thead><tr><th>Gate</th><th>Category</th><th class=num>Errors</th><th class=num>Waived</th>"
            f"<th>Threshold</th></tr></thead><tbody>{trs}</tbody></table>{more}</div>"
        )
    migration = summary.get("migration")
    meta = []
    if migration:
        meta.append(f'Migration <b id="migration">{e(migration)}</b>')
    if when:
        meta.append(f'validated <b id="run-at">{e(when)}</b>')
    return f"""
<section id="verdict" class="verdict {verdict.lower()}" data-verdict="{verdict}">
  <div class="verdict-head">
    <div class="badge-verdict" id="verdict-text">{verdict}</div>
    <div class="verdict-title">
      <h1>Trial load <span id="trial-load">{e(summary.get("trial_load", ""))}</span></h1>
      <p class="meta">{" · ".join(meta)}</p>
      <p class="lead">{e(lead)}</p>
    </div>
  </div>
  <div class="kpis">{tile_html}</div>
  {fail_html}
</section>"""


def _charts(trend: list[dict], entity_rows: list[tuple[str, int, int, int]]) -> str:
    note = (
        '<p class="note">First trial load of this migration: the trend grows with every load.</p>'
        if len(trend) <= 1
        else f'<p class="note">{_n(len(trend))} trial loads, oldest first.</p>'
    )
    return f"""
<section id="charts">
  <h2>At a glance</h2>
  <div class="cards">
    <figure class="card"><figcaption>Open findings per trial load</figcaption>{_trend_lines(trend)}{note}</figure>
    <figure class="card"><figcaption>Against the previous load: new, persisting, resolved</figcaption>
      {_trend_changes(trend)}</figure>
    <figure class="card"><figcaption>Open findings per entity (this load)</figcaption>{_entity_bars(entity_rows)}
    </figure>
  </div>
</section>"""


def _counts(summary: dict, ents: dict[str, dict]) -> str:
    systems = sorted({s for v in ents.values() for s in (v.get("records_read_by_system") or {})})
    cols = [
        ("out_of_scope", "Out of scope"),
        ("rejected", "Rejected"),
        ("merged", "Merged"),
        ("migrated", "Migrated unchanged"),
        ("with_differences", "With differences"),
        ("missing", "Missing in target"),
        ("unexpected", "Unexpected in target"),
        ("expected_in_target", "Expected in target"),
        ("found_in_target", "Found in target"),
    ]
    head = "<th>Entity</th><th class=num>Read (all)</th>" + "".join(
        f"<th class='num sys' title='records read from {e(s.upper())}'>{e(s.upper())}</th>" for s in systems
    )
    head += "".join(f"<th class=num>{e(lbl)}</th>" for _, lbl in cols) + "<th>Where the records went</th>"
    trs = []
    for name, v in ents.items():
        by = v.get("records_read_by_system") or {}
        read = v.get("records_read")
        derived = not read and not by
        cells = [f'<th scope="row">{e(name)}</th>']
        cells.append(
            f'<td class="num" data-entity="{e(name)}" data-key="records_read">{_n(read)}</td>'
            if not derived
            else f'<td class="num muted" data-entity="{e(name)}" data-key="records_read" '
            f'title="derived in the target; no legacy records of its own">{_n(read)}</td>'
        )
        for s in systems:
            cells.append(f'<td class="num sys" data-entity="{e(name)}" data-key="read_{e(s)}">{_n(by.get(s, 0))}</td>')
        for k, _ in cols:
            val = v.get(k)
            cls = "num"
            if k in ("missing", "unexpected", "with_differences") and val:
                cls += " hl-bad"
            elif k == "rejected" and val:
                cls += " hl-warn"
            title = ""
            if k == "rejected" and v.get("rejected_by_category"):
                title = ' title="' + e(", ".join(f"{c}: {n}" for c, n in v["rejected_by_category"].items())) + '"'
            cells.append(f'<td class="{cls}" data-entity="{e(name)}" data-key="{k}"{title}>{_n(val)}</td>')
        cells.append(f"<td>{_fate_bar(v)}</td>")
        trs.append(f'<tr data-entity="{e(name)}">{"".join(cells)}</tr>')
    reasons = sorted({r for v in ents.values() for r in (v.get("rejected_by_category") or {})})
    rej = ""
    if reasons:
        rows = []
        for name, v in ents.items():
            rc = v.get("rejected_by_category") or {}
            if not rc:
                continue
            rows.append(
                f"<tr><th scope=row>{e(name)}</th>"
                + "".join(f"<td class='num{' zero' if not rc.get(r) else ''}'>{_n(rc.get(r, 0))}</td>" for r in reasons)
                + f"<td class=num><b>{_n(sum(rc.values()))}</b></td></tr>"
            )
        rej = (
            "<h3>Rejected records by reason</h3>"
            '<p class="note">parent_rejected: the record\'s parent (patient or contact) was rejected, so it cannot '
            "be loaded either; it is resolved with its parent.</p>"
            '<div class="scroll-x"><table class="grid-t compact" id="rejected-table"><thead><tr><th>Entity</th>'
            + "".join(f"<th class=num>{e(r)}</th>" for r in reasons)
            + "<th class=num>Total</th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table></div>"
        )
    files = summary.get("files") or []
    files_html = ""
    if files:
        ftr = "".join(
            f'<tr><td class="mono">{e(f.get("file"))}</td>'
            f'<td><span class="pill {"ok" if f.get("status") == "ok" else "bad"}">{e(f.get("status"))}</span></td>'
            f'<td class="num">{_n(f.get("records"))}</td></tr>'
            for f in files
            if isinstance(f, dict)
        )
        files_html = (
            '<details class="files"><summary>Extract files read ('
            + _n(len(files))
            + ")</summary><table class='grid-t compact'><thead><tr><th>File</th><th>Status</th>"
            "<th class=num>Records</th></tr></thead><tbody>" + ftr + "</tbody></table></details>"
        )
    legend = _legend(
        [
            ("migrated", "#43a047", "box"),
            ("with differences", "#fb8c00", "box"),
            ("merged", "#8e24aa", "box"),
            ("rejected", "#e53935", "box"),
            ("missing", "#b71c1c", "box"),
            ("out of scope", "#b0bec5", "box"),
        ]
    )
    return f"""
<section id="counts">
  <h2>Counts per entity and source system</h2>
  <p class="note">Every legacy record read ends in exactly one of: out of scope, rejected (the load rules refuse
  it), merged (into another patient), migrated unchanged, migrated with differences, missing in the target.
  Unexpected rows are target rows with no legacy record. person_alias and encntr_alias are derived in the target.</p>
  <div class="scroll-x"><table class="grid-t wrap" id="counts-table"><thead><tr>{head}</tr></thead>
  <tbody>{"".join(trs)}</tbody></table></div>
  {legend}
  {rej}
  {files_html}
</section>"""


def _categories(disc: pl.DataFrame, gates: list[dict]) -> str:
    open_ = disc.filter(pl.col("status") != "resolved")
    cats = list(CATEGORIES) + sorted(set(disc["category"].drop_nulls().to_list()) - set(CATEGORIES))
    gate_state: dict[str, bool] = {}
    for g in gates:
        c = g["category"]
        if c:
            gate_state[c] = gate_state.get(c, True) and g["passed"]
    trs = []
    tot = {"error": 0, "warning": 0, "info": 0, "waived": 0, "resolved": 0}
    for c in cats:
        sub = open_.filter(pl.col("category") == c)
        nw = sub.filter(~pl.col("waived"))
        vals = {s: nw.filter(pl.col("severity") == s).height for s in ("error", "warning", "info")}
        vals["waived"] = sub.filter(pl.col("waived")).height
        vals["resolved"] = disc.filter((pl.col("category") == c) & (pl.col("status") == "resolved")).height
        for k in tot:
            tot[k] += vals[k]
        owners = sub.group_by("owner").len().sort("owner").iter_rows()
        own = ", ".join(f"{o} {n}" for o, n in owners)
        if c in gate_state:
            gs = '<span class="pill ok">passed</span>' if gate_state[c] else '<span class="pill bad">failed</span>'
        else:
            gs = '<span class="muted">—</span>'
        empty = " zero-row" if not any(vals.values()) else ""
        cells = "".join(
            f'<td class="num{" sev-" + s if vals[s] else " zero"}" data-cat="{e(c)}" data-sev="{s}">{_n(vals[s])}</td>'
            for s in ("error", "warning", "info", "waived", "resolved")
        )
        trs.append(
            f'<tr class="{empty.strip()}"><th scope="row">{e(c)}</th>{cells}<td class="owners">{e(own)}</td>'
            f"<td>{gs}</td></tr>"
        )
    foot = "".join(f'<td class="num"><b>{_n(tot[k])}</b></td>' for k in tot)
    return f"""
<section id="categories">
  <h2>Findings per category and severity</h2>
  <p class="note">Open findings of this load (new and persisting). Errors, warnings and infos exclude waived findings;
  waived counts them apart; resolved are findings of the previous load that are gone.</p>
  <table class="grid-t" id="category-table"><thead><tr><th>Category</th><th class=num>Errors</th>
  <th class=num>Warnings</th><th class=num>Info</th><th class=num>Waived</th><th class=num>Resolved</th>
  <th>Who acts (open findings)</th><th>Gate</th></tr></thead>
  <tbody>{"".join(trs)}</tbody><tfoot><tr><th>Total</th>{foot}<td></td><td></td></tr></tfoot></table>
</section>"""


def _ref(value: object) -> str:
    """A reference, breakable after its colons."""
    return e(value).replace(":", ":<wbr>")


def _dotted(value: object) -> str:
    """A check id, breakable after its dots."""
    return e(value).replace(".", ".<wbr>")


def _row(r: dict) -> str:
    sev = r.get("severity") or ""
    st = r.get("status") or ""
    waived = bool(r.get("waived"))
    cls = f"d sev-{e(sev)} st-{e(st)}" + (" waived" if waived else "")
    attrs = (
        f' data-owner="{e(r.get("owner"))}" data-sev="{e(sev)}" data-cat="{e(r.get("category"))}"'
        f' data-status="{e(st)}" data-entity="{e(r.get("entity"))}" data-waived="{"yes" if waived else "no"}"'
        f' data-id="{e(r.get("discrepancy_id"))}"'
    )
    exp, act = r.get("expected"), r.get("actual")
    values = ""
    if exp is not None or act is not None:
        values = (
            f'<div class="ev"><span class="lbl">exp</span>{e(exp) if exp is not None else "<i>none</i>"}</div>'
            f'<div class="ev"><span class="lbl">act</span>{e(act) if act is not None else "<i>none</i>"}</div>'
        )
    waiver = f'<div class="waiver"><span class="wv">waived</span> {e(r.get("waiver"))}</div>' if waived else ""
    cells = [
        f'<td data-k="{SEV_RANK.get(sev, 3)}"><span class="sev {e(sev)}">{e(sev)}</span>'
        + ('<span class="wv" title="waived: see the message">waived</span>' if waived else "")
        + "</td>",
        f'<td data-k="{STATUS_RANK.get(st, 3)}"><span class="st {e(st)}">{e(st)}</span></td>',
        f'<td data-k="{e(r.get("category"))}">{e(r.get("category"))}'
        f'<div class="sub mono">{_dotted(r.get("check"))}</div>'
        f'<div class="sub mono id">{e(r.get("discrepancy_id"))}</div></td>',
        f"<td>{e(r.get('entity'))}</td>",
        f'<td class="mono">{_ref(r.get("source_ref"))}</td>',
        f'<td class="mono">{_ref(r.get("target_ref"))}</td>',
        f'<td class="mono">{_ref(r.get("column"))}</td>',
        f'<td class="mono val" data-k="{e(exp)}">{values}</td>',
        f"<td>{e(r.get('message'))}{waiver}</td>",
        f'<td class="act">{e(r.get("suggested_action"))}</td>',
    ]
    return f'<tr class="{cls}"{attrs}>{"".join(cells)}</tr>'


def _lists(disc: pl.DataFrame) -> str:
    owners = list(OWNERS) + sorted(set(disc["owner"].drop_nulls().to_list()) - set(OWNERS))
    head = "".join(
        f'<th class="{cls}" data-col="{i}" aria-sort="none"><button type="button" data-sort="{key}">{e(lbl)}'
        '<span class="arrow"></span></button></th>'
        for i, (key, lbl, cls, _w) in enumerate(_LIST_COLUMNS)
    )
    colgroup = "".join(f'<col class="{cls}" style="width:{w}%">' for _, _, cls, w in _LIST_COLUMNS)
    tabs, panels = [], []
    for i, o in enumerate(owners):
        sub = disc.filter(pl.col("owner") == o)
        total = sub.height
        open_err = sub.filter(
            (pl.col("status") != "resolved") & (pl.col("severity") == "error") & ~pl.col("waived")
        ).height
        shown = sub.head(MAX_ROWS_PER_OWNER)
        title, who = OWNER_INFO.get(o, (o.capitalize(), ""))
        slug = _slug(o)
        sel = "true" if i == 0 else "false"
        tabs.append(
            f'<button type="button" role="tab" class="tab{" active" if i == 0 else ""}" id="tab-{slug}" '
            f'data-owner="{e(o)}" aria-selected="{sel}" aria-controls="owner-{slug}">{e(title)} '
            f'<span class="cnt" data-total="{total}">{_n(total)}</span>'
            + (
                f'<span class="cnt err" title="open errors, not waived">{_n(open_err)} errors</span>'
                if open_err
                else ""
            )
            + "</button>"
        )
        cap = ""
        if total > shown.height:
            cap = (
                f'<p class="cap">This page lists the first {_n(shown.height)} of {_n(total)} findings of this owner '
                f"(open errors first). The other {_n(total - shown.height)} are in "
                '<a href="discrepancies.csv">discrepancies.csv</a> and in the worklist '
                f'<a href="worklists/{slug}.xlsx">worklists/{slug}.xlsx</a>.</p>'
            )
        if total == 0:
            body = (
                f'<p class="empty">No findings for the {e(o)} owner in this trial load.</p>'
                f'<table class="list" data-owner="{e(o)}" hidden><tbody></tbody></table>'
            )
        else:
            rows = "".join(_row(r) for r in shown.iter_rows(named=True))
            body = (
                f'{cap}<div class="table-wrap"><table class="list" data-owner="{e(o)}"><colgroup>{colgroup}</colgroup>'
                f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
                '<p class="nomatch" hidden>No finding matches the filter.</p></div>'
            )
        panels.append(
            f'<section class="owner-panel{" active" if i == 0 else ""}" id="owner-{slug}" role="tabpanel" '
            f'data-owner="{e(o)}" data-total="{total}" data-rendered="{shown.height}" aria-labelledby="tab-{slug}">'
            f'<h3 class="owner-title">{e(title)} <span class="muted">— {_n(total)} findings</span></h3>'
            f'<p class="who">{e(who)} <span class="shown-note">Showing <b class="shown">{_n(shown.height)}</b> '
            f"of {_n(shown.height)} rows.</span></p>{body}</section>"
        )

    def options(col: str, order: list[str] | None = None) -> str:
        vals = set(disc[col].drop_nulls().to_list())
        seq = [v for v in (order or []) if v in vals] + sorted(vals - set(order or []))
        return "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in seq)

    filters = f"""
  <form class="filters" id="filters" onsubmit="return false">
    <label class="grow">Search <input type="search" id="f-q" placeholder="ref, code, column, message, id…"
      autocomplete="off"></label>
    <label>Category <select id="f-category"><option value="">all</option>{options("category", CATEGORIES)}</select>
    </label>
    <label>Severity <select id="f-severity"><option value="">all</option>{options("severity", list(SEV_RANK))}</select>
    </label>
    <label>Status <select id="f-status"><option value="">all</option>
      <option value="open">open (new + persisting)</option>
      {options("status", list(STATUS_RANK))}</select></label>
    <label>Entity <select id="f-entity"><option value="">all</option>{options("entity", ENTITY_ORDER)}</select></label>
    <label>Waived <select id="f-waived"><option value="">all</option><option value="no">not waived</option>
      <option value="yes">waived only</option></select></label>
    <button type="button" id="f-clear">Clear</button>
    <button type="button" id="f-focus" aria-pressed="false" title="Hide the other sections">Lists only</button>
  </form>"""
    return f"""
<section id="lists">
  <h2>Discrepancies by who must act</h2>
  <p class="note">One tab per owner. Filter with the search box and the selects (they apply to every tab); sort by
  clicking a column header. Expected / actual values that identify a person are masked. Each row names its
  discrepancy id (for waivers) under the category.</p>
  {filters}
  <div class="tabs" role="tablist">{"".join(tabs)}</div>
  {"".join(panels)}
</section>"""


def _unmapped(unmapped: pl.DataFrame | None) -> str:
    if unmapped is None or unmapped.height == 0:
        body = '<p class="empty" id="unmapped-empty">No unmapped codes in this trial load.</p>'
        return f'<section id="unmapped"><h2>Unmapped codes with suggestions</h2>{body}</section>'
    u = unmapped
    for c in ("entity", "source_system", "column", "code"):
        if c not in u.columns:
            u = u.with_columns(pl.lit(None, dtype=pl.String).alias(c))
    if "count" not in u.columns:
        u = u.with_columns(pl.lit(0).alias("count"))
    if "candidates" not in u.columns:
        u = u.with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("candidates"))
    u = u.sort(["count", "entity", "code"], descending=[True, False, False], nulls_last=True)
    total = u.height
    codes_n = int(u["count"].fill_null(0).sum())
    vmax = max(int(u["count"].fill_null(0).max() or 0), 1)
    trs = []
    for r in u.head(MAX_UNMAPPED_ROWS).iter_rows(named=True):
        cnt = int(r.get("count") or 0)
        code = e(r.get("code")) if r.get("code") not in (None, "") else '<i class="muted">(empty)</i>'
        cands = r.get("candidates") or []
        if isinstance(cands, str):
            cands = [cands]
        cl = (
            "<ol class='cands'>" + "".join(f"<li>{e(c)}</li>" for c in list(cands)[:5]) + "</ol>"
            if cands
            else '<span class="muted">no close candidate</span>'
        )
        trs.append(
            f"<tr><td>{e(r.get('entity'))}</td><td>{e((r.get('source_system') or '').upper())}</td>"
            f'<td class="mono">{e(r.get("column"))}</td><td class="mono code">{code}</td>'
            f'<td class="num" data-k="{cnt}"><span class="freq"><span style="width:{100 * cnt / vmax:.0f}%"></span>'
            f"</span>{_n(cnt)}</td><td>{cl}</td></tr>"
        )
    more = (
        f'<p class="cap">The first {_n(MAX_UNMAPPED_ROWS)} of {_n(total)} codes; all are in unmapped_codes.csv.</p>'
        if total > MAX_UNMAPPED_ROWS
        else ""
    )
    return f"""
<section id="unmapped">
  <h2>Unmapped codes with suggestions</h2>
  <p class="note">For the code-map owner: {_n(total)} distinct legacy codes ({_n(codes_n)} records) have no mapping.
  Add each to its code map in <span class="mono">mappings/code_maps/</span> (or correct it in the source system);
  candidates are ranked by a fuzzy match on code and text, with their own frequency in brackets.</p>
  {more}
  <div class="table-wrap short"><table class="grid-t" id="unmapped-table"><thead><tr><th>Entity</th><th>System</th>
  <th>Column</th><th>Code</th><th class="num">Records</th><th>Best candidates</th></tr></thead>
  <tbody>{"".join(trs)}</tbody></table></div>
</section>"""


def _days_to(expires: object, today: dt.date) -> int | None:
    try:
        return (dt.date.fromisoformat(str(expires)[:10]) - today).days
    except ValueError:
        return None


def _waivers(summary: dict, today: dt.date) -> str:
    w = summary.get("waivers") or {}
    applied = w.get("applied") or []
    unmatched = w.get("unmatched") or []
    expired = w.get("expired") or []

    def exp_cell(x: dict) -> str:
        d = _days_to(x.get("expires"), today)
        soon = ""
        if d is not None and 0 <= d <= 30:
            soon = f' <span class="pill warn">in {d} days</span>'
        return f"<td>{e(x.get('expires'))}{soon}</td>"

    def table(items: list[dict], tid: str, with_matched: bool) -> str:
        head = "<th>Waiver</th>" + ("<th class=num>Findings matched</th>" if with_matched else "")
        head += "<th>Reason</th><th>Approved by (role)</th><th>Expires</th>"
        rows = "".join(
            f'<tr><td class="mono"><b>{e(x.get("id"))}</b></td>'
            + (f'<td class="num">{_n(x.get("matched"))}</td>' if with_matched else "")
            + f"<td>{e(x.get('reason'))}</td><td>{e(x.get('approver_role'))}</td>{exp_cell(x)}</tr>"
            for x in items
            if isinstance(x, dict)
        )
        return f'<table class="grid-t compact" id="{tid}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'

    if not (applied or unmatched or expired):
        body = (
            '<p class="empty" id="waivers-empty">No waivers are recorded for this migration '
            '(<span class="mono">mappings/waivers.yaml</span>).</p>'
        )
    else:
        parts = [f"<h3>Applied <span class='muted'>({_n(len(applied))})</span></h3>"]
        parts.append(
            table(applied, "waivers-applied", True) if applied else '<p class="empty">No waiver matched a finding.</p>'
        )
        if unmatched:
            parts.append(
                f"<h3 class='warn-h'>Unmatched <span class='muted'>({_n(len(unmatched))})</span></h3>"
                '<p class="note">These waivers are in force but matched no finding of this load: the problem is fixed, '
                "or the waiver names the wrong id or pattern. Remove or correct them.</p>"
            )
            parts.append(table(unmatched, "waivers-unmatched", False))
        if expired:
            parts.append(
                f"<h3 class='bad-h'>Expired <span class='muted'>({_n(len(expired))})</span></h3>"
                '<p class="note">Past their expiry date: they no longer apply, so their findings count against the '
                "gates again. Renew them with a new decision or remove them.</p>"
            )
            parts.append(table(expired, "waivers-expired", False))
        body = "".join(parts)
    return f"""
<section id="waivers">
  <h2>Waivers</h2>
  <p class="note">A waived finding stays in the lists, marked WAIVED, but does not count against its gate.</p>
  {body}
</section>"""


_PASSED = '<td><span class="pill ok">passed</span></td>'
_FAILED = '<td><span class="pill bad">failed</span></td>'


def _all_gates(gates: list[dict]) -> str:
    if not gates:
        return '<section id="gates"><h2>Gates</h2><p class="empty">No gate results in summary.json.</p></section>'
    order = sorted(gates, key=lambda g: (g["passed"], -int(g["errors"]), g["gate"]))
    has_warn = any(g.get("warnings") is not None for g in gates)
    trs = "".join(
        f'<tr class="{"" if g["passed"] else "failed"}"><td class="mono">{e(g["gate"])}</td><td>{e(g["category"])}</td>'
        f'<td class="num">{_n(g["errors"])}</td>'
        + (f'<td class="num">{_n(g.get("warnings") or 0)}</td>' if has_warn else "")
        + f'<td class="num">{_n(g["waived"])}</td><td>{e(g["threshold"])}</td>'
        + (_PASSED if g["passed"] else _FAILED)
        + "</tr>"
        for g in order
    )
    nfail = sum(not g["passed"] for g in gates)
    return f"""
<section id="gates">
  <h2>Gates</h2>
  <p class="note">A gate counts the error findings of one check (or category) that no waiver covers, against its
  threshold (mappings/gates.yaml). Warnings and infos never fail a gate.</p>
  <details{" open" if nfail else ""}><summary>All {_n(len(gates))} gates ({_n(nfail)} failed)</summary>
  <div class="table-wrap short"><table class="grid-t compact" id="gates-table"><thead><tr><th>Gate</th><th>Category</th>
  <th class=num>Errors</th>{"<th class=num>Warnings</th>" if has_warn else ""}<th class=num>Waived</th>
  <th>Threshold</th><th>Result</th></tr></thead><tbody>{trs}</tbody></table></div></details>
</section>"""


# ---------------------------------------------------------------------------------------------
# page

_CSS = """
:root{--fg:#1f2933;--muted:#6b7785;--line:#e3e8ee;--bg:#f5f7fa;--card:#fff;--accent:#0b4f8a;
--err:#c62828;--warn:#e08600;--info:#78909c;--ok:#2e7d32;--new:#1565c0;--pers:#7b1fa2}
*{box-sizing:border-box}
html{scroll-behavior:smooth}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",
sans-serif;color:var(--fg);background:var(--bg)}
.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
a{color:var(--accent)}
header.top{background:#12263a;color:#fff;padding:10px 28px;display:flex;flex-wrap:wrap;gap:6px 24px;align-items:center;
position:sticky;top:0;z-index:20;box-shadow:0 1px 4px rgba(0,0,0,.25)}
header.top .brand{font-weight:700;letter-spacing:.02em}
header.top .brand small{font-weight:400;opacity:.75;margin-left:6px}
header.top nav{display:flex;flex-wrap:wrap;gap:2px 14px}
header.top a{color:#cfe3f7;text-decoration:none;font-size:13px}
header.top a:hover{color:#fff;text-decoration:underline}
header.top .files{margin-left:auto}
header.top .files a{border:1px solid #3d5a78;border-radius:4px;padding:2px 8px}
main{max-width:1680px;margin:0 auto;padding:18px 28px 40px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:0 0 18px;
scroll-margin-top:56px}
h1{margin:0;font-size:26px}
h2{margin:0 0 10px;font-size:19px}
h3{margin:16px 0 8px;font-size:15px}
.note{color:var(--muted);margin:4px 0 10px;max-width:110ch}
.muted{color:var(--muted)}
.verdict{border-width:2px}
.verdict.failed{border-color:#f2b8b5;background:linear-gradient(#fff6f5,#fff 120px)}
.verdict.passed{border-color:#a5d6a7;background:linear-gradient(#f3fbf3,#fff 120px)}
.verdict-head{display:flex;gap:22px;align-items:center}
.badge-verdict{font-size:40px;font-weight:800;letter-spacing:.06em;color:#fff;padding:10px 26px;border-radius:10px}
.failed .badge-verdict{background:var(--err)}
.passed .badge-verdict{background:var(--ok)}
.verdict .meta{margin:4px 0 0;color:var(--muted)}
.verdict .meta b{color:var(--fg)}
.verdict .lead{margin:6px 0 0;font-size:15px}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0 4px}
.kpi{flex:1 1 130px;border:1px solid var(--line);border-radius:8px;padding:8px 12px;background:#fff;
border-top:4px solid #cfd8dc}
.kpi .kv{font-size:26px;font-weight:700}
.kpi .kl{font-weight:600}
.kpi .ks{color:var(--muted);font-size:12px}
.kpi.error{border-top-color:var(--err)}.kpi.error .kv{color:var(--err)}
.kpi.warning{border-top-color:var(--warn)}.kpi.warning .kv{color:var(--warn)}
.kpi.waived{border-top-color:#9e9e9e}
.kpi.new{border-top-color:var(--new)}.kpi.persisting{border-top-color:var(--pers)}
.kpi.resolved{border-top-color:var(--ok)}.kpi.zero .kv{color:#90a4ae}
.kpi.ledger.ok{border-top-color:var(--ok)}.kpi.ledger.ok .kv{color:var(--ok)}
.kpi.ledger.bad{border-top-color:var(--err)}.kpi.ledger.bad .kv{color:var(--err)}
.failing h3{color:var(--err)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:14px}
.card{margin:0;border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card figcaption{font-weight:600;margin-bottom:4px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#eceff1;stroke-width:1}
svg .axis{stroke:#90a4ae;stroke-width:1}
svg .ax{fill:#607080;font-size:11px}
svg .val{fill:#37474f;font-size:11px;font-weight:600}
svg.fate{width:130px;height:12px;display:block;border-radius:2px;overflow:hidden}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:var(--muted);margin:4px 0}
.lg{display:inline-flex;align-items:center;gap:5px}
.sw{display:inline-block;width:12px;height:10px;border-radius:2px}
.sw.line{height:0;width:18px;border-top:3px solid;border-radius:0}
.sw.line.dashed{border-top-style:dashed}
table{border-collapse:separate;border-spacing:0}
.grid-t{width:100%;font-variant-numeric:tabular-nums}
.grid-t th,.grid-t td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
.grid-t thead th{background:#eef2f6;font-size:12.5px;position:sticky;top:0;z-index:1;white-space:nowrap}
.grid-t tbody tr:hover{background:#f8fafc}
.grid-t.wrap thead th{white-space:normal;vertical-align:bottom;min-width:64px}
.grid-t.compact th,.grid-t.compact td{padding:4px 10px}
.grid-t tfoot td,.grid-t tfoot th{border-top:2px solid #cfd8dc}
.num{text-align:right!important;white-space:nowrap}
td.zero,tr.zero-row th,tr.zero-row td{color:#a7b1bb}
td.sev-error{color:var(--err);font-weight:700}
td.sev-warning{color:var(--warn);font-weight:700}
td.sev-info{color:var(--info);font-weight:600}
td.sev-waived{color:#757575;font-weight:600}
td.sev-resolved{color:var(--ok);font-weight:600}
td.hl-bad{color:var(--err);font-weight:600}
td.hl-warn{color:#b26a00;font-weight:600}
th.sys,td.sys{background:#fafbfc;color:#455a64}
td.owners{color:var(--muted);font-size:12.5px}
.scroll-x{overflow-x:auto}
.pill{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600;border:1px solid}
.pill.ok{color:var(--ok);border-color:#a5d6a7;background:#f1f8f1}
.pill.bad{color:var(--err);border-color:#ef9a9a;background:#fdf1f0}
.pill.warn{color:#a15c00;border-color:#ffcc80;background:#fff8ec}
details.files{margin-top:12px}
details summary{cursor:pointer;font-weight:600;margin:6px 0}
.filters{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:flex-end;background:#f3f6f9;border:1px solid var(--line);
border-radius:8px;padding:10px 12px;margin:10px 0 12px;position:sticky;top:44px;z-index:10}
.filters label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:2px}
.filters .grow{flex:1 1 260px}
.filters input,.filters select{font:inherit;font-size:13px;padding:5px 8px;border:1px solid #c5ced8;border-radius:6px;
background:#fff;color:var(--fg)}
.filters button,.tab{font:inherit;cursor:pointer}
.filters button{padding:5px 14px;border:1px solid #c5ced8;border-radius:6px;background:#fff}
.tabs{display:flex;gap:4px;border-bottom:2px solid var(--line);margin-bottom:0}
.tab{border:1px solid var(--line);border-bottom:none;background:#f3f6f9;padding:8px 16px;border-radius:8px 8px 0 0;
font-weight:600;color:#455a64;display:flex;gap:8px;align-items:center}
.tab.active{background:#fff;color:var(--accent);border-color:#c5d4e3;box-shadow:inset 0 3px 0 var(--accent)}
.tab .cnt{background:#e3e9ef;color:#37474f;border-radius:10px;padding:0 8px;font-size:12px}
.tab .cnt.err{background:#fdecea;color:var(--err)}
.owner-panel{border:none;padding:10px 0 0;margin:0;border-radius:0}
.js .owner-panel:not(.active){display:none}
.js .owner-title{display:none}
.focus-lists main>section:not(#lists){display:none}
#f-focus[aria-pressed=true]{background:#12263a;color:#fff}
.who{margin:4px 0 8px;color:var(--muted)}
.shown-note{margin-left:8px;color:var(--fg)}
.cap{background:#fff8e1;border:1px solid #ffe082;border-radius:6px;padding:6px 10px}
.empty{color:var(--muted);font-style:italic}
.table-wrap{max-height:78vh;overflow:auto;border:1px solid var(--line);border-radius:8px}
.table-wrap.short{max-height:60vh}
table.list{width:100%;min-width:1180px;font-size:12.5px;table-layout:fixed}
table.list th,table.list td{padding:5px 7px;border-bottom:1px solid var(--line);vertical-align:top;text-align:left;
overflow-wrap:anywhere}
table.list thead th{position:sticky;top:0;background:#eef2f6;z-index:2;padding:0;overflow-wrap:normal}
table.list thead th button{all:unset;cursor:pointer;display:block;padding:7px 7px;font-weight:600;font-size:12px}
table.list thead th button:focus-visible{outline:2px solid var(--accent)}
table.list thead th .arrow{margin-left:4px;color:var(--accent)}
table.list th[aria-sort=ascending] .arrow::after{content:"▲"}
table.list th[aria-sort=descending] .arrow::after{content:"▼"}
table.list tbody tr:nth-child(even){background:#fafbfc}
table.list tbody tr:hover{background:#eef5fc}
table.list td.mono{font-size:11.5px}
table.list td.act{color:#37474f}
.ev{white-space:normal}.ev i{color:var(--muted)}
.ev .lbl{display:inline-block;width:26px;color:#98a3ad;font-size:10px;text-transform:uppercase;
font-family:system-ui,sans-serif}
.waiver{margin-top:4px;padding:3px 6px;background:#eeeeee;border-radius:4px;font-size:12px;color:#424242}
.sub{color:var(--muted);font-size:11px;margin-top:2px}
.sub.id{color:#98a3ad}
tr.sev-error{box-shadow:inset 3px 0 0 var(--err)}
tr.sev-warning{box-shadow:inset 3px 0 0 var(--warn)}
tr.sev-info{box-shadow:inset 3px 0 0 #b0bec5}
tr.waived{background:repeating-linear-gradient(135deg,#fafafa,#fafafa 8px,#f2f2f2 8px,#f2f2f2 16px)!important;
box-shadow:inset 3px 0 0 #9e9e9e}
tr.st-resolved td{color:#7d8a96}
tr.st-resolved td:nth-child(n+3){text-decoration:line-through;text-decoration-color:#b0bec5}
.sev,.st,.wv{display:inline-block;margin:0 4px 2px 0;border-radius:4px;padding:0 6px;font-size:11.5px;font-weight:700;
text-transform:uppercase;
letter-spacing:.03em;white-space:nowrap}
.sev.error{background:#fdecea;color:var(--err)}
.sev.warning{background:#fff3e0;color:#b26a00}
.sev.info{background:#eceff1;color:#546e7a}
.st{text-transform:none;letter-spacing:0;font-size:12px}
.st.new{background:#e3f0fd;color:var(--new)}
.st.persisting{background:#f3e5f5;color:var(--pers)}
.st.resolved{background:#e8f5e9;color:var(--ok)}
.wv{background:#616161;color:#fff}
.nomatch{padding:12px;color:var(--muted)}
ol.cands{margin:0;padding-left:20px}
ol.cands li:first-child{font-weight:600}
.code{font-weight:700}
.freq{display:inline-block;width:60px;height:8px;background:#eceff1;border-radius:4px;margin-right:8px;
vertical-align:middle;overflow:hidden}
.freq span{display:block;height:100%;background:#5c8fc4}
.warn-h{color:#a15c00}.bad-h{color:var(--err)}
tr.failed td{color:var(--err)}
footer{color:var(--muted);font-size:12.5px;max-width:1680px;margin:0 auto;padding:0 28px 30px}
@media print{header.top,.filters{position:static}.table-wrap{max-height:none;overflow:visible}
.js .owner-panel:not(.active){display:block}.js .owner-title{display:block}.tabs{display:none}}
"""

_JS = r"""
(function(){
  var root = document.documentElement; root.classList.add('js');
  var $ = function(s, el){ return (el || document).querySelector(s); };
  var $$ = function(s, el){ return Array.prototype.slice.call((el || document).querySelectorAll(s)); };
  var panels = $$('.owner-panel'), tabs = $$('.tabs [role=tab]');
  var ctl = {q: $('#f-q'), category: $('#f-category'), severity: $('#f-severity'), status: $('#f-status'),
             entity: $('#f-entity'), waived: $('#f-waived')};
  var rows = $$('table.list tbody tr.d');
  rows.forEach(function(r){ r._t = r.textContent.toLowerCase(); });
  var sortState = {col: null, dir: 'asc'};
  var SELECTS = ['category', 'severity', 'status', 'entity', 'waived'];
  function toLists(){
    var l = $('#lists'); if (!l) return;
    window.scrollTo({top: l.getBoundingClientRect().top + window.scrollY - 50, behavior: 'instant'});
  }
  var fmt = function(n){ return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, '\u202f'); };

  function activate(owner){
    var found = false;
    tabs.forEach(function(t){ var on = t.dataset.owner === owner; found = found || on;
      t.classList.toggle('active', on); t.setAttribute('aria-selected', on ? 'true' : 'false'); });
    if (!found) return false;
    panels.forEach(function(p){ p.classList.toggle('active', p.dataset.owner === owner); });
    return true;
  }
  function current(){ var t = $('.tabs .tab.active'); return t ? t.dataset.owner : ''; }
  function apply(){
    var terms = ctl.q.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    var f = {cat: ctl.category.value, sev: ctl.severity.value, status: ctl.status.value,
             entity: ctl.entity.value, waived: ctl.waived.value};
    panels.forEach(function(p){
      var n = 0, trs = $$('tbody tr.d', p);
      trs.forEach(function(r){
        var d = r.dataset, ok = true;
        if (f.cat && d.cat !== f.cat) ok = false;
        else if (f.sev && d.sev !== f.sev) ok = false;
        else if (f.status === 'open' && d.status === 'resolved') ok = false;
        else if (f.status && f.status !== 'open' && d.status !== f.status) ok = false;
        else if (f.entity && d.entity !== f.entity) ok = false;
        else if (f.waived && d.waived !== f.waived) ok = false;
        else for (var i = 0; i < terms.length; i++) { if (r._t.indexOf(terms[i]) < 0) { ok = false; break; } }
        r.hidden = !ok; if (ok) n++;
      });
      p.dataset.shown = n;
      var s = $('.shown', p); if (s) s.textContent = fmt(n);
      var nm = $('.nomatch', p); if (nm) nm.hidden = !(trs.length && n === 0);
      var tab = $('#tab-' + p.id.slice(6) + ' .cnt');
      if (tab) tab.textContent = (n === trs.length && trs.length === +tab.dataset.total) ? fmt(tab.dataset.total)
                                  : fmt(n) + ' / ' + fmt(tab.dataset.total);
    });
    root.dataset.filtered = (terms.length || f.cat || f.sev || f.status || f.entity || f.waived) ? '1' : '0';
  }
  function key(r, col){
    var c = r.children[col]; if (!c) return '';
    return c.hasAttribute('data-k') ? c.getAttribute('data-k') : c.textContent.trim();
  }
  function sortBy(col, dir){
    sortState = {col: col, dir: dir};
    $$('table.list').forEach(function(t){
      var tb = t.tBodies[0]; if (!tb) return;
      var trs = Array.prototype.slice.call(tb.rows);
      trs.forEach(function(r, i){ if (r._i === undefined) r._i = i; });
      trs.sort(function(a, b){
        var x = key(a, col), y = key(b, col);
        if (x === '' && y !== '') return 1; if (y === '' && x !== '') return -1;
        var c = x.localeCompare(y, undefined, {numeric: true, sensitivity: 'base'});
        if (c === 0) return a._i - b._i;
        return dir === 'desc' ? -c : c;
      });
      var frag = document.createDocumentFragment(); trs.forEach(function(r){ frag.appendChild(r); });
      tb.appendChild(frag);
      $$('thead th', t).forEach(function(th){
        th.setAttribute('aria-sort', +th.dataset.col === col ? (dir === 'desc' ? 'descending' : 'ascending') : 'none');
      });
    });
  }
  function colOf(name){
    var b = $('table.list thead button[data-sort="' + name + '"]');
    return b ? +b.parentNode.dataset.col : null;
  }
  function writeHash(){
    var p = new URLSearchParams();
    var o = current(); if (o && tabs.length && o !== tabs[0].dataset.owner) p.set('owner', o);
    if (ctl.q.value.trim()) p.set('q', ctl.q.value.trim());
    SELECTS.forEach(function(k){ if (ctl[k].value) p.set(k, ctl[k].value); });
    if (root.classList.contains('focus-lists')) p.set('focus', '1');
    if (sortState.col !== null) {
      var b = $('table.list thead th[data-col="' + sortState.col + '"] button');
      if (b) { p.set('sort', b.dataset.sort); if (sortState.dir === 'desc') p.set('dir', 'desc'); }
    }
    var s = p.toString();
    try { history.replaceState(null, '', s ? '#lists?' + s : location.pathname + location.search); } catch (err) {}
  }
  function readHash(){
    var h = location.hash || '', i = h.indexOf('?');
    if (i < 0) return false;
    var p = new URLSearchParams(h.slice(i + 1));
    if (p.get('owner')) activate(p.get('owner'));
    setFocus(p.get('focus') === '1');
    ctl.q.value = p.get('q') || '';
    SELECTS.forEach(function(k){ ctl[k].value = p.get(k) || ''; });
    var sc = p.get('sort') ? colOf(p.get('sort')) : null;
    if (sc !== null) sortBy(sc, p.get('dir') === 'desc' ? 'desc' : 'asc');
    apply();
    toLists();
    return true;
  }
  function setFocus(on){
    root.classList.toggle('focus-lists', on);
    var b = $('#f-focus'); if (b) { b.setAttribute('aria-pressed', on ? 'true' : 'false');
      b.textContent = on ? 'Whole report' : 'Lists only'; }
  }
  $('#f-focus').addEventListener('click', function(){
    setFocus(!root.classList.contains('focus-lists')); writeHash();
    toLists();
  });
  tabs.forEach(function(t){ t.addEventListener('click', function(){ activate(t.dataset.owner); writeHash(); }); });
  var timer = null;
  ctl.q.addEventListener('input', function(){
    clearTimeout(timer); timer = setTimeout(function(){ apply(); writeHash(); }, 120); });
  SELECTS.forEach(function(k){
    ctl[k].addEventListener('change', function(){ apply(); writeHash(); }); });
  $('#f-clear').addEventListener('click', function(){
    ctl.q.value = ''; SELECTS.forEach(function(k){ ctl[k].value = ''; });
    apply(); writeHash(); });
  $$('table.list thead button').forEach(function(b){
    b.addEventListener('click', function(){
      var col = +b.parentNode.dataset.col;
      var dir = (sortState.col === col && sortState.dir === 'asc') ? 'desc' : 'asc';
      sortBy(col, dir); writeHash();
    });
  });
  window.addEventListener('hashchange', readHash);
  if (!readHash()) apply();
  root.dataset.ready = '1';
})();
"""

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
    "font-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'"
)


def render_report_html(disc: pl.DataFrame, summary: dict, unmapped: pl.DataFrame, data_docs_href: str | None) -> str:
    """The report page as one self-contained HTML string."""
    summary = summary or {}
    disc = _prepare(disc)
    open_ = disc.filter(pl.col("status") != "resolved")
    ents = _entities(summary)
    gates = _gates(summary)
    totals = _totals(open_, disc, summary)
    if "gate_passed" in summary:
        passed = bool(summary["gate_passed"])
    elif gates:
        passed = all(g["passed"] for g in gates)
    else:
        passed = totals["errors"] == 0
    trial = str(summary.get("trial_load", "") or (disc["trial_load"][0] if disc.height else ""))
    summary = {**summary, "trial_load": trial}
    trend = [p for p in (summary.get("trend") or []) if isinstance(p, dict)]
    if not trend:
        trend = [{"trial_load": trial, "run_at": summary.get("run_at"), **totals}]
    # this load's point shows the figures of this page, so chart and tiles agree
    trend = [({**p, **totals} if p.get("trial_load") == trial else p) for p in trend]
    this_run = next((p for p in reversed(trend) if p.get("trial_load") == trial), None)
    run_at = summary.get("run_at") or (this_run or {}).get("run_at")
    when = _when(run_at)
    try:
        today = dt.datetime.fromisoformat(str(run_at)).date() if run_at else dt.date.today()
    except ValueError:
        today = dt.date.today()
    entity_names = list(ents) or ENTITY_ORDER
    extra = sorted(set(open_["entity"].drop_nulls().to_list()) - set(entity_names))
    entity_rows = []
    for name in [*entity_names, *extra]:
        sub = open_.filter(pl.col("entity") == name)
        nw = sub.filter(~pl.col("waived"))
        entity_rows.append(
            (
                name,
                nw.filter(pl.col("severity") == "error").height,
                nw.filter(pl.col("severity") == "warning").height,
                sub.filter(pl.col("waived") & (pl.col("severity") != "info")).height,
            )
        )
    verdict = "PASSED" if passed else "FAILED"
    files_links = [
        ('<a href="discrepancies.csv">discrepancies.csv</a>'),
        ('<a href="worklists/">worklists/</a>'),
        ('<a href="junit.xml">junit.xml</a>'),
    ]
    if data_docs_href:
        files_links.append(f'<a href="{e(data_docs_href)}" id="gx-link">GX Data Docs</a>')
    nav = "".join(
        f'<a href="#{sid}">{label}</a>'
        for sid, label in [
            ("verdict", "Verdict"),
            ("charts", "Charts"),
            ("counts", "Counts"),
            ("categories", "Categories"),
            ("lists", "Discrepancies"),
            ("unmapped", "Unmapped codes"),
            ("waivers", "Waivers"),
            ("gates", "Gates"),
        ]
    )
    title = f"{verdict} · trial load {trial}" + (f" · {summary['migration']}" if summary.get("migration") else "")
    body = "".join(
        [
            _verdict(summary, totals, gates, passed, when),
            _charts(trend, entity_rows),
            _counts(summary, ents),
            _categories(disc, gates),
            _lists(disc),
            _unmapped(unmapped),
            _waivers(summary, today),
            _all_gates(gates),
        ]
    )
    meta_json = json.dumps(
        {"trial_load": trial, "verdict": verdict, "errors": totals["errors"], "warnings": totals["warnings"]}
    ).replace("<", "\\u003c")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="migcheck">
<title>{e(title)} — migcheck report</title>
<style>{_CSS}</style>
</head>
<body>
<header class="top">
  <span class="brand">migcheck<small>trial-load report</small></span>
  <nav aria-label="sections">{nav}</nav>
  <nav class="files" aria-label="files">{"".join(files_links)}</nav>
</header>
<main>
{body}
</main>
<footer>
  <p>Personal data: names, identity numbers, postal codes and dates of birth never appear in clear; expected /
  actual values that identify a person are masked so that the nature of a difference stays visible. The full lists
  are in <a href="discrepancies.csv">discrepancies.csv</a> and the <a href="worklists/">worklists</a>
  (one per owner, with columns for the stewards' decisions); CI reads <a href="junit.xml">junit.xml</a>.</p>
  <p>Generated by migcheck.</p>
</footer>
<script type="application/json" id="report-meta">{meta_json}</script>
<script>{_JS}</script>
</body>
</html>
"""


def write_report_html(
    out_dir: Path, disc: pl.DataFrame, summary: dict, unmapped: pl.DataFrame, data_docs_href: str | None
) -> Path:
    """Write ``out_dir/report.html`` and return its path."""
    path = Path(out_dir) / "report.html"
    path.write_text(render_report_html(disc, summary, unmapped, data_docs_href), encoding="utf-8")
    return path
