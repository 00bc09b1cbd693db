"""The machine the lab runs on: what it must have, the limits it must raise, what it runs."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from picl.errors import PiclError

log = logging.getLogger(__name__)

Warn = Callable[[str], None]

TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "chroot": "coreutils",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mkfs.ext4": "e2fsprogs",
    "mount": "mount",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "qemu-storage-daemon": "qemu-system-common",
}
NSPAWN_RUN = Path("/run/systemd/nspawn")
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
# A booted node holds 10-13 inotify instances (systemd, NetworkManager, logind, dbus, a user
# manager per login), all counted against root with the host's own.
INOTIFY_PER_NODE = 16
INOTIFY_BASE = 32


LAB_TOOLS = ("systemd-nspawn", "debootstrap", "ip", "nsenter", "ssh", "ssh-keygen")


def preflight(tools: Sequence[str] = LAB_TOOLS) -> None:
    """Raise a PiclError unless this is Linux, we are root and the lab's tools are installed."""
    if platform.system() != "Linux":
        raise PiclError(f"the lab needs Linux (systemd-nspawn); this is {platform.system()}")
    if os.geteuid() != 0:
        raise PiclError("the lab needs root (namespaces, mounts, containers): run it with sudo")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = sorted({TOOLS[t] for t in missing})
        raise PiclError(f"the lab needs {', '.join(missing)}: apt-get install {' '.join(packages)}")


def run(
    argv: Sequence[str], *, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, its output captured; a failure is a PiclError naming it and its stderr."""
    log.debug("run: %s", " ".join(argv))
    proc = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        stdin=None if input else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise PiclError(
            f"`{' '.join(argv)}` failed (exit {proc.returncode})"
            + (f": {detail[-1]}" if detail else "")
        )
    return proc


def keygen(path: Path, comment: str) -> None:
    """A new ed25519 key pair without passphrase at `path` (and `path`.pub)."""
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def mounts() -> list[tuple[str, str, str]]:
    """(source, mount point, type) of every mount in our mount namespace, in mount order."""
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            source, target, fstype = line.split()[:3]
            found.append((unescape(source), unescape(target), fstype))
    return found


def unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def is_mounted(path: Path) -> bool:
    return any(target == str(path) for _, target, _ in mounts())


def ensure_nspawn_runtime() -> None:
    """nspawn refuses to clean up its /run/systemd/nspawn unless it is a tmpfs: give it one."""
    fstype = {target: fstype for _, target, fstype in mounts()}
    run_fs = _fstype_of(Path("/run"), fstype)
    if run_fs == "tmpfs" or _fstype_of(NSPAWN_RUN, fstype) == "tmpfs":
        return
    NSPAWN_RUN.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "picl-lab", str(NSPAWN_RUN)])
    log.info("/run is not a tmpfs: mounted one on %s for systemd-nspawn", NSPAWN_RUN)


def release_nspawn_runtime() -> None:
    """Unmount the tmpfs ensure_nspawn_runtime mounted, once no container uses it."""
    for source, target, fstype in mounts():
        if target == str(NSPAWN_RUN) and fstype == "tmpfs" and source == "picl-lab":
            propagate = NSPAWN_RUN / "propagate"
            if propagate.is_dir() and any(propagate.iterdir()):
                return
            run(["umount", str(NSPAWN_RUN)], check=False)


def _fstype_of(path: Path, fstypes: dict[str, str]) -> str | None:
    """The type of the file system `path` is on, from the longest mount point above it."""
    best = None
    for target, fstype in fstypes.items():
        prefix = target.rstrip("/") + "/"
        if (str(path) == target or str(path).startswith(prefix)) and (
            best is None or len(target) > len(best[0])
        ):
            best = (target, fstype)
    return best[1] if best else None


def ensure_inotify(nodes: int, warn: Warn) -> None:
    """Raise fs.inotify.max_user_instances so `nodes` systemd containers can all boot."""
    needed = INOTIFY_BASE + INOTIFY_PER_NODE * nodes
    current = int(INOTIFY_INSTANCES.read_text())
    if current >= needed:
        return
    target = max(needed, 1024)
    INOTIFY_INSTANCES.write_text(f"{target}\n")
    warn(
        f"raised fs.inotify.max_user_instances from {current} to {target}: systemd in "
        f"{nodes} containers needs more than {current} (it is back to the default at reboot)"
    )


# Architectures other than this machine's run under qemu-user, through binfmt_misc.
QEMU = {"arm64": "aarch64"}
EMULATION_PACKAGES = ("qemu-user-static", "binfmt-support")
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def ensure_emulation(arch: str, warn: Warn = log.warning) -> None:
    """Make this machine run `arch` programs (qemu-user, binfmt_misc), installing qemu if needed.

    The handler must be registered with the F flag (the kernel holds the interpreter open), so
    programs inside a node's root run without qemu in it.
    """
    cpu = QEMU.get(arch)
    if cpu is None:
        raise PiclError(f"architecture {arch!r}: this machine cannot emulate it (only arm64)")
    if shutil.which(f"qemu-{cpu}-static") is None or shutil.which("update-binfmts") is None:
        warn(
            f"installing {' '.join(EMULATION_PACKAGES)} for {arch} nodes "
            "(Debian's, about 400 MB; once)"
        )
        install = ["apt-get", "install", "-y", "-q", *EMULATION_PACKAGES]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(install, capture_output=True, env=env).returncode != 0:
            run(["apt-get", "update", "-q"])
            proc = subprocess.run(install, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise PiclError(
                    f"{arch} nodes need {' and '.join(EMULATION_PACKAGES)}: "
                    f"`{' '.join(install)}` failed: {proc.stderr.strip().splitlines()[-1:]}"
                )
    if not (BINFMT / "status").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
    handler = BINFMT / f"qemu-{cpu}"
    if not handler.exists() or "enabled" not in handler.read_text().splitlines()[:1]:
        run(["update-binfmts", "--enable", f"qemu-{cpu}"])
    flags = [line for line in handler.read_text().splitlines() if line.startswith("flags:")]
    if not flags or "F" not in flags[0].split(":", 1)[1]:
        raise PiclError(
            f"{handler}: registered without the F flag, so nodes would need qemu inside them: "
            f"`update-binfmts --disable qemu-{cpu}` and register it with --fix-binary yes"
        )
