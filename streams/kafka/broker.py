"""The embedded Kafka-protocol broker: the pinned ``noida-db`` binary, run by PID.

We start the binary itself, never its Python wrapper: SIGTERM to the wrapper orphans the
broker (reference/brokers.md). The child also gets PR_SET_PDEATHSIG so that it dies with us
even when we are SIGKILLed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import subprocess
from pathlib import Path
from types import TracebackType

from adapters.processes import die_with_parent, free_port, wait_for_port

log = logging.getLogger("billstream.kafka")

SNAPSHOT = "kafka.json"  # noida-db's whole log, rewritten in full at every save
# Measured on a 2-CPU machine (README, "The embedded broker's ceiling"): past a snapshot of
# this size each save rewrites more than the broker stores between two saves, and its
# memory heads for 1 GB. Apache Kafka has no such ceiling.
EMBEDDED_LOG_LIMIT_BYTES = 500_000_000
EMBEDDED_LOG_WARN_FRACTION = 0.8


def embedded_log_bytes(data_dir: Path) -> int:
    """The size of the embedded broker's snapshot under ``data_dir`` (0 before the first)."""
    try:
        return (Path(data_dir) / SNAPSHOT).stat().st_size
    except OSError:
        return 0


def embedded_log_warning(data_dir: Path) -> str | None:
    """What to tell an operator whose embedded log nears its ceiling, or None."""
    size = embedded_log_bytes(data_dir)
    if size < EMBEDDED_LOG_LIMIT_BYTES * EMBEDDED_LOG_WARN_FRACTION:
        return None
    share = size / EMBEDDED_LOG_LIMIT_BYTES
    return (
        f"the embedded broker's log is {size / 1e6:,.0f} MB, {share:.0%} of what it holds "
        f"well ({EMBEDDED_LOG_LIMIT_BYTES / 1e6:,.0f} MB): move to Apache Kafka "
        "(docker compose up, or BILLSTREAM_KAFKA_URL)"
    )


def noida_binary() -> Path:
    import noida_db

    binary = Path(noida_db.__file__).parent / "noida-db"
    if not binary.exists():
        raise RuntimeError(f"noida-db binary not found at {binary}; reinstall noida-db==0.2.3")
    mode = binary.stat().st_mode
    if not mode & stat.S_IXUSR:
        binary.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


class EmbeddedBroker:
    """A noida-db Kafka broker on a loopback port, its data under ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def running_pid(data_dir: Path) -> int | None:
        """The pid of a live broker on ``data_dir`` (from its pid file), if there is one."""
        try:
            pid = int((Path(data_dir) / "broker.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if is_alive(pid) else None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A save cut short (SIGKILL, power) leaves its temporary file beside the last whole
        # snapshot; only the whole one may be read, and the torn one only wastes the disk.
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "kafka.tmp").unlink()
        warning = embedded_log_warning(self.data_dir)
        if warning:
            log.warning("%s", warning)
        out = open(self.data_dir / "broker.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                str(noida_binary()),
                "start",
                "--only",
                "kafka",
                "--kafka-port",
                str(self.port),
                "--data-dir",
                str(self.data_dir.resolve()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        out.close()
        (self.data_dir / "broker.pid").write_text(f"{self.proc.pid}\n")
        wait_for_port(self.host, self.port, timeout, self.proc, "embedded broker")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the broker saves its snapshot), then SIGKILL if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "broker.pid").unlink()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def bootstrap_of(kafka_url: str) -> str:
    """``kafka://h1:p1;h2:p2`` (Faust style) to aiokafka's ``h1:p1,h2:p2``."""
    hosts = kafka_url.removeprefix("kafka://").replace(";", ",")
    return ",".join(h.removeprefix("kafka://") for h in hosts.split(","))


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
