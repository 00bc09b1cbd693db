"""Exit codes, as Terraform's: scripts and CI rely on them."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0  # success, or no changes
    ERROR = 1  # invalid input, or a node failed
    CHANGES = 2  # plan --detailed-exitcode: changes pending
