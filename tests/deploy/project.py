"""What the deploy files are checked against: the code's own names, read without importing it.

The environment variables a service reads are the names in ``env_var("NAME", …)`` and
``env.get("NAME")`` calls in ``services/``, ``ingest/``, ``gateway/`` and ``tickwire/`` (found with ``ast``),
plus the OpenTelemetry SDK's standard ``OTEL_*`` variables. The subcommands are the
``add_parser("…")`` calls in ``tickwire/cli.py``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# The Kubernetes versions docs/deploy.md claims; the manifests are validated against each
# one's schemas (kubernetes-validate 1.37 ships them, offline).
K8S_VERSIONS = ("1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0")
OVERLAYS = ("dev", "prod")


# Secrets that only compose another variable's value through $(NAME) in Kubernetes.
CREDENTIAL_PARTS = frozenset({"REDIS_PASSWORD", "NATS_USER", "NATS_PASSWORD"})

# What the drain needs after the last close: uvicorn's shutdown, NATS drain, telemetry flush.
DRAIN_MARGIN_SECONDS = 5.0


def _python_files() -> list[Path]:
    return [p for pkg in ("services", "ingest", "gateway", "tickwire") for p in sorted((ROOT / pkg).rglob("*.py"))]


@cache
def env_names_read_by_code() -> frozenset[str]:
    names: set[str] = set()
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            is_setting = isinstance(func, ast.Name) and func.id == "env_var" and node.args
            is_env_get = (
                isinstance(func, ast.Attribute)
                and func.attr == "get"
                and node.args
                and isinstance(func.value, ast.Name)
                and func.value.id in ("env", "environ", "environment")
            )
            arg = node.args[0] if is_setting or is_env_get else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
    return frozenset(names)


@cache
def otel_standard_names() -> frozenset[str]:
    import opentelemetry.environment_variables as api_env
    import opentelemetry.sdk.environment_variables as sdk_env

    return frozenset(n for mod in (api_env, sdk_env) for n in dir(mod) if n.startswith("OTEL_"))


def allowed_env_names() -> frozenset[str]:
    return env_names_read_by_code() | otel_standard_names()


@cache
def cli_subcommands() -> frozenset[str]:
    tree = ast.parse((ROOT / "tickwire" / "cli.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_parser"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(node.args[0].value)
    return frozenset(found)


def console_scripts() -> dict[str, str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return dict(tomllib.load(f)["project"]["scripts"])


def kubectl() -> str | None:
    return shutil.which("kubectl")


@cache
def render_overlay(overlay: str) -> tuple[dict[str, Any], ...]:
    """The overlay as `kubectl kustomize` renders it (offline), one dict per object."""
    exe = kubectl()
    assert exe is not None
    out = subprocess.run(
        [exe, "kustomize", str(ROOT / "k8s" / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay} failed:\n{out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def load_compose() -> dict[str, Any]:
    with (ROOT / "docker-compose.yml").open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict)
    return data


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment as a dict (it may be written as a list)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def seconds(value: str | int | float) -> float:
    """'25s', '1m30s', 45 → seconds (compose durations and plain numbers)."""
    if isinstance(value, int | float):
        return float(value)
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    for ch in value.strip():
        if ch.isdigit() or ch == ".":
            number += ch
        else:
            total += float(number) * units[ch]
            number = ""
    return total + (float(number) if number else 0.0)
