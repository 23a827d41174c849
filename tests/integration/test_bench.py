"""``tickwire bench``: a tiny run against Tickwire and the FastAPI baseline, end to end."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from bench import report
from bench.runner import Options, run

pytestmark = pytest.mark.slow

ROW_FIELDS = {
    "system", "offered_rate", "achieved_rate", "expected", "received", "loss", "deliveries_per_s", "p50_ms",
    "p95_ms", "p99_ms", "max_ms", "server_cpu", "deliveries_per_cpu_s", "frontend_peak_rss_mb", "client", "passed",
}


async def test_tiny_broadcast_bench_counts_every_delivery(tmp_path: Path) -> None:
    """1. Broadcast, Tickwire and the FastAPI baseline, 5 clients, 200 entries/s for 3 s, each
    on its own redis/nats/services started by the bench; 2. the JSON result is stored and has
    every field per system; 3. nothing was lost; 4. the report renders from it; 5. well
    within a minute."""
    started = time.monotonic()
    options = Options(scenarios=("broadcast",), systems=("tickwire", "fastapi"), clients=5, rates=(200,),
                      duration=3.0, procs=1, results_dir=tmp_path)
    result = await run(options)

    stored = orjson.loads((tmp_path / "latest.json").read_bytes())
    rows = stored["broadcast"]
    assert [r["system"] for r in rows] == ["tickwire", "fastapi"]
    for row in rows:
        assert ROW_FIELDS <= row.keys(), ROW_FIELDS - row.keys()
        assert row["expected"] == 5 * row["sent"] > 0
        assert row["loss"] == 0 and row["received"] == row["expected"], row
        assert row["p99_ms"] is not None and row["server_cpu"]
    assert "tickwire" in report.tables(result)
    assert time.monotonic() - started < 60
