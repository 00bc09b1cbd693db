"""Node names and outputs folded for a person to read, as `clush -b` shows them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from picl.transport.remote import Reply


def node_set(names: Iterable[str]) -> str:
    """Node names folded as clush does: node0 node1 node2 node5 -> node[0-2,5]."""
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    plain: list[str] = []
    for name in names:
        match = re.fullmatch(r"(.*?)(\d+)(\D*)", name)
        if match:
            prefix, digits, suffix = match.groups()
            groups.setdefault((prefix, suffix), []).append((int(digits), digits))
        else:
            plain.append(name)
    folded = []
    for (prefix, suffix), numbers in groups.items():
        numbers = sorted(set(numbers))
        if len(numbers) == 1:
            folded.append(f"{prefix}{numbers[0][1]}{suffix}")
            continue
        ranges: list[list[tuple[int, str]]] = []
        for number in numbers:
            if ranges and ranges[-1][-1][0] + 1 == number[0] and _fits(ranges[-1][0][1], number[1]):
                ranges[-1].append(number)
            else:
                ranges.append([number])
        parts = [r[0][1] if len(r) == 1 else f"{r[0][1]}-{r[-1][1]}" for r in ranges]
        folded.append(f"{prefix}[{','.join(parts)}]{suffix}")
    return ",".join(folded + plain)


def _fits(first: str, digits: str) -> bool:
    """Whether `digits` can share a range starting at `first`: node[08-10], node[8-10]."""
    padded = len(first) > 1 and first.startswith("0")
    return len(digits) == len(first) if padded else not digits.startswith("0") or digits == "0"


def folded(replies: Iterable[Reply]) -> list[tuple[list[str], str]]:
    """Nodes with the same output grouped: (node names, output), in the order first seen."""
    groups: dict[str, list[str]] = {}
    for reply in replies:
        groups.setdefault(reply.output(), []).append(reply.node)
    return [(nodes, output) for output, nodes in groups.items()]
