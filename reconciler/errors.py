"""What went wrong in a cycle, typed by what the agent does next (as Flux types its errors).

- `Stalled`: this revision can never work (a bad spec, a failed signature check, rewritten
  history). Nothing is applied; the agent waits for a new commit.
- `Waiting`: something outside may get better by itself (a node down, the upstream out of
  reach, another apply holding the lock). The agent retries with backoff.
- Anything else is a bug or a surprise: logged with its traceback, retried with backoff.
"""

from __future__ import annotations


class ReconcileError(Exception):
    """A cycle could not finish; `reason` is one CamelCase word, `message` says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class Stalled(ReconcileError):
    """This revision cannot be applied: wait for a new commit, keep the last good state."""

    def __init__(self, reason: str, message: str, revision: str | None = None):
        super().__init__(reason, message)
        self.revision = revision


class Waiting(ReconcileError):
    """Not now: retry later, with backoff."""
