"""``--workers W``: W gateway processes on one listening socket, each a full GatewayServer.

uvicorn's own multi-process supervisor runs plain ``uvicorn.Server`` workers, which would
lose the drain (they close every WebSocket with 1012 at once). So this small pre-fork binds
the socket once, spawns W processes that each run ``target`` (a GatewayServer) on it, and
forwards SIGTERM/SIGINT to them: every worker drains as a single-process gateway does. The
workers get their own process group, so a terminal's Ctrl-C reaches them once, through the
parent, not twice (a second signal would cut the drain short). Worker ``i`` is named
``<node>-w<i>``. When a worker fails, the others are stopped and the exit code is the failure's.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from services.lifecycle import configure_logging
from services.settings import GatewaySettings

log = logging.getLogger(__name__)

Target = Callable[[GatewaySettings, list[socket.socket]], int]
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _worker(target: Target, settings: GatewaySettings, sock: socket.socket, level: int) -> None:
    os.setpgrp()
    configure_logging("tickwire-gateway", logging.getLevelName(level))
    raise SystemExit(target(settings, [sock]))


def run_workers(settings: GatewaySettings, workers: int, target: Target) -> int:
    """Run ``workers`` processes until they have all stopped; return the exit code."""
    sock = socket.create_server((settings.host, settings.port))  # SO_REUSEADDR, as uvicorn binds
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().level
    procs: list[BaseProcess] = [
        context.Process(target=_worker, name=f"gateway-w{i}",
                        args=(target, replace(settings, node=f"{settings.node}-w{i}"), sock, level))
        for i in range(workers)
    ]
    stopping = False

    def forward(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.pid is not None:
                os.kill(proc.pid, sig)

    originals = {sig: signal.signal(sig, forward) for sig in SIGNALS}
    code = 0
    try:
        for proc in procs:
            proc.start()
        log.info("gateway: %d workers on %s:%d", workers, settings.host, settings.port)
        running = {proc.sentinel: proc for proc in procs}
        while running:
            for sentinel in wait(list(running)):
                assert isinstance(sentinel, int)
                proc = running.pop(sentinel)
                proc.join()
                if proc.exitcode and not code:
                    code = proc.exitcode if proc.exitcode > 0 else 1
                    if not stopping:
                        log.error("gateway: worker %s exited with %s: stopping the others", proc.name, proc.exitcode)
                        forward(signal.SIGTERM, None)
    finally:
        for sig, handler in originals.items():
            signal.signal(sig, handler)
        sock.close()
    return code
