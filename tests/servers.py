"""Real Redis and NATS (JetStream) server processes for tests, on free ports.

Each ``Server`` keeps its port and data folder, so a fault test can kill it and start it
again where it was. Processes are stopped by PID.
"""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tickwire.localservers import free_port, nats_argv, redis_argv, wait_for_port


@dataclass
class Server:
    """One server process on a fixed port; ``kill``/``start`` keep the port and data."""

    name: str
    argv: list[str]
    port: int
    workdir: Path
    scheme: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.workdir / f"{self.name}.log", "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        proc = self.proc
        wait_for_port(self.port, alive=lambda: proc.poll() is None)

    def send(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def restart(self) -> None:
        self.kill()
        self.start()


def redis_server(workdir: Path, port: int | None = None) -> Server:
    port = port or free_port()
    return Server("redis", redis_argv(port, workdir), port, workdir, "redis")


def nats_server(workdir: Path, port: int | None = None) -> Server:
    port = port or free_port()
    return Server("nats", nats_argv(port, workdir), port, workdir, "nats")
