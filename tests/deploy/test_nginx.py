"""deploy/nginx.conf, run for real: the shipped file with only its listen port, upstream
servers and file paths rewritten, in front of two stand-in gateways on loopback."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.deploy.project import ROOT
from tickwire.localservers import free_port, wait_for_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
CONF = ROOT / "deploy" / "nginx.conf"
UPSTREAM = Path(__file__).with_name("upstream.py")


def render(conf: str, listen: int, upstreams: list[int], prefix: Path) -> str:
    """The shipped config with loopback ports and every writable path under ``prefix``."""

    def sub(pattern: str, repl: str, text: str) -> str:
        out, n = re.subn(pattern, repl, text, flags=re.M)
        assert n == 1, f"deploy/nginx.conf no longer has exactly one match for {pattern!r}"
        return out

    conf = sub(r"^(\s*)listen\s+8080;", rf"\1listen 127.0.0.1:{listen};", conf)
    # The shipped file names the gateways by DNS (a variable, resolved per request); here the
    # variable names an upstream group of loopback servers instead, which nginx then uses.
    conf = sub(r"^(\s*)default\s+gateway:8080;", r"\1default tickwire_test;", conf)
    servers = "".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;\n" for port in upstreams)
    conf = sub(r"^(\s*)resolver\s+[^;]*;", rf"\1upstream tickwire_test {{\n{servers}    }}", conf)
    conf = sub(r"^pid\s+\S+;", f"pid {prefix}/nginx.pid;", conf)
    conf = sub(r"^error_log\s+\S+", f"error_log {prefix}/error.log", conf)
    conf = sub(r"access_log\s+/dev/stdout;", f"access_log {prefix}/access.log;", conf)
    conf = re.sub(r"/tmp/nginx-", f"{prefix}/nginx-", conf)
    return re.sub(r"^worker_processes\s+\S+;", "worker_processes 2;", conf, flags=re.M)


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    port: int

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def start_upstream(name: str) -> Proc:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(UPSTREAM), name, str(port)])
    wait_for_port(port, alive=lambda: proc.poll() is None)
    return Proc(name, proc, port)


@pytest.fixture
def upstreams() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    try:
        started.append(start_upstream("A"))
        started.append(start_upstream("B"))
        yield started
    finally:
        for p in started:
            p.kill()


@pytest.fixture
def nginx(tmp_path: Path, upstreams: list[Proc]) -> Iterator[int]:
    """nginx in the foreground on a free port; stopped by its PID."""
    if NGINX is None:
        pytest.skip("nginx not installed (tools/ensure-system.sh nginx)")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(CONF.read_text(encoding="utf-8"), port, [u.port for u in upstreams], tmp_path))
    prefix = f"{tmp_path}/"
    check = subprocess.run([NGINX, "-t", "-p", prefix, "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-p", prefix, "-c", str(conf), "-g", "daemon off;"])
    try:
        wait_for_port(port, alive=lambda: proc.poll() is None)
        yield port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then the master exits
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def http_get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return resp.status, resp.read().decode()


def ws_roundtrip(port: int, text: str) -> str:
    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5, close_timeout=2) as ws:
        ws.send(text)
        return str(ws.recv(timeout=5))


def test_nginx_balances_http_and_websockets_and_fails_over(nginx: int, upstreams: list[Proc]) -> None:
    """1. Plain HTTP requests reach both upstreams (round robin, no stickiness).
    2. WebSocket upgrades pass through (Upgrade/Connection forwarded) to both upstreams.
    3. Kill A with SIGKILL: every request and every new WebSocket lands on B, none fails."""
    seen = set()
    for _ in range(8):
        status, body = http_get(nginx, "/api/dashboard")
        assert status == 200 and body.endswith(" /api/dashboard\n")
        seen.add(body.split()[0])
    assert seen == {"A", "B"}

    replies = {ws_roundtrip(nginx, f"hello{i}") for i in range(6)}
    assert {r.split(":")[0] for r in replies} == {"A", "B"}
    assert all(r.split(":", 1)[1].startswith("hello") for r in replies)

    a = next(u for u in upstreams if u.name == "A")
    a.kill()
    with pytest.raises(OSError):  # A's port refuses connections now
        socket.create_connection(("127.0.0.1", a.port), timeout=0.5).close()
    for i in range(10):
        assert http_get(nginx, f"/healthz?{i}") == (200, f"B /healthz?{i}\n")
    for i in range(4):
        assert ws_roundtrip(nginx, f"after{i}") == f"B:after{i}"


def test_the_public_port_serves_the_dashboard_and_not_the_operators_endpoints(nginx: int) -> None:
    """What the dashboard loads passes; /metrics, /readyz and the rest of /api answer 404 from
    nginx itself, whatever follows them (the stand-in gateway would answer 200 to anything)."""
    for public in ("/", "/assets/index.js", "/healthz", "/api/dashboard", "/api/latency", "/sse?topics=x"):
        assert http_get(nginx, public)[0] == 200, public
    for internal in ("/metrics", "/metrics/", "/readyz", "/api/status", "/api/anything", "/api/dashboard/x"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            http_get(nginx, internal)
        refused.value.close()
        assert refused.value.code == 404, internal


def test_shipped_config_keeps_long_lived_streams_open() -> None:
    """Text checks for what the live test cannot wait for (an hour's timeout)."""
    conf = CONF.read_text(encoding="utf-8")

    def location(path: str) -> str:
        match = re.search(rf"location {re.escape(path)} \{{(.*?)\n        \}}", conf, re.S)
        assert match, f"no location {path}"
        return match.group(1)

    for path in ("/ws", "/sse"):
        timeout = re.search(r"proxy_read_timeout (\d+)s;", location(path))
        assert timeout and int(timeout.group(1)) >= 3600, path
    assert "proxy_buffering off;" in location("/sse")
    assert re.search(r"proxy_set_header Upgrade \$http_upgrade;", conf)
    assert re.search(r"proxy_set_header Connection \$connection_upgrade;", conf)
    directives = "\n".join(line.split("#")[0] for line in conf.splitlines())
    assert not re.search(r"^\s*(ip_hash|hash|sticky)\b", directives, re.M), "no sticky sessions"
    assert re.search(r"^\s*resolver 127\.0\.0\.11 valid=\d+s", conf, re.M), "Docker's DNS, re-read"
    assert re.search(r"map \$host \$gateway \{\s*default gateway:8080;", conf), "gateways found by name"
    assert conf.count("proxy_pass http://$gateway;") == 5, "a variable: resolved per request, so --scale is seen"
    assert "proxy_set_header Host $http_host;" in conf, "Host with its port, for the same-origin check"
    assert re.search(r"^\s*listen 8080;", conf, re.M)
