"""report.html in a real headless browser (Debian's chromium), on reports of real trial loads.

The inputs come from the real pipeline: two faulted trial loads of ``sample_data/`` (TL1, then TL2
against TL1 as baseline, so findings are new, persisting and resolved) and a clean load. The page
is rendered, opened in chromium, and the DOM after its scripts ran is checked: verdict, counts,
owner groups and their rows, the in-page filter and sort, waivers, no network reference. The
page is rendered from the view model (pipelines/report/view.py) through the Jinja2 templates and
assets of pipelines/report/. The README's screenshots are taken here (written to docs/screenshots/
only with MIGCHECK_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from checks.discrepancies import DISCREPANCY_COLUMNS, OWNERS, owner, status_totals
from checks.summary import Summary
from pipelines.report import html as report_html
from pipelines.report.excel import OWNER_FILES
from pipelines.report.html import render_report_html, render_view, write_report_html
from pipelines.report.palette import COLOURS, FATES
from pipelines.report.view import MAX_ROWS_PER_OWNER, MAX_UNMAPPED_ROWS, ReportView, build_report_view
from pipelines.run.validate import run_validation
from pipelines.synth.generator import generate
from pipelines.synth.trial_load import simulate_trial_load

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
SHOTS = REPO / "docs" / "screenshots"
REPORT_PKG = REPO / "pipelines" / "report"
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium")) if p and Path(p).exists()), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (scripts/test installs it with apt-get when run as root)",
)
W_IMPLAUSIBLE = "W1: accepted by PAS data steward until 2027-01-31 — dates checked against the paper records"
W_ONE = "W2: accepted by migration lead until 2027-03-31 — the vendor corrects this row by hand after go-live"


# ---------------------------------------------------------------------------------------------
# a small DOM of the page as chromium left it


class Node:
    def __init__(self, tag: str, attrs: dict, parent: Node | None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag: str | None = None, **attrs) -> list[Node]:
        out = []
        for n in self.iter():
            if tag and n.tag != tag:
                continue
            ok = True
            for k, v in attrs.items():
                k = k.rstrip("_").replace("_", "-")
                have = n.attrs.get(k)
                if k == "class":
                    ok &= have is not None and v in have.split()
                elif v is True:
                    ok &= k in n.attrs
                else:
                    ok &= have == v
            if ok:
                out.append(n)
        return out

    def find(self, tag: str | None = None, **attrs) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag} {attrs}> in the page"
        return found[0]


class _Builder(HTMLParser):
    VOID = {"meta", "link", "br", "hr", "img", "input", "col", "wbr", "source", "area", "base", "embed", "track"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, {k: (v if v is not None else "") for k, v in attrs}, self.cur)
        self.cur.children.append(n)
        if tag not in self.VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, {k: (v or "") for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(html_text: str) -> Node:
    b = _Builder()
    b.feed(html_text)
    return b.root


def num(text: str) -> int:
    return int(re.sub(r"[\s\u202f\u00a0]", "", text))


# ---------------------------------------------------------------------------------------------
# chromium


def _chromium(args: list[str], timeout: int = 60) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="migcheck-chromium-") as profile:
        cmd = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def dump_dom(page: Path, fragment: str = "") -> Node:
    url = page.resolve().as_uri() + fragment
    r = _chromium(["--dump-dom", url])
    assert r.returncode == 0 and "<html" in r.stdout, f"chromium failed: {r.stderr[-800:]}"
    return parse(r.stdout)


def screenshot(page: Path, png: Path, fragment: str = "", size: str = "1400,2000") -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    r = _chromium([f"--screenshot={png}", f"--window-size={size}", page.resolve().as_uri() + fragment])
    assert png.exists(), f"chromium wrote no screenshot: {r.stderr[-800:]}"


# ---------------------------------------------------------------------------------------------
# real reports


@pytest.fixture(scope="module")
def faulted(tmp_path_factory) -> Path:
    """TL1 and TL2 (baseline TL1) of the sample extract with default load faults; TL2's report."""
    base = tmp_path_factory.mktemp("html-faulted")
    src = base / "extract"
    shutil.copytree(SAMPLE, src)
    for name, seed, baseline in (("TL1", 1, None), ("TL2", 2, base / "TL1")):
        url = f"sqlite:///{base / name}.db"
        simulate_trial_load(src, url, faults="default", seed=seed)
        res = run_validation(src, url, name, base / name, baseline=baseline)
        assert res.exit_code == 1
    return base / "TL2"


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """A clean extract, loaded without faults, validated: its report folder."""
    base = tmp_path_factory.mktemp("html-clean")
    generate(base / "extract", patients=60, seed=3, defects="none")
    url = f"sqlite:///{base / 'clean.db'}"
    simulate_trial_load(base / "extract", url, faults="none")
    res = run_validation(base / "extract", url, "TL-CLEAN", base / "report")
    assert res.exit_code == 0
    return base / "report"


