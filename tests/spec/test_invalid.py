"""Invalid specs, as data: each names the key path it must report and marks the line with `#!`.

Every case runs the installed `picl validate` and checks the exit code, that the problem is
reported as FILE:LINE:COL: key.path: message on the marked line, and that no traceback shows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.spec.conftest import BASE, KEY, assert_reported_on_marked_line, run_picl

RSA_BLOB = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQD6S8R9GMm0KFl1RoHK0qJt"
ED_BLOB = KEY.split()[1]

# (id, text in BASE, replacement marked with #!, key path reported)
CASES: list[tuple[str, str, str, str]] = [
    # [cluster]
    ("name-uppercase", 'name = "arrakis"', 'name = "Arrakis" #!', "cluster.name"),
    ("primary-unknown", 'primary = "node0"', 'primary = "node9" #!', "cluster.primary"),
    ("domain-invalid", 'domain = "cluster"', 'domain = "-cluster" #!', "cluster.domain"),
    ("timezone-unknown", 'timezone = "America/New_York"', 'timezone = "Mars/Base" #!',
     "cluster.timezone"),
    ("timezone-path", 'timezone = "America/New_York"', 'timezone = "../../etc/shadow" #!',
     "cluster.timezone"),
    ("cluster-typo", 'domain = "cluster"', 'domian = "cluster" #!', "cluster.domian"),
    ("primary-missing", 'primary = "node0"\n', "", "cluster.primary"),
    # [network]
    ("subnet-prefix", 'subnet = "10.1.10.0/24"', 'subnet = "10.1.10.0/33" #!', "network.subnet"),
    ("subnet-host-bits", 'subnet = "10.1.10.0/24"', 'subnet = "10.1.10.1/24" #!',
     "network.subnet"),
    ("interface-long", 'interface = "eth0"', 'interface = "averyveryverylongname0" #!',
     "network.interface"),
    ("psk-plaintext", 'psk = { secret = "wifi_psk" }', 'psk = "hunter2" #!', "network.wifi.psk"),
    ("country-lower", 'country = "US"', 'country = "us" #!', "network.wifi.country"),
    ("ssid-long", 'ssid = "ato-2020"', f'ssid = "{"x" * 33}" #!', "network.wifi.ssid"),
    ("wifi-psk-missing", '[network.wifi]\nssid = "ato-2020"\npsk = { secret = "wifi_psk" }',
     '[network.wifi] #!\nssid = "ato-2020"', "network.wifi.psk"),
    ("secret-name-invalid", 'psk = { secret = "wifi_psk" }', 'psk = { secret = "wifi psk" } #!',
     "network.wifi.psk.secret"),
    # [[nodes]]
    ("address-outside", 'address = "10.1.10.241"', 'address = "10.1.11.241" #!',
     "nodes[1].address"),
    ("address-network", 'address = "10.1.10.241"', 'address = "10.1.10.0" #!',
     "nodes[1].address"),
    ("address-broadcast", 'address = "10.1.10.241"', 'address = "10.1.10.255" #!',
     "nodes[1].address"),
    ("address-invalid", 'address = "10.1.10.241"', 'address = "10.1.10.256" #!',
     "nodes[1].address"),
    ("address-integer", 'address = "10.1.10.241"', 'address = 167840497 #!',
     "nodes[1].address"),
    ("address-integer-outside", 'address = "10.1.10.241"', 'address = 1 #!',
     "nodes[1].address"),
    ("address-float", 'address = "10.1.10.241"', 'address = 1.5 #!', "nodes[1].address"),
    ("subnet-integer", 'subnet = "10.1.10.0/24"', 'subnet = 167840256 #!', "network.subnet"),
    ("interface-dash", 'interface = "eth0"', 'interface = "-eth0" #!', "network.interface"),
    ("interface-dot", 'interface = "eth0"', 'interface = ".." #!', "network.interface"),
    ("address-duplicate", 'address = "10.1.10.242"', 'address = "10.1.10.241" #!',
     "nodes[2].address"),
    ("name-duplicate", 'name = "node2"', 'name = "node1" #!', "nodes[2].name"),
    ("node-name-underscore", 'name = "node1"', 'name = "node_1" #!', "nodes[1].name"),
    ("target-invalid", 'target = "graphical"', 'target = "graphic" #!', "nodes[0].target"),
    ("leds-invalid", 'leds = "blinkt"', 'leds = "blinky" #!', "nodes[0].leds"),
    ("node-typo", 'address = "10.1.10.241"', 'adress = "10.1.10.241" #!', "nodes[1].adress"),
    ("node-package-invalid", 'packages = ["stress"]', 'packages = ["Stress!"] #!',
     "nodes[2].packages[0]"),
    ("node-package-remove", 'packages = ["stress"]', 'packages = ["stress", "openssh-server-"] #!',
     "nodes[2].packages[1]"),
    ("node-package-version", 'packages = ["stress"]', 'packages = ["stress=1.0"] #!',
     "nodes[2].packages[0]"),
    # [[users]]
    ("user-uppercase", 'name = "federico"', 'name = "Federico" #!', "users[0].name"),
    ("uid-zero", 'uid = 1000', 'uid = 0 #!', "users[0].uid"),
    ("uid-negative", 'uid = 1000', 'uid = -1 #!', "users[0].uid"),
    ("uid-string", 'uid = 1000', 'uid = "abc" #!', "users[0].uid"),
    ("uid-false", 'uid = 1000', 'uid = false #!', "users[0].uid"),
    ("uid-float", 'uid = 1000', 'uid = 1000.0 #!', "users[0].uid"),
    ("uid-float-zero", 'uid = 0\n', 'uid = 0.0 #!\n', "users[1].uid"),
    ("uid-quoted", 'uid = 1000', 'uid = "1000" #!', "users[0].uid"),
    ("gid-true", 'gid = 1000', 'gid = true #!', "users[0].gid"),
    ("cluster-key-string", 'cluster_key = true', 'cluster_key = "yes" #!',
     "users[0].cluster_key"),
    ("root-uid", 'uid = 0\n', 'uid = 5 #!\n', "users[1].uid"),
    ("gid-duplicate", 'uid = 0\n', 'uid = 0\ngid = 1000 #!\n', "users[1].gid"),
    ("group-invalid", 'groups = ["sudo", "adm"]', 'groups = ["sudo", "Adm"] #!',
     "users[0].groups[1]"),
    ("shell-relative", 'shell = "/bin/bash"', 'shell = "bash" #!', "users[0].shell"),
    ("sudo-invalid", 'sudo = "nopasswd"', 'sudo = "yes" #!', "users[0].sudo"),
    ("rename-clash", 'rename_from = "picocluster"', 'rename_from = "root" #!',
     "users[0].rename_from"),
    ("key-base64", f'ssh_keys = ["{KEY}"]', 'ssh_keys = ["ssh-ed25519 AAAA!! me"] #!',
     "users[0].ssh_keys[0]"),
    ("key-type", f'ssh_keys = ["{KEY}"]', f'ssh_keys = ["ssh-foo {ED_BLOB}"] #!',
     "users[0].ssh_keys[0]"),
    ("key-mismatch", f'ssh_keys = ["{KEY}"]', f'ssh_keys = ["ssh-rsa {ED_BLOB} x"] #!',
     "users[0].ssh_keys[0]"),
    ("key-truncated", f'ssh_keys = ["{KEY}"]', 'ssh_keys = ["ssh-ed25519"] #!',
     "users[0].ssh_keys[0]"),
    ("github-invalid", 'github = ["flucifredi"]', 'github = ["-flucifredi-"] #!',
     "users[0].github[0]"),
    ("password-plaintext", 'password = { secret = "root_password_hash" }',
     'password = "$6$abc" #!', "users[1].password"),
    ("user-typo", 'cluster_key = true', 'clusterkey = true #!', "users[0].clusterkey"),
    # [time]
    ("time-server-invalid", 'servers = ["0.debian.pool.ntp.org"]', 'servers = ["ntp pool"] #!',
     "time.servers[0]"),
    ("serve-number", 'serve = true', 'serve = 3 #!', "time.serve"),
    ("serve-one", 'serve = true', 'serve = 1 #!', "time.serve"),
    ("serve-string", 'serve = true', 'serve = "true" #!', "time.serve"),
    # [[shares]]
    ("share-server-unknown", 'server = "node0"', 'server = "nodeO" #!', "shares[0].server"),
    ("share-client-unknown", 'clients = "all"', 'clients = ["node1", "node7"] #!',
     "shares[0].clients[1]"),
    ("share-clients-string", 'clients = "all"', 'clients = "everyone" #!', "shares[0].clients"),
    ("share-clients-empty", 'clients = "all"', 'clients = [] #!', "shares[0].clients"),
    ("share-clients-only-server", 'clients = "all"', 'clients = ["node0"] #!',
     "shares[0].clients"),
    ("share-clients-server-twice", 'clients = "all"', 'clients = ["node0", "node0"] #!',
     "shares[0].clients"),
    ("export-system", 'export = "/srv/shared"', 'export = "/etc" #!', "shares[0].export"),
    ("export-usr-bin", 'export = "/srv/shared"', 'export = "/usr/bin" #!', "shares[0].export"),
    ("export-etc-ssh", 'export = "/srv/shared"', 'export = "/etc/ssh" #!', "shares[0].export"),
    ("export-var-lib", 'export = "/srv/shared"', 'export = "/var/lib/dpkg" #!',
     "shares[0].export"),
    ("export-root-home", 'export = "/srv/shared"', 'export = "/root" #!', "shares[0].export"),
    ("export-double-slash", 'export = "/srv/shared"', 'export = "//etc" #!',
     "shares[0].export"),
    ("mount-usr-local", 'mount = "/shared"', 'mount = "/usr/local" #!', "shares[0].mount"),
    ("mount-boot-firmware", 'mount = "/shared"', 'mount = "/boot/firmware" #!',
     "shares[0].mount"),
    ("mount-var-log", 'mount = "/shared"', 'mount = "/var/log" #!', "shares[0].mount"),
    ("mount-dotdot-etc", 'mount = "/shared"', 'mount = "/shared/../etc/ssh" #!',
     "shares[0].mount"),
    ("mount-root", 'mount = "/shared"', 'mount = "/" #!', "shares[0].mount"),
    ("mount-space", 'mount = "/shared"', 'mount = "/shared data" #!', "shares[0].mount"),
    ("mount-hash", 'mount = "/shared"', 'mount = "/shared#1" #!', "shares[0].mount"),
    ("mount-dotdot", 'mount = "/shared"', 'mount = "/srv/../shared" #!', "shares[0].mount"),
    ("mount-trailing-slash", 'mount = "/shared"', 'mount = "/shared/" #!', "shares[0].mount"),
    ("mount-relative", 'mount = "/shared"', 'mount = "shared" #!', "shares[0].mount"),
    ("mount-newline", 'mount = "/shared"', 'mount = "/sha\\nred" #!', "shares[0].mount"),
    ("options-space", 'options = "rw"', 'options = "rw, sync" #!', "shares[0].options"),
    ("options-quote", 'options = "rw"', 'options = "rw,\\"x\\"" #!', "shares[0].options"),
    # [[mounts]]
    ("mount-node-unknown", 'nodes = ["node1"]', 'nodes = ["node5"] #!', "mounts[0].nodes[0]"),
    ("mount-point-taken", 'where = "/scratch"', 'where = "/shared" #!', "mounts[0].where"),
    ("mount-type-invalid", 'type = "ext4"', 'type = "ext 4" #!', "mounts[0].type"),
    ("mount-where-lib64", 'where = "/scratch"', 'where = "/lib64" #!', "mounts[0].where"),
    ("mount-where-ssh-keys", 'where = "/scratch"', 'where = "/root/.ssh" #!', "mounts[0].where"),
    ("mount-where-tmp", 'where = "/scratch"', 'where = "/tmp" #!', "mounts[0].where"),
    ("mount-what-dash", 'what = "LABEL=scratch"', 'what = "-oremount" #!', "mounts[0].what"),
    ("mount-what-control", 'what = "LABEL=scratch"', 'what = "LABEL=a\\u0001" #!',
     "mounts[0].what"),
    ("mount-what-hash", 'what = "LABEL=scratch"', 'what = "LABEL=#1" #!', "mounts[0].what"),
    ("mount-options-newline", 'options = "defaults,nofail"', 'options = "defaults\\n" #!',
     "mounts[0].options"),
    # [[files]]
    ("file-both", '[[files]]\npath = "/etc/motd"',
     '[[files]] #!\npath = "/etc/motd"\nsource = "files/issue"', "files[0]"),
    ("file-source-missing", 'source = "files/issue"', 'source = "files/nope" #!',
     "files[1].source"),
    ("file-source-escapes", 'source = "files/issue"', 'source = "../../etc/passwd" #!',
     "files[1].source"),
    ("file-mode", 'mode = "0644"', 'mode = "999" #!', "files[0].mode"),
    ("file-path-relative", 'path = "/etc/motd"', 'path = "etc/motd" #!', "files[0].path"),
    ("file-path-duplicate", 'path = "/etc/issue.net"', 'path = "/etc/motd" #!',
     "files[1].path"),
    # [packages], [leds], [agent], top level
    ("package-invalid", 'all = ["htop", "openmpi-bin"]', 'all = ["htop", "open mpi"] #!',
     "packages.all[1]"),
    ("package-remove", 'all = ["htop", "openmpi-bin"]', 'all = ["htop", "sudo-"] #!',
     "packages.all[1]"),
    ("package-option", 'all = ["htop", "openmpi-bin"]', 'all = ["-oDebug::pkgDPkgPm=1"] #!',
     "packages.all[0]"),
    ("package-release", 'all = ["htop", "openmpi-bin"]', 'all = ["htop/bookworm"] #!',
     "packages.all[0]"),
    ("package-arch", 'all = ["htop", "openmpi-bin"]', 'all = ["htop:arm64"] #!',
     "packages.all[0]"),
    ("brightness-high", 'brightness = 0.1', 'brightness = 1.5 #!', "leds.brightness"),
    ("brightness-bool", 'brightness = 0.1', 'brightness = true #!', "leds.brightness"),
    ("leds-mode", 'mode = "status"', 'mode = "blink" #!', "leds.mode"),
    ("interval-short", 'interval = "5m"', 'interval = "5s" #!', "agent.interval"),
    ("interval-words", 'interval = "5m"', 'interval = "5 minutes" #!', "agent.interval"),
    ("interval-huge", 'interval = "5m"', 'interval = "3000000h" #!', "agent.interval"),
    ("interval-day-and-a-second", 'interval = "5m"', 'interval = "24h1s" #!', "agent.interval"),
    ("interval-many-seconds", 'interval = "5m"', f'interval = "{"9" * 30}s" #!',
     "agent.interval"),
    ("interval-number", 'interval = "5m"', 'interval = 300 #!', "agent.interval"),
    ("agent-mode", 'mode = "enforce"', 'mode = "apply" #!', "agent.mode"),
    ("branch-invalid", 'branch = "main"', 'branch = "main..x" #!', "agent.branch"),
    ("branch-dash", 'branch = "main"', 'branch = "-main" #!', "agent.branch"),
    ("branch-option", 'branch = "main"', 'branch = "--upload-pack=touch" #!', "agent.branch"),
    ("upstream-ext", 'branch = "main"', 'branch = "main"\nupstream = "ext::sh -c id" #!',
     "agent.upstream"),
    ("upstream-http", 'branch = "main"', 'branch = "main"\nupstream = "http://h/a.git" #!',
     "agent.upstream"),
    ("upstream-file", 'branch = "main"', 'branch = "main"\nupstream = "file:///srv/a" #!',
     "agent.upstream"),
    ("upstream-option", 'branch = "main"', 'branch = "main"\nupstream = "-oProxyCommand=x:a" #!',
     "agent.upstream"),
    ("upstream-number", 'branch = "main"', 'branch = "main"\nupstream = 22 #!', "agent.upstream"),
    ("signed-by-invalid", f'signed_by = ["{KEY}"]', 'signed_by = ["federico"] #!',
     "agent.signed_by[0]"),
    ("section-typo", "[leds]", "[ledz] #!", "ledz"),
    # Valid TOML the locator once crashed on or misread: quoted keys with brackets and escapes,
    # line breaks that only str.splitlines() knows, nesting deep enough to crash tomllib.
    ("header-bracket", "[leds]", '["le]ds"] #!', '"le]ds"'),
    ("dotted-header-bracket", "[network.wifi]", '[network."wi]fi"] #!', 'network."wi]fi"'),
    ("array-header-bracket", "[[mounts]]", '[["mou]nts"]] #!', '"mou]nts"'),
    ("key-escaped-quote", "mode = \"status\"", '"mo\\"de" = "status" #!', 'leds."mo\\"de"'),
    ("key-newline", "mode = \"status\"", '"mo\\nde" = "status" #!', 'leds."mo\\nde"'),
    ("key-line-separator", "mode = \"status\"", '"mo\u2028de" = "status" #!',
     'leds."mo\\u2028de"'),
    ("string-line-separator", 'ssid = "ato-2020"\npsk = { secret = "wifi_psk" }\ncountry = "US"',
     'ssid = "ato\u20282020"\npsk = { secret = "wifi_psk" }\ncountry = "us" #!',
     "network.wifi.country"),
    ("string-next-line", 'name = "node1"', 'name = "node\x851" #!', "nodes[1].name"),
    ("comment-paragraph-separator", 'address = "10.1.10.242"',
     'address = "10.1.10.242" # \u2029 [x]\nleds = "on" #!', "nodes[2].leds"),
    ("array-deep", "brightness = 0.1", "brightness = " + "[" * 1000 + "]" * 1000 + " #!",
     "leds.brightness" + "[0]" * 31),
    ("inline-table-deep", "brightness = 0.1", "brightness = " + "{a=" * 400 + "1" + "}" * 400 + " #!",
     "leds.brightness" + ".a" * 31),
    ("user-name-array", 'name = "federico"', 'name = ["federico"] #!', "users[0].name"),
    ("file-source-nul", 'source = "files/issue"', 'source = "files/\\u0000" #!', "files[1].source"),
    ("file-source-too-long", 'source = "files/issue"', f'source = "files/{"a" * 300}" #!',
     "files[1].source"),
    ("mount-taken-odd-node", '[[files]]\npath = "/etc/motd"',
     '[[mounts]]\nnodes = ["no\\nde"]\nwhat = "x"\nwhere = "/y"\ntype = "ext4"\n\n'
     '[[mounts]]\nnodes = ["no\\nde"]\nwhat = "x"\nwhere = "/y" #!\ntype = "ext4"\n\n'
     '[[files]]\npath = "/etc/motd"', "mounts[2].where"),
    # [mpi]
    ("mpi-implementation", 'implementation = "openmpi"', 'implementation = "lam" #!',
     "mpi.implementation"),
    ("mpi-node-unknown", 'nodes = ["node1", "node2"]', 'nodes = ["node1", "nod2"] #!',
     "mpi.nodes[1]"),
    ("mpi-nodes-empty", 'nodes = ["node1", "node2"]', "nodes = [] #!", "mpi.nodes"),
    ("mpi-nodes-word", 'nodes = ["node1", "node2"]', 'nodes = "some" #!', "mpi.nodes"),
    ("mpi-slots-zero", "slots = 4", "slots = 0 #!", "mpi.slots"),
    ("mpi-slots-text", "slots = 4", 'slots = "four" #!', "mpi.slots"),
    ("mpi-typo", "slots = 4", "slot = 4 #!", "mpi.slot"),
    # [metrics], [[notify]]: tables put before [agent]
    ("metrics-port-low", "[agent]\n", "[metrics]\nport = 80 #!\n[agent]\n", "metrics.port"),
    ("metrics-port-text", "[agent]\n", '[metrics]\nport = "10105" #!\n[agent]\n',
     "metrics.port"),
    ("metrics-exporter-typo", "[agent]\n", "[metrics]\nnode_exporters = true #!\n[agent]\n",
     "metrics.node_exporters"),
    ("metrics-retention", "[agent]\n",
     '[metrics.prometheus]\nretention = "30 days" #!\n[agent]\n', "metrics.prometheus.retention"),
    ("metrics-retention-size", "[agent]\n",
     '[metrics.prometheus]\nretention_size = "2G" #!\n[agent]\n',
     "metrics.prometheus.retention_size"),
    ("notify-http", "[agent]\n", '[[notify]]\nwebhook = "http://hooks.example.org/x" #!\n[agent]\n',
     "notify[0].webhook"),
    ("notify-credentials", "[agent]\n",
     '[[notify]]\nwebhook = "https://me:pw@hooks.example.org/x" #!\n[agent]\n',
     "notify[0].webhook"),
    ("notify-neither", "[agent]\n", '[[notify]] #!\nevents = ["stalled"]\n[agent]\n',
     "notify[0]"),
    ("notify-both", "[agent]\n",
     '[[notify]] #!\ncommand = ["true"]\nwebhook = "https://hooks.example.org/x"\n[agent]\n',
     "notify[0]"),
    ("notify-token-command", "[agent]\n",
     '[[notify]] #!\ncommand = ["true"]\ntoken = { secret = "t" }\n[agent]\n', "notify[0]"),
    ("notify-token-plain", "[agent]\n",
     '[[notify]]\nwebhook = "https://hooks.example.org/x"\ntoken = "s3cr3t" #!\n[agent]\n',
     "notify[0].token"),
    ("notify-event-unknown", "[agent]\n",
     '[[notify]]\nevents = ["stalled", "exploded"] #!\ncommand = ["true"]\n[agent]\n',
     "notify[0].events[1]"),
    ("notify-command-empty", "[agent]\n", "[[notify]]\ncommand = [] #!\n[agent]\n",
     "notify[0].command"),
    ("notify-command-string", "[agent]\n", '[[notify]]\ncommand = "tell" #!\n[agent]\n',
     "notify[0].command"),
    ("notify-timeout", "[agent]\n",
     '[[notify]]\ncommand = ["true"]\ntimeout = "10" #!\n[agent]\n', "notify[0].timeout"),
]


@pytest.mark.parametrize(("old", "new", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_spec_is_reported_on_its_line(repo: Path, old: str, new: str, path: str) -> None:
    assert BASE.count(old) >= 1, f"case does not apply to BASE: {old!r}"
    text = BASE.replace(old, new, 1)
    if "#!" not in new:  # a removed key is reported on the header of its table
        text = text.replace("[cluster]", "[cluster] #!", 1)
    assert_reported_on_marked_line(repo, text, path)


ONE_NODE = (
    '[cluster]\nname = "c"\nprimary = "n0"\n[network]\nsubnet = "10.0.0.0/24"\n'
    '[[nodes]]\nname = "n0"\naddress = "10.0.0.1"\n'
    '[[shares]]\nname = "s"\nserver = "n0"\nexport = "/srv/s"\nmount = "/s"\n'
)


def test_a_share_of_a_one_node_cluster_has_no_client(repo: Path) -> None:
    # clients defaults to "all": every node but the server, and there is none.
    (repo / "cluster.toml").write_text(ONE_NODE)
    result = run_picl("validate", cwd=repo)
    assert result.code == 1, result
    assert re.search(r"^cluster\.toml:9:\d+: shares\[0\]\.clients: a share needs a client "
                     r"besides its server \(this cluster has no other node\)",
                     result.err, re.MULTILINE), result.err


def test_there_are_many_cases() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


def test_every_problem_is_reported_at_once(repo: Path) -> None:
    text = BASE
    for old, new in [
        ('name = "node1"', 'name = "node_1"'),
        ('brightness = 0.1', 'brightness = 7'),
        ('interval = "5m"', 'interval = "1s"'),
        ('address = "10.1.10.242"', 'adress = "10.1.10.242"'),
    ]:
        text = text.replace(old, new, 1)
    (repo / "cluster.toml").write_text(text)
    result = run_picl("validate", cwd=repo)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "nodes[1].name", "nodes[2].address", "nodes[2].adress",
        "mounts[0].nodes[0]",  # node1 is no longer a node
        "leds.brightness",
        "mpi.nodes[0]",  # node1 again
        "agent.interval",
    ]


def test_unknown_key_suggests_the_right_one(repo: Path) -> None:
    (repo / "cluster.toml").write_text(BASE.replace('address = "10.1.10.241"',
                                                    'adress = "10.1.10.241"'))
    result = run_picl("validate", cwd=repo)
    assert "nodes[1].adress: unknown key (did you mean 'address'?)" in result.err


@pytest.mark.parametrize("secrets", ['wifi_psk = "x"\n', None], ids=["file", "no-file"])
def test_a_missing_secret_is_a_warning_at_its_reference_file_or_not(
        repo: Path, secrets: str | None) -> None:
    if secrets is None:
        (repo / "secrets.toml").unlink()
    else:
        (repo / "secrets.toml").write_text(secrets)
    result = run_picl("validate", cwd=repo)
    assert result.code == 0, result.err
    line = BASE.splitlines().index('password = { secret = "root_password_hash" }') + 1
    assert re.search(
        rf"^warning: cluster\.toml:{line}:\d+: users\[1\]\.password\.secret: secret "
        r"'root_password_hash' is not in .*secrets\.toml: what needs it is left as it is on the "
        r'nodes until root_password_hash = "\.\.\." is added there$',
        result.err, re.MULTILINE,
    ), result.err
    assert ("wifi_psk" in result.err) is (secrets is None)


def test_secret_names_are_quoted(repo: Path) -> None:
    (repo / "secrets.toml").write_text('"a\\nb" = 1\nwifi_psk = "x"\nroot_password_hash = "h"\n')
    result = run_picl("validate", cwd=repo)
    assert result.code == 1
    assert result.err == 'secrets.toml:1:1: "a\\nb": a secret\'s value must be a string\n'


def test_secret_values_never_reach_output(repo: Path) -> None:
    (repo / "secrets.toml").write_text('wifi_psk = ["correct horse"]\nroot_password_hash = "h"\n')
    result = run_picl("validate", cwd=repo)
    assert result.code == 1
    assert "secrets.toml:1:1: wifi_psk: a secret's value must be a string" in result.err
    assert "correct horse" not in result.err + result.out


GARBAGE: list[tuple[str, bytes, str]] = [
    ("empty", b"", "cluster.toml:1:1: cluster: missing required key"),
    ("binary", bytes(range(256)), "cluster.toml:2:118: not UTF-8 text"),
    ("syntax", b'[cluster]\nname = "a\n', "cluster.toml:2:"),
    ("unclosed-table", b"[cluster\n", "cluster.toml:1:"),
    ("duplicate-key", b'[cluster]\nname = "a"\nname = "b"\n', "cluster.toml:3:"),
    ("wrong-types", b'cluster = 1\nnetwork = "x"\nnodes = {a = 1}\n', "cluster.toml:1:1: cluster:"),
    ("array-not-table", b"nodes = [1, 2]\n", "cluster.toml:1:10: nodes[0]:"),
]


@pytest.mark.parametrize(("content", "expected"), [g[1:] for g in GARBAGE],
                         ids=[g[0] for g in GARBAGE])
def test_garbage_gives_a_located_error(repo: Path, content: bytes, expected: str) -> None:
    (repo / "cluster.toml").write_bytes(content)
    result = run_picl("validate", cwd=repo)
    assert result.code == 1
    assert "Traceback" not in result.err
    assert expected in result.err, result.err


def test_unreadable_inputs_are_one_line(tmp_path: Path) -> None:
    missing = run_picl("--spec", str(tmp_path / "nope.toml"), "validate")
    directory = run_picl("--spec", str(tmp_path), "validate")
    for result, reason in [(missing, "no such file"), (directory, "is a directory")]:
        assert result.code == 1
        assert len(result.err.strip().splitlines()) == 1
        assert reason in result.err
