"""The reference cluster's resources, written by hand as a plain pyinfra deploy.

What a person would write instead of picl, for the benchmark: the same users, groups, sudo,
keys, hostname, /etc/hosts entries, boot target, timezone, chrony, packages, managed file and
export, with pyinfra's own operations (each reads its own facts). File contents are rendered
by picl so that a converged node is a no-op for both.
"""

from io import StringIO

from pyinfra import host
from pyinfra.operations import apt, files, server

data = host.data
name = host.name

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
files.put(
    name="authorized_keys federico",
    src=StringIO(data.authorized_keys),
    dest="/home/federico/.ssh/authorized_keys",
    user="federico",
    group="federico",
    mode="0600",
)
server.hostname(name="hostname", hostname=name)
files.put(name="hosts", src=StringIO(data.hosts), dest="/etc/hosts")
files.link(
    name="target",
    path="/etc/systemd/system/default.target",
    target=f"/lib/systemd/system/{data.target}.target",
)
files.link(name="timezone", path="/etc/localtime", target=f"/usr/share/zoneinfo/{data.timezone}")
files.put(name="chrony", src=StringIO(data.chrony), dest="/etc/chrony/chrony.conf")
apt.packages(name="packages", packages=data.packages)
files.put(name="motd", src=StringIO(data.motd), dest="/etc/motd")
if data.exports:
    files.directory(name="export dir", path="/srv/shared", user="federico", group="federico")
    files.put(name="exports", src=StringIO(data.exports), dest="/etc/exports.d/picl.exports")