def read_inputs(out: Path) -> tuple[pl.DataFrame, dict, pl.DataFrame]:
    """discrepancies.parquet with owner/waived/waiver added, summary.json, the unmapped codes."""
    disc = pl.read_parquet(out / "discrepancies.parquet").with_columns(
        owner().alias("owner"), pl.lit(False).alias("waived"), pl.lit(None, dtype=pl.String).alias("waiver")
    )
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    path = out / "unmapped_codes.csv"
    if path.exists():
        unmapped = pl.read_csv(path, schema_overrides={"code": pl.String, "candidates": pl.String}).with_columns(
            pl.col("candidates").fill_null("").str.split(" | ").list.eval(pl.element().filter(pl.element() != ""))
        )
    else:
        unmapped = pl.DataFrame(
            schema={
                "entity": pl.String,
                "source_system": pl.String,
                "column": pl.String,
                "code": pl.String,
                "count": pl.Int64,
                "candidates": pl.List(pl.String),
            }
        )
    return disc, summary, unmapped


_NO_COUNTS = {
    k: 0
    for k in (
        "records_read",
        "out_of_scope",
        "rejected",
        "merged",
        "expected_in_target",
        "found_in_target",
        "matched",
        "missing",
        "unexpected",
        "with_differences",
        "migrated",
    )
} | {"records_read_by_system": {}, "rejected_by_category": {}}
_TOTALS = {
    "errors": 0,
    "warnings": 0,
    "waived": 0,
    "new": 0,
    "persisting": 0,
    "resolved": 0,
    "gate_passed": True,
    "ledger_balanced": True,
}


def minimal_summary(**given: object) -> Summary:
    """A summary of a run that read nothing, with ``given`` fields: for pages built by hand."""
    base: dict[str, object] = {
        "trial_load": "TL",
        "migration": "default",
        "entities": {},
        "by_category": {},
        "gates": [],
        "gate_passed": True,
        "ledger_balanced": True,
        "records_read": 0,
        "ledger_rows": 0,
        "files": [],
        "waivers": {"applied": [], "unmatched": [], "expired": []},
        "totals": _TOTALS,
        "trend": [],
        "timings": {},
    }
    summary = {**base, **given}
    if "gate_passed" in given:
        summary["totals"] = {**_TOTALS, "gate_passed": given["gate_passed"]}
    return Summary.model_validate(summary)


