"""Compiling the spec as data: a spec and a node's state in, changes and their steps out."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from pyinfra.api import StringCommand

from picl.deploy import boot, clock, keys, leds, mounts, names, packages, shares, ssh_access, users
from picl.deploy.changes import BEGIN, END, Step, block_lines, with_block
from picl.deploy.commands import apt_install
from picl.deploy.network_files import wpa_psk
from picl.deploy.plan import needed, plan_node
from picl.deploy.view import ClusterFacts
from picl.facts.node import Account
from picl.spec import Cluster
from tests.deploy.clusters import small_cluster
from tests.deploy.conftest import PAIR, fresh_node, view


def commands(change) -> list[str]:
    return [str(c) for step in change.steps for c in step.arguments.get("commands", [])]


def by_resource(changes) -> dict:
    return {c.resource: c for c in changes}


def test_stock_user_is_renamed_keeping_its_files(cluster: Cluster) -> None:
    found = by_resource(users.changes(view(cluster, "node1", fresh_node())))
    change = found["user federico"]
    assert change.action == "create"
    assert ("renamed from", None, "picocluster") in [(a.name, a.before, a.after)
                                                      for a in change.attributes]
    assert commands(change)[:3] == [
        "usermod -l federico -d /home/federico -m picocluster",
        "groupmod -n federico picocluster",
        "rm -f /home/federico/.Xauthority",
    ]
    assert "usermod -a -G adm federico" in commands(change)
    assert "group federico" not in found  # renamed with the user


def test_new_user_is_added_with_exact_ids(cluster: Cluster) -> None:
    observed = fresh_node()
    del observed.accounts["picocluster"], observed.groups["picocluster"]
    found = by_resource(users.changes(view(cluster, "node1", observed)))
    assert commands(found["group federico"]) == ["groupadd -g 1000 federico"]
    assert commands(found["user federico"])[0] == (
        "useradd -m -d /home/federico -u 1000 -g 1000 -s /bin/bash federico")


def test_uid_drift_is_an_update_naming_the_attribute(cluster: Cluster) -> None:
    observed = fresh_node()
    observed.accounts["federico"] = Account("federico", 1001, 1000, "/home/federico", "/bin/bash")
    observed.groups["federico"] = dataclasses.replace(observed.groups["picocluster"],
                                                      name="federico")
    observed.groups["sudo"] = dataclasses.replace(observed.groups["sudo"], members=("federico",))
    observed.groups["adm"] = dataclasses.replace(observed.groups["adm"], members=("federico",))
    change = by_resource(users.changes(view(cluster, "node1", observed)))["user federico"]
    assert change.action == "update"
    assert [(a.name, a.before, a.after) for a in change.attributes] == [("uid", 1001, 1000)]
    assert commands(change) == ["usermod -u 1000 federico"]


def test_sudo_drop_in_is_checked_by_visudo_before_it_counts(cluster: Cluster) -> None:
    change = by_resource(users.changes(view(cluster, "node1", fresh_node())))["sudo federico"]
    (step,) = change.steps
    assert step.arguments["dest"] == "/etc/sudoers.d/picl-federico"
    assert step.arguments["src"].getvalue() == "federico ALL=(ALL:ALL) NOPASSWD: ALL\n"
    assert (step.arguments["mode"], step.arguments["check"]) == ("0440", "visudo -cqf")


def test_root_password_is_sensitive_everywhere(cluster: Cluster) -> None:
    change = by_resource(users.changes(view(cluster, "node1", fresh_node())))["password root"]
    assert change.sensitive
    assert change.attributes[0].shown() == ("(sensitive)", "(sensitive)")
    assert "$6$salt$hash" not in repr(change.attributes)
    assert change.steps[0].arguments == {"commands": ["chpasswd -e"],
                                         "_stdin": "root:$6$salt$hash\n"}


@pytest.mark.parametrize("value", ["$6$a$b\nfederico:$6$c$d", "$6$a:b", "$6$a b", "", "\x00"])
def test_a_password_chpasswd_would_misread_is_blocked_unshown(cluster: Cluster,
                                                              value: str) -> None:
    cluster._secrets["root_password_hash"] = SecretStr(value)
    change = by_resource(users.changes(view(cluster, "node1", fresh_node())))["password root"]
    assert change.steps == ()
    assert change.blocked.startswith("secret 'root_password_hash' is not a crypt(3) hash")
    assert not value or value not in change.blocked


def _words(step: Step) -> list[str]:
    """What a step puts in a process's arguments on the node: all but uploads and stdin."""
    words = []
    for key, value in step.arguments.items():
        if key in ("src", "_stdin"):
            continue
        for item in value if isinstance(value, list) else [value]:
            words.append(item.get_raw_value() if isinstance(item, StringCommand) else str(item))
    return words


