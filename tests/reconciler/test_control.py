"""The requests people leave for the agent, as the shell text the CLI runs, read back."""

from __future__ import annotations

import subprocess
from pathlib import Path

from picl.reconciler import control


def sh(script: str) -> None:
    subprocess.run(["sh", "-c", script], check=True)


def test_suspend_and_resume(tmp_path: Path) -> None:
    directory = tmp_path / "control"
    assert control.suspension(directory) is None
    sh(control.suspend_command(directory, "federico@laptop", now=1_800_000_000.0))
    assert control.suspension(directory) == ("federico@laptop", 1_800_000_000.0)
    sh(control.resume_command(directory))
    assert control.suspension(directory) is None
    sh(control.resume_command(directory))  # resuming twice is fine


def test_a_damaged_suspension_still_pauses(tmp_path: Path) -> None:
    tmp_path.joinpath("suspended").write_text("{not json")
    assert control.suspension(tmp_path) is not None


def test_a_reconcile_request_is_taken_once(tmp_path: Path) -> None:
    directory = tmp_path / "control"
    assert not control.take_reconcile_request(directory)
    sh(control.reconcile_command(directory))
    assert control.take_reconcile_request(directory)
    assert not control.take_reconcile_request(directory)


def test_awkward_paths_are_quoted(tmp_path: Path) -> None:
    directory = tmp_path / "it's here" / "control"
    sh(control.suspend_command(directory, "o'neil"))
    assert control.suspension(directory)[0] == "o'neil"  # type: ignore[index]
