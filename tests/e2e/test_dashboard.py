"""The dashboard in a real browser (Debian's Chromium driven by Playwright) on a real stack.

1. ``tickwire up --gateways 2`` as a user runs it, the page opened on the first gateway with
   no parameters: it must learn the sibling, fit 1280×800 and 1920×1080 with nothing cut off
   (measured in the DOM), chart the data across its width, chart a clicked symbol, and, when
   its gateway is killed -9, be back on the other one over WebSocket within 5 s with no gap
   and no duplicate reaching the screen.
2. SSE only where WebSocket is blocked: behind a proxy that refuses upgrades the page ends
   on SSE; a dead gateway first in the list is skipped over WebSocket, never for SSE.

Screenshots go to the test's tmp folder; with ``TICKWIRE_SCREENSHOTS=<dir>`` they are also
copied there (``TICKWIRE_SCREENSHOTS=docs`` refreshes the README's pictures on purpose).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from tests.conftest import Backend
from tests.e2e.blocking_proxy import WebSocketBlockingProxy
from tests.e2e.measure import CHART_SPAN, CLIPPED
from tests.stack import ROOT, Service, Services
from tickwire.chromium import CHROMIUM, CHROMIUM_ARGS
from tickwire.localservers import free_port, two_free_ports
from tickwire.settings import SimulatorSettings
from tickwire.simulator import run as simulate

pytestmark = pytest.mark.slow

WEB_DIST = ROOT / "web" / "dist"
# A gateway killed or blocked on purpose makes Chromium log the refused connections, the
# failed handshakes and the failed /healthz and /api/latency requests: expected, not bugs.
EXPECTED_CONSOLE = re.compile(r"ERR_CONNECTION_REFUSED|WebSocket connection to .* failed|Failed to load resource")
# Page-side JavaScript reading what the page shows.
MSGS = "Number(document.querySelector('[data-testid=stat-msgs]').textContent.replace(/\\D/g, ''))"
CHART_POINTS = "Number(document.querySelector('[data-testid=panel-chart]').dataset.points)"


def connected(node: str, transport: str) -> str:
    """The status says Connected (over `transport`) and names `node`."""
    return (
        "(() => { const s = document.querySelector('[data-testid=status]');"
        f" return s && s.dataset.transport === '{transport}' && s.textContent.startsWith('Connected')"
        f" && document.querySelector('[data-testid=status-node]').textContent === '{node}'; }})()"
    )


async def until(page: Page, js: str, within: float = 20.0) -> None:
    await page.wait_for_function(js, timeout=within * 1000)


async def number(page: Page, testid: str) -> int:
    return int(re.sub(r"[^\d]", "", await page.get_by_test_id(testid).inner_text()) or 0)


async def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    await page.screenshot(path=str(path))
    if target := os.environ.get("TICKWIRE_SCREENSHOTS"):
        shutil.copy(path, Path(target) / name)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_page(browser: Browser, url: str, errors: list[str], requests: list[str] | None = None) -> Page:
    """The page at 1280×800; console errors that are not expected go to `errors`, the URL of
    every request the page makes to `requests`."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    if requests is not None:
        page.on("request", lambda request: requests.append(request.url))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not EXPECTED_CONSOLE.search(message.text):
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    return page


def pid_of(log: str, child: str) -> int:
    found = re.findall(rf"started {child} \(pid (\d+)\)", log)
    assert found, f"{child} not started:\n{log[-2000:]}"
    return int(found[-1])


