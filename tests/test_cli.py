"""The command line: bad arguments and unreachable inputs exit 2 with one line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MIGCHECK_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


def assert_one_line_exit_2(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["generate", "--out", "x", "--colour", "blue"], ["unrecognized arguments", "--colour"]),
        (["generate"], ["--out"]),
        (["generate", "--out", "x", "--patients", "many"], ["--patients"]),
        (["generate", "--out", "x", "--defects", "some"], ["--defects"]),
        (["frobnicate"], ["frobnicate"]),
        (["trial-load", "--source", "x", "--target", "sqlite:///x.db", "--faults", "all"], ["--faults"]),
    ],
)
def test_bad_arguments(args, words):
    assert_one_line_exit_2(run(*args), *words)


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_line_exit_2(run("generate", "--out", str(blocker / "sub"), "--patients", "5"), str(blocker))


def test_missing_extract_directory(tmp_path):
    assert_one_line_exit_2(
        run("trial-load", "--source", str(tmp_path / "nope"), "--target", f"sqlite:///{tmp_path}/t.db"),
        "--source",
        "nope",
    )


def test_unreachable_database_hides_password(sample_extract, tmp_path):
    import shutil

    shutil.copytree(sample_extract, tmp_path / "x")
    r = run(
        "trial-load",
        "--source",
        str(tmp_path / "x"),
        "--target",
        "postgresql+psycopg://migcheck:s3cret@127.0.0.1:1/none",
    )
    assert_one_line_exit_2(r, "--target", "cannot connect")
    assert "s3cret" not in r.stderr and "***" in r.stderr


def test_not_a_database_url(extract_copy):
    assert_one_line_exit_2(run("trial-load", "--source", str(extract_copy), "--target", "not-a-url"), "--target")


def test_sqlite_file_in_missing_folder(sample_extract, tmp_path):
    r = run("trial-load", "--source", str(sample_extract), "--target", f"sqlite:///{tmp_path}/no/such/t.db")
    assert_one_line_exit_2(r, "--target", "does not exist")


def test_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("migcheck ") and r.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize("command", ["generate", "trial-load", "validate", "demo"])
def test_help_shows_an_example_and_the_exit_codes(command):
    r = run(command, "--help")
    assert r.returncode == 0
    assert "example" in r.stdout and f"migcheck {command} " in r.stdout.split("example", 1)[1]
    assert "exit codes:" in r.stdout and "  2  " in r.stdout


def test_settings_forms_are_in_the_help():
    r = run("validate", "--help")
    assert "env:NAME" in r.stdout and "block:NAME" in r.stdout


def test_one_prefix_per_error_line():
    r = run("validate", "--source", "x")
    assert_one_line_exit_2(r, "--trial-load")
    assert r.stderr.count("migcheck") == 2 and r.stderr.startswith(
        "migcheck: the following"
    )  # prefix + "see migcheck validate --help"


def test_target_given_as_env_setting_is_resolved(tmp_path):
    r = run("trial-load", "--source", str(tmp_path), "--target", "env:MIGCHECK_NOT_SET_ANYWHERE")
    assert_one_line_exit_2(r, "--target", "MIGCHECK_NOT_SET_ANYWHERE", "not set")


@pytest.mark.parametrize("given", [None, "dirty_decay_ms:0"])
def test_allocator_set_before_polars_loads(given):
    """The command line's allocator setting (D99) is in place before polars loads; a user's own is kept."""
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if given is not None:
        env["_RJEM_MALLOC_CONF"] = given
    code = "import os, sys, pipelines.cli; print('polars' in sys.modules, os.environ['_RJEM_MALLOC_CONF'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    loaded, conf = out.stdout.split()
    assert loaded == "False"  # jemalloc reads the setting when polars first allocates
    if given is None:
        assert "dirty_decay_ms:2000" in conf and "muzzy_decay_ms:0" in conf
    else:
        assert conf == given
