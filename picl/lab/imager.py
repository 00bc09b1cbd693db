"""What Raspberry Pi Imager writes on a card before its first boot, done on a lab node's disk.

The imager's settings: the hostname, the first user (uid 1000, in sudo, passwordless sudo as
Raspberry Pi OS gives it; no default `pi` since 2022) and SSH (enabled in the image already).
The lab makes each card once, when the node's disk is new; after that the disk is the node's.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Protocol

from picl.errors import PiclError
from picl.lab import host, image, pios

SUDOERS = "etc/sudoers.d/010_pi-nopasswd"  # Raspberry Pi OS's name for it
FIRST_UID = 1000
FALLBACK_USER = "user"


class SpecUser(Protocol):
    name: str
    uid: int
    rename_from: str | None


def first_user(users: list[SpecUser]) -> str:
    """The account the lab's cards come with: what the spec's users expect of a fresh image.

    The stock user a spec renames (`rename_from`), else the spec's uid-1000 user (the name its
    owner typed into the imager), else a plain `user`.
    """
    for user in users:
        if user.rename_from:
            return user.rename_from
    for user in users:
        if user.uid == FIRST_UID:
            return user.name
    return FALLBACK_USER


def customise(root: Path, hostname: str, user: str) -> None:
    """Set the card's hostname and make its first user, as the imager does."""
    if not re.fullmatch(r"[a-z_][a-z0-9_-]*", user):
        raise PiclError(f"first user {user!r}: not a name adduser accepts")
    (root / "etc/hostname").write_text(f"{hostname}\n")
    hosts = root / "etc/hosts"
    hosts.write_text(
        re.sub(
            rf"^(127\.0\.1\.1\s+){re.escape(image.HOSTNAME)}$",
            rf"\g<1>{hostname}",
            hosts.read_text(),
            flags=re.M,
        )
    )
    groups = _existing_groups(root, pios.FIRST_USER_GROUPS)
    script = (
        f"adduser --quiet --disabled-password --gecos '' --uid {FIRST_UID} {shlex.quote(user)}"
        f" && usermod -a -G {','.join(groups)} {shlex.quote(user)}"
    )
    host.run(["chroot", str(root), "/bin/sh", "-c", script])
    sudoers = root / SUDOERS
    sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)


def _existing_groups(root: Path, wanted: tuple[str, ...]) -> list[str]:
    names = {line.split(":", 1)[0] for line in (root / "etc/group").read_text().splitlines()}
    return [g for g in wanted if g in names]
