import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import type { ClientStats } from "../../src/client";
import type { MsgFrame } from "../../src/client/protocol";
import { HopLatencyPanel } from "../../src/components/HopLatencyPanel";
import { Sparkline } from "../../src/components/Sparkline";
import { StatusIndicator } from "../../src/components/StatusIndicator";
import { TickerTable } from "../../src/components/TickerTable";
import { TAPE_ROWS, TradesTape } from "../../src/components/TradesTape";
import { latencyTone, ms } from "../../src/format";
import { readPageConfig } from "../../src/config";
import { parseHops } from "../../src/hops";
import { MarketStore } from "../../src/market/store";

const base: ClientStats = {
  state: "connected",
  node: "gw-1",
  url: "ws://h/ws",
  transport: "ws",
  reconnects: 0,
  attempt: 0,
  nextRetryAt: null,
  latency: null,
  msgPerSecond: 0,
  messages: 0,
  gaps: 0,
  upstreamGaps: 0,
  duplicates: 0,
  clockOffsetMs: 0,
  rttMs: null,
  lastError: null,
  subscriptions: [],
  history: [],
};

describe("StatusIndicator", () => {
  it("says the state in words, with node, countdown and Retry", () => {
    const connected = renderToStaticMarkup(<StatusIndicator stats={base} now={0} onRetry={() => undefined} />);
    expect(connected).toContain('role="status"');
    expect(connected).toMatch(/data-testid="status".*Connected.*data-testid="status-node"[^>]*>gw-1/);
    const waiting = renderToStaticMarkup(
      <StatusIndicator stats={{ ...base, state: "reconnecting", node: null, nextRetryAt: 2500 }} now={0} onRetry={() => undefined} />,
    );
    expect(waiting).toMatch(/Reconnecting.* in 3 s/);
    const failed = renderToStaticMarkup(<StatusIndicator stats={{ ...base, state: "failed" }} now={0} onRetry={() => undefined} />);
    expect(failed).toContain("Failed");
    expect(failed).toContain(">Retry</button>");
  });
});

describe("status over SSE", () => {
  it("names the gateway by its address where no welcome named the node", () => {
    const sse = { ...base, transport: "sse" as const, node: null, url: "http://127.0.0.1:9001/sse?topics=ticks.*" };
    const html = renderToStaticMarkup(<StatusIndicator stats={sse} now={0} onRetry={() => undefined} />);
    expect(html).toContain('data-transport="sse"');
    expect(html).toMatch(/Connected \(SSE\).*data-testid="status-node"[^>]*>127\.0\.0\.1:9001</);
  });
});

describe("latency thresholds and the p99 sparkline", () => {
  it("writes milliseconds short: one decimal under 100, whole to 10 s, then seconds", () => {
    expect([7.54, 99.94, 655.4, 9999, 12_345, null].map((v) => ms(v))).toEqual(["7.5", "99.9", "655", "9999", "12.3 s", "–"]);
  });

  it("is green under 50 ms, amber to 100 ms, red above", () => {
    expect([10, 49.9, 50, 100, 100.1, null].map((ms) => latencyTone(ms))).toEqual(["good", "good", "warn", "warn", "bad", null]);
  });

  it("draws measured samples from the right, keeps gaps as gaps, and takes the newest sample's colour", () => {
    const html = renderToStaticMarkup(<Sparkline values={[20, null, 30, 120]} capacity={4} label="p99" />);
    expect(html).toContain('class="sparkline tone-bad"');
    expect(html).toContain('data-samples="3"');
    // Two runs: a move to the first sample, then a new move after the gap, and a line.
    expect(html.match(/ d="([^"]+)"/)?.[1]).toMatch(/^M0\.0,[\d.]+M200\.0,[\d.]+L300\.0,[\d.]+$/);
  });
});

