"""The distribution: the built wheel installs picl.deploy/facts/reconciler under picl only."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_imports(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = wheels.glob("picl-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert "deploy" not in tops and "facts" not in tops and "reconciler" not in tops
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True,
    )
    probe = (
        "import picl, picl.deploy, picl.facts, picl.reconciler, picl.spec, picl.cli\n"
        "from importlib.resources import files\n"
        "assert (files('picl') / 'starter.toml').is_file()\n"
        "print(picl.__file__, picl.deploy.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path, check=True, capture_output=True, text=True,
    ).stdout
    assert out.split() == [str(target / "picl" / "__init__.py"),
                           str(target / "picl" / "deploy" / "__init__.py")]
