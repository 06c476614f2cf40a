"""Prefect flows: the same work as the command line, as deployments (``prefect.yaml``).

Flows only call tasks; tasks only wire pure functions to I/O. Retries are on I/O only (the
database write). The full orchestration (validation, caching, artifacts) is issue #5's.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from pipelines.synth.generator import generate
from pipelines.synth.trial_load import simulate_trial_load


@task(name="write-extract")
def write_extract(out: Path, patients: int, seed: int, defects: str) -> dict:
    """Generate the synthetic extract files."""
    r = generate(out, patients=patients, seed=seed, defects=defects)
    return {"out": str(r.out_dir), "records": r.records, "defects": r.defects}


@task(name="load-target", retries=2, retry_delay_seconds=[5, 30])
def load_target(source: Path, target: str, faults: str, seed: int) -> dict:
    """Create the target and load the extract into it (database I/O: retried)."""
    r = simulate_trial_load(source, target, faults=faults, seed=seed)
    return {"target": r.target, "rows": r.rows, "faults": r.faults}


@flow(name="generate-sample")
def generate_sample(out: str, patients: int = 500, seed: int = 1, defects: str = "default") -> dict:
    """Write a synthetic legacy extract (PAS + PCS) and its defects.csv to ``out``."""
    return write_extract(Path(out), patients, seed, defects)


@flow(name="simulate-trial-load")
def simulate_trial_load_flow(source: str, target: str, faults: str = "none", seed: int = 1) -> dict:
    """Simulate the vendor's trial load of ``source`` into the database at ``target``."""
    return load_target(Path(source), target, faults, seed)