BULLSEYE = {"units": {"dhcpcd.service": ("enabled", "active")},
            "existing": {"/usr/sbin/dhcpcd", "/etc/dhcpcd.conf", "/sbin/wpa_supplicant"},
            "files": {"/etc/dhcpcd.conf": b"hostname\n"}}
BOOKWORM = {"units": {"NetworkManager.service": ("enabled", "active")},
            "existing": {"/usr/sbin/NetworkManager", "/usr/sbin/wpa_supplicant"}}


@pytest.mark.parametrize("backend", [BOOKWORM, BULLSEYE], ids=["bookworm", "bullseye"])
def test_secrets_reach_a_node_as_uploads_or_stdin_never_as_arguments(
        cluster: Cluster, backend: dict) -> None:
    observed = dataclasses.replace(fresh_node(), **backend)
    shared = view(cluster, "node1", observed, cluster_keys={"federico": PAIR}).shared
    steps = [s for c in plan_node(cluster, cluster.node("node1"), observed, shared).changes
             for s in c.steps]
    wifi = cluster.network.wifi
    assert wifi is not None
    psk = cluster.secret(wifi.psk) or ""
    secrets = ["$6$salt$hash", psk, wpa_psk(wifi.ssid.encode(), psk), "PRIVATE KEY"]
    delivered = "".join(str(s.arguments.get("_stdin", "")) + (
        s.arguments["src"].getvalue() if "src" in s.arguments else "") for s in steps)
    for secret in secrets:
        assert not [w for s in steps for w in _words(s) if secret in w], secret
    assert "$6$salt$hash" in delivered and "PRIVATE KEY" in delivered
    assert (psk if backend is BOOKWORM else wpa_psk(wifi.ssid.encode(), psk)) in delivered


def test_hosts_block_lists_every_node_and_keeps_foreign_lines(cluster: Cluster) -> None:
    change = by_resource(names.changes(view(cluster, "node1", fresh_node())))["hosts"]
    text = change.steps[0].arguments["src"].getvalue()
    assert text.startswith("127.0.0.1\tlocalhost\n")
    assert block_lines(text) == ["10.1.10.240\tnode0.cluster node0",
                                 "10.1.10.241\tnode1.cluster node1",
                                 "10.1.10.242\tnode2.cluster node2"]
    assert "+10.1.10.242\tnode2.cluster node2" in change.diff


def test_hostname_change_shows_before_and_after(cluster: Cluster) -> None:
    change = by_resource(names.changes(view(cluster, "node1", fresh_node())))["hostname"]
    assert [(a.before, a.after) for a in change.attributes] == [("raspberrypi", "node1")]


def test_target_per_node(cluster: Cluster) -> None:
    assert boot.changes(view(cluster, "node0", fresh_node("node0"))) == []
    (change,) = boot.changes(view(cluster, "node1", fresh_node()))
    assert commands(change) == ["systemctl set-default multi-user.target"]


def test_primary_serves_time_and_workers_prefer_it(cluster: Cluster) -> None:
    primary = clock.chrony_conf(view(cluster, "node0", fresh_node("node0")))
    worker = clock.chrony_conf(view(cluster, "node1", fresh_node()))
    assert "allow 10.1.10.0/24\n" in primary and "local stratum 10\n" in primary
    assert "pool 0.debian.pool.ntp.org iburst\n" in primary
    assert worker.index("server 10.1.10.240 iburst prefer") < worker.index("pool ")
    assert "allow" not in worker


def test_timezone(cluster: Cluster) -> None:
    change = by_resource(clock.changes(view(cluster, "node1", fresh_node())))["timezone"]
    assert (change.attributes[0].before, change.attributes[0].after) == (
        "Etc/UTC", "America/New_York")


