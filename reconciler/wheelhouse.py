"""The wheels that install picl on the primary without internet, built for its platform.

Built on the operator's machine (which has an index to download from) for the primary's CPU,
Python and C library, as read over SSH: a Pi is aarch64, the operator's laptop is often not.
Every dependency comes as a binary wheel for that platform (`pip download --platform ...
--only-binary=:all:`); picl itself is pure Python, built from its source or downloaded. pip
comes along as a wheel too, so the primary needs no python3-venv: pip runs from its wheel.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from picl.errors import PiclError

# Never imported by the agent: the LED strip is driven by each node's own python3 (the LED
# service), and blinkt's RPi.GPIO exists only as source, built on a Pi.
LEFT_OUT = ("blinkt",)
# Printed by the primary: machine, Python (major.minor) and glibc version.
PROBE = ("python3 -c 'import platform, sys; "
         "print(platform.machine(), \"%d.%d\" % sys.version_info[:2], platform.libc_ver()[1])'")
# Older aliases of manylinux_2_17/12/5, where PyPI still uses them.
LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
PIP_TIMEOUT = 900  # seconds: a first download of every wheel on a slow line


@dataclass(frozen=True)
class Platform:
    machine: str  # x86_64, aarch64, armv7l
    python: str  # "3.11"
    glibc: str  # "2.36"

    @classmethod
    def parse(cls, line: str) -> Platform:
        """The platform from PROBE's output."""
        parts = line.split()
        if len(parts) != 3 or not re.fullmatch(r"\d+\.\d+", parts[1]) \
                or not re.fullmatch(r"2\.\d+", parts[2]):
            raise PiclError(f"cannot tell the primary's platform from {line.strip()!r} "
                            "(needs python3 and glibc)")
        return cls(*parts)

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    def tags(self) -> list[str]:
        """pip's --platform values this platform runs: every manylinux up to its glibc."""
        minor = int(self.glibc.split(".")[1])
        tags = []
        for version in range(minor, 4, -1):
            tags.append(f"manylinux_2_{version}_{self.machine}")
            if version in LEGACY:
                tags.append(f"{LEGACY[version]}_{self.machine}")
        # Wheels built for one machine only (piwheels' for Raspberry Pi OS) are tagged so.
        tags.append(f"linux_{self.machine}")
        return tags

    def download_options(self) -> list[str]:
        options = ["--only-binary=:all:", "--implementation", "cp", "--python-version",
                   self.python, "--abi", self.abi, "--abi", "abi3", "--abi", "none"]
        for tag in self.tags():
            options += ["--platform", tag]
        return options

    def __str__(self) -> str:
        return f"{self.machine}, Python {self.python}, glibc {self.glibc}"


def requirements(wheel: Path) -> list[str]:
    """What a wheel requires (its METADATA), without extras and what the agent never uses."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    wanted = []
    for requirement in metadata.get_all("Requires-Dist") or []:
        if "extra ==" in requirement:
            continue
        project = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]
        if project.lower() not in LEFT_OUT:
            wanted.append(requirement)
    return wanted


def _source() -> Path | None:
    """picl's source tree, when this picl runs from one (a checkout, pip install -e)."""
    import picl

    root = Path(picl.__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "reconciler").is_dir():
        return root
    return None


def _pip(args: list[str], what: str, network: Path | None = None) -> None:
    argv = [sys.executable, "-m", "pip", *args]
    if network is not None:
        argv = ["nsenter", f"--net={network}", "--", *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                              stdin=subprocess.DEVNULL,
                              env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    except subprocess.TimeoutExpired:
        raise PiclError(f"{what}: pip took over {PIP_TIMEOUT}s") from None
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
        detail = "; ".join(errors[-2:]) or proc.stderr.strip()[-300:]
        raise PiclError(f"{what}: {detail}\n  ({shlex.join(argv)})")


def build(platform: Platform, directory: Path, network: Path | None = None) -> list[Path]:
    """Fill `directory` with picl's wheel, pip's, and every dependency's for `platform`.

    `network`: the network namespace pip downloads in, when this one has no uplink (the lab's).
    """
    directory.mkdir(parents=True, exist_ok=True)
    version = importlib.metadata.version("picl")
    source = _source()
    if source is not None:
        # With the build tools at hand, build with them: no index needed for picl itself.
        isolation = ["--no-build-isolation"] if find_spec("setuptools") and find_spec("wheel") \
            else []
        _pip(["wheel", "--quiet", "--no-deps", *isolation, "--wheel-dir", str(directory),
              str(source)], f"building picl's wheel from {source}")
    else:
        _pip(["download", "--quiet", "--no-deps", "--dest", str(directory), f"picl=={version}"],
             f"downloading picl {version}", network)
    picl_wheel = next(iter(sorted(directory.glob("picl-*.whl"))), None)
    if picl_wheel is None:
        raise PiclError(f"no picl wheel came out of the build in {directory}")
    wanted = [*requirements(picl_wheel), "pip"]
    _pip(["download", "--quiet", "--dest", str(directory), *platform.download_options(),
          *wanted],
         f"downloading picl's dependencies for the primary ({platform}); a platform without "
         "wheels on the index may need another (e.g. PIP_EXTRA_INDEX_URL="
         "https://www.piwheels.org/simple for 32-bit Raspberry Pi OS)", network)
    return sorted(directory.glob("*.whl"))
