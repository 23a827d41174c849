"""The dashboard in a real browser (Debian's Chromium driven by Playwright) on a real stack.

Real Redis, NATS, ingest and two gateways serve the built web app; the market simulator
feeds it. The page must connect, show live prices, survive the loss of its gateway within
5 s without a gap, and keep updating over SSE when WebSocket is unavailable. A screenshot
is written to ``docs/dashboard.png`` (the README shows it) and under ``test-output/``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright

from services.settings import SimulatorSettings
from tests.conftest import Backend
from tests.stack import ROOT, Service, Services
from tickwire.localservers import free_port
from tickwire.simulator import run as simulate

pytestmark = pytest.mark.slow

WEB_DIST = ROOT / "web" / "dist"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags this machine's Chromium needs headless (no sandbox as root, no network probes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A gateway killed on purpose makes Chromium log its refused reconnect: expected, not a bug.
# The page's delivered-message count, as a number, in page-side JavaScript.
MSGS = "Number(document.querySelector('[data-testid=stat-msgs]').textContent.replace(/\\D/g, ''))"
EXPECTED_CONSOLE = re.compile(r"ERR_CONNECTION_REFUSED|WebSocket connection to .* failed")


@pytest.fixture
async def market(backend: Backend) -> AsyncIterator[None]:
    """The simulator writing 300 entries/s for the test's duration."""
    stop = asyncio.Event()
    task = asyncio.create_task(simulate(SimulatorSettings(redis_url=backend.redis_url, rate=300, symbols=12), stop))
    yield
    stop.set()
    await task


async def gateways(services: Services, count: int) -> list[Service]:
    if not (WEB_DIST / "index.html").exists():
        pytest.fail("web/dist is not built: run `make web` (make test does it)")
    ports = [free_port() for _ in range(count)]
    # The page from one gateway fails over to the others directly (no load balancer in
    # front here), so each must allow the others' origin.
    origins = ",".join(f"http://127.0.0.1:{port}" for port in ports)
    started = [
        services.gateway(f"gw-{i + 1}", port, TICKWIRE_WEB_DIR=str(WEB_DIST), TICKWIRE_ALLOWED_ORIGINS=origins)
        for i, port in enumerate(ports)
    ]
    await asyncio.gather(*(g.ready() for g in started))
    return started


async def text(page: Page, testid: str) -> str:
    return (await page.get_by_test_id(testid).inner_text()).strip()


async def number(page: Page, testid: str) -> int:
    return int(re.sub(r"[^\d]", "", await text(page, testid)) or 0)


async def until(page: Page, js: str, within: float = 15.0) -> None:
    await page.wait_for_function(js, timeout=within * 1000)


def status_is(label: str, node: str | None = None) -> str:
    node_check = (
        f" && document.querySelector('[data-testid=status-node]')?.textContent.includes('{node}')" if node else ""
    )
    return f"document.querySelector('[data-testid=status]')?.textContent.startsWith('{label}'){node_check}"


async def open_dashboard(browser_page: Page, url: str, errors: list[str]) -> Page:
    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not EXPECTED_CONSOLE.search(message.text):
            errors.append(message.text)

    browser_page.on("console", on_console)
    browser_page.on("pageerror", lambda exc: errors.append(str(exc)))
    await browser_page.goto(url)
    return browser_page


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[object]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def test_dashboard_shows_live_prices_and_fails_over(
    backend: Backend, services: Services, market: None, browser: object, tmp_path: Path
) -> None:
    """1. ingest + two gateways serving the dashboard; 2. open it on gw-1 with both as
    failover targets; 3. Connected to gw-1 with ticker rows and trades; 4. kill -9 gw-1:
    the indicator leaves Connected, then shows Connected on gw-2 within 5 s; 5. messages
    keep counting, gaps stay 0, no console error; 6. screenshot."""
    services.ingest()
    gw1, gw2 = await gateways(services, 2)
    errors: list[str] = []
    context = await browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page = await open_dashboard(
        await context.new_page(), f"{gw1.url}/?gateways=127.0.0.1:{gw1.port},127.0.0.1:{gw2.port}", errors
    )
    await until(page, status_is("Connected", "gw-1"))
    await until(page, "document.querySelectorAll('[data-testid^=ticker-row-]').length >= 10")
    await until(page, "Number(document.querySelector('[data-testid=trades-tape]').dataset.total) > 5")
    await until(page, f"{MSGS} > 50")
    before = await number(page, "stat-msgs")

    gw1.kill()
    killed = time.monotonic()
    await until(page, f"!({status_is('Connected', 'gw-1')})", within=10)
    await until(page, status_is("Connected", "gw-2"), within=10)
    failover = time.monotonic() - killed
    after = await number(page, "stat-msgs")
    await until(
        page,
        f"{MSGS} > {after + 50}",
    )

    assert failover < 5.0, f"reconnected to gw-2 after {failover:.1f}s"
    assert after > before
    assert await number(page, "stat-gaps") == 0
    assert await number(page, "stat-reconnects") >= 1
    assert errors == []
    out = ROOT / "test-output"
    out.mkdir(exist_ok=True)
    await page.screenshot(path=str(out / "dashboard.png"))
    shutil.copy(out / "dashboard.png", ROOT / "docs" / "dashboard.png")
    print(f"failover {failover:.2f}s, messages before {before}, after {after}, gaps 0")  # noqa: T201
    await context.close()


async def test_dashboard_updates_over_sse_when_websocket_is_blocked(
    backend: Backend, services: Services, market: None, browser: object
) -> None:
    """1. a page where WebSocket is unavailable; 2. it connects over SSE; 3. prices and the
    message count keep moving with no gap; 4. on a narrow screen, without console errors."""
    services.ingest()
    (gw,) = await gateways(services, 1)
    errors: list[str] = []
    context = await browser.new_context(viewport={"width": 400, "height": 800})  # type: ignore[attr-defined]
    page = await context.new_page()
    await page.add_init_script("delete window.WebSocket")
    await open_dashboard(page, f"{gw.url}/", errors)
    await until(page, status_is("Connected (SSE)"))
    start = await number(page, "stat-msgs")
    await until(
        page,
        f"{MSGS} > {start + 100}",
    )
    await until(page, "document.querySelectorAll('[data-testid^=ticker-row-]').length >= 5")
    assert await number(page, "stat-gaps") == 0
    assert errors == []
    await page.screenshot(path=str(ROOT / "test-output" / "dashboard-narrow-sse.png"))
    await context.close()