def with_waivers(disc: pl.DataFrame, summary: dict) -> tuple[pl.DataFrame, dict]:
    """Waive every implausible finding (W1) and one value mismatch by id (W2), as stewards would."""
    one = disc.filter((pl.col("category") == "value_mismatch") & (pl.col("status") != "resolved"))["discrepancy_id"][0]
    w1 = (pl.col("category") == "implausible") & (pl.col("status") != "resolved")
    w2 = pl.col("discrepancy_id") == one
    disc = disc.with_columns(
        pl.when(w2).then(pl.lit(W_ONE)).when(w1).then(pl.lit(W_IMPLAUSIBLE)).otherwise(None).alias("waiver")
    ).with_columns(pl.col("waiver").is_not_null().alias("waived"))
    # the totals follow the waivers, as a run with these waivers would have counted them
    summary = {
        **summary,
        "totals": {
            **status_totals(disc),
            "gate_passed": summary["gate_passed"],
            "ledger_balanced": summary["ledger_balanced"],
        },
    }
    summary["waivers"] = {
        "applied": [
            {
                "id": "W1",
                "matched": disc.filter(pl.col("waiver") == W_IMPLAUSIBLE).height,
                "reason": "dates checked against the paper records",
                "approver_role": "PAS data steward",
                "expires": "2027-01-31",
            },
            {
                "id": "W2",
                "matched": 1,
                "reason": "the vendor corrects this row by hand after go-live",
                "approver_role": "migration lead",
                "expires": "2027-03-31",
            },
        ],
        "unmatched": [
            {"id": "W3", "reason": "old PCS visit codes", "approver_role": "PCS data steward", "expires": "2027-06-30"}
        ],
        "expired": [
            {"id": "W0", "reason": "temporary until TL1", "approver_role": "migration lead", "expires": "2024-12-31"}
        ],
    }
    summary.setdefault("migration", "default")
    return disc, summary


@pytest.fixture(scope="module")
def failed_page(faulted) -> tuple[Path, pl.DataFrame, dict, pl.DataFrame]:
    disc, summary, unmapped = read_inputs(faulted)
    disc, summary = with_waivers(disc, summary)
    page = write_report_html(faulted, disc, Summary.model_validate(summary), unmapped)
    assert page == faulted / "report.html"
    return page, disc, summary, unmapped


def visible_rows(panel: Node) -> list[Node]:
    return [r for r in panel.find_all("tr", class_="d") if "hidden" not in r.attrs]


# ---------------------------------------------------------------------------------------------
# tests


@needs_chromium
def test_failed_load_shows_verdict_counts_and_owner_lists(failed_page):
    page, disc, summary, unmapped = failed_page
    dom = dump_dom(page)
    html_el = dom.find("html")
    assert html_el.attrs.get("data-ready") == "1", "the page's script did not run"

    verdict = dom.find("section", id="verdict")
    assert verdict.attrs["data-verdict"] == "FAILED"
    assert dom.find(id="verdict-text").text().strip() == "FAILED"
    assert dom.find(id="trial-load").text() == "TL2"
    open_ = disc.filter(pl.col("status") != "resolved")
    errors = open_.filter((pl.col("severity") == "error") & ~pl.col("waived")).height
    assert num(dom.find(id="k-errors").find(class_="kv").text()) == errors > 0
    assert num(dom.find(id="k-waived").find(class_="kv").text()) == open_.filter(pl.col("waived")).height
    assert num(dom.find(id="k-resolved").find(class_="kv").text()) == disc.filter(pl.col("status") == "resolved").height
    assert dom.find(id="k-ledger").find(class_="kv").text() == ("yes" if summary["ledger_balanced"] else "NO")
    failing = [g for g in summary["gates"] if not g["passed"]]
    assert failing and dom.find("table", id="failing-gates").find_all("tr")[1:], "failing gates listed"

    # counts per entity and system equal summary.json
    table = dom.find("table", id="counts-table")
    for entity, counts in summary["entities"].items():
        for key in (
            "records_read",
            "out_of_scope",
            "rejected",
            "merged",
            "migrated",
            "with_differences",
            "missing",
            "unexpected",
        ):
            cell = table.find("td", data_entity=entity, data_key=key)
            assert num(cell.text()) == counts[key], (entity, key)
        for system, n in counts["records_read_by_system"].items():
            assert num(table.find("td", data_entity=entity, data_key=f"read_{system}").text()) == n
    person = summary["entities"]["person"]
    assert person["records_read"] > 0 and person["migrated"] > 0

    # findings per category: errors (open, not waived) per category
    cat_table = dom.find("table", id="category-table")
    for cat in ("value_mismatch", "unmapped_code", "confidentiality"):
        n = open_.filter((pl.col("category") == cat) & (pl.col("severity") == "error") & ~pl.col("waived")).height
        assert num(cat_table.find("td", data_cat=cat, data_sev="error").text()) == n

    # one panel per owner, every discrepancy of that owner rendered once
    panels = dom.find_all("section", class_="owner-panel")
    assert [p.attrs["data-owner"] for p in panels] == OWNERS
    for p in panels:
        own = disc.filter(pl.col("owner") == p.attrs["data-owner"])
        assert own.height < MAX_ROWS_PER_OWNER
        rows = p.find_all("tr", class_="d")
        assert len(rows) == own.height, p.attrs["data-owner"]
        assert sorted(r.attrs["data-id"] for r in rows) == sorted(own["discrepancy_id"].to_list())
        assert len(visible_rows(p)) == own.height  # no filter: everything shows
    assert sum(int(p.attrs["data-total"]) for p in panels) == disc.height
    statuses = {r.attrs["data-status"] for r in dom.find_all("tr", class_="d")}
    assert statuses == {"new", "persisting", "resolved"}

    # waived rows carry their marker and the waiver text
    waived_rows = dom.find_all("tr", class_="d", data_waived="yes")
    assert len(waived_rows) == disc.filter(pl.col("waived")).height > 1
    assert all(W_IMPLAUSIBLE in r.text() or W_ONE in r.text() for r in waived_rows)
    for tid, wid in (
        ("waivers-applied", "W1"),
        ("waivers-applied", "W2"),
        ("waivers-unmatched", "W3"),
        ("waivers-expired", "W0"),
    ):
        assert wid in dom.find("table", id=tid).text()

    # unmapped codes with their candidates
    if unmapped.height:
        rows = dom.find("table", id="unmapped-table").find_all("tbody")[0].find_all("tr")
        assert len(rows) == min(unmapped.height, MAX_UNMAPPED_ROWS)
        best = unmapped.filter(pl.col("candidates").list.len() > 0)
        if best.height:
            assert best["candidates"][0][0] in dom.find("table", id="unmapped-table").text()

    # charts are inline SVG: the trend has a point per trial load
    charts = dom.find("section", id="charts")
    assert len(charts.find_all("svg")) == 3
    assert [p["trial_load"] for p in summary["trend"]][-1] == "TL2"