def test_missing_packages_share_one_apt_run(cluster: Cluster) -> None:
    found = packages.changes(view(cluster, "node2", fresh_node("node2")), {})
    assert [c.resource for c in found] == ["package htop", "package openmpi-bin",
                                           "package stress"]
    assert len({id(c.steps[0]) for c in found}) == 1
    assert found[0].steps[0].arguments == {"packages": ["htop", "openmpi-bin", "stress"]}


def test_installed_packages_are_no_change(cluster: Cluster) -> None:
    observed = fresh_node()
    observed.packages.update({"htop": True, "openmpi-bin": True})
    assert packages.changes(view(cluster, "node1", observed), {}) == []


def test_exports_limited_to_the_cluster_with_safe_defaults(cluster: Cluster) -> None:
    assert shares.exports(cluster, "node0").splitlines()[1] == (
        "/srv/shared 10.1.10.241(rw,sync,no_subtree_check,root_squash) "
        "10.1.10.242(rw,sync,no_subtree_check,root_squash)")
    assert shares.exports(cluster, "node1") is None
    found = by_resource(shares.changes(view(cluster, "node0", fresh_node("node0"))))
    assert commands(found["export_dir /srv/shared"]) == ["install -d -o 1000 -g 1000 /srv/shared"]
    assert commands(found["exports"]) == ["exportfs -ra"]


def test_export_options_replace_their_opposites(cluster: Cluster) -> None:
    share = cluster.shares[0].model_copy(update={"options": "ro,no_root_squash,insecure"})
    assert shares.export_options(share) == "ro,sync,no_subtree_check,no_root_squash,insecure"


def test_authorized_keys_keep_foreign_keys(cluster: Cluster) -> None:
    observed = fresh_node()
    observed.accounts["federico"] = Account("federico", 1000, 1000, "/home/federico", "/bin/bash")
    observed.files["/home/federico/.ssh/authorized_keys"] = b"ssh-rsa AAAAforeign bob\n"
    found = by_resource(ssh_access.changes(view(cluster, "node1", observed,
                                         github_keys={"flucifredi": []},
                                         cluster_keys={"federico": PAIR})))
    text = found["authorized_keys federico"].steps[1].arguments["src"].getvalue()
    assert text.splitlines()[0] == "ssh-rsa AAAAforeign bob"
    assert block_lines(text) == [cluster.users[0].ssh_keys[0], PAIR.public]
    assert found["cluster_key federico"].sensitive


def test_unresolved_github_user_removes_no_key(cluster: Cluster) -> None:
    observed = fresh_node()
    observed.accounts["federico"] = Account("federico", 1000, 1000, "/home/federico", "/bin/bash")
    observed.files["/home/federico/.ssh/authorized_keys"] = with_block(
        None, ["ssh-ed25519 AAAAfromgithub gh"]).encode()
    change = by_resource(ssh_access.changes(view(cluster, "node1", observed)))["authorized_keys federico"]
    after = change.steps[1].arguments["src"].getvalue()
    assert "ssh-ed25519 AAAAfromgithub gh" in block_lines(after)


def test_known_hosts_pin_every_name_and_keep_unreachable_nodes(cluster: Cluster) -> None:
    observed = fresh_node()
    observed.files["/etc/ssh/ssh_known_hosts"] = with_block(
        None, ["node2,node2.cluster,10.1.10.242 ssh-ed25519 AAAAold2"]).encode()
    lines = ssh_access.known_hosts_lines(view(cluster, "node1", observed))
    assert lines == ["node1,node1.cluster,10.1.10.241 ssh-ed25519 AAAAkeynode1",
                     "node2,node2.cluster,10.1.10.242 ssh-ed25519 AAAAold2"]


def test_block_round_trip() -> None:
    text = "a\n" + BEGIN + "\nold\n" + END + "\nb\n"
    assert with_block(text, ["new"]) == "a\n" + BEGIN + "\nnew\n" + END + "\nb\n"
    assert block_lines("a\n") is None
    assert block_lines(with_block("a", [])) == []


