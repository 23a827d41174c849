"""Project rules a reviewer would otherwise check by hand."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# Which of the project's packages each package may import: data flows one way, from the
# shared contracts up to the command. tickwire/ (the CLI, `tickwire up`) and bench/ sit on
# top and use each other (`tickwire bench` runs the bench; the bench starts local servers).
# tickwire_client is installed on its own (clients/python), so it imports none of ours.
FIRST_PARTY = {"services", "ingest", "gateway", "tickwire", "bench", "tickwire_client", "tests"}
ALLOWED = {
    "services": {"services"},
    "ingest": {"services", "ingest"},
    "gateway": {"services", "gateway"},
    "tickwire": {"services", "ingest", "gateway", "tickwire", "bench", "tickwire_client"},
    "bench": {"services", "ingest", "gateway", "tickwire", "bench", "tickwire_client"},
    "tickwire_client": {"tickwire_client"},
}
SOURCES = {package: ROOT / package for package in ALLOWED} | {
    "tickwire_client": ROOT / "clients" / "python" / "tickwire_client"
}


def module_name(package: str, path: Path) -> str:
    parts = [package, *path.relative_to(SOURCES[package]).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(module: str, path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports in functions too),
    with relative imports resolved against ``module``."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the first-party modules it imports, for every module of every package."""
    graph = {}
    for package, source in SOURCES.items():
        for path in sorted(source.rglob("*.py")):
            module = module_name(package, path)
            graph[module] = {m for m in imports_of(module, path) if m.split(".")[0] in FIRST_PARTY}
    return graph


def test_every_module_imports_only_downwards() -> None:
    """services imports none of the others; ingest and gateway only services (never each
    other); tickwire and bench anything; the client SDK only itself. No module is exempt."""
    graph = import_graph()
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if target.split(".")[0] not in ALLOWED[module.split(".")[0]]
    )
    assert wrong == []


def test_the_graph_sees_every_kind_of_import() -> None:
    """The scan covers every package, and finds lazy imports inside functions (the CLI's
    dispatch imports each service only when its subcommand runs)."""
    graph = import_graph()
    assert {m.split(".")[0] for m in graph} == set(ALLOWED)
    assert {"gateway.server", "ingest.service", "bench.runner"} <= graph["tickwire.cli"]
    assert "tickwire_client.topics" in graph["tickwire_client.client"]


def setting_names() -> set[str]:
    """The variable of every ``env_var("NAME", …)`` field, in the services' settings and the CLI's."""
    names = set()
    for path in (ROOT / "services" / "settings.py", ROOT / "tickwire" / "settings.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "env_var"
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(node.args[0].value)
    return names


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    names = setting_names()
    assert len(names) > 20
    assert sorted(n for n in names if f"`{n}`" not in readme) == []
