"""The synthetic instruments as commands: generate an extract, simulate a trial load, lay out a demo.

Plain functions returning plain dicts: the command line calls them in-process, the Prefect flows
(``pipelines/run/flows.py``) wrap them as tasks. Every folder they write is claimed first
(``pipelines.io.outputs``): never one holding files migcheck did not write.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.io.outputs import claim_folder, write_marker
from pipelines.synth.generator import generate
from pipelines.synth.trial_load import simulate_trial_load

#: what other commands write into a generated extract: the simulated load's ground truth
EXTRACT_EXTRAS = ("load_faults.csv",)
#: what the demo writes into its folder
DEMO_ENTRIES = ("extract", "target.db", "report", "migcheck-history.db", ".gitignore")


def claim_extract(out: Path) -> Path:
    """The folder ``generate`` may write: new, empty, or an extract it generated before."""
    return claim_folder(Path(out), "extract", "--out", may_also_hold=EXTRACT_EXTRAS, create_parents=True)


def write_extract(out: str | Path, patients: int, seed: int, defects: str) -> dict:
    """Generate the synthetic extract files (into a new, empty or earlier generated folder only)."""
    folder = claim_extract(Path(out))
    r = generate(folder, patients=patients, seed=seed, defects=defects)
    write_marker(folder, "extract", entries=["pas", "pcs", "defects.csv", *EXTRACT_EXTRAS])
    return {"out": str(r.out_dir), "records": r.records, "defects": r.defects}


def load_target(source: str | Path, target_url: str, faults: str, seed: int) -> dict:
    """Create the target and load the extract into it (``load_faults.csv`` beside the extract)."""
    r = simulate_trial_load(Path(source), target_url, faults=faults, seed=seed)
    return {"target": r.target, "rows": r.rows, "faults": r.faults}


def claim_demo(out: str | Path) -> Path:
    """The demo's folder: new, empty or an earlier demo; marked, and kept out of git."""
    return claim_folder(Path(out), "demo", "--out", create_parents=True)


def lay_out_demo(out: str | Path) -> Path:
    """Claim the demo folder, mark it, and keep it out of any git repository it lands in."""
    root = claim_demo(out)
    root.mkdir(exist_ok=True)
    (root / ".gitignore").write_text("# written by migcheck demo\n*\n", encoding="utf-8")
    write_marker(root, "demo", entries=list(DEMO_ENTRIES))
    return root
