"""The distribution: the built wheel installs the root directories (deploy/, facts/, transport/,
operate/, reconciler/) under picl only; an editable install maps them the same way."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Directories at the repository's root that install as picl.NAME.
ROOT_PACKAGES = ("deploy", "facts", "transport", "operate", "reconciler")
# What a build reads nothing from, or must not (build/: an earlier build's output).
UNBUILT = (".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "*_cache", "secrets.toml")


def test_wheel_installs_and_imports(tmp_path: Path) -> None:
    # Built from a copy without build/: setuptools keeps what an earlier build put there, so a
    # file left out of the package data would still be in the wheel.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*UNBUILT))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(source)],
        check=True, capture_output=True,
    )
    (wheel,) = wheels.glob("picl-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert not tops & set(ROOT_PACKAGES)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True,
    )
    probe = (
        "import picl, picl.deploy, picl.facts, picl.transport, picl.operate, picl.reconciler\n"
        "import picl.spec, picl.cli\n"
        "from importlib.resources import files\n"
        "assert (files('picl') / 'starter.toml').is_file()\n"
        "from picl.deploy.mounts import shell\n"  # the programs run on nodes ship as files
        "assert 'findmnt --verify' in shell('fstab-transaction.sh')\n"
        "assert 'unmount_point()' in shell('fstab-mount.sh')\n"
        "assert 'connection up uuid' in (files('picl.lab') / 'nmcli.sh').read_text()\n"
        "print(picl.__file__, picl.deploy.__file__, picl.transport.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path, check=True, capture_output=True, text=True,
    ).stdout
    assert out.split() == [str(target / "picl" / "__init__.py"),
                           str(target / "picl" / "deploy" / "__init__.py"),
                           str(target / "picl" / "transport" / "__init__.py")]


def test_an_editable_install_maps_each_root_directory_under_picl() -> None:
    import picl

    if Path(picl.__file__).resolve().parents[1] != ROOT:
        pytest.skip("picl is not installed editable from this checkout")
    for name in ROOT_PACKAGES:
        module = importlib.import_module(f"picl.{name}")
        assert module.__file__ and Path(module.__file__).resolve() == ROOT / name / "__init__.py"
