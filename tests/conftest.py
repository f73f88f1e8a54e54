"""Fixtures shared by every test module."""

from http_fixture import http_server  # noqa: F401 - the loopback HTTP server fixture
