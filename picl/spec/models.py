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
    """A table of cluster.toml: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Hostname = Annotated[str, AfterValidator(checks.hostname)]
Username = Annotated[str, AfterValidator(checks.username)]
DataPath = Annotated[str, AfterValidator(checks.data_path)]
AbsolutePath = Annotated[str, AfterValidator(checks.absolute_path)]
Options = Annotated[str, AfterValidator(checks.options)]
Package = Annotated[str, AfterValidator(checks.package)]
SshPublicKey = Annotated[str, AfterValidator(checks.ssh_public_key)]
Duration = Annotated[
    str,
    AfterValidator(checks.duration),
    Field(pattern=r"^(\d+h)?(\d+m)?(\d+s)?$", examples=["30s", "5m", "1h"]),
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

    secret: Annotated[str, AfterValidator(checks.secret_name)]


def _secret_only(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            'secrets never go in cluster.toml: write { secret = "NAME" } '
            "and put NAME = \"...\" in secrets.toml"
        )
    return value


Secret = Annotated[SecretRef, BeforeValidator(_secret_only)]


class ClusterInfo(Section):
    name: Hostname
    domain: Annotated[str, AfterValidator(checks.domain)] = "cluster"
    timezone: Annotated[str, AfterValidator(checks.timezone)] = "UTC"
    primary: Hostname = Field(description="The node that runs the agent, NFS and time server.")


class Wifi(Section):
    ssid: str = Field(min_length=1, max_length=32)
    psk: Secret
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 code, e.g. 'US'")


class Network(Section):
    subnet: IPv4Network = Field(description="Wired compute network: static addresses, no gateway")
    interface: Annotated[str, AfterValidator(checks.interface)] = "eth0"
    wifi: Wifi | None = Field(default=None, description="Optional uplink: DHCP, default route")


class Node(Section):
    name: Hostname
    address: IPv4Address
    target: Literal["graphical", "multi-user"] = "multi-user"
    leds: Literal["blinkt", "none"] = "none"
    packages: list[Package] = Field(default_factory=list, description="Besides packages.all")


class User(Section):
    name: Username
    uid: int = Field(ge=0, le=65533)
    gid: int | None = Field(default=None, ge=0, le=65533, description="Defaults to the uid")
    groups: list[Username] = Field(default_factory=list)
    shell: AbsolutePath = "/bin/bash"
    sudo: Literal["password", "nopasswd", "none"] = "none"
    rename_from: Username | None = Field(
        default=None, description="Adopt the image's stock user; its ~/.Xauthority is purged"
    )
    password: Secret | None = Field(default=None, description="A crypt(3) hash in secrets.toml")
    ssh_keys: list[SshPublicKey] = Field(default_factory=list)
    github: list[Annotated[str, AfterValidator(checks.github_user)]] = Field(
        default_factory=list, description="Like ssh-import-id gh:NAME, resolved when planning"
    )
    cluster_key: bool = Field(default=False, description="One key pair on every node")

    @property
    def primary_gid(self) -> int:
        return self.uid if self.gid is None else self.gid


class Time(Section):
    servers: list[Annotated[str, AfterValidator(checks.domain)]] = Field(
        default_factory=lambda: ["0.debian.pool.ntp.org", "1.debian.pool.ntp.org"]
    )
    serve: bool = Field(default=False, description="The primary serves time to the cluster")


class Share(Section):
    name: Hostname
    server: Hostname
    export: DataPath
    mount: DataPath
    clients: NodeSelection = "all"
    options: Options = Field(
        default="rw", description="Exports default to rw,sync,no_subtree_check,root_squash"
    )
    owner: Username | None = Field(default=None, description="Owner of the exported directory")


class Mount(Section):
    """A generic fstab entry, edited as safely as the shares' entries."""

    nodes: NodeSelection = "all"
    what: str = Field(pattern=r"^[^\s#]+$", description="Device, LABEL=, UUID=, or host:/path")
    where: DataPath
    type: str = Field(pattern=r"^[a-z0-9.]+$")
    options: Options = "defaults,nofail"


class ManagedFile(Section):
    path: AbsolutePath
    content: str | None = None
    source: str | None = Field(default=None, description="A file in this repository")
    owner: Username = "root"
    group: Username = "root"
    mode: Annotated[str, AfterValidator(checks.file_mode)] = "0644"
    nodes: NodeSelection = "all"

    @model_validator(mode="after")
    def _one_origin(self) -> ManagedFile:
        """Each file gives exactly one of `content` or `source`."""
        if (self.content is None) == (self.source is None):
            raise ValueError("give exactly one of 'content' or 'source'")
        return self


class Packages(Section):
    all: list[Package] = Field(default_factory=list, description="Installed on every node")


class Leds(Section):
    mode: Literal["status", "load", "off"] = "status"
    brightness: float = Field(default=0.1, ge=0.0, le=1.0)


class Agent(Section):
    branch: Annotated[str, AfterValidator(checks.branch)] = "main"
    upstream: str | None = Field(default=None, description="Without it, the primary's bare repo")
    interval: Duration = "5m"
    mode: Literal["enforce", "report"] = "enforce"
    signed_by: list[SshPublicKey] = Field(
        default_factory=list, description="Only commits signed by these keys are applied"
    )

    @field_validator("interval")
    @classmethod
    def _not_too_often(cls, value: str) -> str:
        """At least 10s."""
        if checks.duration_seconds(value) < 10:
            raise ValueError(f"{value!r} is too often: the interval is at least 10s")
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
        """The value behind a reference, or None when no secrets file was loaded."""
        value = self._secrets.get(ref.secret)
        return value.get_secret_value() if value is not None else None
