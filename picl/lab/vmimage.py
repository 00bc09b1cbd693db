"""The VM variant of a node image: the same card, with Debian's kernel, as one disk.

A VM node boots a real kernel, so its image has one: linux-image-amd64 and initramfs-tools are
installed over the image's root (an overlay: the image itself never changes), the result is
made into an ext4 disk once (`mkfs.ext4 -d`), and the kernel and initrd are taken from it for
qemu's `-kernel`/`-initrd`. It lives in the image's own folder (IMAGES/IMAGE/vm), built under
the image cache's lock and renamed into place only when complete, like the image.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Collection, Iterable
from pathlib import Path

from picl.errors import PiclError
from picl.lab import host, image, pios
from picl.lab.mirror import Mirror

log = logging.getLogger(__name__)

# Bump when build() changes, so VM disks built the old way are made again.
RECIPE = 1
PACKAGES = ("linux-image-amd64", "initramfs-tools")
DISK_SIZE = "4G"  # sparse: what the node sees; the file holds only what is written
DISK = "disk.img"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
# The card's partitions, as a VM has them: its one disk is the root (no firmware partition).
FSTAB = (
    "proc            /proc           proc    defaults          0       0\n"
    "/dev/vda        /               ext4    defaults,noatime  0       1\n"
)
# A swap file made on first boot costs minutes of emulated writes: a VM node does without.
NO_SWAPFILE = "[Unit]\nConditionVirtualization=no\n"


def directory(image_name: str) -> Path:
    return image.IMAGES / image_name / "vm"


def is_built(image_name: str) -> bool:
    try:
        return json.loads((directory(image_name) / "vm.json").read_text())["recipe"] == RECIPE
    except (OSError, ValueError, KeyError):
        return False


def ensure(image_name: str, arch: str, warn: host.Warn) -> Path:
    """The folder of the image's VM variant (disk, kernel, initrd), building it if needed."""
    if arch != pios.native_arch():
        raise PiclError(
            f"VM nodes run this machine's architecture ({pios.native_arch()}), not {arch}"
        )
    if is_built(image_name):
        return directory(image_name)
    host.preflight(("mkfs.ext4", "unshare", "chroot", "mount"))
    with open(image.CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built(image_name):
            return directory(image_name)
        if labs := image.vm_labs_on(directory(image_name)):  # their disks are overlays of it
            raise PiclError(
                f"the VM disk of image {image_name} is of an older recipe and the VM nodes of "
                f"lab {', '.join(labs)} stand on it: `picl lab down` it, then `lab up` again"
            )
        warn(f"building the VM disk of image {image_name}: Debian's kernel added (once; minutes)")
        scratch = image.IMAGES / image_name / f".vm-{os.getpid()}"
        try:
            build(image_name, scratch)
            shutil.rmtree(directory(image_name), ignore_errors=True)
            scratch.rename(directory(image_name))
        finally:
            _unmount_under(scratch)
            if scratch.exists():
                shutil.rmtree(scratch)
    return directory(image_name)


def ensure_with_images(
    wanted: Iterable[tuple[str, str]], vms: Collection[tuple[str, str]], mirror: Mirror,
    warn: host.Warn,
) -> dict[tuple[str, str], str]:
    """The images of `wanted` (release, arch), and the VM variant of those in `vms`, each built
    as soon as its image is, beside the other images' builds."""
    def variant(release_arch: tuple[str, str], built: str) -> None:
        if release_arch in vms:
            ensure(built, release_arch[1], warn)

    return image.ensure_all([*wanted, *vms], mirror, warn, then=variant)


def build(image_name: str, dest: Path) -> None:
    """The VM variant of `image_name` into `dest`: the kernel over the image, then one disk."""
    started = time.monotonic()
    for part in ("upper", "work", "root"):
        (dest / part).mkdir(parents=True)
    root = dest / "root"
    lower = image.rootfs(image_name)
    host.run([
        "mount", "-t", "overlay", "overlay", "-o",
        f"lowerdir={lower},upperdir={dest / 'upper'},workdir={dest / 'work'}", str(root),
    ])  # fmt: skip
    try:
        apt = "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Options::=--force-unsafe-io"
        resolv = root / "etc/resolv.conf"
        was = resolv.read_text()
        resolv.write_text(Path("/etc/resolv.conf").read_text())  # apt reaches the mirror as built
        script = f"apt-get -q update && {apt} install {' '.join(PACKAGES)} && apt-get clean"
        image.in_chroot(root, script, dest / "build.log", "installing Debian's kernel")
        resolv.write_text(was)
        (root / "etc/fstab").write_text(FSTAB)
        image.drop_in(root, "dphys-swapfile.service", NO_SWAPFILE)
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        initrds = sorted((root / "boot").glob("initrd.img-*"))
        if not kernels or not initrds:
            raise PiclError(f"building the VM disk of {image_name}: no kernel in /boot")
        shutil.copyfile(kernels[-1], dest / KERNEL)
        shutil.copyfile(initrds[-1], dest / INITRD)
        image.logged(
            dest / "build.log",
            ["mkfs.ext4", "-q", "-L", "rootfs", "-d", str(root), str(dest / DISK), DISK_SIZE],
            "mkfs.ext4",
        )
    finally:
        host.run(["umount", str(root)], check=False)
    for part in ("upper", "work", "root"):
        shutil.rmtree(dest / part)
    (dest / "vm.json").write_text(json.dumps({
        "recipe": RECIPE,
        "kernel": kernels[-1].name,
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - started, 1),
    }, indent=2) + "\n")  # fmt: skip


def _unmount_under(path: Path) -> None:
    for _, target, _ in reversed(host.mounts()):
        if target == str(path) or target.startswith(f"{path}/"):
            host.run(["umount", "--lazy", target], check=False)
