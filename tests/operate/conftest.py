"""The spec as data, shared with deploy's tests."""

from tests.deploy.conftest import cluster  # noqa: F401 - a fixture, used by name
