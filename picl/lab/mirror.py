"""Where lab nodes get packages: this machine's Debian mirror, through the lab's apt proxy.

The mirror is the one this machine's apt uses (/etc/apt/sources.list and sources.list.d), or
$PICL_LAB_MIRROR. Images are built from it, nodes' apt sources name it as a board's name its
mirror, and each lab runs an apt proxy (picl.lab.aptproxy) on its own network that forwards to
it and nowhere else. The proxy starts with `lab up` and stops with `lab down`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from picl.errors import PiclError
from picl.lab.blueprint import NETNS, STATE, Blueprint

log = logging.getLogger(__name__)

APT = Path("/etc/apt")
MIRROR_ENV = "PICL_LAB_MIRROR"
PORT = 3142  # apt-cacher-ng's, the port apt proxies are known by
# Shared by every lab: a package file's name says its version, so it never changes in place.
CACHE = Path("/var/cache/picl/packages")
MODULE = "picl.lab.aptproxy"


@dataclass(frozen=True)
class Mirror:
    """A Debian mirror: its archive (`.../debian`) and, when it has one, its security archive."""

    archive: str
    security: str | None = None

    def for_nodes(self) -> dict[str, str]:
        """{what nodes ask the proxy for: where the proxy fetches it}; nodes speak plain http
        (apt's proxy setting is for http), the proxy fetches as this machine does."""
        return {_as_http(url): url for url in (self.archive, self.security) if url}

    @property
    def node_archive(self) -> str:
        return _as_http(self.archive)

    @property
    def node_security(self) -> str | None:
        return _as_http(self.security) if self.security else None


def _as_http(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(("http", parts.netloc.lower(), parts.path.rstrip("/"), "", ""))


def sources(apt: Path = APT) -> list[str]:
    """The URIs of every enabled `deb` source of this machine's apt, in the order apt reads them."""
    uris: list[str] = []
    files = [apt / "sources.list"]
    if (apt / "sources.list.d").is_dir():
        files += sorted(
            p for p in (apt / "sources.list.d").iterdir() if p.suffix in (".list", ".sources")
        )
    for path in files:
        try:
            text = path.read_text()
        except (FileNotFoundError, IsADirectoryError):
            continue
        uris += _deb822_uris(text) if path.suffix == ".sources" else _one_line_uris(text)
    return uris


def _one_line_uris(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()  # type: ignore[assignment]
        if len(line) >= 3 and line[0] == "deb":
            found.append(line[1])
    return found


def _deb822_uris(text: str) -> list[str]:
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:  # a continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            found += fields.get("uris", "").split()
    return found


def debian(uris: list[str], override: str | None = None) -> Mirror:
    """The Debian mirror among apt's sources: the first `.../debian` archive, with the security
    archive (`.../debian-security`) if one is configured. `override` (a URL) wins."""
    if override:
        if urllib.parse.urlsplit(override).scheme not in ("http", "https"):
            raise PiclError(f"{MIRROR_ENV}={override!r}: not an http(s) URL of a Debian mirror")
        return Mirror(archive=override.rstrip("/"))
    web = [u.rstrip("/") for u in uris if urllib.parse.urlsplit(u).scheme in ("http", "https")]
    archive = next((u for u in web if u.endswith("/debian")), None)
    security = next((u for u in web if u.endswith("/debian-security")), None)
    if archive is None:
        raise PiclError(
            f"no Debian mirror (an http(s) URI ending in /debian) in {APT}/sources.list or "
            f"{APT}/sources.list.d: lab images and nodes get their packages from it; "
            f"set {MIRROR_ENV}=http://MIRROR/debian"
        )
    return Mirror(archive=archive, security=security)


def configured() -> Mirror:
    """This machine's Debian mirror (see `debian`)."""
    return debian(sources(), os.environ.get(MIRROR_ENV))


# -- the lab's proxy -----------------------------------------------------------------------------


def proxy_url(lab: Blueprint) -> str:
    """What nodes set as their apt proxy."""
    return f"http://{lab.address}:{PORT}/"


def _config_path(lab_name: str) -> Path:
    return STATE / lab_name / "aptproxy.json"


def proxies(lab_name: str | None = None) -> dict[str, int]:
    """{lab: pid} of the apt proxies running on this machine (of one lab, if named)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if MODULE not in args or len(args) < 2:
            continue
        config = Path(args[-1])
        if config.name == "aptproxy.json" and config.parent.parent == STATE:
            lab = config.parent.name
            if lab_name is None or lab == lab_name:
                found[lab] = int(entry.name)
    return found


def start_proxy(lab: Blueprint, mirror: Mirror) -> None:
    """Run the lab's apt proxy (idempotent): on the lab's address, to `mirror` only."""
    if proxies(lab.name):
        return
    config: dict[str, object] = {
        "namespace": str(NETNS / lab.namespace),
        "address": lab.address,
        "port": PORT,
        "mirrors": (mirrors := mirror.for_nodes()),
        "cache": str(CACHE),
        "log": str(lab.dir / "aptproxy.log"),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    path = _config_path(lab.name)
    path.write_text(json.dumps(config, indent=2) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", MODULE, str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PiclError(f"lab {lab.name}: its apt proxy did not start: {detail}")
    log.info("lab %s: apt proxy on %s to %s", lab.name, proxy_url(lab), ", ".join(mirrors))


def stop_proxy(lab_name: str | None = None, timeout: float = 10) -> None:
    """Stop the lab's apt proxy (every picl lab's, without a name)."""
    pids = list(proxies(lab_name).values())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
