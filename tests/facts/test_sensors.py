"""The sensors the node's one read takes for the agent's metrics, as data: what boards print."""

from __future__ import annotations

import pytest

from picl.deploy.metrics import TEMPERATURE, THROTTLED, sensors
from picl.facts.node import Observed


@pytest.mark.parametrize(("kernel", "expected"), [
    ({TEMPERATURE: ["48312"], THROTTLED: ["0"]}, (48.312, 0)),  # a Pi 4, cool
    ({TEMPERATURE: ["61000"], THROTTLED: ["50005"]}, (61.0, 0x50005)),  # under-voltage now
    ({TEMPERATURE: ["-1200"]}, (-1.2, None)),  # a board without the Pi's firmware
    ({}, (None, None)),  # a container: no thermal zone
    ({TEMPERATURE: ["garbage"], THROTTLED: ["zz"]}, (None, None)),
])
def test_sensors(kernel: dict[str, list[str]], expected: tuple[float | None, int | None]) -> None:
    assert sensors(Observed(kernel=kernel)) == expected
