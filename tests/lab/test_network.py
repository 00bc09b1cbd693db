"""Lab nodes look like freshly set-up boards on one wired network, reachable only in the lab."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from picl.lab import image

pytestmark = pytest.mark.lab


def test_every_node_reaches_every_other_by_address(lab) -> None:
    nodes = lab.blueprint.nodes
    for node in nodes:
        for other in nodes:
            if other is node:
                continue
            # ping, and a TCP connection to the other's sshd: the wire and the service.
            lab.ssh(
                node.name,
                f"ping -c 1 -W 5 {other.address} && timeout 5 bash -c '</dev/tcp/{other.address}/22'",
            )


def test_nodes_have_their_names_and_addresses_from_networkmanager(lab) -> None:
    interface = lab.cluster.network.interface
    for node in lab.blueprint.nodes:
        assert lab.ssh(node.name, "hostname").stdout.strip() == node.name
        shown = lab.ssh(node.name, f"ip -j -4 addr show dev {interface}").stdout
        addresses = [a["local"] for link in json.loads(shown) for a in link["addr_info"]]
        assert addresses == [node.address]
        # NetworkManager holds the address (as on a board), and there is no default route.
        active = lab.ssh(node.name, "nmcli -t -f NAME,DEVICE connection show --active").stdout
        assert f"Wired connection 1:{interface}" in active.splitlines()
        assert lab.ssh(node.name, "ip -4 route show default").stdout.strip() == ""


def test_etc_hosts_is_left_as_a_fresh_card_has_it(lab) -> None:
    for node in lab.blueprint.nodes:
        fresh = (image.rootfs(node.image) / "etc/hosts").read_text()
        # The imager names the board: its 127.0.1.1 line, when the image has one.
        named = re.sub(rf"^(127\.0\.1\.1\s+){image.HOSTNAME}$", rf"\g<1>{node.name}", fresh, flags=re.M)
        assert lab.ssh(node.name, "cat /etc/hosts").stdout == named


def test_host_keys_are_per_node_and_pinned(lab) -> None:
    known = lab.exec(["sh", "-c", 'cat "$PICL_KNOWN_HOSTS"']).stdout.splitlines()
    keys = [line.split(" ", 1)[1] for line in known]
    assert len(known) == len(lab.blueprint.nodes) and len(set(keys)) == len(keys)
    # Plain `ssh ADDRESS` inside the lab uses the lab's key and checks the pinned host key.
    node = lab.blueprint.nodes[1]
    shown = lab.exec(["ssh", node.address, "hostname"]).stdout.strip()
    assert shown == node.name
    # A host key that is not the pinned one is refused.
    wrong = lab.exec(
        ["ssh", "-o", "HostKeyAlias=" + lab.blueprint.nodes[0].address, node.address, "true"],
        check=False,
    )
    assert wrong.returncode == 255 and "host key" in wrong.stderr.lower()


def test_the_hosts_network_is_untouched(lab) -> None:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    assert "picl0" not in links.stdout and "ve-node" not in links.stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True)
    assert str(lab.cluster.network.subnet) not in routes.stdout


def test_status_json(lab) -> None:
    result = lab.picl("lab", "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["lab"] == lab.name and status["up"] is True
    assert [(n["name"], n["running"], n["ssh"]) for n in status["nodes"]] == [
        (n.name, True, True) for n in lab.blueprint.nodes
    ]


def test_git_push_to_a_node_just_works_inside_the_lab(lab, tmp_path) -> None:
    node = lab.blueprint.nodes[0]
    # Raspberry Pi OS Lite has no git: installed as a user would, through the lab's apt proxy.
    lab.ssh(node.name, "command -v git || (apt-get -q update && apt-get -q -y install git)")
    lab.ssh(node.name, "rm -rf /root/push-test.git && git init -q --bare /root/push-test.git")
    work = tmp_path / "work"
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "cluster.toml").write_text("# pushed\n")
    subprocess.run([*git, "add", "cluster.toml"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "spec"], check=True)
    pushed = lab.exec([*git, "push", "-q", f"ssh://root@{node.address}/root/push-test.git", "main"])
    assert pushed.returncode == 0
    log = lab.ssh(node.name, "git -C /root/push-test.git log --format=%s main").stdout
    assert log == "spec\n"
