"""Valid specs: the reference cluster, the starter, and variants that must load as written."""

from __future__ import annotations

import json
import subprocess
import tomllib
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest

from picl.spec import load
from tests.spec.conftest import BASE, run_picl

ROOT = Path(__file__).resolve().parents[2]


def test_reference_cluster_validates() -> None:
    result = run_picl("--spec", str(ROOT / "cluster.toml"), "validate")
    assert result.code == 0, result.err
    assert "valid: cluster 'arrakis', 3 nodes, 2 users, 1 share" in result.out


def test_reference_cluster_is_the_example() -> None:
    example = ROOT.parent / "shared" / "cluster.example.toml"
    if not example.exists():
        pytest.skip("shared/ is not beside this checkout")
    assert tomllib.loads((ROOT / "cluster.toml").read_text()) == tomllib.loads(example.read_text())


def test_defaults_are_the_documented_ones(repo: Path) -> None:
    (repo / "cluster.toml").write_text(
        '[cluster]\nname = "c"\nprimary = "n0"\n[network]\nsubnet = "10.0.0.0/24"\n'
        '[[nodes]]\nname = "n0"\naddress = "10.0.0.1"\n[[nodes]]\nname = "n1"\n'
        'address = "10.0.0.2"\n[[users]]\nname = "me"\nuid = 1000\n'
        '[[shares]]\nname = "s"\nserver = "n0"\nexport = "/srv/s"\nmount = "/s"\n'
    )
    cluster = load(repo / "cluster.toml")
    assert cluster.nodes[0].target == "multi-user"
    assert cluster.nodes[0].leds == "none"
    assert cluster.network.interface == "eth0"
    assert cluster.users[0].sudo == "none"
    assert cluster.users[0].primary_gid == 1000
    assert cluster.shares[0].clients == "all"
    assert cluster.shares[0].options == "rw"
    assert cluster.leds.mode == "status" and cluster.leds.brightness == 0.1
    assert cluster.agent.mode == "enforce" and cluster.agent.interval_seconds == 300
    assert cluster.agent.branch == "main" and cluster.agent.upstream is None
    assert cluster.time.serve is False


VARIANTS: list[tuple[str, str, str]] = [
    ("no-wifi", '[network.wifi]\nssid = "ato-2020"\npsk = { secret = "wifi_psk" }\ncountry = "US"\n',
     ""),
    ("clients-list", 'clients = "all"', 'clients = ["node1", "node2"]'),
    ("interval-combined", 'interval = "5m"', 'interval = "1h30m"'),
    ("interval-minimum", 'interval = "5m"', 'interval = "10s"'),
    ("interval-maximum", 'interval = "5m"', 'interval = "24h"'),
    ("interval-minutes", 'interval = "5m"', 'interval = "1440m"'),
    ("brightness-integer", "brightness = 0.1", "brightness = 1"),
    ("export-home", 'export = "/srv/shared"', 'export = "/home"'),
    ("export-var-nfs", 'export = "/srv/shared"', 'export = "/var/nfs/general"'),
    ("mount-data", 'mount = "/shared"', 'mount = "/data/shared"'),
    ("mount-mnt", 'where = "/scratch"', 'where = "/mnt/scratch"'),
    ("interface-vlan", 'interface = "eth0"', 'interface = "enp1s0.100"'),
    ("timezone-offset", 'timezone = "America/New_York"', 'timezone = "Etc/GMT+5"'),
    ("brightness-zero", "brightness = 0.1", "brightness = 0"),
    ("brightness-full", "brightness = 0.1", "brightness = 1.0"),
    ("report-mode", 'mode = "enforce"', 'mode = "report"'),
    ("mode-short", 'mode = "0644"', 'mode = "600"'),
    ("nfs-mount", 'what = "LABEL=scratch"', 'what = "node0:/srv/shared"'),
    ("uuid-mount", 'what = "LABEL=scratch"', 'what = "UUID=0a3f-22b1"'),
    ("upstream", 'branch = "main"', 'branch = "deploy/arrakis"\nupstream = "git@github.com:me/a.git"'),
    ("upstream-ssh-url", 'branch = "main"', 'upstream = "ssh://git@10.1.10.9:2222/srv/a.git"'),
    ("upstream-https", 'branch = "main"', 'upstream = "https://github.com/me/arrakis.git"'),
    ("utc", 'timezone = "America/New_York"', 'timezone = "UTC"'),
    ("no-gid", "gid = 1000\n", ""),
    ("github-hyphen", 'github = ["flucifredi"]', 'github = ["a-b-c"]'),
]


@pytest.mark.parametrize(("old", "new"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_variant_is_valid(repo: Path, old: str, new: str) -> None:
    assert old in BASE
    (repo / "cluster.toml").write_text(BASE.replace(old, new, 1))
    load(repo / "cluster.toml")


def test_missing_secrets_file_warns_once_per_secret_and_validates(repo: Path) -> None:
    (repo / "secrets.toml").unlink()
    result = run_picl("validate", cwd=repo)
    assert result.code == 0, result.err
    assert result.err.count("warning") == 2
    assert "secret 'wifi_psk' is not in secrets.toml" in result.err
    assert "secret 'root_password_hash' is not in secrets.toml" in result.err


def test_secrets_resolve_but_never_print(repo: Path) -> None:
    cluster = load(repo / "cluster.toml")
    assert cluster.network.wifi is not None
    assert cluster.secret(cluster.network.wifi.psk) == "correct horse battery staple"
    dumped = cluster.model_dump_json() + repr(cluster)
    assert "correct horse" not in dumped


def test_secrets_path_can_be_given(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("etc") / "secrets.toml"
    (repo / "secrets.toml").rename(elsewhere)
    result = run_picl("--secrets", str(elsewhere), "validate", cwd=repo)
    assert result.code == 0 and result.err == "", result.err


def _schema() -> dict:
    result = run_picl("schema")
    assert result.code == 0
    return json.loads(result.out)


def test_schema_accepts_the_example_and_rejects_a_typo() -> None:
    schema = _schema()
    data = tomllib.loads((ROOT / "cluster.toml").read_text())
    jsonschema.validate(data, schema)
    data["nodes"][1]["adress"] = data["nodes"][1].pop("address")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_schema_is_json_for_python_json_tool() -> None:
    schema = subprocess.run(["python3", "-m", "json.tool"], input=run_picl("schema").out,
                            capture_output=True, text=True, check=True)
    assert '"Cluster"' in schema.stdout or '"title": "Cluster"' in schema.stdout


def test_init_writes_a_valid_starter_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "mycluster"
    first = run_picl("init", str(target))
    assert first.code == 0, first.err
    assert (target / ".gitignore").read_text().splitlines() == ["secrets.toml"]
    assert run_picl("--spec", str(target / "cluster.toml"), "validate").code == 0
    jsonschema.validate(tomllib.loads((target / "cluster.toml").read_text()),
                        json.loads((target / "cluster.schema.json").read_text()))
    (target / "cluster.toml").write_text("# mine\n")
    second = run_picl("init", str(target))
    assert second.code == 1
    assert "already exists" in second.err
    assert (target / "cluster.toml").read_text() == "# mine\n"


def test_init_keeps_an_existing_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.pyc\n")
    assert run_picl("init", str(tmp_path)).code == 0
    assert (tmp_path / ".gitignore").read_text() == "*.pyc\nsecrets.toml\n"


def test_starter_is_packaged() -> None:
    assert "[cluster]" in (files("picl") / "starter.toml").read_text()
