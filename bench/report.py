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
        ["system", "offered/s", "achieved/s", "expected", "received", "loss %", "gaps", "dups", "deliveries/s",
         "p50 ms", "p95 ms", "p99 ms", "max ms", "server CPU s", "deliveries per CPU-s", "per frontend CPU-s",
         "frontend peak RSS MB", "client max core", "load",
         "pass"],
        [[r["system"], r["offered_rate"], r["achieved_rate"], r["expected"], r["received"], r["loss_pct"],
          r.get("gaps"), r.get("duplicates"),
          r["deliveries_per_s"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["max_ms"], r["server_cpu_total"],
          r["deliveries_per_cpu_s"], r.get("deliveries_per_frontend_cpu_s"), r["frontend_peak_rss_mb"],
          f"{100 * r['client']['max_core_share']:.0f}%" + (" SATURATED" if r["client"]["saturated"] else ""),
          r.get("load_1m"),
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
                hop_rows.append([r["system"], r["offered_rate"], name, int(h["n"]), h.get("p50"), h.get("p99"),
                                 h.get("max")])
        lag = r.get("gateway_loop_lag")
        if lag:
            hop_rows.append([r["system"], r["offered_rate"], "event loop lag (≤ bucket bound)", int(lag["n"]),
                             lag["p50"], lag["p99"], lag["max"]])
    hops = ("\n\nTickwire's own per-hop split (gateway `/api/latency`, last 4,096 messages of the run; with two "
            "workers, of the one that answered) and its event-loop lag over the whole run (`/metrics`, a "
            "sample every 50 ms per worker, summed):\n\n"
            + _table(["system", "offered/s", "hop", "n", "p50 ms", "p99 ms", "max ms"], hop_rows)) if hop_rows else ""
    return f"### {title}\n\n{summary}\n\n{detail}\n\n{cpu}{hops}\n"


def typical(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, float], dict[str, Any]]:
    """Per (system, rate): the try with the median p99 (a rate is tried up to three times)."""
    tries: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in rows:
        tries.setdefault((r["system"], r["offered_rate"]), []).append(r)
    out = {}
    for key, group in tries.items():
        ranked = sorted(group, key=lambda r: (r["p99_ms"] is None, r["p99_ms"] or 0.0))
        out[key] = ranked[(len(ranked) - 1) // 2]
    return out


def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else "**yes**" if ok else "**no**"


def bar(data: dict[str, Any]) -> str:
    """Issue 11's bar, goal by goal, from this run alone; a goal not met says so."""
    broadcast = typical(data.get("broadcast") or [])
    ours = [s for s in dict.fromkeys(k[0] for k in broadcast) if s.startswith("tickwire")]
    lines: list[list[Any]] = []
    for system in ours:
        low = sorted((rate, r) for (s, rate), r in broadcast.items() if s == system and 100 <= rate <= 5000)
        misses = [f"{rate:,.0f}/s: p99 {r['p99_ms']} ms, {r['loss']} lost" for rate, r in low
                  if r["loss"] or r["p99_ms"] is None or r["p99_ms"] >= 20]
        reached = bool(low) and low[-1][0] == 5000
        lines.append([f"{system}: broadcast × {data.get('options', {}).get('clients')}, p99 < 20 ms and 0 lost at "
                      "every rate 100–5,000/s",
                      "; ".join(misses) if misses else
                      ", ".join(f"{rate:,.0f}/s {r['p99_ms']} ms" for rate, r in low)
                      + ("" if reached else " (the sweep stopped before 5,000/s)"),
                      _verdict(bool(low) and not misses and reached)])
    best = best_rates(data.get("broadcast") or [])
    nats = best.get("natsws")
    for system in ours:
        mine = best.get(system)
        if "natsws" in best:
            held, theirs = (mine["offered_rate"] if mine else 0), (nats["offered_rate"] if nats else 0)
            lines.append([f"{system}: highest rate held ≥ nats-server WebSocket's",
                          f"{held:,.0f}/s vs {theirs:,.0f}/s", _verdict(held >= theirs)])
        at = broadcast.get((system, 2000))
        nat = broadcast.get(("natsws", 2000))
        if at and nat and at["deliveries_per_cpu_s"] and nat["deliveries_per_cpu_s"]:
            lines.append([f"{system}: deliveries per server CPU-s at 2,000/s ≥ nats-server WebSocket's",
                          f"{at['deliveries_per_cpu_s']:,} vs {nat['deliveries_per_cpu_s']:,}",
                          _verdict(at["deliveries_per_cpu_s"] >= nat["deliveries_per_cpu_s"])])
    for name, what, limit in (("selective", "selective × 10 symbols each, 0 lost, p99 < 50 ms", 50.0),
                              ("many", "many clients, p99 < 50 ms", 50.0)):
        for (system, rate), r in typical(data.get(name) or []).items():
            if system.startswith("tickwire"):
                ok = r["p99_ms"] is not None and r["p99_ms"] < limit and (name == "many" or r["loss"] == 0)
                lines.append([f"{system}: {r['clients']:,} clients at {rate:,.0f}/s, {what}",
                              f"p99 {r['p99_ms']} ms, {r['loss']:,} lost ({r['loss_pct']} %)", _verdict(ok)])
    lines.append(["the browser at 500/s on `tickwire up`: p99 < 50 ms on the dashboard's panel",
                  "not measured by `tickwire bench`", "–"])
    return _table(["goal (issue 11)", "this run", "met?"], lines)


def tables(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    out = [f"Machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('memory_gib')} GiB, Python {m.get('python')}, "
           f"Linux {m.get('kernel')}, load average {m.get('load_1m')} at the start (column `load`: at the end of "
           f"each run). Run {data.get('started')}, {data.get('elapsed_seconds')} s. "
           f"Command: `{data.get('command')}`", ""]
    opts = data.get("options", {})
    client = {"node": "the Node.js `ws` client", "python": "the Python client"}.get(opts.get("client", "python"))
    if data.get("broadcast") or data.get("selective") or data.get("many"):
        out.append(f"Load client of the streaming runs: {client}.\n\n### Against issue 11's bar\n\n{bar(data)}\n")
    if data.get("broadcast"):
        out.append(_stream_tables(f"Broadcast: {opts.get('clients')} clients subscribed to everything",
                                  data["broadcast"]))
    if data.get("selective"):
        out.append(_stream_tables(f"Selective: {opts.get('clients')} clients × 10 random symbols of 100",
                                  data["selective"]))
    if data.get("many"):
        out.append(_stream_tables(f"Many clients: {opts.get('many_clients'):,} clients subscribed to everything",
                                  data["many"]))
    if data.get("browser"):
        out.append(_stream_tables(f"Browser: {opts.get('clients')} connections of headless Chromium pages "
                                  "subscribed to everything", data["browser"]))
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
