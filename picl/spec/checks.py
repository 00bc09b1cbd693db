"""Checks of single values in the spec: each returns the value (normalised) or raises ValueError.

Pure functions so they can be tested as data and reused by the models' validators.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import unicodedata
import zoneinfo
from functools import cache
from posixpath import normpath

HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Debian's adduser default NAME_REGEX, plus the length useradd enforces.
USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
GITHUB_USER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
# Not starting with '-' (ip, nmcli and dhcpcd would read an option) nor '.' ("." and "..").
INTERFACE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# fstab/exports option lists: anything else (spaces, '#', quotes, newlines) corrupts the file.
OPTIONS = re.compile(r"^[A-Za-z0-9_.=:/@+-]+(,[A-Za-z0-9_.=:/@+-]+)*$")
DURATION = re.compile(r"^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")
GIT_BRANCH = re.compile(r"^(?![/-])(?!.*//)(?!.*\.\.)(?!.*/\.)(?!\.)[A-Za-z0-9._/-]+(?<![/.])$")
# The tz database's names: 'UTC', 'Europe/Rome', 'Etc/GMT+5', 'America/Port-au-Prince'.
TIMEZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z][A-Za-z0-9_+-]*)*$")
FILE_MODE = re.compile(r"^0?[0-7]{3,4}$")
# Git URLs the agent may fetch from: ssh (as a URL or scp-like) and https, nothing that makes
# git run a helper or a command, read a local path, or fetch unauthenticated.
_GIT_USER = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_GIT_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"  # a name or IPv4 address, no '-' first
_GIT_PATH_CHAR = r"[A-Za-z0-9._~/+%@=,-]"
UPSTREAM_URL = re.compile(
    rf"^(?:ssh|https)://(?:{_GIT_USER}@)?{_GIT_HOST}(?::([1-9][0-9]{{0,4}}))?/{_GIT_PATH_CHAR}*$"
)
UPSTREAM_SCP = re.compile(rf"^(?:{_GIT_USER}@)?{_GIT_HOST}:(?![:-]){_GIT_PATH_CHAR}+$")
# TRANSPORT::ADDRESS: git runs git-remote-TRANSPORT on it (the agent reads it so as well).
GIT_HELPER = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)::")

# Mount points and exports that would take the system down with them.
SYSTEM_PATHS = frozenset(
    ["/", "/boot", "/boot/firmware", "/etc", "/usr", "/var", "/proc", "/sys", "/dev", "/run"]
)
# Trees of the system itself: never a mount point or an export, nor anything below them (a
# share over /usr/bin or /etc/ssh hands the system to whoever serves it), and every top-level
# /lib* (lib, lib32, lib64, libx32). /home, /srv, /mnt, /media, /opt, /data, /var/www,
# /var/nfs... stay free: an NFS home or data share is a classic cluster layout.
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/proc", "/root", "/run", "/sbin", "/sys", "/tmp",
    "/usr", "/var/backups", "/var/cache", "/var/lib", "/var/lock", "/var/log", "/var/run",
    "/var/spool", "/var/tmp",
)
SYSTEM_DIRECTORIES = frozenset(["/", "/var"])  # themselves only: what is below may be data

SSH_KEY_TYPES = frozenset(
    [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ]
)


def control_character(value: str) -> str | None:
    """The first character of `value` that would break or corrupt a line of a file, if any:
    a control character (NUL, tab, CR, LF, ESC, DEL, NEL...) or a line or paragraph separator."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return char
    return None


def line(value: str) -> str:
    """One line of text: no control characters (line breaks, NUL, tab, escape...)."""
    bad = control_character(value)
    if bad is not None:
        raise ValueError(
            f"{value!r} contains {bad!r}: it is written as one line of a file, which a "
            "control character would break or corrupt"
        )
    return value


def hostname(value: str) -> str:
    """A node name: one RFC 1123 label, lower case (it becomes the hostname and a DNS name)."""
    if not HOSTNAME_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid hostname: use 1-63 lower-case letters, digits and '-', "
            "not starting or ending with '-'"
        )
    if value.isdigit():
        raise ValueError(f"{value!r} is not a valid hostname: it must not be all digits")
    return value


def domain(value: str) -> str:
    """A DNS domain of RFC 1123 labels."""
    labels = value.split(".")
    if len(value) > 253 or not all(HOSTNAME_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{value!r} is not a valid domain: dot-separated lower-case labels")
    return value


def username(value: str) -> str:
    """A user or group name Debian accepts."""
    if not USERNAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid Debian user/group name: start with a lower-case letter "
            "or '_', then lower-case letters, digits, '_' or '-', at most 32 characters"
        )
    return value