@needs_chromium
def test_page_fetches_nothing_and_its_links_resolve(failed_page):
    page, *_ = failed_page
    raw = page.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href|action|poster|data|srcset)\s*=\s*["']?\s*(?:https?:)?//""", raw, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", raw, re.I)
    assert "http://" not in raw and "https://" not in raw
    assert "@import" not in raw and "<link" not in raw
    assert "default-src 'none'" in raw  # the Content-Security-Policy forbids any fetch
    dom = dump_dom(page)
    for script in dom.find_all("script"):
        assert "src" not in script.attrs
    hrefs = {a.attrs["href"] for a in dom.find_all("a") if "href" in a.attrs}
    # the report's own files, and nothing else outside the page (no GX Data Docs: docs/decisions.md D40)
    assert {h for h in hrefs if not h.startswith("#")} == {
        "discrepancies.csv",
        "junit.xml",
        "worklists/",
        "worklists/code-map-review.xlsx",  # the code-map review workbook, from the coverage table
    }
    for h in hrefs:
        if h.startswith("#"):
            assert dom.find(id=h[1:].split("?")[0]), h
        else:
            assert (page.parent / urllib.parse.unquote(h)).exists(), f"broken link {h}"


@needs_chromium
def test_filter_and_sort_preset_by_the_url_fragment(failed_page):
    page, disc, *_ = failed_page
    want = disc.filter(
        (pl.col("owner") == "vendor load") & (pl.col("severity") == "error") & (pl.col("status") != "resolved")
    )
    assert want.height > 3
    dom = dump_dom(page, "#lists?owner=vendor%20load&severity=error&status=open&sort=source_ref&dir=desc")
    tab = dom.find("button", id="tab-vendor-load")
    assert tab.attrs["aria-selected"] == "true"
    panel = dom.find("section", id="owner-vendor-load")
    assert "active" in panel.attrs["class"].split()
    rows = visible_rows(panel)
    assert len(rows) == want.height
    assert num(panel.find(class_="shown").text()) == want.height
    assert sorted(r.attrs["data-id"] for r in rows) == sorted(want["discrepancy_id"].to_list())
    assert all(r.attrs["data-sev"] == "error" and r.attrs["data-status"] != "resolved" for r in rows)
    # every other panel is filtered too
    for p in dom.find_all("section", class_="owner-panel"):
        n = (
            want.height
            if p is panel
            else disc.filter(
                (pl.col("owner") == p.attrs["data-owner"])
                & (pl.col("severity") == "error")
                & (pl.col("status") != "resolved")
            ).height
        )
        assert len(visible_rows(p)) == n
    # sorted by source_ref, descending, empty refs last
    refs = [r.find_all("td")[4].text() for r in rows]
    filled = [x for x in refs if x]
    assert filled == sorted(filled, key=str.casefold, reverse=True)
    assert refs[: len(filled)] == filled
    assert panel.find("th", data_col="4").attrs["aria-sort"] == "descending"

    # a text search for one discrepancy id finds exactly that row, in whichever tab it is
    target = disc.filter(pl.col("owner") == "code map")["discrepancy_id"][0]
    dom = dump_dom(page, f"#lists?q={target}")
    shown = [r for p in dom.find_all("section", class_="owner-panel") for r in visible_rows(p)]
    assert [r.attrs["data-id"] for r in shown] == [target]
    # a filter that matches nothing says so
    dom = dump_dom(page, "#lists?q=no-such-finding-anywhere")
    panel = dom.find("section", id="owner-source-system")
    assert not visible_rows(panel) and "hidden" not in panel.find(class_="nomatch").attrs


@needs_chromium
def test_clean_load_passes(clean):
    disc, summary, unmapped = read_inputs(clean)
    assert summary["gate_passed"] is True
    page = write_report_html(clean, disc, Summary.model_validate(summary), unmapped)
    dom = dump_dom(page)
    assert dom.find("section", id="verdict").attrs["data-verdict"] == "PASSED"
    assert dom.find(id="verdict-text").text().strip() == "PASSED"
    assert dom.find(id="trial-load").text() == "TL-CLEAN"
    assert num(dom.find(id="k-errors").find(class_="kv").text()) == 0
    assert num(dom.find(id="k-warnings").find(class_="kv").text()) == 0
    assert not dom.find_all("table", id="failing-gates")
    person = summary["entities"]["person"]
    cell = dom.find("td", data_entity="person", data_key="migrated")
    assert num(cell.text()) == person["migrated"] == person["records_read"]
    panels = dom.find_all("section", class_="owner-panel")
    assert [p.attrs["data-owner"] for p in panels] == OWNERS
    for p in panels:
        assert len(p.find_all("tr", class_="d")) == disc.filter(pl.col("owner") == p.attrs["data-owner"]).height
    assert "No findings for the source system owner" in dom.find("section", id="owner-source-system").text()
    assert "First trial load" in dom.find("section", id="charts").text()


def test_renders_without_optional_inputs():
    empty = pl.DataFrame(schema={c: pl.String for c in DISCREPANCY_COLUMNS})
    page = render_report_html(empty, None, pl.DataFrame())
    assert 'data-verdict="PASSED"' in page and "No unmapped codes" in page and "No waivers are recorded" in page
    first_run = minimal_summary(
        trial_load="TL1", gate_passed=False, entities={"person": {**_NO_COUNTS, "records_read": 3}}
    )
    row = {c: None for c in DISCREPANCY_COLUMNS} | {
        "discrepancy_id": "x1",
        "check": "person.reconcile.value",
        "category": "value_mismatch",
        "severity": "error",
        "entity": "person",
        "status": "new",
        "message": "name_last differs",
    }
    page = render_report_html(pl.DataFrame([row]), first_run, pl.DataFrame())
    assert 'data-verdict="FAILED"' in page and "First trial load" in page
    assert 'data-owner="vendor load"' in page  # owner derived when the column is absent


def test_escapes_every_value_from_the_data():
    evil = '<script>alert("x")</script>'
    row = {c: None for c in DISCREPANCY_COLUMNS} | {
        "discrepancy_id": "e1",
        "check": "encounter.reconcile.value",
        "category": "value_mismatch",
        "severity": "error",
        "entity": "encounter",
        "status": "new",
        "source_ref": 'pas:kontakt:"><u>1',
        "expected": evil,
        "actual": "<img src=x onerror=alert(1)>",
        "message": evil,
        "suggested_action": evil,
    }
    disc = pl.DataFrame([row]).with_columns(
        pl.lit("vendor load").alias("owner"), pl.lit(True).alias("waived"), pl.lit(evil).alias("waiver")
    )
    unmapped = pl.DataFrame(
        {
            "entity": ["diagnosis"],
            "source_system": ["pas"],
            "column": ["nomenclature_id"],
            "code": [evil],
            "count": [3],
            "candidates": [[evil]],
        }
    )
    summary = minimal_summary(
        trial_load=evil,
        migration=evil,
        gates=[
            {
                "check": evil,
                "category": "value_mismatch",
                "errors": 1,
                "warnings": 0,
                "waived": 0,
                "threshold": evil,
                "passed": False,
            }
        ],
        waivers={
            "applied": [{"id": evil, "matched": 1, "reason": evil, "approver_role": evil, "expires": "2027-01-01"}],
            "unmatched": [],
            "expired": [],
        },
        trend=[{**_TOTALS, "trial_load": evil, "run_at": "2026-12-01T10:00:00+00:00", "errors": 1}],
    )
    page = render_report_html(disc, summary, unmapped)
    assert "<script>alert" not in page and "<img src=x" not in page and '"><u>' not in page
    assert page.count("<script") == 2  # the page's own: report meta and the inline script


def test_large_reports_are_capped_per_owner(faulted):
    disc, summary, unmapped = read_inputs(faulted)
    dom = parse(render_view(build_report_view(disc, Summary.model_validate(summary), unmapped, max_rows_per_owner=10)))
    for p in dom.find_all("section", class_="owner-panel"):
        total = disc.filter(pl.col("owner") == p.attrs["data-owner"]).height
        rows = p.find_all("tr", class_="d")
        assert len(rows) == min(total, 10)
        assert int(p.attrs["data-total"]) == total
        if total > 10:
            note = p.find("p", class_="cap").text()
            assert f"first 10 of {total}" in note and "discrepancies.csv" in note
            # the note links the owner's worklist, as report_excel names it, and it is there
            links = [a.attrs["href"] for a in p.find("p", class_="cap").find_all("a")]
            assert f"worklists/{OWNER_FILES[p.attrs['data-owner']]}.xlsx" in links
            assert all((faulted / h).exists() for h in links), links
            assert rows[0].attrs["data-sev"] == "error"  # open errors first


def test_no_personal_value_from_the_extract_reaches_the_page(failed_page):
    page, *_ = failed_page
    raw = page.read_text(encoding="utf-8")
    values: set[str] = set()
    pas = pl.read_csv(SAMPLE / "pas" / "patient.csv", separator=";", encoding="cp1252", infer_schema=False)
    values |= set(pas["PNR"].drop_nulls()) | set(pas["POSTNR"].drop_nulls())
    values |= {v for v in pas["ENAMN"].drop_nulls().to_list() + pas["FNAMN"].drop_nulls().to_list() if len(v) >= 4}
    for line in (SAMPLE / "pcs" / "patients.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
            found = [r["identity"]["value"], r["address"]["postalCode"], *r["name"].values()]
            values |= {str(v) for v in found if v is not None}
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # the extract's deliberately unreadable lines
    words = {w for v in values if v for w in v.split() if len(w) >= 4}
    assert len(words) > 100
    leaks = sorted(words & set(re.findall(r"[\w-]+", raw)))
    assert not leaks, f"personal values in report.html: {leaks[:5]}"


def test_assets_are_inlined_under_the_same_policy_and_colours_are_defined_once(failed_page):
    page, disc, summary, unmapped = failed_page
    raw = page.read_text(encoding="utf-8")
    css = (REPORT_PKG / "assets" / "report.css").read_text(encoding="utf-8")
    js = (REPORT_PKG / "assets" / "report.js").read_text(encoding="utf-8")
    dom = parse(raw)
    # one self-contained file: the asset files verbatim in the page's only <style> and <script>
    (style,) = dom.find_all("style")
    assert style.text().endswith(css) and len(css) > 5000
    scripts = [s for s in dom.find_all("script") if s.attrs.get("type") != "application/json"]
    assert [s.text() for s in scripts] == [js]
    (csp,) = [m for m in dom.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert csp.attrs["content"] == report_html.CSP
    assert "default-src 'none'" in report_html.CSP and "connect-src 'none'" in report_html.CSP
    # the palette reaches the page once, as CSS custom properties the stylesheet uses ...
    root_vars = "".join(f"--c-{name}:{colour};" for name, colour in COLOURS.items())
    assert f":root{{{root_vars}}}" in style.text()
    assert all(f"var(--c-{name})" in css for name in COLOURS)
    # ... and no stylesheet, script or template writes a palette colour itself
    templates = [t.read_text(encoding="utf-8").lower() for t in (REPORT_PKG / "templates").rglob("*.j2")]
    assert len(templates) > 5
    for colour in COLOURS.values():
        assert not any(colour in w for w in [css.lower(), js.lower(), *templates]), colour
    for _, _, colour in FATES:
        assert not any(colour in w for w in templates), colour
    # the charts draw in the palette's colours
    charts = dom.find("section", id="charts")
    fills = {n.attrs.get("fill") for n in charts.iter() if n.tag in ("rect", "circle")}
    assert {COLOURS["error"], COLOURS["warning"], COLOURS["new"], COLOURS["persisting"]} <= fills
    fates = {n.attrs["fill"] for n in dom.find("table", id="counts-table").iter() if n.tag == "rect"}
    assert fates and fates <= {c for _, _, c in FATES}
    # the embedded summary agrees with the page
    meta = json.loads(dom.find("script", id="report-meta").text())
    tile = {k: num(dom.find(id=f"k-{k}").find(class_="kv").text()) for k in ("errors", "warnings")}
    assert meta == {"trial_load": "TL2", "verdict": "FAILED", **tile}


def test_the_view_model_is_frozen_and_holds_what_the_page_shows(failed_page):
    _, disc, summary, unmapped = failed_page
    view = build_report_view(disc, Summary.model_validate(summary), unmapped)
    assert isinstance(view, ReportView)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.verdict = None
    assert view.verdict.word == "FAILED" and view.verdict.trial_load == "TL2"
    assert [p.owner for p in view.lists.panels] == OWNERS
    assert sum(p.total for p in view.lists.panels) == disc.height
    assert [p.stem for p in view.lists.panels] == [OWNER_FILES[o] for o in OWNERS]
    # rendering is a function of the view alone
    assert render_view(view) == render_report_html(disc, Summary.model_validate(summary), unmapped)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@needs_chromium
def test_screenshots_for_the_readme(failed_page, tmp_path):
    """The README's screenshots of the report: the top of the page and the vendor-load list.

    Taken into tmp_path and checked there (real PNGs of the window's size, with content). Only when
    the environment variable MIGCHECK_UPDATE_SCREENSHOTS=1 is set are they copied over
    docs/screenshots/, so an ordinary test run leaves the repository unchanged.
    """
    page, *_ = failed_page
    shots = {
        "report-top.png": ("", "1400,2000"),
        "report-lists.png": ("#lists?owner=vendor%20load&entity=person&focus=1", "1400,1600"),
    }
    for name, (fragment, size) in shots.items():
        png = tmp_path / name
        screenshot(page, png, fragment, size=size)
        data = png.read_bytes()
        assert _png_size(data) == tuple(int(v) for v in size.split(","))
        assert 20_000 < len(data) < 500_000, (name, len(data))
    if os.environ.get("MIGCHECK_UPDATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        for name in shots:
            shutil.copyfile(tmp_path / name, SHOTS / name)
