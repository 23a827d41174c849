import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import type { ClientStats } from "../../src/client";
import { HopLatencyPanel } from "../../src/components/HopLatencyPanel";
import { StatusIndicator } from "../../src/components/StatusIndicator";
import { readPageConfig } from "../../src/config";
import { parseHops } from "../../src/hops";

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

describe("per-hop latency", () => {
  it("renders whatever numeric columns the endpoint gives, and survives junk", () => {
    const table = parseHops({ hops: { ingest: { p50: 1, p99: 3, max: 9, note: "x" }, gateway: { p90: 2 } }, unit: "ms" });
    expect(table.columns).toEqual(["p50", "p90", "p99", "max"]);
    const html = renderToStaticMarkup(<HopLatencyPanel table={table} error={null} />);
    expect(html).toContain("ingest");
    expect(html).toContain("9.00");
    expect(parseHops(null).rows).toEqual([]);
    expect(parseHops({ hops: [1, 2] }).rows).toEqual([]);
    expect(parseHops({ a: { p50: 1 } }).rows).toEqual([{ name: "a", values: { p50: 1 } }]);
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
