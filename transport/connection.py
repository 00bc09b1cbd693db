"""How picl reaches nodes over SSH: one set of settings for pyinfra and for plain ssh.

Host keys are always checked, against the same files by both: those OpenSSH reads by default,
the user's (`~/.ssh/known_hosts`, `known_hosts2`) then the system's (`/etc/ssh/ssh_known_hosts`,
`ssh_known_hosts2`), so a node trusted in either is trusted by plan and apply alike. The lab
(and the agent on the primary) say which key and known_hosts to use through the environment,
so every command works unchanged against both.

Reading a node's state goes over a shared connection (ControlMaster) that outlives the command
for a minute: a plan, then the apply after it, cost one SSH handshake per node, not two. Other
commands do not share one: a shared connection holds a command's output open after picl gives up
on it, where a command of its own can be stopped with its ssh.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from picl.errors import PiclError

CONTROL_PERSIST = 60  # seconds an idle shared connection stays open (as Ansible's default)
CONNECT_TIMEOUT_ENV = "PICL_CONNECT_TIMEOUT"
CONNECT_TIMEOUT = 10  # seconds a node may take to answer a new SSH connection
# A shared connection to a node that lost power is given up after 3 unanswered 5 s probes.
ALIVE = ("-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3")
# sun_path holds 107 bytes; ssh binds `DIR/<%C: 40 hex digits>.<16 random>` and renames it.
SOCKET_DIR_MAX = 107 - 1 - 40 - 17
# Where OpenSSH looks for host keys unless told otherwise (ssh_config(5)), in its order.
USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = (Path("/etc/ssh/ssh_known_hosts"), Path("/etc/ssh/ssh_known_hosts2"))


def control_dir(environ: Mapping[str, str]) -> Path | None:
    """Where shared connections' sockets live: $PICL_SSH_CONTROL, else a private runtime dir."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    default = (Path(runtime) if runtime else Path.home() / ".cache") / "picl" / "ssh"
    path = Path(environ.get("PICL_SSH_CONTROL") or default)
    return path if len(str(path)) <= SOCKET_DIR_MAX else None  # else: not shared


def private_dir(path: Path) -> bool:
    """Make `path` (mode 700) or check it is ours alone: others must not reach our sockets."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & 0o077


def _option_list(paths: tuple[Path, ...]) -> str:
    """Files as one OpenSSH option value: separated by spaces, quoted where they hold one."""
    return " ".join(f'"{p}"' if any(c.isspace() for c in str(p)) else str(p) for p in paths)


def host_key_lines(host: str, path: Path) -> list[str]:
    """The lines of a known_hosts file OpenSSH matches `host` with (names, patterns, hashed
    names, markers), as `ssh-keygen -F` finds them; none when the file is missing."""
    if not path.is_file():
        return []
    found = subprocess.run(["ssh-keygen", "-F", host, "-f", str(path)], capture_output=True,
                           text=True, errors="replace", stdin=subprocess.DEVNULL)
    return [line for line in found.stdout.splitlines()
            if line.strip() and not line.startswith("#")]


def _key(line: str) -> tuple[str, ...]:
    """A known_hosts line's key (type, base64), after its marker and host names."""
    fields = line.split()
    return tuple(fields[2:4] if fields[:1] and fields[0].startswith("@") else fields[1:3])


def for_paramiko(host: str, lines: list[str]) -> list[str]:
    """The known_hosts lines OpenSSH matches `host` with, as paramiko can read them: `host`
    by name (paramiko knows no patterns), without markers (it stops reading a file at the
    first) and without the keys an `@revoked` line names (which OpenSSH refuses whatever
    else trusts them). A certificate authority paramiko cannot use: left out."""
    from paramiko.hostkeys import HostKeyEntry

    revoked = {_key(line) for line in lines if line.startswith("@revoked")}
    kept = []
    for line in lines:
        if line.startswith(("@", "#")) or _key(line) in revoked or len(_key(line)) < 2:
            continue
        entry = f"{host} {' '.join(_key(line))}"
        try:
            if HostKeyEntry.from_line(entry) is not None:
                kept.append(entry)
        except Exception:  # noqa: BLE001, S112 - whatever it raises, paramiko cannot read it
            continue
    return kept


