"""What `lab up` is asked to flash on each node's card: a release and an architecture."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from picl.errors import PiclError
from picl.lab import pios
from picl.lab.blueprint import Blueprint


@dataclass(frozen=True)
class Cards:
    """What `lab up` is asked to flash: a release and an architecture for all nodes or some,
    and which nodes boot as virtual machines (`vm`: all of them; `vms`: these).

    What is not asked for stays as it is on a node already made, else is the default (bookworm,
    this machine's architecture, a container).
    """

    release: str | None = None
    releases: dict[str, str] = field(default_factory=dict)
    arch: str | None = None
    arches: dict[str, str] = field(default_factory=dict)
    vm: bool = False
    vms: frozenset[str] = frozenset()

    @classmethod
    def parse(
        cls,
        os_options: Sequence[str] = (),
        arch_options: Sequence[str] = (),
        vm_options: Sequence[str] = (),
    ) -> Cards:
        """From `--os RELEASE|NODE=RELEASE`, `--arch ARCH|NODE=ARCH` and `--vm [NODE]` options
        (an empty `--vm` value: every node)."""
        release, releases = _per_node("--os", os_options, pios.release)
        arch, arches = _per_node("--arch", arch_options, pios.check_arch)
        every = "" in vm_options
        return cls(release, releases, arch, arches, every, frozenset(v for v in vm_options if v))

    def machines(self, names: Sequence[str], built: Blueprint | None) -> set[str]:
        """The nodes that boot as virtual machines: those asked for, and those that were."""
        unknown = sorted(self.vms - set(names))
        if unknown:
            raise PiclError(
                f"--vm: no node {', '.join(unknown)} in the spec (its nodes: {', '.join(names)})"
            )
        was = {n.name for n in built.nodes if n.vm} if built else set()
        return set(names) if self.vm else (set(self.vms) | was) & set(names)

    def choose(self, names: Sequence[str], built: Blueprint | None) -> dict[str, tuple[str, str]]:
        """{node: (release, arch)} for the spec's nodes; a PiclError for a node it has not."""
        unknown = sorted((set(self.releases) | set(self.arches)) - set(names))
        if unknown:
            raise PiclError(
                f"no node {', '.join(unknown)} in the spec (its nodes: {', '.join(names)})"
            )
        was = {n.name: (n.release, n.arch) for n in built.nodes} if built else {}
        chosen = {}
        for name in names:
            release, arch = was.get(name, (pios.DEFAULT, pios.native_arch()))
            chosen[name] = (
                self.releases.get(name) or self.release or release,
                self.arches.get(name) or self.arch or arch,
            )
        return chosen


def _per_node(
    option: str, values: Sequence[str], check: Callable[[str], object]
) -> tuple[str | None, dict[str, str]]:
    every, per_node = None, {}
    for value in values:
        node_name, _, chosen = value.rpartition("=")
        if not chosen:
            raise PiclError(f"{option} {value!r}: expected VALUE or NODE=VALUE")
        check(chosen)
        if node_name:
            per_node[node_name] = chosen
        else:
            every = chosen
    return every, per_node

