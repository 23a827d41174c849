"""Child processes of the bench: start, measure by PID from /proc, stop by PID.

CPU is read from ``/proc/<pid>/stat`` (utime + stime, and cutime + cstime for servers that
fork helpers) so a run's cost is the delta between two readings; memory from
``/proc/<pid>/status`` (VmRSS now, VmHWM the peak). Each child is a ``tickwire.processes.Process``:
its own session, so a Ctrl-C on the bench reaches only the bench, which stops each child by PID.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from dataclasses import dataclass
from pathlib import Path

from tickwire.localservers import free_port, nats_server_binary, redis_argv
from tickwire.processes import Process

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
TICKWIRE = Path(sys.executable).with_name("tickwire")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of ``pid`` (plus its reaped children's when asked), in seconds; 0 if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may contain spaces: fields start after the last ')'.
    fields = raw.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of proc(5))
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLK_TCK


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc/<pid>/task/*/children), e.g. pre-forked workers."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for children in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                kids = [int(x) for x in children.read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def status_kb(pid: int, key: str) -> int:
    """A ``VmXxx`` line of /proc/<pid>/status in kB (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def raise_nofile(want: int = 65536) -> int:
    """Raise the open-files soft limit towards ``want`` (bounded by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_1m": round(os.getloadavg()[0], 1),  # other work on the machine when the run started
    }


@dataclass
class Child(Process):
    """One process started by the bench; ``children`` counts reaped helpers' CPU too, and
    ``tree`` the CPU and memory of its live descendants (the gateway's ``--workers``)."""

    children: bool = False
    tree: bool = False

    def _pids(self) -> list[int]:
        return [self.pid, *descendants(self.pid)] if self.tree else [self.pid]

    def cpu(self) -> float:
        if self.proc is None:
            return 0.0
        return cpu_seconds(self.pid, self.children) + sum(cpu_seconds(p) for p in self._pids()[1:])

    def memory_kb(self, key: str) -> int:
        """``VmRSS``/``VmHWM`` of the process, summed over its tree when ``tree``."""
        return sum(status_kb(p, key) for p in self._pids()) if self.proc is not None else 0


def _child(name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None, port: int | None = None,
           children: bool = False, tree: bool = False) -> Child:
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    return Child(name, argv, environment, log_dir / f"{name}.log", port, cwd=ROOT, children=children, tree=tree)


def tickwire(name: str, args: list[str], log_dir: Path, env: dict[str, str], port: int | None = None,
             tree: bool = False) -> Child:
    # The console script beside this interpreter: the bench runs services as a user would,
    # whichever module the CLI lives in.
    return _child(name, [str(TICKWIRE), *args], log_dir, env, port, tree=tree)


def python_module(name: str, module: str, args: list[str], log_dir: Path, port: int | None = None,
                  env: dict[str, str] | None = None) -> Child:
    return _child(name, [sys.executable, "-m", module, *args], log_dir, env, port)


def redis(log_dir: Path) -> Child:
    port = free_port()
    data = log_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    # The bench measures throughput, not durability: AOF off keeps Redis from being the bottleneck
    # for every system alike (redis_argv's appendonly is replaced).
    argv = redis_argv(port, data)
    argv[argv.index("--appendonly") + 1] = "no"
    return _child("redis-server", argv, log_dir, port=port, children=True)


def nats(log_dir: Path, name: str = "nats-server", websocket_port: int | None = None) -> Child:
    """nats-server with JetStream; with ``websocket_port`` its WebSocket listener too (no TLS)."""
    port = free_port()
    store = log_dir / name
    store.mkdir(parents=True, exist_ok=True)
    conf = log_dir / f"{name}.conf"
    lines = [f"listen: 127.0.0.1:{port}", f'jetstream {{ store_dir: "{store}" }}']
    if websocket_port is not None:
        # Plain ws:// on loopback: nats-server refuses a websocket block without TLS unless no_tls.
        lines.append(f'websocket {{ listen: "127.0.0.1:{websocket_port}", no_tls: true, compression: false }}')
    conf.write_text("\n".join(lines) + "\n")
    return _child(name, [nats_server_binary(), "-c", str(conf)], log_dir, port=port, children=True)