async def test_up_dashboard_fits_charts_and_fails_over_over_websocket(
    backend: Backend, browser: Browser, tmp_path: Path
) -> None:
    """1. `tickwire up --gateways 2` (its own ingest, gateways and simulator on this test's
    Redis and NATS); 2. the page on gw-1, no parameters: Connected to gw-1 over WebSocket;
    3. 10 s of data: the price line spans most of the chart's width; a click on a ticker
    row charts that symbol; 4. nothing clipped at 1280×800 (DOM), screenshot; 5. kill -9
    gw-1: within 5 s Connected to gw-2, still WebSocket, the history names gw-2; 6. messages
    keep coming, gaps 0, duplicates reaching the UI 0; 7. nothing clipped at 1920×1080."""
    if not (WEB_DIST / "index.html").exists():
        pytest.fail("web/dist is not built: run `make web` (make test does it)")
    port = two_free_ports()
    args = ["up", "--port", str(port), "--gateways", "2", "--state-dir", str(tmp_path / "state")]
    env = {**backend.env(), "TICKWIRE_SIM_RATE": "300", "TICKWIRE_SIM_SYMBOLS": "40"}
    up = Service("up", args, env, tmp_path / "up.log", port).start()
    second = Service("up", [], {}, tmp_path / "up.log", port + 1, up.proc)
    errors: list[str] = []
    try:
        await up.ready(60)
        await second.ready(30)
        page = await open_page(browser, f"{up.url}/", errors)
        await until(page, connected("gw-1", "ws"))
        await until(page, "document.querySelectorAll('[data-testid^=ticker-row-]').length >= 10")

        # 3. The chart after 10 s of data, then another symbol by a click.
        await until(page, f"{CHART_POINTS} >= 10", within=30)
        span: dict[str, Any] = await page.evaluate(CHART_SPAN)
        assert span["span"] > 0.8, f"price line spans {span} of the chart"
        row = page.locator("[data-testid^=ticker-row-]").nth(3)
        symbol = (await row.get_attribute("data-testid") or "").removeprefix("ticker-row-")
        await row.click()
        await until(page, f"document.querySelector('#chart-title').textContent.startsWith('{symbol} ')")
        assert await row.get_attribute("aria-selected") == "true"
        assert (await page.evaluate(CHART_SPAN))["span"] > 0.8

        # 4. Whole at 1280×800.
        await until(page, "document.querySelectorAll('[data-testid=reconnect-history] li').length === 1")
        assert await page.evaluate(CLIPPED) == []
        await screenshot(page, tmp_path, "dashboard-1280x800.png")

        # 5. kill -9 the page's gateway.
        before = await number(page, "stat-msgs")
        os.kill(pid_of(up.log(), "gateway-1"), signal.SIGKILL)
        killed = time.monotonic()
        await until(page, f"!({connected('gw-1', 'ws')})", within=10)
        await until(page, connected("gw-2", "ws"), within=10)
        failover = time.monotonic() - killed
        newest = page.locator("[data-testid=reconnect-history] li").first
        assert await newest.get_attribute("data-node") == "gw-2"
        assert await newest.get_attribute("data-transport") == "ws"

        # 6. Still flowing, nothing lost or doubled on screen.
        after = await number(page, "stat-msgs")
        await until(page, f"{MSGS} > {after + 100}")
        assert failover < 5.0, f"Connected to gw-2 {failover:.1f}s after the kill"
        assert after >= before
        assert await number(page, "stat-gaps") == 0
        assert await number(page, "stat-ui-duplicates") == 0
        assert await number(page, "stat-reconnects") == 1

        # 7. Whole at 1920×1080 too.
        await page.set_viewport_size({"width": 1920, "height": 1080})
        await until(page, "document.documentElement.clientWidth === 1920")
        assert await page.evaluate(CLIPPED) == []
        await screenshot(page, tmp_path, "dashboard-1920x1080.png")
        assert errors == []
        print(f"failover {failover:.2f}s, chart span {span['span']:.2f}, messages {before} -> {after}")  # noqa: T201
    finally:
        up.stop(signal.SIGINT, timeout=40)


@pytest.fixture
async def market(backend: Backend) -> AsyncIterator[None]:
    """The simulator writing 300 entries/s for the test's duration."""
    stop = asyncio.Event()
    task = asyncio.create_task(simulate(SimulatorSettings(redis_url=backend.redis_url, rate=300, symbols=12), stop))
    yield
    stop.set()
    await task


async def test_sse_only_where_websocket_is_blocked(
    backend: Backend, services: Services, market: None, browser: Browser, tmp_path: Path
) -> None:
    """1. one gateway, reached directly and through a proxy that refuses WebSocket upgrades;
    2. through the proxy: the handshakes fail while /healthz answers, so the page ends on SSE
    (status names the gateway's address), data flows, no gap, no duplicate on screen;
    3. directly, with a dead gateway first in the list: it is skipped over WebSocket, the
    page is Connected to gw-1 over WebSocket and never opened SSE."""
    if not (WEB_DIST / "index.html").exists():
        pytest.fail("web/dist is not built: run `make web` (make test does it)")
    services.ingest()
    gw = services.gateway("gw-1", free_port(), TICKWIRE_WEB_DIR=str(WEB_DIST))
    await gw.ready()
    errors: list[str] = []
    async with WebSocketBlockingProxy(gw.port or 0) as proxy:
        # 2. Blocked WebSocket, working HTTP.
        blocked = await open_page(browser, f"{proxy.url}/", errors)
        await until(blocked, connected(f"127.0.0.1:{proxy.port}", "sse"))
        assert await blocked.get_by_test_id("status").inner_text() == f"Connected (SSE)\n127.0.0.1:{proxy.port}"
        assert proxy.upgrades_refused >= 2
        start = await number(blocked, "stat-msgs")
        await until(blocked, f"{MSGS} > {start + 100}")
        assert await number(blocked, "stat-gaps") == 0
        assert await number(blocked, "stat-ui-duplicates") == 0
        await screenshot(blocked, tmp_path, "dashboard-sse.png")

        # 3. A dead gateway: WebSocket to the next one, no SSE.
        dead = free_port()
        requests: list[str] = []
        direct = await open_page(browser, f"{gw.url}/?gateways=127.0.0.1:{dead},127.0.0.1:{gw.port}", errors, requests)
        await until(direct, connected("gw-1", "ws"))
        history = direct.locator("[data-testid=reconnect-history] li")
        assert await history.count() == 1 and await history.first.get_attribute("data-transport") == "ws"
        assert f"http://127.0.0.1:{dead}/healthz" in requests  # asked, found dead, skipped
        assert [url for url in requests if "/sse" in url] == []
    assert errors == []
