"""``report.html``: the data stewards' one-page report of a trial load.

One self-contained page that works offline: the styles and the script (``assets/``) are inlined
and the charts are inline SVG, and a Content-Security-Policy forbids the page from fetching
anything. The page is rendered by Jinja2 (autoescaping on, undefined names an error) from the
templates in ``templates/``, and only from the :class:`~pipelines.report.view.ReportView` built
by :func:`~pipelines.report.view.build_report_view`. It shows, in this order:

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
8. every gate with its threshold; links to discrepancies.csv, worklists/ and junit.xml (all relative).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import jinja2
import polars as pl
from markupsafe import Markup, escape

from checks.summary import Summary
from pipelines.report.fmt import coord, count_text
from pipelines.report.palette import COLOURS
from pipelines.report.view import ReportView, build_report_view

#: the page may fetch nothing; its own inline styles and script (and the inline styles of its
#: chart swatches and column widths, which hashes cannot allow) run under 'unsafe-inline'
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
    "font-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'"
)
_PACKAGE = "pipelines.report"


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(_PACKAGE, "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda value: "" if value is None else value,
    )
    env.filters["n"] = count_text
    env.filters["xy"] = coord
    env.filters["breakable"] = breakable
    return env


def breakable(value: str | None, sep: str) -> Markup:
    """``value`` escaped, with a line-break opportunity (``<wbr>``) after every ``sep`` (references, check ids).

    A filter, not a template macro: the lists call it four times per finding row, and a macro call
    costs Jinja many times more than this function.
    """
    if value is None:
        return Markup("")
    return Markup(escape(sep) + Markup("<wbr>")).join(value.split(sep))


@functools.cache
def _asset(name: str, closing_tag: str) -> Markup:
    """An asset's text, to inline raw inside its element (which must not end early)."""
    body = resources.files(_PACKAGE).joinpath("assets", name).read_text(encoding="utf-8")
    if closing_tag in body.lower():
        raise ValueError(f"assets/{name} contains {closing_tag}: it would end the inline element")
    return Markup(body)  # our own file, not data, and checked not to close its element early


def render_view(view: ReportView) -> str:
    """The page of one view, as one self-contained HTML string."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        view=view,
        colours=COLOURS,
        css=_asset("report.css", "</style"),
        js=_asset("report.js", "</script"),
        csp=Markup(CSP),  # a constant without quotes, '<' or '&': written as it reads, like before
    )


def render_report_html(disc: pl.DataFrame, summary: Summary | None, unmapped: pl.DataFrame | None) -> str:
    """The report page of a trial load as one self-contained HTML string."""
    return render_view(build_report_view(disc, summary, unmapped))


def write_report_html(
    out_dir: Path, disc: pl.DataFrame, summary: Summary | None, unmapped: pl.DataFrame | None
) -> Path:
    """Write ``out_dir/report.html`` and return its path."""
    path = Path(out_dir) / "report.html"
    path.write_text(render_report_html(disc, summary, unmapped), encoding="utf-8")
    return path
