"""What commands that only find the cluster read of the spec: its name, its primary. A spec
broken anywhere else still answers; what they need, broken, is a located error."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from picl.errors import SpecError
from picl.spec import cluster_name, primary_node
from tests.spec.conftest import BASE

# Broken elsewhere: what a bad commit looks like.
ELSEWHERE = {
    "a wrong type": BASE.replace("uid = 1000", 'uid = "one"'),
    "an unknown key": BASE.replace('address = "10.1.10.241"', 'adress = "10.1.10.241"'),
    "a missing section": BASE.replace("[network]\n", "[netwrk]\n"),
    "another node's bad address": BASE.replace('"10.1.10.242"', '"10.1.10.999"'),
}


@pytest.mark.parametrize("text", ELSEWHERE.values(), ids=ELSEWHERE.keys())
def test_a_spec_broken_elsewhere_still_names_its_cluster_and_primary(text: str,
                                                                     tmp_path: Path) -> None:
    spec = tmp_path / "cluster.toml"
    spec.write_text(text)
    assert cluster_name(spec) == "arrakis"
    primary = primary_node(spec)
    assert (primary.name, primary.address) == ("node0", IPv4Address("10.1.10.240"))


BROKEN = {
    "no name": (BASE.replace('name = "arrakis"\n', ""), cluster_name,
                "cluster.toml:1:2: cluster.name: missing required key"),
    "a name that is not a string": (BASE.replace('name = "arrakis"', "name = 7"), cluster_name,
                                    "cluster.toml:2:1: cluster.name: must be a non-empty string"),
    "not TOML": (BASE.replace('name = "arrakis"', 'name = "arrakis'), cluster_name,
                 "cluster.toml:2:16: invalid TOML"),
    "no primary": (BASE.replace('primary = "node0"\n', ""), primary_node,
                   "cluster.toml:1:2: cluster.primary: missing required key"),
    "a primary that is no node": (BASE.replace('primary = "node0"', 'primary = "node9"'),
                                  primary_node,
                                  "cluster.toml:5:1: cluster.primary: no node named 'node9'"),
    "the primary's address": (BASE.replace('"10.1.10.240"', '"10.1.10"'), primary_node,
                              "cluster.toml:18:1: nodes[0].address: Input is not a valid IPv4"),
    "the primary without address": (BASE.replace('address = "10.1.10.240"\n', ""),
                                    primary_node,
                                    "cluster.toml:16:3: nodes[0].address: missing required key"),
}


@pytest.mark.parametrize(("text", "read", "error"), BROKEN.values(), ids=BROKEN.keys())
def test_what_they_need_broken_is_located(text: str, read, error: str, tmp_path: Path) -> None:
    spec = tmp_path / "cluster.toml"
    spec.write_text(text)
    with pytest.raises(SpecError) as raised:
        read(spec)
    assert str(raised.value).startswith(f"{spec.parent}/{error}"), str(raised.value)
