"""Tables from a run's JSON, for the terminal and for ``docs/benchmarks.md`` (with a plot).

``emit`` is the one place the bench writes its report to stdout.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PLOT = "benchmarks-p99.png"


def emit(text: str) -> None:
    sys.stdout.write(text + "\n")


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def best_rates(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """Per system: the highest offered rate held (zero loss, p99 < 100 ms; majority of tries)."""
    best: dict[str, dict[str, Any] | None] = {}
    for row in rows:
        best.setdefault(row["system"], None)
        current = best[row["system"]]
        if row.get("held", row["passed"]) and row["passed"] and (
                current is None or row["offered_rate"] > current["offered_rate"]):
            best[row["system"]] = row
    return best


def _stream_tables(title: str, rows: Sequence[dict[str, Any]]) -> str:
    detail = _table(
        ["system", "offered/s", "achieved/s", "expected", "received", "loss %", "deliveries/s", "p50 ms", "p95 ms",
         "p99 ms", "max ms", "server CPU s", "deliveries per CPU-s", "per frontend CPU-s",
         "frontend peak RSS MB", "client max core",
         "pass"],
        [[r["system"], r["offered_rate"], r["achieved_rate"], r["expected"], r["received"], r["loss_pct"],
          r["deliveries_per_s"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["max_ms"], r["server_cpu_total"],
          r["deliveries_per_cpu_s"], r.get("deliveries_per_frontend_cpu_s"), r["frontend_peak_rss_mb"],
          f"{100 * r['client']['max_core_share']:.0f}%" + (" SATURATED" if r["client"]["saturated"] else ""),
          ("yes" if r["passed"] else "no") + ("" if r.get("try", 1) == 1 else f" (try {r['try']})")]
         for r in rows])
    cpu = _table(["system", "offered/s", "CPU seconds per server process"],
                 [[r["system"], r["offered_rate"], ", ".join(f"{k} {v:.2f}" for k, v in r["server_cpu"].items())]
                  for r in rows])
    best = best_rates(rows)
    ours = best.get("tickwire")
    summary_rows = []
    for system, row in best.items():
        rate = row["offered_rate"] if row else None
        ratio = (ours["offered_rate"] / rate) if ours and rate else None
        eff = row["deliveries_per_cpu_s"] if row else None
        eff_ratio = (ours["deliveries_per_cpu_s"] / eff) if ours and eff else None
        summary_rows.append([system, rate, row["p99_ms"] if row else None, eff,
                             f"{ratio:.1f}×" if ratio else "–", f"{eff_ratio:.2f}×" if eff_ratio else "–"])
    summary = _table(["system", "highest rate held (0 loss, p99 < 100 ms)", "p99 ms there",
                      "deliveries per CPU-s there", "Tickwire rate ÷ this", "Tickwire efficiency ÷ this"],
                     summary_rows)
    hop_rows = []
    for r in rows:
        for name, h in (r.get("gateway_hops") or {}).items():
            if h.get("n"):
                hop_rows.append([r["offered_rate"], name, int(h["n"]), h.get("p50"), h.get("p99"), h.get("max")])
    hops = ("\n\nTickwire's own per-hop split (gateway `/api/latency`, last 4,096 messages of the run):\n\n"
            + _table(["offered/s", "hop", "n", "p50 ms", "p99 ms", "max ms"], hop_rows)) if hop_rows else ""
    return f"### {title}\n\n{summary}\n\n{detail}\n\n{cpu}{hops}\n"


def tables(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    out = [f"Machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('memory_gib')} GiB, Python {m.get('python')}, "
           f"Linux {m.get('kernel')}. Run {data.get('started')}, {data.get('elapsed_seconds')} s. "
           f"Command: `{data.get('command')}`", ""]
    opts = data.get("options", {})
    if data.get("broadcast"):
        out.append(_stream_tables(f"Broadcast: {opts.get('clients')} clients subscribed to everything",
                                  data["broadcast"]))
    if data.get("selective"):
        out.append(_stream_tables(f"Selective: {opts.get('clients')} clients × 10 random symbols of 100",
                                  data["selective"]))
    if data.get("idle"):
        out.append("### Idle connections on one frontend process\n\n" + _table(
            ["system", "connections", "connected", "failed", "set-up s", "connects/s", "handshake p50 ms",
             "handshake p99 ms", "RSS before MB", "RSS after MB", "KB per connection"],
            [[r["system"], r["connections"], r["connected"], r["failed"], r["connect_seconds"], r["connects_per_s"],
              r["handshake_ms_p50"], r["handshake_ms_p99"], r["rss_before_mb"], r["rss_after_mb"],
              r["kb_per_connection"]] for r in data["idle"]]) + "\n")
    if data.get("failover"):
        f = data["failover"]
        out.append("### Failover: gateway killed -9 with clients attached\n\n" + _table(
            ["clients", "rate/s", "resumed", "kill → last client's first message s", "expected", "received", "loss",
             "seq gaps", "client max core"],
            [[f["clients"], f["rate"], f["resumed"], f["failover_seconds"], f["expected"], f["received"], f["loss"],
              f["gaps"], f"{100 * f['client']['max_core_share']:.0f}%"]]) + "\n")
    if data.get("ingest"):
        out.append("### Ingest alone: pre-filled Redis streams → JetStream (acked)\n\n" + _table(
            ["replicas", "entries", "streams", "s from start", "s from first", "entries/s", "ingest CPU s"],
            [[r["replicas"], r["entries"], r["streams"], r["seconds_from_start"], r["seconds_from_first"],
              r["entries_per_s"], r["ingest_cpu_seconds"]] for r in data["ingest"]]) + "\n")
    if data.get("tracing"):
        out.append("### Cost of tracing (1% parent-based sampling, OTLP to a local sink)\n\n" + _table(
            ["tracing", "offered/s", "loss", "p50 ms", "p99 ms", "ingest CPU s", "gateway CPU s", "server CPU s",
             "deliveries per CPU-s", "OTLP requests"],
            [["on" if r["tracing"] else "off", r["offered_rate"], r["loss"], r["p50_ms"], r["p99_ms"],
              r["server_cpu"].get("ingest-1"), r["server_cpu"].get("gateway-1"), r["server_cpu_total"],
              r["deliveries_per_cpu_s"], r["otlp_requests"]] for r in data["tracing"]]) + "\n")
    return "\n".join(out)


def plot(data: dict[str, Any], path: Path) -> bool:
    """p99 latency against offered rate, one line per system (broadcast); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2 if data.get("selective") else 1, figsize=(11, 4.5), squeeze=False)
    for ax, name in zip(axes[0], ("broadcast", "selective"), strict=False):
        rows = data.get(name) or []
        for system in dict.fromkeys(r["system"] for r in rows):
            points = [(r["offered_rate"], r["p99_ms"]) for r in rows if r["system"] == system and r["p99_ms"]]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=system)
        ax.axhline(100, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        rates = sorted({r["offered_rate"] for r in rows})
        ax.set_xticks(rates, [f"{r:g}" for r in rates])
        ax.minorticks_off()
        ax.set_xlabel("offered rate (entries/s)")
        ax.set_ylabel("end-to-end p99 (ms)")
        ax.set_title(f"{name}: {data.get('options', {}).get('clients')} clients")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_docs(data: dict[str, Any], docs: Path) -> None:
    head = (docs / "benchmarks.md").read_text().split("<!-- results -->")[0] if (docs / "benchmarks.md").exists() \
        else "# Benchmarks\n\n"
    has_plot = plot(data, docs / PLOT)
    body = tables(data) + (f"\n![p99 latency vs offered rate]({PLOT})\n" if has_plot else "")
    (docs / "benchmarks.md").write_text(head.rstrip() + "\n\n<!-- results -->\n" +
                                        "<!-- generated by `tickwire bench --report`: edit above this line -->\n\n"
                                        + body)