describe("per-hop latency", () => {
  it("renders whatever numeric columns the endpoint gives, and survives junk", () => {
    const table = parseHops({ hops: { ingest: { p50: 1, p99: 3, max: 9, note: "x" }, gateway: { p90: 2 } }, unit: "ms" });
    expect(table.columns).toEqual(["p50", "p90", "p99", "max"]);
    const html = renderToStaticMarkup(<HopLatencyPanel table={table} error={null} />);
    expect(html).toContain("ingest");
    expect(html).toContain("9.0");
    // No loop_lag from this gateway: the row says so instead of showing zeros.
    expect(html).toContain("not reported by this gateway");
    expect(parseHops(null).rows).toEqual([]);
    expect(parseHops({ hops: [1, 2] }).rows).toEqual([]);
    expect(parseHops({ a: { p50: 1 } }).rows).toEqual([{ name: "a", values: { p50: 1 } }]);
  });

  it("colours latency by threshold and shows the gateway's event-loop lag when reported", () => {
    const table = parseHops({
      node: "gw-2",
      hops: { fast: { n: 10, p50: 12, p99: 49.9 }, slow: { n: 10, p50: 50, p99: 129 } },
      loop_lag: { p50: 0.4, p99: 75, max: 140, n: 600 },
    });
    expect(table.loopLag).toEqual({ p50: 0.4, p99: 75, max: 140, n: 600 });
    const html = renderToStaticMarkup(<HopLatencyPanel table={table} error={null} />);
    expect(html).toContain("gw-2");
    expect(html).toMatch(/tone-good">12\.0</);
    expect(html).toMatch(/tone-good">49\.9</);
    expect(html).toMatch(/tone-warn">50\.0</);
    expect(html).toMatch(/tone-bad">129</);
    // The loop-lag row, under the hop columns it shares, with its own count.
    expect(html).toMatch(/event-loop lag<\/th><td class="num">600<\/td><td class="num tone-good">0\.4<\/td><td class="num tone-warn">75\.0<\/td><td class="num tone-bad">140</);
  });
});

describe("readPageConfig", () => {
  it("defaults to the page's own origin and reads ?gateways=, ?topics= and ?transport=", () => {
    expect(readPageConfig({ protocol: "https:", host: "example.test", search: "" })).toEqual({
      gateways: ["wss://example.test/ws"],
      topics: ["ticks.*", "trades.*"],
      transport: "auto",
    });
    expect(readPageConfig({ protocol: "http:", host: "h:8080", search: "?gateways=a:1,ws://b:2/ws&topics=ticks.AAPL&transport=sse" })).toEqual({
      gateways: ["ws://a:1/ws", "ws://b:2/ws"],
      topics: ["ticks.AAPL"],
      transport: "sse",
    });
  });

  it("puts the page's own gateway first, then the ones its gateway serves, unless ?gateways= is given", () => {
    const page = { protocol: "http:", host: "127.0.0.1:8081", search: "" };
    expect(readPageConfig(page, ["127.0.0.1:8080", "127.0.0.1:8081"]).gateways).toEqual([
      "ws://127.0.0.1:8081/ws",
      "ws://127.0.0.1:8080/ws",
    ]);
    expect(readPageConfig({ ...page, search: "?gateways=x:1" }, ["127.0.0.1:8080"]).gateways).toEqual(["ws://x:1/ws"]);
    expect(readPageConfig(page, []).gateways).toEqual(["ws://127.0.0.1:8081/ws"]);
  });

  it("takes a token from the fragment, never from the query", () => {
    const base = { protocol: "http:", host: "h", search: "?token=leaked" };
    expect(readPageConfig({ ...base, hash: "#token=abc.def.ghi" }).token).toBe("abc.def.ghi");
    expect(readPageConfig(base).token).toBeUndefined();
  });

});

describe("market panels", () => {
  const trade = (seq: number): MsgFrame => ({ topic: "trades.X", seq, data: { symbol: "X", price: seq, size: 1, side: "buy" } });
  const tick = (seq: number, symbol: string, last: number): MsgFrame => ({ topic: `ticks.${symbol}`, seq, data: { symbol, last } });

  it("draws the newest TAPE_ROWS trades, newest first, and counts them all", () => {
    const store = new MarketStore();
    store.apply(Array.from({ length: 1234 }, (_, i) => trade(i + 1)), 0);
    const html = renderToStaticMarkup(<TradesTape store={store} />);
    expect(html.match(/<li /g)?.length).toBe(TAPE_ROWS);
    expect(html).toContain('data-total="1234"');
    const prices = [...html.matchAll(/<span class="num">(\d+)\.00<\/span>/g)].map((m) => Number(m[1]));
    expect(prices.slice(0, 3)).toEqual([1234, 1233, 1232]);
  });

  it("shows every symbol's newest price, with the flash overlay of its latest move", () => {
    const store = new MarketStore();
    store.apply([tick(1, "B", 10), tick(1, "A", 5)], 0);
    store.apply([tick(2, "A", 6), tick(3, "A", 4.5)], 0);
    const html = renderToStaticMarkup(<TickerTable store={store} selected="A" onSelect={() => undefined} />);
    expect([...html.matchAll(/data-testid="ticker-row-(\w+)"/g)].map((m) => m[1])).toEqual(["A", "B"]);
    expect(html).toMatch(/ticker-row-A".*<td class="num last"><span class="flash flash-down" aria-hidden="true"><\/span>4\.50<\/td>/);
    expect(html).toMatch(/ticker-row-A"[^>]*aria-selected="true"/);
  });
});
