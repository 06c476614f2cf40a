"""Prefect flows of the synthetic instruments: generate an extract, simulate a trial load, the demo.

Test instruments, kept apart from validation (``pipelines.run.flows`` never imports
``pipelines.synth``); the demo chains them with the validation flow.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from checks.errors import MigcheckError
from pipelines.io.settings import resolve_url
from pipelines.run.flows import validate_trial_load, verdict_of
from pipelines.run.prefect_runner import IO_RETRY
from pipelines.synth.commands import lay_out_demo, load_target, write_extract


@task(name="write-extract", cache_policy=NO_CACHE, **IO_RETRY)
def write_extract_task(out: str, patients: int, seed: int, defects: str) -> dict:
    """Generate the synthetic extract files."""
    return write_extract(out, patients, seed, defects)


@task(name="load-target", cache_policy=NO_CACHE, **IO_RETRY)
def load_target_task(source: str, target_url: str, faults: str, seed: int) -> dict:
    """Create the target and load the extract into it."""
    return load_target(source, target_url, faults, seed)


@flow(name="generate-sample")
def generate_sample(out: str, patients: int = 500, seed: int = 1, defects: str = "default") -> dict:
    """Write a synthetic legacy extract (PAS + PCS) and its ground truth ``defects.csv`` to ``out``.

    Args:
        out: extract directory to write.
        patients: number of persons.
        seed: random seed (the same seed gives the same files).
        defects: ``default`` injects every source defect category; ``none`` writes a clean extract.
    """
    return write_extract_task(out, patients, seed, defects)


@flow(name="simulate-trial-load")
def simulate_trial_load_flow(
    source: str, target: str = "env:MIGCHECK_TARGET_URL", faults: str = "none", seed: int = 1
) -> dict:
    """Simulate the vendor's trial load of the extract at ``source`` into the ``target`` database.

    Args:
        source: extract directory; ``load_faults.csv`` is written there.
        target: ``env:NAME``, ``block:NAME`` or a URL without a password.
        faults: ``default`` injects load faults of every kind; ``none`` loads by the rules.
        seed: random seed of the faults.
    """
    url = resolve_url(target, "--target", "MIGCHECK_TARGET_URL")
    if not url:
        raise MigcheckError("--target: no target database given (set MIGCHECK_TARGET_URL)")
    return load_target_task(source, url, faults, seed)


@flow(name="demo")
def demo(out: str = "demo", patients: int = 300, seed: int = 1) -> dict:
    """Generate an extract, load it into an embedded SQLite target with faults, validate it.

    Args:
        out: working folder (extract/, target.db, report/).
        patients: number of persons.
        seed: random seed.
    """
    root = lay_out_demo(out)
    g = generate_sample(str(root / "extract"), patients, seed, "default")
    url = f"sqlite:///{root / 'target.db'}"
    load = simulate_trial_load_flow(str(root / "extract"), url, "default", seed)
    v = verdict_of(
        validate_trial_load(str(root / "extract"), "DEMO", str(root / "report"), target=url, return_state=True)
    )
    return {"extract": g, "load": load, "validation": v}
