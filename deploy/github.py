"""SSH keys by GitHub username, as `ssh-import-id gh:NAME` gets them: resolved when planning.

Fetched over HTTPS from `{base}/{name}.keys` (base from PICL_GITHUB_URL, for tests and
mirrors), cached per name; offline, the cache is used and the plan says so.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from picl.spec import checks

DEFAULT_BASE = "https://github.com"
TIMEOUT = 5


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "picl" / "github"


@dataclass
class Resolved:
    keys: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _valid(text: str) -> list[str]:
    keys = []
    for line in text.splitlines():
        try:
            keys.append(checks.ssh_public_key(line))
        except ValueError:
            continue  # GitHub lists key types picl does not use; skip them, keep the rest
    return keys


def resolve(names: list[str], base: str | None = None) -> Resolved:
    """Keys for each GitHub username: fetched, or from the cache when the fetch fails."""
    base = (base or os.environ.get("PICL_GITHUB_URL") or DEFAULT_BASE).rstrip("/")
    cache = cache_dir()
    found = Resolved()
    for name in dict.fromkeys(names):
        cached = cache / f"{name}.keys"
        try:
            with urllib.request.urlopen(f"{base}/{name}.keys", timeout=TIMEOUT) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            if cached.exists():
                found.keys[name] = _valid(cached.read_text())
                found.warnings.append(f"gh:{name}: cannot fetch keys ({reason}); using the cache")
            else:
                found.warnings.append(
                    f"gh:{name}: cannot fetch keys ({reason}) and none cached; "
                    "its keys are left as they are on the nodes"
                )
            continue
        found.keys[name] = _valid(text)
        cache.mkdir(parents=True, exist_ok=True)
        cached.write_text(text)
    return found
