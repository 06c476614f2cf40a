from pathlib import Path

import pytest

from checks.errors import MigcheckError
from checks.mapping import TABLES, load_mappings

from conftest import MAPPINGS


def test_every_mapping_file_loads():
    m = load_mappings(MAPPINGS)
    assert set(m.tables) == set(TABLES)
    assert {"map_pas_unit", "map_pcs_unit"} <= set(m.code_maps)
    assert m.code_value.height == 62 and m.nomenclature.height == 88


def _copy(tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, dst)
    return dst


def test_unknown_key_is_named_with_file_and_line(tmp_path):
    root = _copy(tmp_path)
    p = root / "encounter.yaml"
    text = p.read_text().replace("    key: KONTAKTID\n", "    key: KONTAKTID\n    colour: blue\n", 1)
    p.write_text(text)
    with pytest.raises(MigcheckError) as e:
        load_mappings(root)
    msg = e.value.reason
    assert "encounter.yaml" in msg and "colour" in msg
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "colour" in ln)
    assert f"line {line}" in msg


def test_code_map_pointing_at_unknown_meaning_is_rejected(tmp_path):
    root = _copy(tmp_path)
    with open(root / "code_maps" / "map_pas_unit.csv", "a") as f:
        f.write("MED7,SAS_NOPE\n")
    with pytest.raises(MigcheckError, match="SAS_NOPE"):
        load_mappings(root)


def test_missing_mappings_directory(tmp_path):
    with pytest.raises(MigcheckError, match="not found"):
        load_mappings(tmp_path / "nope")


def test_a_column_that_is_not_in_the_target_schema_is_refused(tmp_path):
    root = _copy(tmp_path)
    p = root / "procedure.yaml"
    text = p.read_text().replace("      proc_dt_tm:", "      proc_dt_tm; DROP TABLE person; --:", 1)
    p.write_text(text)
    with pytest.raises(MigcheckError) as e:
        load_mappings(root)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "DROP TABLE" in ln)
    assert "procedure.yaml" in e.value.reason and "no column of target table procedure" in e.value.reason
    assert f"line {line}" in e.value.reason


def test_a_parent_that_is_no_person_or_encounter_record_is_refused(tmp_path):
    """Records are partitioned by the person of their parent: a parent must be a person or an encounter."""
    root = _copy(tmp_path)
    p = root / "procedure.yaml"
    text = p.read_text().replace("parent: {records: pas/kontakt,", "parent: {records: pas/diagnos,", 1)
    assert text != p.read_text()
    p.write_text(text)
    with pytest.raises(MigcheckError) as e:
        load_mappings(root)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "pas/diagnos" in ln)
    assert e.value.reason.startswith(f"{p} line {line}: parent 'pas/diagnos' is not a person or encounter")
