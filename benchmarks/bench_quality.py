"""Findings quality on the project's own loads: recall per category, natures, false alarms, ledger.

    .venv/bin/python benchmarks/bench_quality.py                      # 2,000 patients, seeds 1 2 3
    .venv/bin/python benchmarks/bench_quality.py --patients 5000 --seeds 4 5

For every seed: ``generate`` (default defects), ``trial-load`` into SQLite (default faults),
``validate``, then the report is scored against ``defects.csv`` + ``load_faults.csv``
(``pipelines.synth.scoring``): recall per category, the share of ``value_mismatch`` and
``text_altered`` defects reported with the injected ``nature``, the error and warning findings
that point at no injected defect, and whether the ledger balances. A clean extract and load
(``--defects none``, ``--faults none``) is validated too: it must give no error or warning. The
product's own code paths throughout (the functions the command line calls). Markdown for
``RESULTS.md`` on stdout.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import polars as pl

from pipelines.run.validate import run_validation
from pipelines.synth.generator import generate
from pipelines.synth.scoring import read_truth, score
from pipelines.synth.trial_load import simulate_trial_load

NATURED = ("value_mismatch", "text_altered")


def one_load(work: Path, patients: int, seed: int, faulted: bool) -> dict:
    """Generate, load, validate and score one load; the figures of its row in the table."""
    extract = work / f"extract-{seed}-{faulted}"
    generate(extract, patients=patients, seed=seed, defects="default" if faulted else "none")
    url = f"sqlite:///{work / f'target-{seed}-{faulted}.db'}"
    simulate_trial_load(extract, url, faults="default" if faulted else "none", seed=seed)
    out = work / f"report-{seed}-{faulted}"
    result = run_validation(extract, url, f"Q{seed}", out, history_url=f"sqlite:///{work / 'history.db'}")
    disc = pl.read_parquet(out / "discrepancies.parquet").with_columns(pl.all().cast(pl.String).fill_null(""))
    summary = (out / "summary.json").read_text(encoding="utf-8")
    truth = read_truth(extract)
    s = score(truth, disc)
    natured = truth.filter(pl.col("category").is_in(NATURED) & (pl.col("nature") != ""))
    missed_nature = s.missed.filter(pl.col("category").is_in(NATURED)).height
    notes = truth.filter(pl.col("entity").is_in(["clinical_event", "ce_blob"]))
    return {
        "seed": seed,
        "faulted": faulted,
        "defects": truth.height,
        "note_defects": notes.height,
        "recall": s.recall,
        "nature_right": (natured.height - missed_nature) / natured.height if natured.height else 1.0,
        "natured": natured.height,
        "false_alarms": s.false_alarms.height,
        "errors_warnings": disc.filter(
            pl.col("severity").is_in(["error", "warning"]) & (pl.col("status") != "resolved")
        ).height,
        "balanced": '"ledger_balanced": true' in summary,
        "exit": result.exit_code,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mc-quality-"))
    try:
        rows = [one_load(work, args.patients, seed, True) for seed in args.seeds]
        clean = one_load(work, args.patients, args.seeds[0], False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cats = sorted({c for r in rows for c in r["recall"]})
    print(f"{args.patients:,} patients, default defects and faults; seeds {', '.join(map(str, args.seeds))}\n")
    print("| category | " + " | ".join(f"seed {r['seed']}" for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for c in cats:
        print(f"| {c} | " + " | ".join(f"{r['recall'].get(c, float('nan')):.3f}" for r in rows) + " |")
    for label, key, fmt in (
        ("defects injected (of them on notes)", None, None),
        ("nature as injected (value_mismatch, text_altered)", "nature_right", "{:.3f}"),
        ("false alarms", "false_alarms", "{}"),
        ("ledger balanced", "balanced", "{}"),
    ):
        if key is None:
            cells = [f"{r['defects']} ({r['note_defects']})" for r in rows]
        else:
            cells = [fmt.format(r[key]) for r in rows]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(
        f"\nClean load (seed {clean['seed']}, no defects, no faults): {clean['errors_warnings']} errors and warnings, "
        f"ledger balanced: {clean['balanced']}, exit {clean['exit']}."
    )


if __name__ == "__main__":
    main()
