"""Exit codes, as Terraform's (and 130 for Ctrl-C, as a shell reports it): scripts and CI rely
on them."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0  # success, or no changes
    ERROR = 1  # invalid input, or a node failed
    CHANGES = 2  # plan --detailed-exitcode: changes pending
    INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT): 128 + the signal's number


# What each code means, as the reference lists them.
MEANINGS = {
    ExitStatus.OK: "success, or no changes",
    ExitStatus.ERROR: "an error: invalid input, a node that failed or could not be reached, "
                      "a check that FAILs",
    ExitStatus.CHANGES: "changes pending (`plan --detailed-exitcode` only)",
    ExitStatus.INTERRUPTED: "stopped by Ctrl-C (SIGINT); the `leds` animations, which run "
                            "until Ctrl-C, end with 0",
}
