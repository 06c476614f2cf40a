"""Folders migcheck writes: it never destroys what it did not write.

Every folder a command writes as a whole — a report, a generated extract, a demo — carries a
marker file ``.migcheck`` (JSON: what kind of folder it is, the migcheck version, the entries
migcheck wrote in it). A command may write into a folder, or replace it, only when

* the folder does not exist yet (its parent must), or is empty, or
* its marker says it is a migcheck folder of the same kind and it holds nothing the marker does
  not list (a steward's note put into an old report folder stops the next run, it is not deleted).

Everything else — a file, a folder of other files, a folder that is, contains or lies inside one
the command reads (``--source``, ``--mappings``) — is refused with exit 2 and one line naming the
option, before any work is done. Folders are written with the permissions the user's umask gives,
like any other program's output.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from checks.errors import MigcheckError

MARKER = ".migcheck"

#: the kinds of folder migcheck writes, as the messages name them
KINDS: dict[str, str] = {
    "report": "report",
    "extract": "generated extract",
    "demo": "demo",
}


@dataclass(frozen=True)
class Marker:
    """What a marker file says about its folder."""

    kind: str
    entries: tuple[str, ...]


def version() -> str:
    """The installed migcheck version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _v

    try:
        return _v("migcheck")
    except PackageNotFoundError:  # run from a checkout without installing
        return "0+unknown"


def read_marker(folder: Path) -> Marker | None:
    """The marker of a folder, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        return Marker(str(data["kind"]), tuple(str(e) for e in data.get("entries", [])))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_marker(folder: Path, kind: str, entries: list[str] | None = None, **info: str) -> None:
    """Mark ``folder`` as migcheck's: ``entries`` default to everything in it now."""
    if entries is None:
        entries = sorted(p.name for p in folder.iterdir() if p.name != MARKER)
    body = {"kind": kind, "written_by": f"migcheck {version()}", **info, "entries": sorted(set(entries))}
    (folder / MARKER).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def _same_or_nested(path: Path, other: Path) -> str | None:
    if path == other:
        return "is the same folder as"
    if other in path.parents:
        return "lies inside"
    if path in other.parents:
        return "contains"
    return None


def claim_folder(
    path: Path,
    kind: str,
    option: str,
    *,
    reads: dict[str, Path | None] | None = None,
    may_also_hold: tuple[str, ...] = (),
    create_parents: bool = False,
) -> Path:
    """Check that ``path`` may be written as a migcheck folder of ``kind``; return it absolute.

    ``reads``: folders the command reads, by option (``{"--source": …}``): the output may be none
    of them, and may neither contain nor lie inside one. ``may_also_hold``: entries migcheck writes
    there in another command (``load_faults.csv`` in a generated extract). ``create_parents``:
    a missing parent folder is created (``generate``, ``demo``) rather than refused (a report: its
    parent holds the default history, which a mistyped parent would silently start afresh).
    """
    given = path
    path = Path(path).expanduser().resolve()
    where = f"{option} {given}"
    if path.exists() and not path.is_dir():
        raise MigcheckError(f"{where}: is a file, not a folder; give a folder for the {KINDS[kind]}")
    parent = path.parent
    if create_parents and not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as e:
            raise MigcheckError(f"{where}: cannot create folder {parent} ({e.strerror})") from e
    if not parent.is_dir():
        raise MigcheckError(f"{where}: folder {parent} does not exist (create it first)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MigcheckError(f"{where}: no permission to write in {parent}")
    for name, other in (reads or {}).items():
        if other is None:
            continue
        how = _same_or_nested(path, Path(other).expanduser().resolve())
        if how:
            raise MigcheckError(f"{where}: {how} {name} {other}; write the {KINDS[kind]} elsewhere")
    if path.is_dir():
        try:
            entries = sorted(p.name for p in path.iterdir())
        except OSError as e:
            raise MigcheckError(f"{where}: cannot be read ({e.strerror})") from e
        if entries:
            marker = read_marker(path)
            if marker is None:
                raise MigcheckError(
                    f"{where}: exists and is not a migcheck {KINDS[kind]} folder (it holds {entries[0]!r}"
                    f"{f' and {len(entries) - 1} more' if len(entries) > 1 else ''}); "
                    "give a new or empty folder"
                )
            if marker.kind != kind:
                raise MigcheckError(
                    f"{where}: is a migcheck {KINDS.get(marker.kind, marker.kind)} folder, not a {KINDS[kind]} "
                    "folder; give another folder"
                )
            foreign = sorted(set(entries) - set(marker.entries) - set(may_also_hold) - {MARKER})
            if foreign:
                raise MigcheckError(
                    f"{where}: holds {foreign[0]!r}, which migcheck did not write; move it away or give another folder"
                )
    return path


def umask() -> int:
    """The process's file-mode creation mask."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def open_up(folder: Path) -> None:
    """Give a folder made by ``tempfile.mkdtemp`` (always 0700) the mode the umask gives a new folder."""
    os.chmod(folder, 0o777 & ~umask())
