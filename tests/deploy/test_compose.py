"""docker-compose.yml and deploy/Dockerfile, checked without a Docker engine: structure,
names the code reads, subcommands that exist, and nothing that stops `--scale gateway=N`."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy.project import (
    DRAIN_MARGIN_SECONDS,
    ROOT,
    allowed_env_names,
    cli_subcommands,
    console_scripts,
    load_compose,
    seconds,
)

TICKWIRE_SERVICES = ("ingest", "gateway", "simulator")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_services_and_scaling(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "nats", "ingest", "gateway", "nginx", "simulator", "jaeger"} <= set(services)
    assert services["ingest"]["deploy"]["replicas"] == 2
    assert services["gateway"]["deploy"]["replicas"] == 3
    for name in TICKWIRE_SERVICES:
        assert "ports" not in services[name], f"{name}: a fixed host port breaks --scale"
        assert "container_name" not in services[name], f"{name}: a fixed name breaks --scale"
    nginx = services["nginx"]
    assert any(str(v).startswith("./deploy/nginx.conf:/etc/nginx/nginx.conf") for v in nginx["volumes"])
    assert any(str(p).endswith(":8080") for p in nginx["ports"])


def test_backends_are_durable(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    nats = compose["services"]["nats"]
    assert "-js" in nats["command"] and nats["command"][nats["command"].index("-sd") + 1] == "/data"
    assert any(str(v).endswith(":/data") for v in nats["volumes"])
    for volume in ("redis-data", "nats-data"):
        assert volume in compose["volumes"]


def test_tickwire_services_use_real_subcommands_and_settings(compose: dict[str, Any]) -> None:
    allowed = allowed_env_names()
    for name in TICKWIRE_SERVICES:
        service = compose["services"][name]
        assert service["command"][0] in cli_subcommands(), f"{name}: no such subcommand"
        env = env_of(service)
        unknown = set(env) - allowed
        assert not unknown, f"{name}: variables no Tickwire code reads: {sorted(unknown)}"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] in ("http://jaeger:4318", "http://jaeger:4317"), name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"


def test_required_secret_has_no_default(compose: dict[str, Any]) -> None:
    env = env_of(compose["services"]["gateway"])
    assert re.fullmatch(r"\$\{TICKWIRE_JWT_SECRET:\?[^}]+\}", env["TICKWIRE_JWT_SECRET"])
    assert env["TICKWIRE_AUTH"] in ("jwt", "${TICKWIRE_AUTH:-jwt}")


def test_gateway_drain_fits_in_stop_grace_period(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    env = env_of(gateway)
    drain = float(env["TICKWIRE_DRAIN_GRACE"]) + float(env["TICKWIRE_DRAIN_WINDOW"]) + DRAIN_MARGIN_SECONDS
    assert drain < seconds(gateway["stop_grace_period"])
    args = gateway["command"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--port") + 1] in {e.split(":")[-1] for e in map(str, gateway["expose"])}


def test_jaeger_v2_receives_otlp(compose: dict[str, Any]) -> None:
    jaeger = compose["services"]["jaeger"]
    assert re.fullmatch(r"jaegertracing/jaeger:2\.\d+\.\d+", jaeger["image"])
    flags = " ".join(jaeger["command"])
    assert "0.0.0.0:4317" in flags and "0.0.0.0:4318" in flags
    assert "16686:16686" in jaeger["ports"]


# --- deploy/Dockerfile ---------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_stages_and_runtime() -> None:
    """1. node:20 builds web/ with npm ci. 2. python:3.11-slim installs the locked runtime
    dependencies, then the project with --no-deps. 3. The runtime runs `tickwire` as a
    non-root user, with no bytecode writes, the web build at TICKWIRE_WEB_DIR, and a urllib
    healthcheck on /healthz."""
    ins = dockerfile_instructions()
    froms = [rest for kw, rest in ins if kw == "FROM"]
    assert froms[0].startswith("node:20") and " AS " in froms[0].upper()
    assert all(f.startswith("python:3.11-slim") for f in froms[1:]) and len(froms) == 3
    runs = " ".join(rest for kw, rest in ins if kw == "RUN")
    assert "npm ci" in runs and "npm run build" in runs
    assert "--constraint requirements.lock" in runs and "pip install --no-deps ." in runs
    final = ins[max(i for i, (kw, _) in enumerate(ins) if kw == "FROM") :]
    user = [rest for kw, rest in final if kw == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    env = " ".join(rest for kw, rest in final if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    web_dir = re.search(r"TICKWIRE_WEB_DIR=(\S+)", env)
    assert web_dir
    copies = [rest.split() for kw, rest in final if kw == "COPY"]
    assert [c for c in copies if c[-2] == "/web/dist" and c[-1] == web_dir.group(1)], "web build not at the web dir"
    entrypoint = json.loads(next(rest for kw, rest in final if kw == "ENTRYPOINT"))
    assert entrypoint == ["tickwire"] and "tickwire" in console_scripts()
    cmd = json.loads(next(rest for kw, rest in final if kw == "CMD"))
    assert cmd[0] in cli_subcommands()
    health = next(rest for kw, rest in final if kw == "HEALTHCHECK")
    assert "/healthz" in health and "urllib" in health and "curl" not in health


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "web/node_modules", "web/dist", "tests"} <= ignored
    sources = [rest.split()[0] for kw, rest in dockerfile_instructions() if kw == "COPY" and "--from" not in rest]
    for src in sources:
        top = src.rstrip("/")
        assert top not in ignored and top.split("/")[0] not in ignored, f"COPY {src} is excluded by .dockerignore"
