"""The reference cluster's resources, written by hand as a plain pyinfra deploy.

What a person would write instead of picl, for the benchmark: the same users, groups, sudo,
keys, hostname, /etc/hosts entries, boot target, timezone, chrony, packages, managed file,
export and fstab entry, with pyinfra's own operations (each reads its own facts). File contents
are rendered by picl so that a converged node is a no-op for both. bench/ansible/site.yml is
the same deploy as an Ansible playbook.
"""

from io import StringIO

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server

data = host.data
name = host.name

server.group(name="group gpio", group="gpio", system=True)
server.group(name="group federico", group="federico", gid=1000)
server.user(
    name="user federico",
    user="federico",
    uid=1000,
    group="federico",
    groups=["sudo", "adm", "video", "gpio"],
    shell="/bin/bash",
    home="/home/federico",
)
files.put(
    name="sudo federico",
    src=StringIO(data.sudoers),
    dest="/etc/sudoers.d/picl-federico",
    mode="0440",
)
# files.put would make a missing ~/.ssh as root: sshd then ignores the keys.
files.directory(
    name=".ssh federico", path="/home/federico/.ssh", user="federico", group="federico", mode="0700"
)
files.put(
    name="authorized_keys federico",
    src=StringIO(data.authorized_keys),
    dest="/home/federico/.ssh/authorized_keys",
    user="federico",
    group="federico",
    mode="0600",
)
server.hostname(name="hostname", hostname=name)
files.put(name="hosts", src=StringIO(data.etc_hosts), dest="/etc/hosts")
# As `systemctl set-default` by hand: an image whose default is already right keeps it as is.
if host.get_fact(Command, "systemctl get-default") != f"{data.target}.target":
    server.shell(name="target", commands=[f"systemctl set-default {data.target}.target"])
files.link(name="timezone", path="/etc/localtime", target=f"/usr/share/zoneinfo/{data.timezone}")
files.put(name="timezone name", src=StringIO(f"{data.timezone}\n"), dest="/etc/timezone")
chrony = files.put(name="chrony", src=StringIO(data.chrony), dest="/etc/chrony/chrony.conf")
# try-restart: a chrony that cannot run (no CAP_SYS_TIME in a container) stays stopped.
server.shell(name="restart chrony", commands=["systemctl try-restart chrony"],
             _if=chrony.did_change)
apt.packages(name="packages", packages=data.packages)
files.put(name="motd", src=StringIO(data.motd), dest="/etc/motd")
if data.exports:
    files.directory(name="export dir", path="/srv/shared", user="federico", group="federico")
    exports = files.put(name="exports", src=StringIO(data.exports),
                        dest="/etc/exports.d/picl.exports")
    server.shell(name="exportfs", commands=["exportfs -ra"], _if=exports.did_change)
for entry in data.fstab:
    files.directory(name="mount point", path=entry.split()[1])
    fstab = files.line(name="fstab", path="/etc/fstab", line=entry,
                       escape_regex_characters=True)
    # systemd makes the entry's automount unit from fstab when it reloads.
    server.shell(name="daemon-reload", commands=["systemctl daemon-reload"], _if=fstab.did_change)
