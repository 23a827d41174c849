"""``tickwire bench``: run the chosen scenarios over the chosen systems, store JSON, report.

Everything it starts is stopped by PID in ``finally`` blocks (Ctrl-C included); results go
to ``bench-results/<time>.json`` and ``bench-results/latest.json``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import report, scenarios, streaming
from bench.pool import CLIENTS, ensure_node_client
from bench.processes import ROOT, machine, raise_nofile
from bench.systems import SYSTEMS

log = logging.getLogger("tickwire.bench")

RESULTS = ROOT / "bench-results"
SCENARIOS = ("broadcast", "selective", "many", "browser", "idle", "failover", "ingest", "tracing")


@dataclass
class Options:
    """What to run. ``rates`` is the broadcast sweep; ``selective_rates`` the selective one
    (each client 10 symbols of 100, so a client gets a tenth of the rate); ``many``
    broadcasts ``many_rate`` to ``many_clients``; ``browser`` broadcasts ``browser_rates`` to
    ``clients`` connections of headless Chromium pages."""

    scenarios: tuple[str, ...] = SCENARIOS
    systems: tuple[str, ...] = SYSTEMS
    client: str = "node"  # the load client of the streaming scenarios (failover and idle: python)
    clients: int = 100
    rates: tuple[float, ...] = (100, 250, 500, 1000, 2000, 3000, 5000, 10000)
    selective_rates: tuple[float, ...] = (20000,)
    many_clients: int = 1_000
    many_rate: float = 100.0
    browser_rates: tuple[float, ...] = (500, 2000)
    duration: float = 8.0
    idle_connections: int = 10_000
    failover_clients: int = 1_000
    ingest_entries: int = 200_000
    procs: int = 2
    command: str = ""
    results_dir: Path = field(default=RESULTS)

    @classmethod
    def quick(cls) -> Options:
        return cls(scenarios=("broadcast",), clients=20, rates=(200, 1000), selective_rates=(2000,),
                   many_clients=200, many_rate=50.0, browser_rates=(200,), duration=3.0, idle_connections=500,
                   failover_clients=100, ingest_entries=20_000)


async def run(options: Options) -> dict[str, Any]:
    # SIGTERM, and SIGINT even when the shell started us with it ignored (a background job),
    # cancel the run so every ``finally`` stops its children by PID.
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
    try:
        return await _run(options)
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def _run(options: Options) -> dict[str, Any]:
    if options.client not in CLIENTS:
        raise ValueError(f"client {options.client!r} not among {CLIENTS}")
    if options.client == "node" and {"broadcast", "selective", "many", "tracing"} & set(options.scenarios):
        await asyncio.to_thread(ensure_node_client)
    raise_nofile()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log_dir = Path(tempfile.mkdtemp(prefix="tickwire-bench-"))
    result: dict[str, Any] = {"command": options.command, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "machine": machine(), "options": {
                                  "client": options.client, "clients": options.clients,
                                  "rates": list(options.rates), "selective_rates": list(options.selective_rates),
                                  "many_clients": options.many_clients, "many_rate": options.many_rate,
                                  "browser_rates": list(options.browser_rates),
                                  "duration": options.duration, "procs": options.procs,
                                  "idle_connections": options.idle_connections,
                                  "failover_clients": options.failover_clients,
                                  "ingest_entries": options.ingest_entries}}
    started = time.monotonic()
    try:
        # One sweep per scenario: (rates, clients, selective, load client).
        sweeps = {"broadcast": (options.rates, options.clients, False, options.client),
                  "selective": (options.selective_rates, options.clients, True, options.client),
                  "many": ((options.many_rate,), options.many_clients, False, options.client),
                  "browser": (options.browser_rates, options.clients, False, "browser")}
        for name, (rates, clients, selective, client) in sweeps.items():
            if name in options.scenarios:
                result[name] = await streaming.sweep(options.systems, list(rates), clients, options.duration,
                                                     selective, log_dir, options.procs, client, label=name)
        if "idle" in options.scenarios:
            result["idle"] = [await scenarios.idle(s, options.idle_connections, log_dir, max(options.procs, 4))
                              for s in options.systems]
        if "failover" in options.scenarios:
            result["failover"] = await scenarios.failover(options.failover_clients, 20.0, log_dir,
                                                          max(options.procs, 2))
        if "ingest" in options.scenarios:
            result["ingest"] = [await scenarios.ingest(options.ingest_entries, n, log_dir) for n in (1, 2)]
        if "tracing" in options.scenarios:
            rate = 1000.0 if options.clients >= 50 else 500.0
            result["tracing"] = await scenarios.tracing(rate, options.clients, options.duration, log_dir,
                                                        options.procs, options.client)
    except BaseException:
        log.error("bench stopped early; child logs kept in %s", log_dir)
        raise
    result["elapsed_seconds"] = round(time.monotonic() - started, 1)
    shutil.rmtree(log_dir, ignore_errors=True)
    options.results_dir.mkdir(parents=True, exist_ok=True)
    blob = orjson.dumps(result, option=orjson.OPT_INDENT_2)
    (options.results_dir / time.strftime("%Y%m%d-%H%M%S.json")).write_bytes(blob)
    (options.results_dir / "latest.json").write_bytes(blob)
    return result


def main(options: Options, report_only: bool) -> int:
    if report_only:
        latest = options.results_dir / "latest.json"
        if not latest.exists():
            log.error("no results in %s: run `tickwire bench` first", options.results_dir)
            return 1
        data = orjson.loads(latest.read_bytes())
        report.write_docs(data, ROOT / "docs")
        report.emit(report.tables(data))
        return 0
    try:
        data = asyncio.run(run(options))
    except asyncio.CancelledError:
        log.error("bench interrupted: every process it started has been stopped")
        return 130
    report.emit(report.tables(data))
    return 0
