"""Debian packages a test needs (prometheus, docker-compose, chromium): installed when
missing, as CI on a fresh machine must; the test is skipped, saying why, only when that is
impossible (not root, no apt-get, no repository)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def ensure_debian(binary: str, package: str) -> str:
    """The path of ``binary``, installing Debian's ``package`` first if it is missing."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{binary} (Debian's {package}) is missing and apt-get cannot run (not root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 and step[1] == "install":
            pytest.skip(f"cannot install Debian's {package}: {done.stderr[-500:]}")
    found = shutil.which(binary)
    if not found:
        pytest.skip(f"apt-get installed {package} but no {binary} is on PATH")
    return found
