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
    env_of,
    load_compose,
    seconds,
)

TICKWIRE_SERVICES = ("ingest", "gateway", "simulator")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def test_services_and_scaling(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "nats", "ingest", "gateway", "nginx", "simulator", "jaeger"} <= set(services)
    assert services["ingest"]["deploy"]["replicas"] == 2
    assert services["gateway"]["deploy"]["replicas"] == 2
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
    assert re.fullmatch(r"\$\{TICKWIRE_JAEGER_IMAGE:-jaegertracing/jaeger:2\.\d+\.\d+\}", jaeger["image"])
    flags = " ".join(jaeger["command"])
    assert "0.0.0.0:4317" in flags and "0.0.0.0:4318" in flags
    assert "127.0.0.1:${TICKWIRE_JAEGER_UI_PORT:-16686}:16686" in jaeger["ports"]


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
    """1. The base images are build arguments whose defaults are the official node:20 and
    python:3.11-slim images. 2. web/dist comes from a Node stage (npm ci) or from the build
    context (`make web` on the host), chosen by WEB_SOURCE. 3. A Python base stage installs
    bookworm's python3 when the base has none (a debootstrap root); the locked runtime
    dependencies, then the project with --no-deps, with the CA bundle as a build secret only.
    4. The runtime runs `tickwire` as a non-root user, with no bytecode writes, the web build
    at TICKWIRE_WEB_DIR, and a urllib healthcheck on /healthz."""
    ins = dockerfile_instructions()
    args = dict(rest.split("=", 1) for kw, rest in ins if kw == "ARG" and "=" in rest)
    assert args["PYTHON_BASE"].startswith("python:3.11-slim") and args["NODE_BASE"].startswith("node:20")
    assert args["WEB_SOURCE"] == "node"
    froms = {rest.split()[-1]: rest.split()[0] for kw, rest in ins if kw == "FROM" and " AS " in rest.upper()}
    assert froms["web-node"] == "${NODE_BASE}" and froms["base"] == "${PYTHON_BASE}"
    assert froms["web"] == "web-${WEB_SOURCE}" and {"web-node", "web-context"} <= set(froms)
    assert [rest for kw, rest in ins if kw == "FROM"][-1] == "base"
    first = (ROOT / "deploy" / "Dockerfile").read_text().splitlines()[0]
    assert not first.startswith("# syntax="), "a syntax line pulls the frontend from a registry"
    runs = " ".join(rest for kw, rest in ins if kw == "RUN")
    assert "npm ci" in runs and "npm run build" in runs
    assert "--constraint requirements.lock" in runs and "pip install --no-deps ." in runs
    assert runs.count("--mount=type=secret,id=ca_bundle") >= 2 and "PIP_CERT=/run/secrets/ca_bundle" in runs
    assert "python3 python3-venv ca-certificates" in runs
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
    assert {".git", ".venv", "web/node_modules", "tests"} <= ignored
    assert "web/dist" not in ignored, "WEB_SOURCE=context copies the host's web/dist"
    sources = [rest.split()[0] for kw, rest in dockerfile_instructions() if kw == "COPY" and "--from" not in rest]
    for src in sources:
        top = src.rstrip("/")
        assert top not in ignored and top.split("/")[0] not in ignored, f"COPY {src} is excluded by .dockerignore"


def test_compose_fits_any_http_port_and_probes_every_service(compose: dict[str, Any]) -> None:
    """1. The published HTTP port is TICKWIRE_HTTP_PORT; the gateways' origin list is empty by
    default (same origin as Host, which nginx passes with its port: deploy/nginx.conf), so
    another port keeps the dashboard working. 2. Redis is published on loopback only (for
    `redis-cli XADD`). 3. Every long-running service has a healthcheck."""
    services = compose["services"]
    assert services["nginx"]["ports"] == ["${TICKWIRE_HTTP_BIND:-0.0.0.0}:${TICKWIRE_HTTP_PORT:-8080}:8080"]
    assert env_of(services["gateway"])["TICKWIRE_ALLOWED_ORIGINS"] == "${TICKWIRE_ALLOWED_ORIGINS:-}"
    assert "proxy_set_header Host $http_host;" in (ROOT / "deploy" / "nginx.conf").read_text()
    assert services["redis"]["ports"] == ["127.0.0.1:${TICKWIRE_REDIS_PORT:-6379}:6379"]
    for name in ("redis", "nats", "ingest", "gateway", "nginx", "jaeger"):
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
    probe = " ".join(services["ingest"]["healthcheck"]["test"])
    port = env_of(services["ingest"])["TICKWIRE_INGEST_METRICS_PORT"]
    assert f"127.0.0.1:{port}/readyz" in probe
    assert env_of(services["ingest"])["TICKWIRE_INGEST_METRICS_HOST"] == "0.0.0.0"


def test_debian_override_builds_every_image_without_a_registry() -> None:
    """deploy/compose.debian.yml gives redis, nats and nginx an image built from
    deploy/debian.Dockerfile's stage of that name, and Tickwire's image the local base and
    the host's web/dist."""
    import yaml

    override = yaml.safe_load((ROOT / "deploy" / "compose.debian.yml").read_text())["services"]
    stages = set(re.findall(r"^FROM \S+ AS (\w+)", (ROOT / "deploy" / "debian.Dockerfile").read_text(), re.M))
    for name in ("redis", "nats", "nginx"):
        build = override[name]["build"]
        assert build["dockerfile"] == "debian.Dockerfile" and build["target"] == name and name in stages
    for name in TICKWIRE_SERVICES:
        assert override[name]["build"]["args"]["WEB_SOURCE"] == "context"
