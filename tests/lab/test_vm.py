"""What makes a node a VM, and how it is booted: data, no root needed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from picl.errors import PiclError
from picl.lab import Cards, blueprint, image, pios, ssh, vm, vmimage
from picl.lab.blueprint import Blueprint, NodeBlueprint

NODES = ["node0", "node1", "node2"]


def built(*vms: str) -> Blueprint:
    nodes = tuple(
        NodeBlueprint("a", name, f"10.0.0.{i}", i, "bookworm", "amd64", "img", name in vms)
        for i, name in enumerate(NODES)
    )
    return Blueprint("a", "a", "10.0.0.0/24", "eth0", "10.0.0.254", "pi", nodes)


@pytest.mark.parametrize(
    ("vm_options", "was", "expected"),
    [
        ((), None, set()),
        (("",), None, set(NODES)),  # `--vm` alone: every node
        (("node1",), None, {"node1"}),
        (("node1", "node2"), None, {"node1", "node2"}),
        (("node1", ""), None, set(NODES)),
        # What is not asked for stays as it was made.
        ((), built("node2"), {"node2"}),
        (("node0",), built("node2"), {"node0", "node2"}),
    ],
)  # fmt: skip
def test_which_nodes_are_vms(
    vm_options: tuple[str, ...], was: Blueprint | None, expected: set[str]
) -> None:
    assert Cards.parse((), (), vm_options).machines(NODES, was) == expected


def test_a_vm_for_a_node_the_spec_has_not() -> None:
    with pytest.raises(PiclError, match=r"--vm: no node node7 in the spec \(its nodes: node0"):
        Cards.parse((), (), ("node7",)).machines(NODES, None)


def test_a_lab_saved_before_vms_has_container_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blueprint, "STATE", tmp_path)
    lab = built("node1")
    (tmp_path / "a").mkdir()
    data = json.loads(json.dumps({**lab.__dict__, "nodes": [n.__dict__ for n in lab.nodes]}))
    for n in data["nodes"]:
        n.pop("vm")
    (tmp_path / "a/lab.json").write_text(json.dumps(data))
    loaded = Blueprint.load("a")
    assert loaded is not None and not any(n.vm for n in loaded.nodes)
    lab.save()
    again = Blueprint.load("a")
    assert again is not None and [n.vm for n in again.nodes] == [False, True, False]


def test_a_vm_changed_to_a_container_is_a_new_card() -> None:
    assert built("node1").node("node1").flash != built().node("node1").flash


def test_mac_is_locally_administered_and_stable() -> None:
    node = built("node1").node("node1")
    other = built("node1").node("node2")
    assert vm.mac(node) == vm.mac(built("node1").node("node1"))
    assert vm.mac(node) != vm.mac(other)
    assert vm.mac(node).startswith("52:54:00:") and len(vm.mac(node).split(":")) == 6


@pytest.mark.parametrize(
    ("how", "wanted", "unwanted"),
    [
        ("tcg", ["-accel", "tcg,tb-size=128", "-m", "512", "-smp", "1"], ["kvm"]),
        ("kvm", ["-accel", "kvm", "-cpu", "host"], ["tcg,tb-size=128"]),
    ],
)
def test_qemu_boots_debians_kernel_in_the_nodes_namespace(
    how: str, wanted: list[str], unwanted: list[str]
) -> None:
    lab = built("node1")
    node = lab.node("node1")
    argv = vm.qemu_argv(lab, node, how)
    assert argv[:3] == ["nsenter", "--net=/run/netns/picl-a-node1", "--"]
    joined = " ".join(argv)
    assert " ".join(wanted) in joined
    assert not any(u in argv for u in unwanted)
    assert f"-pidfile {node.dir}/qemu.pid" in joined  # how the lab finds it in /proc
    assert f"file={node.dir}/disk.qcow2,if=virtio,format=qcow2" in argv
    assert "tap,id=wired,ifname=tap0,script=no,downscript=no" in argv
    assert "-append" in argv and "console=ttyS0" in argv[argv.index("-append") + 1]
    assert f"file,id=console,path={node.dir}/console.log,append=on" in argv


def test_containers_take_no_more_time_to_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm, "accel", lambda: "tcg")
    assert vm.boot_allowance(list(built().nodes)) == 0
    assert vm.boot_allowance(list(built("node1").nodes)) > 0


def test_a_vm_is_given_time_to_answer_ssh() -> None:
    """An emulated VM on a busy machine took 112 s to answer one SSH connection: attempts of a
    few seconds each never reach it (and pile up unanswered in its sshd)."""
    lab = built("node1")
    assert ssh.patience(lab.node("node1")) >= 120
    assert ssh.patience(lab.node("node0")) == 3


def vm_node_on_old_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Images old-used, old-free (of an older recipe) and new; lab a's node1 on old-used's VM disk."""
    images, state = tmp_path / "images", tmp_path / "lab"
    monkeypatch.setattr(image, "CACHE", tmp_path)
    monkeypatch.setattr(image, "IMAGES", images)
    monkeypatch.setattr(image, "STATE", state)
    for built, recipe in (("old-used", 1), ("old-free", 1), ("new", image.RECIPE)):
        (images / built / "rootfs").mkdir(parents=True)
        (images / built / "image.json").write_text(json.dumps({"recipe": recipe}))
        (images / built / "vm").mkdir()
        (images / built / "vm" / vmimage.DISK).write_bytes(b"\0" * 4096)
    node = state / "a" / "nodes" / "node1"
    node.mkdir(parents=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                    "-b", str(images / "old-used" / "vm" / vmimage.DISK),
                    str(node / vm.DISK)], check=True)  # fmt: skip
    assert image.backing_file(node / vm.DISK) == images / "old-used" / "vm" / vmimage.DISK
    return images


