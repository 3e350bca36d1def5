"""The unit tiers' promise (tests/unit, tests/streams), kept by a fixture each of their conftests
imports: no process, no network socket, no name lookup. A test that needs one belongs in
tests/integration."""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Any

import pytest


class TierViolation(BaseException):
    """A unit test reached for the network or a process: it belongs in tests/integration.

    A BaseException, so that no ``except Exception`` in the code under test can swallow it
    and let the test pass (one did: check's "Kafka unreachable" answer)."""


@pytest.fixture(autouse=True)
def no_socket_or_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests start no process and open no network socket (asyncio's own self-pipe, a
    socketpair, is allowed): the tier's promise, kept by the tier itself."""

    def refuse(what: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise TierViolation(f"a unit test may not {what}")

        return refused

    for name in ("bind", "connect", "connect_ex"):
        original = getattr(socket.socket, name)

        def guarded(self: socket.socket, *args: Any, _o: Any = original, _n: str = name) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise TierViolation(f"a unit test may not {_n} a network socket")
            return _o(self, *args)

        monkeypatch.setattr(socket.socket, name, guarded)
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("start a process"))
    monkeypatch.setattr(os, "fork", refuse("fork"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("resolve a host name"))