def github_user(value: str) -> str:
    """A GitHub username: letters, digits and single hyphens, at most 39 characters."""
    if not GITHUB_USER.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid GitHub username: letters, digits and single hyphens, "
            "at most 39 characters"
        )
    return value


def package(value: str) -> str:
    """A Debian package name: 2 or more of a-z 0-9 + . -, starting with a letter or digit,
    not ending with '-' (apt-get reads `NAME-` as "remove NAME").

    Nothing else apt reads as an instruction fits: an option (`-o...`), a version (`=1.0`), a
    release (`/bookworm`) or an architecture (`:arm64`). A trailing '+' stays: real packages
    end with it (g++, memtest86+), and apt only ever reads it as "install".
    """
    if value.endswith("-") and DEBIAN_PACKAGE.fullmatch(value):
        raise ValueError(
            f"{value!r} ends with '-': apt-get reads that as 'remove {value.rstrip('-')}', "
            "and no Debian package name ends with '-'"
        )
    if not DEBIAN_PACKAGE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Debian package name: at least 2 of lower-case letters, "
            "digits, '+', '-' and '.', starting with a letter or digit (no version '=', "
            "release '/', architecture ':' or option)"
        )
    return value


def interface(value: str) -> str:
    """A network interface name: 1-15 of letters, digits and _ . -, not starting with '-' or
    '.'."""
    if not INTERFACE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid interface name (1-15 of A-Za-z0-9_.-, "
                         "not starting with '-' or '.')")
    return value


def secret_name(value: str) -> str:
    """A key of secrets.toml: letters, digits, '_' and '-', not starting with a digit or '-'."""
    if not SECRET_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid secret name (letters, digits, '_', '-')")
    return value


def absolute_path(value: str) -> str:
    """An absolute, normalised path that is safe to write into fstab and exports."""
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path")
    bad = [c for c in value if c.isspace() or c == "#" or ord(c) < 32 or ord(c) == 127]
    if bad:
        raise ValueError(f"{value!r} contains {bad[0]!r}: whitespace, '#' and control "
                         "characters would corrupt fstab and exports")
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} must not contain '..'")
    # normpath keeps a leading '//' (POSIX leaves it to the system): Linux reads it as '/'.
    normal = "/" + normpath(value).lstrip("/")
    if normal != value:
        raise ValueError(f"{value!r} is not normalised: write {normal!r}")
    return value


def system_tree(value: str) -> str | None:
    """The system tree a normalised absolute path is or lies in, or None for a data path."""
    if value in SYSTEM_DIRECTORIES:
        return value
    top = "/" + value.split("/")[1]
    if top.startswith("/lib"):
        return top
    return next((t for t in SYSTEM_TREES if value == t or value.startswith(t + "/")), None)


def data_path(value: str) -> str:
    absolute_path(value)
    tree = system_tree(value)
    if tree is not None:
        where = "a system directory" if tree == value else f"inside the system tree {tree}"
        raise ValueError(
            f"{value!r} is {where}: picl never mounts over or exports the system's own "
            "files; use a data path such as /srv/..., /home/..., /mnt/... or /data/..."
        )
    return value


data_path.__doc__ = (  # the reference quotes it: the lists above, said once
    "An absolute path for an export or mount point, outside the system's trees: not "
    f"{', '.join(sorted(SYSTEM_DIRECTORIES))}, nor in "
    f"{', '.join(sorted([*SYSTEM_TREES, '/lib*']))}."
)


def options(value: str) -> str:
    """A comma-separated mount/export option list of safe characters."""
    if not OPTIONS.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid option list: comma-separated, no spaces, only "
            "letters, digits and _ . = : / @ + -"
        )
    return value


def duration_seconds(value: str) -> int:
    """'30s', '5m', '1h', '1h30m' -> seconds."""
    match = DURATION.fullmatch(value)
    if not value or not match:
        raise ValueError(f"{value!r} is not a duration: write e.g. '30s', '5m', '1h' or '1h30m'")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def duration(value: str) -> str:
    """A duration in hours, minutes and seconds, in that order: '30s', '5m', '1h' or '1h30m'."""
    duration_seconds(value)
    return value


