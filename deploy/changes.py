"""What a plan is made of: per node, per resource, a change and the steps that make it.

A `Change` is both what the plan shows (action, attributes before -> after, a file diff) and
what apply runs (its `steps`, pyinfra operations). Keeping them in one value is how the plan
cannot lie: apply runs exactly the steps of the changes the plan listed, nothing else.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

Action = Literal["create", "update", "remove"]
Operation = TypeVar("Operation", bound=Callable[..., Any])
SENSITIVE = "(sensitive)"


@dataclass(frozen=True)
class Attribute:
    name: str
    before: Any
    after: Any
    sensitive: bool = False

    def shown(self) -> tuple[str, str]:
        """(before, after) as the plan prints them: secrets never shown."""
        if self.sensitive:
            return SENSITIVE, SENSITIVE
        return _show(self.before), _show(self.after)


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return "[" + ", ".join(str(v) for v in items) + "]"
    return str(value)


def operation(is_idempotent: bool = True) -> Callable[[Operation], Operation]:
    """Declare a generator as a pyinfra operation, as `pyinfra.api.operation` does, without
    loading pyinfra: deploy.converge makes it one where apply runs it, so a process that only
    plans (the agent, between applies) never holds pyinfra's 30 MiB. `op._inner` is the
    generator itself, for `yield from other._inner(...)` as with pyinfra's own operations."""

    def declare(function: Operation) -> Operation:
        function.is_idempotent = is_idempotent  # type: ignore[attr-defined]
        function._inner = function  # type: ignore[attr-defined]
        return function

    return declare


@dataclass(frozen=True)
class Step:
    """One operation call: `operation(**arguments)`, an operation declared with `operation`."""

    operation: Callable[..., Any]
    arguments: dict[str, Any] = field(default_factory=dict)
    # How the node's words about a failure are shown, for a step whose command's errors may
    # quote a credential (a mount's source); None: as they are.
    shown: Callable[[str], str] | None = None

    @property
    def name(self) -> str:
        module = getattr(self.operation, "__module__", "").rsplit(".", 1)[-1]
        return f"{module}.{getattr(self.operation, '__name__', repr(self.operation))}"


@dataclass(frozen=True)
class Guard:
    """How to undo a change that can cut picl off the node (see deploy.confirm).

    Its steps run under a dead-man switch: the node saves `files` and, unless picl confirms
    over a new SSH connection in time, puts them back and runs `restore`. `capture` runs when
    the switch is armed, to note what to come back to; both run in the switch's directory.
    """

    files: tuple[str, ...] = ()  # restored byte for byte, or removed if they did not exist
    capture: tuple[str, ...] = ()  # shell commands
    restore: tuple[str, ...] = ()  # shell commands, each allowed to fail

    def __add__(self, other: Guard) -> Guard:
        def both(mine: tuple[str, ...], theirs: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(dict.fromkeys(mine + theirs))

        return Guard(both(self.files, other.files), both(self.capture, other.capture),
                     both(self.restore, other.restore))


@dataclass(frozen=True)
class Change:
    resource: str  # in the cluster's words: "user federico", "file /etc/motd", "hosts"
    action: Action
    attributes: tuple[Attribute, ...] = ()
    diff: str = ""  # unified diff of a file's content, when it has one
    steps: tuple[Step, ...] = ()
    sensitive: bool = False  # the content is a secret: no diff is ever shown
    # Why apply will not make this change (a foreign fstab line in the way): shown in the plan,
    # and the node fails at apply once its other changes are made.
    blocked: str = ""
    guard: Guard | None = None  # its steps can cut picl off: confirm-or-revert


def attributes(before: dict[str, Any], after: dict[str, Any],
               sensitive: Iterable[str] = ()) -> tuple[Attribute, ...]:
    """The attributes whose values differ, in the order of `after`."""
    hidden = set(sensitive)
    return tuple(
        Attribute(name, before.get(name), value, name in hidden)
        for name, value in after.items()
        if before.get(name) != value
    )


def text_diff(path: str, before: str | None, after: str | None) -> str:
    """A unified diff between two versions of a file's text."""
    lines = difflib.unified_diff(
        (before or "").splitlines(keepends=True),
        (after or "").splitlines(keepends=True),
        fromfile=f"{path} (node)" if before is not None else "/dev/null",
        tofile=f"{path} (spec)" if after is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


# A block of lines picl owns inside a file others edit too (/etc/hosts, authorized_keys).
BEGIN = "# BEGIN picl: managed by picl from cluster.toml; edit the spec, not this block"
END = "# END picl"


def block_lines(text: str | None) -> list[str] | None:
    """The lines of picl's block, or None when the file has none."""
    if text is None:
        return None
    lines = text.splitlines()
    if BEGIN not in lines:
        return None
    start = lines.index(BEGIN) + 1
    end = lines.index(END, start) if END in lines[start:] else len(lines)
    return lines[start:end]


def with_block(text: str | None, body: list[str]) -> str:
    """`text` with picl's block set to `body`; every line outside the block is kept."""
    lines = (text or "").splitlines()
    block = [BEGIN, *body, END]
    if BEGIN in lines:
        start = lines.index(BEGIN)
        end = lines.index(END, start) + 1 if END in lines[start:] else len(lines)
        lines[start:end] = block
    else:
        lines += block
    return "\n".join(lines) + "\n"


@dataclass
class NodePlan:
    """Everything that would change on one node, or why it could not be planned."""

    node: str
    changes: list[Change] = field(default_factory=list)
    error: str | None = None  # unreachable, or its state could not be read

    @property
    def blocked(self) -> list[Change]:
        return [c for c in self.changes if c.blocked]

    @property
    def counts(self) -> dict[Action, int]:
        counts: dict[Action, int] = {"create": 0, "update": 0, "remove": 0}
        for change in self.changes:
            if not change.blocked:
                counts[change.action] += 1
        return counts
