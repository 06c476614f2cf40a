"""Writing reviewed code maps back to ``mappings/code_maps/*.csv``: atomically, with the diff of each change.

Only the CSV files of the maps a review changes are written, and nothing else under ``mappings/``.
Each file is written to a temporary file beside it, read back through the same reader ``validate``
uses (``checks.mapping.read_code_map``), and renamed over the old one, so a reader never sees half a
file and a failed write leaves the old map.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from checks.errors import MigcheckError
from checks.mapping import CODE_MAP_COLUMNS, read_code_map


@dataclass(frozen=True)
class MapChange:
    """One code map file rewritten: where, and the unified diff of its text."""

    name: str
    path: Path
    diff: str


def code_map_text(df: pl.DataFrame) -> str:
    """A code map as its CSV text: a header line and one line per entry, LF line ends, UTF-8."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CODE_MAP_COLUMNS)
    for row in df.select(CODE_MAP_COLUMNS).iter_rows():
        w.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def _diff(old: str, new: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/code_maps/{name}.csv",
            tofile=f"b/code_maps/{name}.csv",
        )
    )


def write_code_maps(root: Path, maps: dict[str, pl.DataFrame]) -> list[MapChange]:
    """Write each map of ``maps`` to ``root/code_maps/<name>.csv``; the files whose text changed, with their diff."""
    changes = []
    for name, df in sorted(maps.items()):
        path = Path(root) / "code_maps" / f"{name}.csv"
        try:
            old = path.read_text(encoding="utf-8")
        except OSError as e:
            raise MigcheckError(f"{path}: cannot be read ({e.strerror})") from e
        new = code_map_text(df)
        if new == old:
            continue
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".csv.tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                    f.write(new)
                read_code_map(Path(tmp))  # the file validate will read: checked before it replaces the old one
                if path.exists():
                    os.chmod(tmp, path.stat().st_mode & 0o7777)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as e:
            raise MigcheckError(f"{path}: cannot be written ({e.strerror})") from e
        changes.append(MapChange(name, path, _diff(old, new, name)))
    return changes
