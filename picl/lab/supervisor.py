"""A lab node's power supply: `python -m picl.lab.supervisor NODE_DIR`.

Detaches from the caller, then runs the node's systemd-nspawn (as NODE_DIR/boot.json says)
and runs it again whenever the container's init asked for a reboot, which nspawn reports as exit
status 133. SIGTERM shuts the node down cleanly (nspawn passes it on to the container's init as
a halt) and ends the supervisor. SIGKILL to the supervisor, then to nspawn and the container,
is a power cut: that is `picl lab kill`.

A VM node (boot.json has `qmp`) runs qemu instead, which reboots the machine itself and exits
when it powers off; SIGTERM presses its power button (ACPI), and systemd shuts it down.

Only the standard library: it runs for as long as the node does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CGROUP_TOP = "picl-lab"
REBOOT = 133  # systemd-nspawn: "the container asked for a reboot" (systemd-nspawn@.service)
# A container that reboots this often in a row is failing to boot, not rebooting.
FAST_REBOOTS = 5
FAST = 10.0


def say(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()}] {message}", flush=True)


def cgroup_roots() -> list[Path]:
    """The cgroup hierarchies systemd keeps its tree in: cgroup2, and v1 `name=systemd`."""
    roots = []
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _, target, fstype, options = line.split()[:4]
            if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options.split(",")):
                roots.append(Path(target))
    return roots


def enter_cgroup(relative: str) -> None:
    """Move this process (and so nspawn and the container) into a cgroup of the node's own.

    nspawn --keep-unit makes the cgroup it runs in the container's root. Shared by two nodes,
    their systemds would create and remove each other's unit cgroups (a unit then fails with
    status 219/CGROUP, a shutdown hangs).
    """
    for root in cgroup_roots():
        own = root / relative
        own.mkdir(parents=True, exist_ok=True)
        (own / "cgroup.procs").write_text(f"{os.getpid()}\n")


def unplug(namespace: str, interface: str) -> None:
    """An unpowered board is silent on the wire: no address, no link (NetworkManager sets both
    again at the next boot). Without this the namespace would go on answering ARP and ping."""
    for command in (["addr", "flush", "dev", interface], ["link", "set", "dev", interface, "down"]):
        subprocess.run(["ip", "-n", namespace, *command], stdin=subprocess.DEVNULL, check=False)


def press_power_button(qmp: str) -> None:
    """ACPI power button, through qemu's control socket: the guest's systemd shuts it down."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
            control.settimeout(5)
            control.connect(qmp)
            reader = control.makefile("rb")
            reader.readline()  # qemu's greeting
            for command in ("qmp_capabilities", "system_powerdown"):
                control.sendall(json.dumps({"execute": command}).encode() + b"\n")
                reader.readline()
    except OSError as exc:
        say(f"could not press the power button ({exc}): cutting the power")
        raise


def supervise(node_dir: Path) -> int:
    boot = json.loads((node_dir / "boot.json").read_text())
    argv, env = boot["argv"], {**os.environ, **boot["env"]}
    enter_cgroup(boot["cgroup"])
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            if boot.get("qmp"):
                try:
                    press_power_button(boot["qmp"])
                    return
                except OSError:
                    pass
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    fast = 0
    while not stopping:
        started = time.monotonic()
        with open(node_dir / "console.log", "ab") as console:
            child = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=console, stderr=console
            )
        what = "qemu" if boot.get("qmp") else "nspawn"
        say(f"booting: {what} {child.pid}")
        status = child.wait()
        say(f"{what} exited with status {status}")
        unplug(boot["namespace"], boot["interface"])
        if status != REBOOT:
            return 0 if status == 0 else 1
        fast = fast + 1 if time.monotonic() - started < FAST else 0
        if fast >= FAST_REBOOTS:
            say(f"rebooted {fast} times in a row within {FAST:.0f}s each: leaving it off")
            return 1
    return 0


def main() -> None:
    node_dir = Path(sys.argv[1])
    # Detach: the caller waits for this first process only; the supervisor lives on its own.
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    sys.exit(supervise(node_dir))


if __name__ == "__main__":
    main()
