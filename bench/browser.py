"""The bench's browser load client: the connections of one process opened by a Chromium page.

    python -m bench.browser      (configured by one JSON line on stdin)

The same line protocol as bench/clients.py and bench/node/client.mjs. Playwright starts
headless Chromium (the system's, with the flags this machine needs, facts.md) and loads a
page whose origin is the first server's own (``http://host:port``), so the gateway's Origin
check passes as for its own dashboard; the page and its scripts (bench/node/page.mjs,
fleet.mjs: the Node client's adapters and counting) are served by Playwright's request
routing, so nothing reaches the server but the WebSockets. The CPU reported is this
process's and its descendants' (Chromium and Playwright's driver).
"""

from __future__ import annotations

import asyncio
import os
import time
from urllib.parse import urlsplit

from playwright.async_api import Route, async_playwright

from bench.lines import go_times, open_stdin, say
from bench.processes import ROOT, cpu_seconds, descendants
from tickwire.chromium import CHROMIUM, CHROMIUM_ARGS

# The page comes from request routing, not from the loopback server it connects to:
# Chromium's Local Network Access checks would block its WebSockets to 127.0.0.1.
BROWSER_ARGS = [*CHROMIUM_ARGS, "--disable-features=LocalNetworkAccessChecks"]
PAGES = ROOT / "bench" / "node"
PAGE = b'<!doctype html><meta charset="utf-8"><title>bench</title><script type="module" src="page.mjs"></script>'
PROGRESS_S = 0.25


def _cpu_tree() -> float:
    me = os.getpid()
    return cpu_seconds(me) + sum(cpu_seconds(pid) for pid in descendants(me))


async def _serve(route: Route) -> None:
    name = urlsplit(route.request.url).path.rsplit("/", 1)[-1]
    if name == "index.html":
        await route.fulfill(body=PAGE, content_type="text/html")
    elif name in ("page.mjs", "fleet.mjs"):
        await route.fulfill(body=(PAGES / name).read_bytes(), content_type="text/javascript")
    else:
        await route.fulfill(status=404)


async def _main() -> None:
    config, commands = await open_stdin()
    url = urlsplit(config["urls"][0])
    origin = f"{'https' if url.scheme == 'wss' else 'http'}://{url.netloc}"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = await browser.new_page()
            await page.route(f"{origin}/__bench/*", _serve)
            await page.goto(f"{origin}/__bench/index.html")
            await page.wait_for_function("window.benchFleet !== undefined")
            ready = await page.evaluate("config => window.benchFleet.start(config)", config)
            say({"event": "ready", **ready})
            cpu0, wall0 = _cpu_tree(), time.perf_counter()

            async def progress() -> None:
                while True:
                    await asyncio.sleep(PROGRESS_S)
                    say(await page.evaluate("window.benchFleet.progress()"))

            ticker = asyncio.create_task(progress())
            try:
                async for t0 in go_times(commands):
                    await page.evaluate("t0 => window.benchFleet.go(t0)", t0)
                    cpu0, wall0 = _cpu_tree(), time.perf_counter()
            finally:
                ticker.cancel()
                await asyncio.wait([ticker])
            result = await page.evaluate("window.benchFleet.stop()")
            say({**result, "cpu_seconds": _cpu_tree() - cpu0, "wall_seconds": time.perf_counter() - wall0})
        finally:
            await browser.close()


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
