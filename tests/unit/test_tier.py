"""The unit tier refuses the network and processes, so a test that needs them cannot hide here."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from tests.tiers import TierViolation


def test_a_network_socket_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(TierViolation):
        sock.connect(("127.0.0.1", 9))


def test_a_process_is_refused() -> None:
    with pytest.raises(TierViolation):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_asyncio_still_runs() -> None:
    # The event loop's self-pipe is a socketpair, which stays allowed.
    assert asyncio.run(asyncio.sleep(0, result=7)) == 7