def test_an_outdated_image_a_vm_node_stands_on_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VM node's disk is an overlay of its image's VM disk, opened by qemu and mounted
    nowhere: removing the image would leave the lab's node without its card."""
    images = vm_node_on_old_images(tmp_path, monkeypatch)
    image._remove_outdated()
    assert sorted(p.name for p in images.iterdir()) == ["new", "old-used"]


def test_a_vm_disk_of_an_older_recipe_is_not_rebuilt_under_its_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = vm_node_on_old_images(tmp_path, monkeypatch)
    monkeypatch.setattr(vmimage, "RECIPE", 2)  # each image's VM disk is of recipe 1 (none)
    with pytest.raises(PiclError, match="VM nodes of lab a stand on it: `picl lab down`"):
        vmimage.ensure("old-used", pios.native_arch(), print)
    assert (images / "old-used" / "vm" / vmimage.DISK).read_bytes() == b"\0" * 4096


def test_a_disk_of_no_overlay_stands_on_nothing(tmp_path: Path) -> None:
    raw = tmp_path / "disk.qcow2"
    raw.write_bytes(b"\0" * 64)
    assert image.backing_file(raw) is None
    assert image.backing_file(tmp_path / "absent.qcow2") is None


def test_picl_in_a_lab_of_vms_waits_as_long_as_they_take(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new SSH connection to an emulated VM may take minutes to be answered: picl's
    connections, and the window to confirm a risky change in, allow for it by default."""
    for name in ssh.VM_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    env = ssh.environment(built("node1"))
    assert int(env["PICL_CONNECT_TIMEOUT"]) >= ssh.VM_PATIENCE
    assert int(env["PICL_CONFIRM_TIMEOUT"]) > ssh.VM_PATIENCE
    containers = ssh.environment(built())
    assert not set(ssh.VM_DEFAULTS) & set(containers)
    monkeypatch.setenv("PICL_CONFIRM_TIMEOUT", "20")  # what the person asked for wins
    assert ssh.environment(built("node1"))["PICL_CONFIRM_TIMEOUT"] == "20"


def test_a_vm_gives_its_network_and_sshd_all_the_time_they_take_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blueprint, "STATE", tmp_path)
    node = built("node1").node("node1")
    vm.allow_slow_start(node)
    for unit in ("NetworkManager.service", "ssh.service", "dhcpcd.service"):
        text = (node.root / f"etc/systemd/system/{unit}.d/picl-lab.conf").read_text()
        assert "[Service]\nTimeoutStartSec=infinity\n" in text


def test_a_vm_disk_is_built_as_soon_as_its_image_beside_the_other_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the images VM nodes boot get a VM disk, each right after its own image (in the
    same worker: a cold suite builds bookworm's VM disk while trixie's image still builds)."""
    import threading

    done: list[tuple[str, str, int]] = []
    monkeypatch.setattr(image, "ensure", lambda release, arch, mirror, warn: (
        done.append(("image", release, threading.get_ident())) or f"img-{release}-{arch}"))
    monkeypatch.setattr(vmimage, "ensure", lambda name, arch, warn: (
        done.append(("vm", name, threading.get_ident())) or Path(name)))
    images = vmimage.ensure_with_images(
        [("bookworm", "amd64"), ("trixie", "amd64")], {("bookworm", "amd64")}, None, print
    )  # type: ignore[arg-type]
    assert images == {("bookworm", "amd64"): "img-bookworm-amd64",
                      ("trixie", "amd64"): "img-trixie-amd64"}
    assert sorted(what for what, _, _ in done) == ["image", "image", "vm"]
    first, vm_disk = (next(d for d in done if d[:2] == key)
                      for key in (("image", "bookworm"), ("vm", "img-bookworm-amd64")))
    assert done.index(first) < done.index(vm_disk) and first[2] == vm_disk[2]
