"""The lab's own tests check a lab as `picl lab up` builds it, so they use one of their own:
the session's `lab` is shared with end-to-end tests that change its nodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Lab, running_lab, session_lab_name


@pytest.fixture(scope="package")
def lab(lab_host: None) -> Iterator[Lab]:
    """A fresh lab of the repository's cluster.toml for tests/lab (overrides the session's)."""
    with running_lab(session_lab_name("lab")) as fresh:
        yield fresh
