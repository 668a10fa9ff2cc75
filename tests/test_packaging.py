"""A regular (non-editable) install must carry the built-in circuits, models and data files."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_contains_every_builtin_circuit_model_and_config(tmp_path):
    # Build from a clean copy: setuptools reuses a stale build/ folder in the checkout.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "results", "output", "hcs-neuro-demo"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(src)],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("hcs_neuro-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"hcs_neuro/circuits/{p.name}" for p in (REPO / "circuits").glob("*.toml")}
    expected |= {f"hcs_neuro/models/{p.relative_to(REPO / 'models')}" for p in (REPO / "models").rglob("*")
                 if p.suffix in (".npz", ".toml", ".json")}
    expected |= {"hcs_neuro/data/energy_profiles.toml", "hcs_neuro/train/csrc/kwta.cpp"}
    expected |= {p.relative_to(REPO).as_posix() for p in (REPO / "hcs_neuro").rglob("*.py")}  # every sub-package
    assert len(expected) > 8
    assert expected <= names, sorted(expected - names)
