"""Project rules a reviewer would otherwise check by hand."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_packages(package: str, skip: tuple[str, ...] = ()) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        if path.name in skip:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_services_do_not_import_each_other() -> None:
    """services imports neither ingest nor gateway (except the CLI's dispatch);
    ingest and gateway never import each other."""
    assert "gateway" not in imported_packages("ingest")
    assert "ingest" not in imported_packages("gateway")
    shared = set()
    for path in (ROOT / "services").glob("*.py"):
        if path.name != "cli.py":
            shared |= {n for n in ("ingest", "gateway") if f"from {n}" in path.read_text()}
    assert shared == set()


def test_nothing_at_runtime_imports_the_benchmark() -> None:
    """bench/ may import the services; no service imports bench/ (only the CLI's dispatch,
    lazily), so the runtime image, which ships without bench/, never needs it."""
    for package in ("ingest", "gateway"):
        assert "bench" not in imported_packages(package)
    assert "bench" not in imported_packages("services", skip=("cli.py",))
    assert "services" in imported_packages("bench")  # the scan sees imports where they are


def setting_names() -> set[str]:
    tree = ast.parse((ROOT / "services" / "settings.py").read_text())
    return {
        node.args[1].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "_get"
        and isinstance(node.args[1], ast.Constant)
    }


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    names = setting_names()
    assert len(names) > 20
    assert sorted(n for n in names if f"`{n}`" not in readme) == []