def test_whole_node_plan_is_ordered_users_first(cluster: Cluster) -> None:
    node = cluster.node("node1")
    observed = fresh_node()
    plan = plan_node(cluster, node, observed, view(cluster, "node1", observed).shared)
    resources = [c.resource for c in plan.changes]
    assert resources.index("user federico") < resources.index("authorized_keys federico")
    assert resources.index("sudo federico") < resources.index("hosts")
    assert plan.counts["create"] > 0


def test_renamed_user_keeps_the_keys_of_the_stock_user(cluster: Cluster) -> None:
    observed = fresh_node()
    observed.files["/home/picocluster/.ssh/authorized_keys"] = b"ssh-rsa AAAAforeign bob\n"
    change = by_resource(ssh_access.changes(view(cluster, "node1", observed,
                                          github_keys={"flucifredi": []})))
    text = change["authorized_keys federico"].steps[1].arguments["src"].getvalue()
    assert text.splitlines()[0] == "ssh-rsa AAAAforeign bob"
    assert change["authorized_keys federico"].action == "update"


LED_FILES = {"/usr/local/lib/picl/leds/service.py": "print()\n",
             "/etc/systemd/system/picl-leds.service": "[Service]\n"}


def test_led_service_installed_where_a_strip_is(cluster: Cluster) -> None:
    (change,) = leds.changes(view(cluster, "node0", fresh_node("node0"), led_service=LED_FILES))
    assert change.action == "create"
    assert [s.arguments.get("dest") for s in change.steps[:-1]] == sorted(LED_FILES)
    assert commands(change) == ["systemctl daemon-reload", "systemctl enable picl-leds.service",
                                "systemctl restart picl-leds.service"]


def test_led_service_running_and_current_is_no_change(cluster: Cluster) -> None:
    observed = fresh_node("node0")
    observed.files.update({path: text.encode() for path, text in LED_FILES.items()})
    observed.units["picl-leds.service"] = ("enabled", "active")
    assert leds.changes(view(cluster, "node0", observed, led_service=LED_FILES)) == []
    observed.units["picl-leds.service"] = ("enabled", "failed")
    (change,) = leds.changes(view(cluster, "node0", observed, led_service=LED_FILES))
    assert change.action == "update" and change.diff == ""


def test_led_service_removed_where_the_strip_went(cluster: Cluster) -> None:
    observed = fresh_node()  # node1: leds = "none" in the spec
    observed.units["picl-leds.service"] = ("enabled", "active")
    (change,) = leds.changes(view(cluster, "node1", observed, led_service=LED_FILES))
    assert change.action == "remove"
    assert commands(change)[0] == "systemctl disable --now picl-leds.service"


# What a stock node lacks, per node of the reference cluster: (node, package, for what).
STOCK_NEEDS = [
    ("node0", "sudo", "users"), ("node0", "openssh-server", "ssh"),
    ("node0", "openssh-client", "ssh"), ("node0", "chrony", "time"),
    ("node0", "nfs-kernel-server", "shares"),
    ("node1", "chrony", "time"), ("node1", "nfs-common", "mounts"),
    ("node2", "nfs-common", "mounts"),
    ("node0", "openmpi-bin", "mpi"), ("node0", "libopenmpi-dev", "mpi"), ("node0", "gcc", "mpi"),
    ("node1", "openmpi-bin", "mpi"), ("node2", "openmpi-bin", "mpi"),
]


@pytest.mark.parametrize(("node", "package", "concern"), STOCK_NEEDS)
def test_a_stock_node_gets_what_each_concern_needs(cluster: Cluster, node: str, package: str,
                                                    concern: str) -> None:
    plan = plan_node(cluster, cluster.node(node), fresh_node(node), ClusterFacts())
    assert f"package {package} (for {concern})" in [c.resource for c in plan.changes]


@pytest.mark.parametrize(("node", "package"), [("node0", "nfs-common"),
                                               ("node1", "nfs-kernel-server"),
                                               ("node2", "nfs-kernel-server")])
def test_a_node_gets_only_its_own_side_of_nfs(cluster: Cluster, node: str, package: str) -> None:
    plan = plan_node(cluster, cluster.node(node), fresh_node(node), ClusterFacts())
    assert not [c for c in plan.changes if c.resource.startswith(f"package {package} ")]


