"""Collects each fault scenario's verdict and prints the table at the end of the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault.harness import Verdict

VERDICTS: list[Verdict] = []
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def record() -> list[Verdict]:
    return VERDICTS


def table(verdicts: list[Verdict]) -> str:
    head = "| scenario | clients | entries sent | delivered | lost | duplicates | order violations | recovery |"
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for v in verdicts:
        recovery = f"{v.recovery_s:.2f} s" if v.recovery_s is not None else "–"
        name = f"{v.scenario} ({v.note})" if v.note else v.scenario
        rows.append(
            f"| {name} | {v.clients} | {v.sent} | {v.delivered} | {v.lost} | {v.duplicates} "
            f"| {v.order_violations} | {recovery} |"
        )
    return "\n".join(rows)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not VERDICTS:
        return
    text = table(VERDICTS)
    terminalreporter.write_sep("=", "fault suite")
    terminalreporter.write_line(text)
    out = ROOT / "test-output"
    out.mkdir(exist_ok=True)
    (out / "fault-table.md").write_text(text + "\n")
