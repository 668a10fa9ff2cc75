"""The CLI dispatcher: help, version, and one-line errors for user mistakes."""

import subprocess
import sys

import pytest

from hcs_neuro.core.io import atomic_path, write_json_atomic
from hcs_neuro.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0  # main() returns the exit status, for --version too
    assert "hcs-neuro" in capsys.readouterr().out


def test_python_m_help():
    out = subprocess.run([sys.executable, "-m", "hcs_neuro", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "usage: hcs-neuro" in out.stdout


@pytest.mark.parametrize("argv", [["plot", "curve"], ["plot", "sweep"], ["train"], ["evaluate"], ["validate"],
                                  ["simulate"], ["energy"], ["sweep"], ["circuit"], ["demo"]])
def test_subcommand_help_prints_no_escaped_percent(capsys, argv):
    """argparse %-formats argument help but not descriptions, so a '%%' in a description is printed as is."""
    assert main([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hcs-neuro") and "%%" not in out


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    write_json_atomic(target, {"a": 1})
    assert target.read_text().strip() == '{\n  "a": 1\n}'


def test_atomic_outputs_get_umask_mode(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "m.json", {})
        assert (path.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(mask)
