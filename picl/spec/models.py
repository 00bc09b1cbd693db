"""The desired state of a cluster, as written in cluster.toml.

One model per section of the file; key names are the contract users, docs and tests rely on.
Checks of single values live in `checks`; checks across sections live in `consistency`.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    Tag,
    field_validator,
    model_validator,
)

from picl.spec import checks


class Section(BaseModel):
    """A table of cluster.toml: unknown keys are errors, values are immutable once loaded.

    Strict: a value is of the type the key asks, never converted (`uid = false` or `0.0` is
    no uid 0, `serve = 1` no `true`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# Every string of the spec but a file's content ends up as one line of some file (fstab,
# exports, authorized_keys, a keyfile, /etc/hosts): all of them are a `Line` first.
Line = Annotated[str, AfterValidator(checks.line)]
Hostname = Annotated[Line, AfterValidator(checks.hostname)]
Username = Annotated[Line, AfterValidator(checks.username)]
DataPath = Annotated[Line, AfterValidator(checks.data_path)]
AbsolutePath = Annotated[Line, AfterValidator(checks.absolute_path)]
Options = Annotated[Line, AfterValidator(checks.options)]
Package = Annotated[Line, AfterValidator(checks.package)]
SshPublicKey = Annotated[Line, AfterValidator(checks.ssh_public_key)]
# Parsed from a string only: an integer would pass as an address and skip the subnet checks.
Address = Annotated[IPv4Address, BeforeValidator(checks.quoted), Field(strict=False)]
Subnet = Annotated[IPv4Network, BeforeValidator(checks.quoted), Field(strict=False)]
Duration = Annotated[
    Line,
    AfterValidator(checks.duration),
    Field(pattern=r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$", examples=["30s", "5m", "1h"]),
]


def _node_selection(value: Any) -> Any:
    # "all", or a list of node names; anything else gets one clear message, not a union dump.
    if value == "all" or isinstance(value, list):
        return value
    raise ValueError('must be "all" or a list of node names')


# Tags that pydantic puts into error locations; the loader drops them from key paths.
SELECTION_TAGS = frozenset(["all-nodes", "node-names"])

NodeSelection = Annotated[
    Annotated[Literal["all"], Tag("all-nodes")] | Annotated[list[Hostname], Tag("node-names")],
    Discriminator(lambda v: "all-nodes" if v == "all" else "node-names"),
    BeforeValidator(_node_selection),
]


class SecretRef(Section):
    """A reference to a value kept in secrets.toml: `{ secret = "NAME" }`."""

    secret: Annotated[Line, AfterValidator(checks.secret_name)]


def _secret_only(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            'secrets never go in cluster.toml: write { secret = "NAME" } '
            "and put NAME = \"...\" in secrets.toml"
        )
    return value


Secret = Annotated[SecretRef, BeforeValidator(_secret_only)]


class ClusterInfo(Section):
    """The cluster as a whole: its name, domain, time zone and primary node."""

    name: Hostname = Field(description="The cluster's name: its status, lock and lab go by it")
    domain: Annotated[Line, AfterValidator(checks.domain)] = Field(
        default="cluster", description="Every node is also NAME.DOMAIN in /etc/hosts"
    )
    timezone: Annotated[Line, AfterValidator(checks.timezone)] = Field(
        default="UTC", description="Every node's time zone"
    )
    primary: Hostname = Field(description="The node that runs the agent, NFS and time server.")


class Wifi(Section):
    """The uplink: Wi-Fi by DHCP, the default route whatever order the links come up in."""

    ssid: Line = Field(min_length=1, max_length=32, description="The Wi-Fi network's name")
    psk: Secret = Field(description="The Wi-Fi key, kept in secrets.toml")
    country: Line = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 code, e.g. 'US'")


class Network(Section):
    """The wired compute network, and Wi-Fi as the uplink."""

    subnet: Subnet = Field(description="Wired compute network: static addresses, no gateway")
    interface: Annotated[Line, AfterValidator(checks.interface)] = Field(
        default="eth0", description="The wired interface, the same on every node"
    )
    wifi: Wifi | None = Field(default=None, description="Optional uplink: DHCP, default route")


class Node(Section):
    """One board of the cluster."""

    name: Hostname = Field(description="Its hostname")
    address: Address = Field(description="Its static wired address, inside network.subnet")
    target: Literal["graphical", "multi-user"] = Field(
        default="multi-user", description="The default systemd target"
    )
    leds: Literal["blinkt", "none"] = Field(
        default="none", description='"blinkt": a Blinkt! strip on its GPIO header shows its state'
    )
    packages: list[Package] = Field(default_factory=list, description="Besides packages.all")


class User(Section):
    """A user (or root) with the same uid and gid on every node."""

    name: Username
    uid: int = Field(ge=0, le=65533, description="The same on every node, as NFS needs")
    gid: int | None = Field(default=None, ge=0, le=65533, description="Defaults to the uid")
    groups: list[Username] = Field(
        default_factory=list, description="Groups it is added to; others it is in are kept"
    )
    shell: AbsolutePath = Field(default="/bin/bash", description="Its login shell")
    sudo: Literal["password", "nopasswd", "none"] = Field(
        default="none", description="Its rule in /etc/sudoers.d, checked by visudo"
    )
    rename_from: Username | None = Field(
        default=None, description="Adopt the image's stock user; its ~/.Xauthority is purged"
    )
    password: Secret | None = Field(default=None, description="A crypt(3) hash in secrets.toml")
    ssh_keys: list[SshPublicKey] = Field(
        default_factory=list, description="Put in ~/.ssh/authorized_keys; other keys are kept"
    )
    github: list[Annotated[Line, AfterValidator(checks.github_user)]] = Field(
        default_factory=list, description="Like ssh-import-id gh:NAME, resolved when planning"
    )
    cluster_key: bool = Field(default=False, description="One key pair on every node")

    @property
    def primary_gid(self) -> int:
        return self.uid if self.gid is None else self.gid


class Time(Section):
    """One clock for the cluster: the primary syncs from the servers, the others from it."""

    servers: list[Annotated[Line, AfterValidator(checks.domain)]] = Field(
        default_factory=lambda: ["0.debian.pool.ntp.org", "1.debian.pool.ntp.org"],
        description="The NTP servers the primary syncs from",
    )
    serve: bool = Field(default=False, description="The primary serves time to the cluster")


class Share(Section):
    """An NFS share: exported by one node, mounted by the others through /etc/fstab."""

    name: Hostname
    server: Hostname = Field(description="The node that exports it")
    export: DataPath = Field(description="The directory exported on the server")
    mount: DataPath = Field(description="Where the clients mount it")
    clients: NodeSelection = Field(
        default="all",
        description='The nodes that mount it, at least one besides the server; "all": every '
        "node but the server",
    )
    options: Options = Field(
        default="rw", description="Exports default to rw,sync,no_subtree_check,root_squash"
    )
    owner: Username | None = Field(default=None, description="Owner of the exported directory")


class Mount(Section):
    """A generic fstab entry, edited as safely as the shares' entries."""

    nodes: NodeSelection = Field(default="all", description="The nodes that mount it")
    what: Annotated[Line, AfterValidator(checks.mount_source)] = Field(
        description="Device, LABEL=, UUID=, or host:/path"
    )
    where: DataPath = Field(description="The mount point")
    type: Line = Field(pattern=r"^[a-z0-9.]+$", description="Filesystem type, such as ext4 or nfs")
    options: Options = Field(default="defaults,nofail", description="Its fstab options")


class ManagedFile(Section):
    """A file picl keeps on the nodes: its content, owner, group and mode."""

    path: AbsolutePath = Field(description="Where it goes on the node")
    content: str | None = Field(default=None, description="Its text")
    source: Line | None = Field(default=None, description="A file in this repository")
    owner: Username = "root"
    group: Username = "root"
    mode: Annotated[Line, AfterValidator(checks.file_mode)] = "0644"
    nodes: NodeSelection = Field(default="all", description="The nodes that get it")

    @model_validator(mode="after")
    def _one_origin(self) -> ManagedFile:
        """Each file gives exactly one of `content` or `source`."""
        if (self.content is None) == (self.source is None):
            raise ValueError("give exactly one of 'content' or 'source'")
        return self


class Packages(Section):
    """Debian packages, installed with apt."""

    all: list[Package] = Field(default_factory=list, description="Installed on every node")


class Leds(Section):
    """What the Blinkt! strips of nodes with leds = "blinkt" show."""

    mode: Literal["status", "load", "off"] = Field(
        default="status", description="The cluster's state, the CPU load as a bar, or nothing"
    )
    brightness: float = Field(default=0.1, ge=0.0, le=1.0, description="The pixels' brightness")


class Mpi(Section):
    """MPI across the cluster: plain `mpirun` on the primary uses every computing node."""

    implementation: Literal["openmpi"] = Field(
        default="openmpi", description="The MPI library: Open MPI, as Debian packages it"
    )
    nodes: NodeSelection = Field(
        default="all", description="The computing nodes, that run ranks; the primary launches"
    )
    slots: int | None = Field(
        default=None, ge=1, le=1024,
        description="Ranks per computing node; default: the node's cores, read from it",
    )


# The agent's metrics port, beyond the 9100-9999 range of Prometheus' default port allocations
# (every port of it is taken by an exporter): see docs/metrics.md.
METRICS_PORT = 10105


class Prometheus(Section):
    """A Prometheus server on the primary, scraping the agent and every node's exporter."""

    retention: Annotated[Line, Field(pattern=r"^[0-9]+(ms|s|m|h|d|w|y)$")] = Field(
        default="30d", description="How long samples are kept (Prometheus' duration: 30d, 8w)"
    )
    retention_size: Annotated[Line, Field(pattern=r"^[0-9]+(B|KB|MB|GB|TB)$")] = Field(
        default="2GB", description="At most this much disk for samples: what an SD card spares"
    )


class Metrics(Section):
    """The cluster seen from outside: node_exporter on every node, optionally Prometheus."""

    port: int = Field(
        default=METRICS_PORT, ge=1024, le=65535,
        description="The agent's metrics port, on the primary's wired address only",
    )
    node_exporter: bool = Field(
        default=True, description="Debian's prometheus-node-exporter on every node"
    )
    prometheus: Prometheus | None = Field(
        default=None, description="Debian's prometheus on the primary, configured from the spec"
    )


Event = Literal["stalled", "failed", "rolled_back", "recovered", "applied"]


def _trouble_and_recovery() -> list[Event]:
    return ["stalled", "failed", "rolled_back", "recovered"]


def _https(value: str) -> str:
    if not value.startswith("https://") or len(value) <= len("https://"):
        raise ValueError(f"{value!r} is not an https:// URL: the event and its token go over "
                         "TLS only")
    if "@" in value.split("/")[2]:
        raise ValueError("credentials never go in cluster.toml: give `token` from secrets.toml")
    return value


class Notify(Section):
    """Tell people when the agent's cycles fail, stall, recover: a command or a webhook."""

    events: list[Event] = Field(
        default_factory=_trouble_and_recovery,
        min_length=1, description="The transitions that send a message",
    )
    command: Annotated[list[Line], Field(min_length=1)] | None = Field(
        default=None,
        description="Run on the primary (as root) with the event as JSON on its standard input",
    )
    webhook: Annotated[Line, AfterValidator(_https)] | None = Field(
        default=None, description="An https:// URL the event is POSTed to as JSON"
    )
    token: Secret | None = Field(
        default=None, description="Sent to the webhook as `Authorization: Bearer TOKEN`"
    )
    timeout: Duration = Field(
        default="10s", description="A notifier that takes longer is stopped (and logged)"
    )

    @model_validator(mode="after")
    def _one_way(self) -> Notify:
        """Exactly one of `command` or `webhook`; a token only with a webhook."""
        if (self.command is None) == (self.webhook is None):
            raise ValueError("give exactly one of 'command' or 'webhook'")
        if self.token is not None and self.webhook is None:
            raise ValueError("'token' goes with 'webhook' (a command gets no token)")
        return self


class Slurm(Section):
    """A Slurm cluster: munge everywhere, slurmctld on the controller, slurmd on the computing
    nodes, one partition of them all. Needs [time] with serve = true: munge refuses
    credentials from a clock 5 minutes off."""

    controller: Hostname | None = Field(
        default=None, description="The node that runs slurmctld; default: the primary"
    )
    nodes: NodeSelection = Field(
        default="all",
        description="The computing nodes, that run slurmd; default: all, the primary too (on "
        "3-5 boards its cores are a quarter of the cluster's, and slurmd costs little)",
    )
    slots: int | None = Field(
        default=None, ge=1, le=1024,
        description="CPUs of each computing node that jobs may use (the partition's "
        "MaxCPUsPerNode), at most the node's; default: all, as `slurmd -C` reports them",
    )
    partition: Line = Field(
        default="main", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$",
        description="The one partition, holding every computing node, the default for jobs",
    )
    max_time: Duration | None = Field(
        default=None, description="The partition's time limit for a job; default: none"
    )

    @field_validator("max_time")
    @classmethod
    def _a_minute_at_least(cls, value: str | None) -> str | None:
        """Slurm counts limits in minutes: less than one would run no job at all."""
        if value is not None and checks.duration_seconds(value) < 60:
            raise ValueError(f"{value!r} is less than a minute: no job would run; "
                             "leave it out for no limit")
        return value

    @property
    def max_time_seconds(self) -> int | None:
        return None if self.max_time is None else checks.duration_seconds(self.max_time)


INTERVAL_SECONDS = (10, 24 * 3600)  # the agent's cycle: what [agent].interval may be


class Agent(Section):
    """The agent on the primary: where it takes the spec from, how often, what it does."""

    branch: Annotated[Line, AfterValidator(checks.branch)] = Field(
        default="main", description="The branch whose state the cluster keeps"
    )
    upstream: Annotated[Line, AfterValidator(checks.upstream)] | None = Field(
        default=None,
        description="A git URL (ssh or https) fetched besides the primary's bare repository",
    )
    interval: Duration = Field(
        default="5m", description="A cycle runs at least this often, to repair drift"
    )
    mode: Literal["enforce", "report"] = Field(
        default="enforce", description='"enforce" converges the nodes; "report" only records drift'
    )
    signed_by: list[SshPublicKey] = Field(
        default_factory=list, description="Only commits signed by these keys are applied"
    )

    @field_validator("interval")
    @classmethod
    def _bounded(cls, value: str) -> str:
        """From 10s to 24h."""
        seconds = checks.duration_seconds(value)
        if seconds < INTERVAL_SECONDS[0]:
            raise ValueError(f"{value!r} is too often: the interval is at least 10s")
        if seconds > INTERVAL_SECONDS[1]:
            raise ValueError(f"{value!r} is too long: the interval is at most 24h (drift is "
                             "repaired at least daily; a push is applied at once anyway)")
        return value

    @property
    def interval_seconds(self) -> int:
        return checks.duration_seconds(self.interval)


class Cluster(Section):
    """The whole of cluster.toml."""

    cluster: ClusterInfo
    network: Network
    nodes: list[Node] = Field(min_length=1)
    users: list[User] = Field(default_factory=list)
    time: Time = Field(default_factory=Time)
    shares: list[Share] = Field(default_factory=list)
    mounts: list[Mount] = Field(default_factory=list)
    files: list[ManagedFile] = Field(default_factory=list)
    packages: Packages = Field(default_factory=Packages)
    leds: Leds = Field(default_factory=Leds)
    mpi: Mpi | None = None
    metrics: Metrics | None = None
    notify: list[Notify] = Field(default_factory=list)
    slurm: Slurm | None = None
    agent: Agent = Field(default_factory=Agent)

    _secrets: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def primary(self) -> Node:
        return self.node(self.cluster.primary)

    def selected(self, selection: Literal["all"] | list[str]) -> list[Node]:
        """The nodes a `nodes`/`clients` key names, in spec order."""
        if selection == "all":
            return list(self.nodes)
        return [node for node in self.nodes if node.name in selection]

    def secret(self, ref: SecretRef) -> str | None:
        """The value behind a reference, or None when the secrets file does not hold it."""
        value = self._secrets.get(ref.secret)
        return value.get_secret_value() if value is not None else None

    def stored(self, name: str, value: str) -> None:
        """Know a secret added to the secrets file after loading (a generated cluster key)."""
        self._secrets[name] = SecretStr(value)
