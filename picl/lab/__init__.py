"""The lab: a local cluster of real systemd nodes built from cluster.toml (DESIGN, "The lab").

One systemd-nspawn container per spec node, booted from a cached Raspberry Pi OS Lite image (a
release, an architecture) through an overlay of its own, in a network namespace of its own,
cabled to a bridge that lives in the lab's network namespace. The public API is here; each
concern is a module:

    blueprint   what a lab is made of and where it lives on the host
    pios        what Raspberry Pi OS Lite is, per release (pi-gen's package lists)
    image       the cached node images, one per release, architecture and package list
    imager      what Raspberry Pi Imager writes on a card: hostname, the first user
    mirror      this machine's Debian mirror, and the lab's apt proxy to it (aptproxy)
    network     namespaces, the bridge, the cables
    node        a node's disk, identity and power
    vm          a node booted as a qemu virtual machine with Debian's kernel (--vm)
    vmimage     an image's VM variant: one disk, Debian's kernel and initrd
    supervisor  the process that boots a node and boots it again after a reboot
    ssh         the lab's key, known_hosts and ssh config
    host        what the host must have and the limits it must raise

    cards       what `lab up` is asked to flash: release and architecture per node
    lifecycle   up, down, a node's power cut and start, under the lab's lock
    state       what a lab is now (`lab status`)
    access      which lab a command means, and its way into the lab's network

Deep code raises PiclError for what the user can act on and logs the rest; only the CLI prints.
"""

from __future__ import annotations

from picl.lab.access import IN_LAB_ENV, NAME_ENV, enter, exec_argv, lab_name, lab_of, ssh_argv
from picl.lab.blueprint import Blueprint, check_name
from picl.lab.cards import Cards
from picl.lab.lifecycle import answer_limit, down, down_all, kill, labs_on_host, start, up
from picl.lab.state import LabStatus, NodeStatus, console_log, find, status

__all__ = [
    "IN_LAB_ENV",
    "answer_limit",
    "NAME_ENV",
    "Blueprint",
    "Cards",
    "LabStatus",
    "check_name",
    "console_log",
    "NodeStatus",
    "down",
    "down_all",
    "enter",
    "exec_argv",
    "find",
    "kill",
    "lab_name",
    "lab_of",
    "labs_on_host",
    "ssh_argv",
    "start",
    "status",
    "up",
]
