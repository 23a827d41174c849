"""The dashboard under load as its user sees it: ``tickwire up`` at a message rate, the page in
headless Chromium on the same machine, the latency read off the page's own panel.

    .venv/bin/python web/scripts/measure_dashboard.py [--rate 500] [--seconds 60]
        [--web-dir web/dist] [--trace trace.json] [--json]

1. ``tickwire up --gateways 2`` on free ports, its simulator at ``--rate`` entries/s in total,
   serving the build in ``--web-dir`` (so two builds can be compared side by side).
2. The page at 1280×800, no parameters, as ``tickwire up`` prints it; it waits for Connected.
3. For ``--seconds``: every 5 s the panel's p50/p99 (each over the client's last 2,048
   messages, about 4 s at 500/s) and, from the DevTools Protocol's Performance metrics,
   the main thread's busy time per animation frame (frames counted in the page) and its CPU
   time per second and all of Chromium's (robust to other processes on the machine, unlike
   durations).
   ``--trace`` then records a DevTools trace of 5 s more and prints the main thread's self
   time by event (after the readings: tracing slows the page).
4. Prints the final panel reading, the medians of the readings after the first third (the
   warm-up), the gateway's own ``end_to_gateway`` p99, and stops what it started by PID.

A measurement tool, not a test: its figures depend on the machine and what else runs on it,
so compare builds by alternating runs, never against a fixed number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from playwright.async_api import CDPSession, Page, async_playwright

from tickwire.chromium import CHROMIUM, CHROMIUM_ARGS
from tickwire.localservers import two_free_ports, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_EVERY = 5.0
# Counts animation frames from the page's first script on: Performance metrics have
# durations but no frame count.
COUNT_FRAMES = """(() => {
  window.__frames = 0;
  const tick = () => { window.__frames++; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
})()"""
PANEL = """() => {
  const read = (id) => Number(document.querySelector(`[data-testid=${id}]`)?.textContent);
  return { p50: read('stat-p50'), p99: read('stat-p99'), frames: window.__frames,
           msgs: Number(document.querySelector('[data-testid=stat-msgs]').textContent.replace(/\\D/g, '')) };
}"""
CONNECTED = "document.querySelector('[data-testid=status]')?.textContent.startsWith('Connected')"
# The main-thread work the Performance domain times; TaskDuration is all of it.
DURATIONS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")
# What DevTools' Performance panel records, JavaScript samples included, so the file opens there.
TRACE_CATEGORIES = ",".join(["devtools.timeline", "disabled-by-default-devtools.timeline", "blink.user_timing",
                             "disabled-by-default-v8.cpu_profiler", "v8.execute", "__metadata"])


def start_stack(rate: float, web_dir: Path, state: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = two_free_ports()
    env = {**os.environ, "TICKWIRE_SIM_RATE": str(rate), "TICKWIRE_WEB_DIR": str(web_dir)}
    for name in ("REDIS_URL", "NATS_URL"):  # its own local servers, whatever the shell has
        env.pop(name, None)
    log = (state / "up.log").open("wb")
    up = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "tickwire"), "up", "--gateways", "2", "--port", str(port),
         "--state-dir", str(state)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )
    try:
        for p in (port, port + 1):
            wait_for_port(p, 90, alive=lambda: up.poll() is None)
    except Exception:
        stop_stack(up)
        raise
    return up, port


def stop_stack(up: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a user stops it: `tickwire up` stops its children in order."""
    if up.poll() is None:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


def browser_cpu_seconds(exclude: int) -> float:
    """CPU time so far of this script's descendants outside `exclude`'s tree: Chromium's
    processes (renderer, GPU, network) and Playwright's driver. The main thread is one of
    them; the compositor's and the rasterizer's work counts on the same two cores."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid == exclude:
                return False
            if pid == os.getpid():
                return True
            pid = parents.get(pid, 0)
        return False

    return sum(t for pid, t in ticks.items() if pid != os.getpid() and ours(pid)) / os.sysconf("SC_CLK_TCK")


async def durations(cdp: CDPSession) -> dict[str, float]:
    metrics = (await cdp.send("Performance.getMetrics"))["metrics"]
    return {m["name"]: m["value"] for m in metrics}


def main_thread_self_ms(events: list[dict[str, Any]]) -> dict[str, float]:
    """Self time (ms) of the renderer main thread's complete events, by name: nested events
    are subtracted from their parent so the figures add up to the busy time."""
    mains = {(e["pid"], e["tid"]) for e in events if e.get("name") == "thread_name"
             and e.get("args", {}).get("name") == "CrRendererMain"}
    spans = sorted(
        ((e["ts"], e["ts"] + e["dur"], e["name"]) for e in events
         if e.get("ph") == "X" and "dur" in e and (e["pid"], e["tid"]) in mains),
        key=lambda s: (s[0], -s[1]),
    )
    totals: dict[str, float] = defaultdict(float)
    open_spans: list[list[Any]] = []  # [start, end, name, time spent in children], innermost last
    for start, end, name in spans:
        while open_spans and open_spans[-1][1] <= start:
            first, last, done, children = open_spans.pop()
            totals[done] += (last - first - children) / 1000
        if open_spans:
            open_spans[-1][3] += end - start
        open_spans.append([start, end, name, 0.0])
    for first, last, done, children in open_spans:
        totals[done] += (last - first - children) / 1000
    return dict(totals)


async def record_trace(page: Page, seconds: float, path: Path) -> dict[str, float]:
    cdp = await page.context.new_cdp_session(page)
    chunks: list[dict[str, Any]] = []
    done = asyncio.Event()
    cdp.on("Tracing.dataCollected", lambda params: chunks.extend(params["value"]))
    cdp.on("Tracing.tracingComplete", lambda _: done.set())
    await cdp.send("Tracing.start", {"categories": TRACE_CATEGORIES,
                                     "transferMode": "ReportEvents"})
    await asyncio.sleep(seconds)
    await cdp.send("Tracing.end")
    await done.wait()
    await asyncio.to_thread(path.write_text, json.dumps({"traceEvents": chunks}))
    return main_thread_self_ms(chunks)


def gateway_p99(port: int) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/latency", timeout=5) as response:
        hops = json.load(response).get("hops", {})
    value = hops.get("end_to_gateway", {}).get("p99")
    return float(value) if isinstance(value, (int, float)) else None


async def measure(port: int, stack: int, seconds: float, trace: Path | None) -> dict[str, Any]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await page.add_init_script(COUNT_FRAMES)
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.wait_for_function(CONNECTED, timeout=30_000)
            cdp = await page.context.new_cdp_session(page)
            await cdp.send("Performance.enable")
            samples: list[dict[str, float]] = []
            began = time.monotonic()
            before, panel_before = await durations(cdp), await page.evaluate(PANEL)
            cpu_before = browser_cpu_seconds(stack)
            while (elapsed := time.monotonic() - began) < seconds - 0.01:
                await asyncio.sleep(min(SAMPLE_EVERY, seconds - elapsed))
                after, panel = await durations(cdp), await page.evaluate(PANEL)
                cpu_after = browser_cpu_seconds(stack)
                frames = panel["frames"] - panel_before["frames"]
                wall = after["Timestamp"] - before["Timestamp"]
                samples.append({
                    "t": round(time.monotonic() - began, 1), "p50": panel["p50"], "p99": panel["p99"],
                    "fps": frames / wall,
                    "msg_per_s": (panel["msgs"] - panel_before["msgs"]) / wall,
                    "busy": (after["TaskDuration"] - before["TaskDuration"]) / wall,
                    # CPU time, unlike the durations, does not grow when other processes
                    # take the cores: the figure to compare builds by on a busy machine.
                    "cpu": (after["ThreadTime"] - before["ThreadTime"]) / wall,
                    "browser_cpu": (cpu_after - cpu_before) / wall,
                    **{f"{name[:-8].lower()}_ms_per_frame": 1000 * (after[name] - before[name]) / max(1, frames)
                       for name in DURATIONS},
                })
                before, panel_before, cpu_before = after, panel, cpu_after
            gateway = await asyncio.to_thread(gateway_p99, port)
            # After the readings: tracing itself slows the page.
            self_ms = await record_trace(page, SAMPLE_EVERY, trace) if trace else None
        finally:
            await browser.close()
    steady = samples[len(samples) // 3:] or samples
    median = {key: statistics.median(s[key] for s in steady) for key in steady[0] if key != "t"}
    final = samples[-1]
    return {"final": {"p50": final["p50"], "p99": final["p99"]}, "median": median, "samples": samples,
            "gateway_end_to_gateway_p99": gateway, "trace_self_ms": self_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500.0, help="simulator entries per second, in total")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--web-dir", type=Path, default=ROOT / "web" / "dist", help="the dashboard build to serve")
    parser.add_argument("--trace", type=Path, help="write a DevTools trace of 5 s after the readings here")
    parser.add_argument("--json", action="store_true", help="print every sample as JSON")
    args = parser.parse_args()
    if not (args.web_dir / "index.html").is_file():
        parser.error(f"no index.html in {args.web_dir}: run `make web`")
    with tempfile.TemporaryDirectory(prefix="tickwire-measure-") as state:
        up, port = start_stack(args.rate, args.web_dir.resolve(), Path(state))
        try:
            result = asyncio.run(measure(port, up.pid, args.seconds, args.trace))
        finally:
            stop_stack(up)
    if args.json:
        print(json.dumps(result, indent=2))  # noqa: T201
        return 0
    m, f = result["median"], result["final"]
    print(f"web {args.web_dir} · {args.rate:g}/s · {args.seconds:g} s")  # noqa: T201
    print(f"panel at the end: p50 {f['p50']} ms, p99 {f['p99']} ms; "  # noqa: T201
          f"gateway end_to_gateway p99 {result['gateway_end_to_gateway_p99']} ms")
    print(f"medians after warm-up: p50 {m['p50']:.1f} ms, p99 {m['p99']:.1f} ms, {m['fps']:.1f} frames/s, "  # noqa: T201
          f"main thread {100 * m['busy']:.0f} % busy ({100 * m['cpu']:.0f} % CPU; "
          f"Chromium {100 * m['browser_cpu']:.0f} % of one core), "
          f"{m['task_ms_per_frame']:.1f} ms/frame "
          f"(script {m['script_ms_per_frame']:.1f}, style {m['recalcstyle_ms_per_frame']:.1f}, "
          f"layout {m['layout_ms_per_frame']:.1f}), {m['msg_per_s']:.0f} msg/s on screen")
    if result["trace_self_ms"]:
        top = sorted(result["trace_self_ms"].items(), key=lambda kv: -kv[1])[:15]
        print("main-thread self time in the trace (ms over 5 s): "  # noqa: T201
              + ", ".join(f"{name} {ms:.0f}" for name, ms in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
