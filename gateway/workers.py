"""``--workers W``: W gateway processes on one listening socket, each a full GatewayServer.

uvicorn's own multi-process supervisor runs plain ``uvicorn.Server`` workers, which would
lose the drain (they close every WebSocket with 1012 at once). So this small pre-fork binds
the socket once, spawns W processes that each run ``target`` (a GatewayServer) on it, and
forwards SIGTERM/SIGINT to them: every worker drains as a single-process gateway does. The
workers get their own process group, so a terminal's Ctrl-C reaches them once, through the
parent, not twice (a second signal would cut the drain short). Worker ``i`` is named
``<node>-w<i>``. When a worker fails, the others are stopped and the exit code is the failure's.

Metrics: a scrape of the shared port reaches one worker at random, so the workers run in
prometheus_client's multiprocess mode (gateway.telemetry): each writes its metrics to files
in a folder of this gateway's own, made fresh at start (so no dead run's counts leak in) and
removed at exit, named by ``PROMETHEUS_MULTIPROC_DIR`` — prometheus_client picks the mode
from that variable when it is imported, so the workers inherit it from this process.

Signal handlers only record the signal; the loop below, woken through the wakeup fd,
forwards it (``os.kill`` from inside a handler could run between any two bytecodes).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from services.lifecycle import configure_logging
from services.settings import GatewaySettings

log = logging.getLogger(__name__)

Target = Callable[[GatewaySettings, list[socket.socket]], int]
SIGNALS = (signal.SIGINT, signal.SIGTERM)
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable


def _worker(target: Target, settings: GatewaySettings, sock: socket.socket, level: int) -> None:
    os.setpgrp()
    configure_logging("tickwire-gateway", logging.getLevelName(level))
    raise SystemExit(target(settings, [sock]))


@contextmanager
def _metrics_dir() -> Iterator[str]:
    """A fresh folder for the workers' metric files, in the environment they inherit."""
    before = os.environ.get(MULTIPROC_DIR)
    with tempfile.TemporaryDirectory(prefix="tickwire-gateway-metrics-") as folder:
        os.environ[MULTIPROC_DIR] = folder
        try:
            yield folder
        finally:
            if before is None:
                os.environ.pop(MULTIPROC_DIR, None)
            else:
                os.environ[MULTIPROC_DIR] = before


@contextmanager
def _signals_recorded() -> Iterator[tuple[list[int], socket.socket]]:
    """SIGINT/SIGTERM appended to a list; the returned socket turns readable on each."""
    received: list[int] = []

    def record(sig: int, frame: FrameType | None) -> None:
        received.append(sig)

    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    old_fd = signal.set_wakeup_fd(wake_write.fileno())
    originals = {sig: signal.signal(sig, record) for sig in SIGNALS}
    try:
        yield received, wake_read
    finally:
        for sig, handler in originals.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(old_fd)
        wake_read.close()
        wake_write.close()


def run_workers(settings: GatewaySettings, workers: int, target: Target) -> int:
    """Run ``workers`` processes until they have all stopped; return the exit code."""
    sock = socket.create_server((settings.host, settings.port))  # SO_REUSEADDR, as uvicorn binds
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().level
    code = 0
    with _metrics_dir() as folder, _signals_recorded() as (received, wake):
        procs: list[BaseProcess] = [
            context.Process(target=_worker, name=f"gateway-w{i}",
                            args=(target, settings.model_copy(update={"node": f"{settings.node}-w{i}",
                                                                      "metrics_dir": folder}), sock, level))
            for i in range(workers)
        ]

        def forward(sig: int) -> None:
            for proc in procs:
                if proc.pid is not None and proc.exitcode is None:
                    os.kill(proc.pid, sig)

        stopping = False
        try:
            for proc in procs:
                proc.start()
            log.info("gateway: %d workers on %s:%d, metrics in %s", workers, settings.host, settings.port, folder)
            running = {proc.sentinel: proc for proc in procs}
            while running:
                for ready in wait([*running, wake]):
                    if ready is wake:
                        while True:  # the wakeup fd holds one byte per signal
                            try:
                                wake.recv(512)
                            except BlockingIOError:
                                break
                        continue
                    assert isinstance(ready, int)
                    proc = running.pop(ready)
                    proc.join()
                    assert proc.pid is not None
                    mark_process_dead(proc.pid, folder)  # type: ignore[no-untyped-call]  # its live gauges leave the sums
                    if proc.exitcode and not code:
                        code = proc.exitcode if proc.exitcode > 0 else 1
                        if not stopping:
                            log.error("gateway: worker %s exited with %s: stopping the others",
                                      proc.name, proc.exitcode)
                            stopping = True
                            forward(signal.SIGTERM)
                while received:
                    stopping = True
                    forward(received.pop(0))
        finally:
            sock.close()
    return code