def branch(value: str) -> str:
    """A git branch name, such as 'main' or 'deploy/arrakis': letters, digits and . _ - /,
    not starting with '-'."""
    if not GIT_BRANCH.fullmatch(value) or any(p.endswith(".lock") for p in value.split("/")):
        raise ValueError(
            f"{value!r} is not a valid git branch name: letters, digits and . _ - /, not "
            "starting with '-', '.' or '/', no '..', '//', part starting with '.' or ending "
            "with '.lock'"
        )
    return value


def mount_source(value: str) -> str:
    """What an fstab line mounts: a device, LABEL=, UUID=, PARTUUID= or host:/path, with no
    white space or '#', not starting with '-'."""
    bad = next((c for c in value if c.isspace() or c == "#"), None)
    if not value or bad is not None:
        raise ValueError(f"{value!r} is not a mount source: white space and '#' would "
                         "corrupt fstab")
    if value.startswith("-"):
        raise ValueError(f"{value!r} starts with '-': mount's helpers would read it as an "
                         "option")
    return value


def quoted(value: object) -> object:
    """Written as a quoted string, as in "10.1.10.241" or "10.1.10.0/24"."""
    if not isinstance(value, str):
        raise ValueError(
            f"{value!r} is not a string: write addresses and networks quoted, as in "
            '"10.1.10.241" or "10.1.10.0/24"'
        )
    return value


def upstream(value: str) -> str:
    """A git URL over ssh or https: ssh://[USER@]HOST[:PORT]/PATH, [USER@]HOST:PATH or
    https://HOST[:PORT]/PATH."""
    hint = "use ssh://[user@]host[:port]/path, user@host:path or https://host[:port]/path"
    helper, url = GIT_HELPER.match(value), UPSTREAM_URL.fullmatch(value)
    scheme = value.split("://")[0] if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) else None
    if re.match(r"^(?:[A-Za-z0-9+.-]*://)?(?:[^@/]*@)?-", value):
        why = "a user or host starting with '-' is read as an option by git or ssh"
    elif helper:
        why = f"git would run the remote helper 'git-remote-{helper.group(1)}' for it"
    elif scheme in ("http", "git"):
        why = "it is not authenticated: anyone on the way could feed the agent commits"
    elif scheme == "file" or (scheme is None and value.startswith(("/", ".", "~"))):
        why = "it is a path on the primary, whose own repository is used without an upstream"
    elif scheme == "https" and re.match(r"^https://[^/@]*:[^/@]*@", value):
        why = "credentials never go in cluster.toml (git keeps the URL in the open)"
    elif url and int(url.group(1) or 1) > 65535:
        why = f"port {url.group(1)} is above 65535"
    elif url or (scheme is None and UPSTREAM_SCP.fullmatch(value)):
        return value
    else:
        why = "it is not an ssh or https git URL"
    raise ValueError(f"{value!r} is not an upstream picl fetches: {why}; {hint}")


def file_mode(value: str) -> str:
    """An octal file mode like '0644' or '4755' (a missing leading 0 is added)."""
    if not FILE_MODE.fullmatch(value):
        raise ValueError(f"{value!r} is not an octal file mode like '0644'")
    return value.zfill(4)


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def timezone(value: str) -> str:
    """A time zone of the tz database, like 'Europe/Rome' or 'UTC'."""
    # The name becomes a path under /usr/share/zoneinfo and a line of /etc/timezone.
    if not TIMEZONE.fullmatch(value):
        raise ValueError(f"{value!r} is not a time zone name (e.g. 'Europe/Rome', 'UTC')")
    known = _timezones()
    # Without a tz database here (a minimal laptop), the node's own one decides at apply time.
    if known and value not in known:
        raise ValueError(f"{value!r} is not a known time zone (e.g. 'Europe/Rome', 'UTC')")
    return value


def ssh_public_key(value: str) -> str:
    """An OpenSSH public key line: a known type, and a blob that decodes and names that type.

    Checked as one line too: keys fetched from GitHub come here without the spec's types, and
    a line break would add lines (options, other keys) to authorized_keys.
    """
    line(value)
    fields = value.split()
    if len(fields) < 2:
        raise ValueError("not an SSH public key: expected 'TYPE BASE64 [COMMENT]'")
    kind, blob = fields[0], fields[1]
    if kind not in SSH_KEY_TYPES:
        raise ValueError(f"unsupported SSH key type {kind!r}")
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        embedded = raw[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise ValueError("not an SSH public key: the key data is not valid base64") from None
    if embedded != kind:
        raise ValueError(f"not an SSH public key: the data says {embedded!r}, the type {kind!r}")
    return value.strip()
