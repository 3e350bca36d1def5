"""``billstream sandbox NAME`` as a child process, with its admin API at hand.

``SandboxProcess`` starts a sandbox with ``--port 0`` under the interpreter that runs us,
reads the one JSON line the sandbox prints when it is ready (its ``url`` and
``credentials``, plus what each sandbox adds), talks to its admin endpoints and stops it.
Each sandbox's wrapper subclasses it with its own admin calls.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Self

import httpx

from adapters.processes import die_with_parent

REPO_ROOT = Path(__file__).resolve().parent.parent


class SandboxError(RuntimeError):
    """The sandbox process did not start or answer as expected."""


class SandboxProcess:
    """``billstream sandbox <name>`` as a child process, with its admin API at hand."""

    name: ClassVar[str]
    admin_prefix: ClassVar[str]

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        log_path: Path | None = None,
        ready_timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self._log: IO[bytes] | None = None
        self._http: httpx.Client | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.proc

    @property
    def url(self) -> str:
        return str(self.ready["url"])

    @property
    def credentials(self) -> dict[str, Any]:
        return dict(self.ready["credentials"])

    @property
    def admin_base(self) -> str:
        """What ``admin_prefix`` is relative to (the API root for most sandboxes)."""
        return self.url

    def start(self) -> Self:
        cmd = [sys.executable, "-m", "streams.cli", "sandbox", self.name, "--port", "0"]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*cmd, *self.args],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.DEVNULL,
            env={**os.environ, **self.extra_env, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # a Ctrl-C meant for the demo is ours to pass on
            preexec_fn=die_with_parent,
        )
        try:
            self.ready = self._read_ready_line()
        except BaseException:
            self.stop()
            raise
        self._http = httpx.Client(base_url=self.admin_base.rstrip("/") + "/", timeout=30.0)
        return self

    def _read_ready_line(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SandboxError(
                        f"the {self.name} sandbox gave no ready line in {self.ready_timeout}s"
                        f"{self._log_hint()}"
                    )
                if not selector.select(timeout=min(left, 0.5)):
                    if self.proc.poll() is not None:
                        raise self._exited()
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise self._exited()
                buffer += chunk
        line = buffer.split(b"\n", 1)[0]
        try:
            ready = json.loads(line)
        except ValueError as exc:
            raise SandboxError(
                f"the {self.name} sandbox's ready line is not JSON: {line[:200]!r}"
            ) from exc
        if not isinstance(ready, dict) or "url" not in ready or "credentials" not in ready:
            raise SandboxError(f"unexpected ready line from the {self.name} sandbox: {ready!r}")
        return ready

    def _exited(self) -> SandboxError:
        code = self.proc.returncode if self.proc else None
        return SandboxError(
            f"the {self.name} sandbox exited with {code} before it was ready{self._log_hint()}"
        )

    def _log_hint(self) -> str:
        return f" (see {self.log_path})" if self.log_path else ""

    def admin(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        if self._http is None:
            raise SandboxError(f"the {self.name} sandbox is not running")
        resp = self._http.request(
            method,
            f"{self.admin_prefix.strip('/')}/{path.lstrip('/')}",
            json=dict(body) if body is not None else None,
        )
        if resp.status_code >= 400:
            raise SandboxError(f"admin {method} {path}: HTTP {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it hangs; returns the exit code."""
        if self._http is not None:
            self._http.close()
            self._http = None
        code = None
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
            code = proc.returncode
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> Self:
        return self.start() if self.proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