def test_needed_packages_come_first_in_one_apt_run_with_the_specs(cluster: Cluster) -> None:
    plan = plan_node(cluster, cluster.node("node0"), fresh_node("node0"), ClusterFacts())
    installs = [c for c in plan.changes if c.resource.startswith("package ")]
    assert plan.changes[:len(installs)] == installs  # before anything that needs them
    assert all(c.steps[0] is installs[0].steps[0] for c in installs)
    assert installs[0].steps[0].arguments["packages"] == [
        "sudo", "openssh-server", "openssh-client", "chrony", "nfs-kernel-server",
        "openmpi-bin", "libopenmpi-dev", "gcc", "htop"]  # openmpi-bin once, first for mpi


def test_installed_needs_are_no_change(cluster: Cluster) -> None:
    observed = fresh_node("node0")
    observed.packages.update(dict.fromkeys(needed(cluster, cluster.node("node0")), True))
    plan = plan_node(cluster, cluster.node("node0"), observed, ClusterFacts())
    assert [c.resource for c in plan.changes if "(for " in c.resource] == []


def test_a_package_both_needed_and_listed_is_installed_once(tmp_path: Path) -> None:
    spec = small_cluster(tmp_path, ssid=None, psk=None)
    spec = spec.model_copy(update={"packages": spec.packages.model_copy(
        update={"all": ["chrony", "htop"]})})
    found = packages.changes(view(spec, "node1", fresh_node()), needed(spec, spec.node("node1")))
    assert [c.resource for c in found].count("package chrony (for time)") == 1
    assert "package chrony" not in [c.resource for c in found]


@pytest.mark.parametrize(("fstype", "expected"), [
    ("nfs4", ("nfs-common",)),  # node2 already needs it for the share
    ("cifs", ("nfs-common", "cifs-utils")),
    ("fuse.sshfs", ("nfs-common", "sshfs")),
    ("ext4", ("nfs-common",)),
])
def test_a_mount_needs_its_filesystems_helper(tmp_path: Path, fstype: str,
                                              expected: tuple[str, ...]) -> None:
    spec = small_cluster(tmp_path, ssid=None, psk=None, extra=(
        f'[[mounts]]\nnodes = ["node2"]\nwhat = "host:/x"\nwhere = "/data"\ntype = "{fstype}"\n'))
    assert mounts.needs(spec, spec.node("node2")) == expected


def test_a_cluster_without_shares_installs_no_nfs(tmp_path: Path) -> None:
    spec = small_cluster(tmp_path, ssid=None, psk=None)
    spec = spec.model_copy(update={"shares": [], "mounts": []})
    for node in spec.nodes:
        assert not {"nfs-common", "nfs-kernel-server"} & set(needed(spec, node))


@pytest.mark.parametrize("packages_", [["chrony"], ["chrony", "nfs-kernel-server"]])
def test_a_failed_install_names_the_packages_last(tmp_path: Path, packages_: list[str]) -> None:
    """The shell, run with an apt-get that has no source: its last word names the packages."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "apt-get").write_text("#!/bin/sh\necho 'E: Unable to locate package' >&2\nexit 100\n")
    (bin_ / "apt-get").chmod(0o755)
    done = subprocess.run(["sh", "-c", apt_install(packages_)], capture_output=True, text=True,
                          env={"PATH": f"{bin_}:/usr/bin:/bin"})
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"cannot install {' '.join(packages_)}: no package source has them (offline?)")


def test_a_cluster_key_not_generated_yet_is_planned_without_a_step(cluster: Cluster) -> None:
    found = by_resource(ssh_access.changes(view(cluster, "node1", fresh_node(),
                                         github_keys={"flucifredi": []})))
    change = found["cluster_key federico"]
    assert (change.action, change.steps) == ("create", ())
    assert [a.shown() for a in change.attributes] == [("(none)", "generated at apply")]
    assert keys.missing(cluster) == ["federico"]
    assert keys.cluster_keys(cluster) == {}


def test_planning_loads_no_pyinfra() -> None:
    """The agent plans every cycle and applies seldom: its process never holds pyinfra,
    paramiko and gevent (about 30 MiB); the apply's worker loads them."""
    code = ("import sys\nimport picl.reconciler.agent, picl.deploy.converge, picl.deploy.plan\n"
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
            "('pyinfra', 'paramiko', 'gevent')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""
