"""The target checks as a step of a validation: what it is given, what it gives back.

A module of its own, importing only what the checks need (not ``pipelines.run.validate`` and the
readers, reconciliation and report behind it): the step runs in a worker process of its own
(``Step.own_process``), which imports this module afresh, and every second of imports there is a
second of a core the reading threads do not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class TargetCheckPart:
    """What the target checks gave: failures and the checks that ran."""

    failures: pl.DataFrame
    check_ids: list[tuple[str, str]]


def run_target_checks_on(
    target_url: str, code_value: pl.DataFrame, nomenclature: pl.DataFrame, enabled: bool = True
) -> TargetCheckPart:
    """The target checks pushed down to the database (Great Expectations), built from the reference data.

    ``code_value`` and ``nomenclature``: the mappings' reference tables the checks' code sets come
    from; ``enabled``: False (``--no-target-checks``) runs none.
    """
    if not enabled:
        return TargetCheckPart(pl.DataFrame(), [])
    from checks.target_checks import build_target_checks
    from pipelines.io.gx_checks import run_target_checks
    from pipelines.io.target_db import connect

    engine = connect(target_url)
    try:
        checks = build_target_checks(code_value, nomenclature)
        run = run_target_checks(engine, checks)
    finally:
        engine.dispose()
    return TargetCheckPart(run.failures, [(c.check_id, c.category) for c in checks])
