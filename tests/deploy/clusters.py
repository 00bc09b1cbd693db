"""Variants of the spec tests' BASE cluster for the fstab and network tests, loaded as picl
loads a spec (cluster.toml, secrets.toml and the files it names, in one folder)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from picl.spec import Cluster, load
from tests.spec.conftest import BASE, SECRETS

WIFI = '[network.wifi]\nssid = "ato-2020"\npsk = { secret = "wifi_psk" }\ncountry = "US"\n'
PSK = "correct horse battery staple"


def _replaced(text: str, old: str, new: str) -> str:
    assert old in text, f"tests.spec.conftest no longer has {old!r}"
    return text.replace(old, new)


def small_cluster(
    folder: Path,
    extra: str = "",
    ssid: str | None = "ato-2020",
    psk: str | None = PSK,
    interface: str = "eth0",
) -> Cluster:
    """BASE (three nodes on 10.1.10.0/24, share /shared from node0, /scratch on node1) plus
    `extra` TOML; no Wi-Fi when `ssid` is None, and no secrets.toml when `psk` is None."""
    spec = _replaced(BASE, 'interface = "eth0"', f"interface = {json.dumps(interface)}")
    wifi = "" if ssid is None else WIFI.replace('"ato-2020"', json.dumps(ssid))
    (folder / "cluster.toml").write_text(_replaced(spec, WIFI, wifi) + extra)
    (folder / "files").mkdir(exist_ok=True)
    (folder / "files" / "issue").write_text("arrakis\n")
    if psk is not None:
        secrets = _replaced(SECRETS, json.dumps(PSK), json.dumps(psk))
        (folder / "secrets.toml").write_text(secrets)
        (folder / "secrets.toml").chmod(0o600)
    return load(folder / "cluster.toml")


def past_the_spec(cluster: Cluster, ssid: str | None = None, psk: str | None = None) -> Cluster:
    """`cluster` with a Wi-Fi name or key set past validation (the spec refuses control
    characters in both): what the renderers must still escape or refuse on their own."""
    wifi = cluster.network.wifi
    assert wifi is not None
    if ssid is not None:
        network = cluster.network.model_copy(update={"wifi": wifi.model_copy(update={"ssid": ssid})})
        cluster = cluster.model_copy(update={"network": network})
    if psk is not None:
        cluster._secrets = {**cluster._secrets, wifi.psk.secret: SecretStr(psk)}
    return cluster
