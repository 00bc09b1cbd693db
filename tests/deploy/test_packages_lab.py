"""apt on a lab node reads each package name picl passes as a name, never as a pattern.

The spec lets through every Debian package name, and a name no package has (a typo, or a
name only another architecture has) is one apt-get would otherwise read as a regular
expression, installing whatever matches it.
"""

from __future__ import annotations

import pytest

from picl.deploy.commands import apt_install
from tests.conftest import Lab

pytestmark = pytest.mark.lab

NODE = "node1"


def _packages(lab: Lab) -> str:
    return lab.ssh(NODE, "dpkg-query -W -f '${Package} ${Status}\\n'").stdout


@pytest.mark.parametrize("name", ["ht.p", "openssh-serve.", "htop+.", "ssh."])
def test_a_name_no_package_has_installs_nothing(lab: Lab, name: str) -> None:
    before = _packages(lab)
    result = lab.ssh(NODE, apt_install([name]), check=False)
    assert result.returncode == 1, result
    assert f"Unable to locate package {name}" in result.stderr
    assert "regex" not in result.stdout + result.stderr
    assert _packages(lab) == before


def test_apt_reads_such_a_name_as_a_regex_without_it(lab: Lab) -> None:
    # The failure the option prevents, only simulated (-s): 'ht.p' selects htop, libnghttp2
    # and every other package with 'ht' and 'p' one character apart in its name (thousands;
    # here more than apt can resolve at once).
    result = lab.ssh(NODE, "apt-get -s -q install --no-install-recommends ht.p", check=False)
    assert "Unable to locate package" not in result.stderr, result
    assert "htop is already the newest version" in result.stdout, result


def test_a_real_name_still_installs(lab: Lab) -> None:
    lab.ssh(NODE, "dpkg -r htop >/dev/null")
    result = lab.ssh(NODE, apt_install(["htop"]), check=False)
    assert result.returncode == 0, result
    assert "htop install ok installed" in _packages(lab)
