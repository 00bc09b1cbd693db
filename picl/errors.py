"""Errors picl raises. Deep code only raises; the CLI turns them into messages and exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class PiclError(Exception):
    """A problem the user can act on: shown as one line (per problem), exit 1, no traceback."""

    def lines(self) -> list[str]:
        return [str(self)]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, located as `FILE:LINE:COL: key.path: message`."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(PiclError):
    """The spec (cluster.toml or secrets.toml) cannot be used; every problem at once."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]