@dataclass(frozen=True)
class Connection:
    user: str = "root"
    key: Path | None = None
    known_hosts: Path | None = None  # instead of the user's own (PICL_KNOWN_HOSTS)
    connect_timeout: int = CONNECT_TIMEOUT  # PICL_CONNECT_TIMEOUT
    control: Path | None = None  # directory of shared connections' sockets; None: not shared
    persist: int = CONTROL_PERSIST  # seconds an idle shared connection stays open
    global_known_hosts: tuple[Path, ...] = GLOBAL_KNOWN_HOSTS  # PICL_GLOBAL_KNOWN_HOSTS

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Connection:
        env = os.environ if environ is None else environ
        key = env.get("PICL_SSH_KEY")
        known_hosts = env.get("PICL_KNOWN_HOSTS")
        global_known_hosts = env.get("PICL_GLOBAL_KNOWN_HOSTS")
        return cls(
            user=env.get("PICL_SSH_USER", "root"),
            key=Path(key) if key else None,
            known_hosts=Path(known_hosts) if known_hosts else None,
            control=control_dir(env),
            connect_timeout=connect_timeout(env),
            global_known_hosts=tuple(Path(p) for p in global_known_hosts.split())
            if global_known_hosts else GLOBAL_KNOWN_HOSTS,
        )

    def allowing(self, seconds: float) -> float:
        """`seconds`, allowed for a command over a connection that takes the usual time, plus
        what this one may take beyond it (PICL_CONNECT_TIMEOUT above 10)."""
        return seconds + max(0, self.connect_timeout - CONNECT_TIMEOUT)

    def known_hosts_files(self) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
        """The files a node's host key is checked against, by plan and apply alike: (the
        user's, the system's), each in OpenSSH's order."""
        user = (self.known_hosts,) if self.known_hosts else tuple(
            Path(p).expanduser() for p in USER_KNOWN_HOSTS)
        return user, self.global_known_hosts

    @contextmanager
    def known_hosts_file(self, address: str) -> Iterator[Path]:
        """The keys `known_hosts_files` trust for `address`, as OpenSSH (plan) matches them,
        in one private file for paramiko (apply), which reads one file and fewer forms.
        Removed on leaving: paramiko reads it when it connects."""
        user, system = self.known_hosts_files()
        lines = [line for path in (*user, *system) for line in host_key_lines(address, path)]
        fd, name = tempfile.mkstemp(prefix="picl-known-hosts-")
        try:
            with os.fdopen(fd, "w") as out:
                out.write("".join(f"{line}\n" for line in for_paramiko(address, lines)))
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def ssh_options(self, shared: bool = False) -> list[str]:
        """OpenSSH options: batch mode (never prompt), strict host keys, bounded connect; if
        `shared`, the node's shared connection where there is a private place for its socket."""
        options = [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "LogLevel=ERROR",
            *ALIVE,
        ]  # fmt: skip
        if shared and self.control and private_dir(self.control):
            options += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control}/%C",
                        "-o", f"ControlPersist={self.persist}"]
        user, system = self.known_hosts_files()
        options += ["-o", f"UserKnownHostsFile={_option_list(user)}",
                    "-o", f"GlobalKnownHostsFile={_option_list(system)}"]
        if self.key:
            options += ["-i", str(self.key), "-o", "IdentitiesOnly=yes"]
        return options

    def ssh_argv(
        self, address: str, command: list[str] | str | None = None, shared: bool = False
    ) -> list[str]:
        """`ssh ... user@address -- command` (a list is quoted for the remote shell)."""
        argv = ["ssh", *self.ssh_options(shared), f"{self.user}@{address}"]
        if command is None:
            return argv
        remote = command if isinstance(command, str) else shlex.join(command)
        return [*argv, "--", remote]

    def pyinfra_data(self, known_hosts: Path) -> dict[str, Any]:
        """Host data for pyinfra's SSH connector; `known_hosts` from `known_hosts_file`."""
        timeout = self.connect_timeout
        data: dict[str, Any] = {
            "ssh_user": self.user,
            "ssh_strict_host_key_checking": "yes",
            "ssh_known_hosts_file": str(known_hosts),
            "ssh_connect_retries": 0,
            "ssh_paramiko_connect_kwargs": {
                "timeout": timeout, "banner_timeout": timeout, "auth_timeout": timeout,
            },
        }
        if self.key:
            # The given key only: an agent's or ~/.ssh's keys would make runs differ by who runs.
            data.update(ssh_key=str(self.key), ssh_allow_agent=False, ssh_look_for_keys=False)
        return data


def connect_timeout(env: Mapping[str, str]) -> int:
    """Seconds a node may take to answer a new SSH connection: $PICL_CONNECT_TIMEOUT or 10."""
    return seconds_setting(env, CONNECT_TIMEOUT_ENV, CONNECT_TIMEOUT, lowest=1)


def seconds_setting(env: Mapping[str, str], name: str, default: int, lowest: int) -> int:
    """A setting in whole seconds from the environment (`lowest` to an hour), else `default`;
    a clear error naming the variable for anything else."""
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not lowest <= int(value) <= 3600:
        raise PiclError(f"{name}={value!r}: give whole seconds, {lowest} to 3600")
    return int(value)
