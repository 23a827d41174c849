import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { TickwireClient, type TickwireOptions } from "../../src/client/client";
import type { MsgFrame } from "../../src/client/protocol";
import { FakeEventSource, FakeHttp, FakeWebSocket, msg, sequence, settle } from "./fakes";

const URLS = ["ws://a:8080/ws", "ws://b:8081/ws", "ws://c:8082/ws"];

function makeClient(options: Partial<TickwireOptions> = {}, environment: Partial<TickwireOptions["environment"]> = {}) {
  const client = new TickwireClient({
    urls: URLS,
    topics: ["ticks.*"],
    ...options,
    environment: {
      WebSocket: FakeWebSocket,
      EventSource: FakeEventSource,
      // No HTTP probe unless a test is about the SSE fallback: a failed handshake moves on.
      fetch: undefined,
      random: sequence(0.5),
      now: () => Date.now(),
      ...environment,
    },
  });
  const received: MsgFrame[] = [];
  client.on("message", (m) => received.push(m));
  return { client, received };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 });
  FakeWebSocket.reset();
  FakeEventSource.reset();
});

afterEach(() => {
  vi.useRealTimers();
});

describe("backoff", () => {
  it("waits random × min(cap, base·2^attempt) between failed attempts", () => {
    // 1. Every attempt fails before opening; random() is 0.5, so each wait is half its ceiling.
    const { client } = makeClient({ backoff: { baseMs: 250, capMs: 4000, maxAttempts: 10 } });
    client.start();
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      FakeWebSocket.last.drop(1006);
      const stats = client.stats();
      expect(stats.state).toBe("reconnecting");
      waits.push((stats.nextRetryAt ?? 0) - Date.now());
      vi.advanceTimersByTime(waits.at(-1) ?? 0);
    }
    // 2. 250·2^n halved, capped at 4000/2.
    expect(waits).toEqual([125, 250, 500, 1000, 2000, 2000, 2000]);
    client.close();
  });

  it("gives up after maxAttempts in state failed, and retry() starts over", () => {
    // 1. Three attempts allowed; the initial connect and three reconnects all fail.
    const { client } = makeClient({ backoff: { maxAttempts: 3 } });
    client.start();
    for (let i = 0; i < 3; i++) {
      FakeWebSocket.last.drop(1006);
      vi.advanceTimersByTime(5000);
    }
    FakeWebSocket.last.drop(1006);
    // 2. Four sockets were tried, then the client stops.
    expect(FakeWebSocket.instances).toHaveLength(4);
    expect(client.stats().state).toBe("failed");
    expect(client.stats().nextRetryAt).toBeNull();
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(4);
    // 3. retry() connects at once and a success resets the count.
    client.retry();
    expect(client.stats().state).toBe("connecting");
    expect(FakeWebSocket.instances).toHaveLength(5);
    FakeWebSocket.last.accept();
    expect(client.stats().state).toBe("connected");
    expect(client.stats().attempt).toBe(0);
    client.close();
  });
});

describe("heartbeat", () => {
  it("treats two silent heartbeats as a dead connection and reconnects", () => {
    // 1. Connected with a 1 s heartbeat; the server then goes silent (no close event).
    const { client } = makeClient();
    client.start();
    const first = FakeWebSocket.last;
    first.accept("gw-1", 1);
    expect(first.framesOf("ping")).toHaveLength(1);
    // 2. Within two heartbeats nothing happens beyond pings.
    vi.advanceTimersByTime(2000);
    expect(client.stats().state).toBe("connected");
    expect(first.framesOf("ping").length).toBeGreaterThan(1);
    // 3. Past it, the client closes the socket itself and reconnects elsewhere.
    vi.advanceTimersByTime(600);
    expect(first.closedByClient).not.toBeNull();
    expect(client.stats().state).toBe("reconnecting");
    vi.advanceTimersByTime(250);
    expect(FakeWebSocket.last).not.toBe(first);
    expect(FakeWebSocket.last.url).toBe(URLS[1]);
    client.close();
  });

  it("keeps a connection that answers pings", () => {
    const { client } = makeClient();
    client.start();
    const socket = FakeWebSocket.last;
    socket.accept("gw-1", 1);
    for (let i = 0; i < 20; i++) {
      vi.advanceTimersByTime(500);
      const ping = socket.framesOf("ping").at(-1);
      socket.receive({ type: "pong", id: ping?.id, ts: Date.now() * 1000 });
    }
    expect(client.stats().state).toBe("connected");
    expect(FakeWebSocket.instances).toHaveLength(1);
    client.close();
  });
});

describe("resume, dedup and order", () => {
  it("resumes with since per subscription and epoch, and drops what was already seen", () => {
    // 1. Two subscriptions; messages arrive on both, one in a batch.
    const { client, received } = makeClient({ topics: ["ticks.*", "trades.*"] });
    client.start();
    const first = FakeWebSocket.last;
    first.accept();
    expect(first.framesOf("subscribe")[0]).toEqual({ type: "subscribe", topics: ["ticks.*", "trades.*"] });
    first.receive({ type: "subscribed", topics: ["ticks.*", "trades.*"], seq: 100, epoch: "E1", recovered: true });
    first.receive(msg("ticks.AAPL", 101));
    first.receive({ type: "batch", msgs: [msg("trades.AAPL", 102), msg("ticks.MSFT", 103)] });
    // 2. The connection drops; the client comes back on the next gateway.
    first.drop(1006);
    vi.advanceTimersByTime(250);
    const second = FakeWebSocket.last;
    expect(second.url).toBe(URLS[1]);
    second.accept("gw-2");
    // 3. It resumes every subscription from the highest seq it saw on it, in the epoch it knew.
    expect(second.framesOf("subscribe")[0]).toEqual({
      type: "subscribe",
      topics: ["ticks.*", "trades.*"],
      since: { "ticks.*": 103, "trades.*": 102 },
      epoch: "E1",
    });
    // 4. A replay overlapping what arrived is dropped; the new messages come through once, in order.
    second.receive({ type: "subscribed", topics: ["ticks.*", "trades.*"], seq: 110, epoch: "E1", recovered: true });
    second.receive({ type: "batch", msgs: [msg("ticks.MSFT", 103), msg("trades.AAPL", 102), msg("ticks.AAPL", 104)] });
    second.receive(msg("ticks.AAPL", 104));
    second.receive(msg("trades.AAPL", 105));
    expect(received.map((m) => m.seq)).toEqual([101, 102, 103, 104, 105]);
    const stats = client.stats();
    expect(stats.duplicates).toBe(3);
    expect(stats.gaps).toBe(0);
    expect(stats.reconnects).toBe(1);
    expect(stats.node).toBe("gw-2");
    client.close();
  });

  it("counts a message older than one already seen on its subscription as a gap", () => {
    const { client } = makeClient();
    client.start();
    const socket = FakeWebSocket.last;
    socket.accept();
    socket.receive({ type: "subscribed", topics: ["ticks.*"], seq: 10, epoch: "E", recovered: true });
    // Snapshot messages (≤ head 10) may come in any order; live ones must not go backwards.
    socket.receive(msg("ticks.B", 9));
    socket.receive(msg("ticks.A", 5));
    socket.receive(msg("ticks.A", 12));
    socket.receive(msg("ticks.C", 11));
    expect(client.stats().gaps).toBe(1);
    client.close();
  });

  it("uses the snapshot head as the position of a subscription that has had no message", () => {
    const { client } = makeClient();
    client.start();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.receive({ type: "subscribed", topics: ["ticks.*"], seq: 500, epoch: "E", recovered: true });
    FakeWebSocket.last.drop(1006);
    vi.advanceTimersByTime(250);
    FakeWebSocket.last.accept();
    expect(FakeWebSocket.last.framesOf("subscribe")[0]).toMatchObject({ since: { "ticks.*": 500 }, epoch: "E" });
    client.close();
  });

  it("resets a subscription's state on recovered:false and accepts the new snapshot", () => {
    // 1. Messages up to seq 900 in epoch E1.
    const { client, received } = makeClient();
    const resets: string[] = [];
    client.on("reset", (p) => resets.push(p));
    client.start();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.receive({ type: "subscribed", topics: ["ticks.*"], seq: 899, epoch: "E1", recovered: true });
    FakeWebSocket.last.receive(msg("ticks.AAPL", 900));
    // 2. After a reconnect the stream was recreated: the server cannot recover.
    FakeWebSocket.last.drop(1006);
    vi.advanceTimersByTime(250);
    FakeWebSocket.last.accept();
    FakeWebSocket.last.receive({ type: "subscribed", topics: ["ticks.*"], seq: 3, epoch: "E2", recovered: false });
    expect(resets).toEqual(["ticks.*"]);
    // 3. The snapshot's low seqs in the new epoch are delivered, not taken for duplicates.
    FakeWebSocket.last.receive(msg("ticks.AAPL", 2));
    FakeWebSocket.last.receive(msg("ticks.AAPL", 4));
    expect(received.map((m) => m.seq)).toEqual([900, 2, 4]);
    expect(client.stats().duplicates).toBe(0);
    expect(client.stats().gaps).toBe(0);
    // 4. The next resume carries the new epoch.
    FakeWebSocket.last.drop(1006);
    vi.advanceTimersByTime(250);
    FakeWebSocket.last.accept();
    expect(FakeWebSocket.last.framesOf("subscribe")[0]).toMatchObject({ since: { "ticks.*": 4 }, epoch: "E2" });
    client.close();
  });

  it("subscribes new topics without since and stops delivering removed ones", () => {
    const { client, received } = makeClient();
    client.start();
    const socket = FakeWebSocket.last;
    socket.accept();
    client.subscribe(["trades.*"]);
    expect(socket.framesOf("subscribe").at(-1)).toEqual({ type: "subscribe", topics: ["trades.*"] });
    client.unsubscribe(["ticks.*"]);
    expect(socket.framesOf("unsubscribe")).toEqual([{ type: "unsubscribe", topics: ["ticks.*"] }]);
    socket.receive(msg("ticks.AAPL", 1));
    socket.receive(msg("trades.AAPL", 2));
    expect(received.map((m) => m.topic)).toEqual(["trades.AAPL"]);
    client.close();
  });
});

describe("close codes and failover", () => {
  it("tries the gateways in order, wrapping around", () => {
    const { client } = makeClient();
    client.start();
    const tried: string[] = [];
    for (let i = 0; i < 4; i++) {
      tried.push(FakeWebSocket.last.url);
      FakeWebSocket.last.drop(1006);
      vi.advanceTimersByTime(5000);
    }
    expect(tried).toEqual([URLS[0], URLS[1], URLS[2], URLS[0]]);
    client.close();
  });

  it("reconnects at once after 4008 to the same gateway and after 1012 to the next", () => {
    const { client } = makeClient({ immediateJitterMs: 20 });
    client.start();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.drop(4008);
    expect((client.stats().nextRetryAt ?? 0) - Date.now()).toBe(10);
    vi.advanceTimersByTime(10);
    expect(FakeWebSocket.last.url).toBe(URLS[0]);
    FakeWebSocket.last.accept();
    FakeWebSocket.last.drop(1012);
    vi.advanceTimersByTime(10);
    expect(FakeWebSocket.instances.map((s) => s.url)).toEqual([URLS[0], URLS[0], URLS[1]]);
    client.close();
  });

  it("moves on after 1013 and fails on 1008 without retrying", () => {
    const { client } = makeClient();
    client.start();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.drop(1013);
    expect(client.stats().state).toBe("reconnecting");
    vi.advanceTimersByTime(5000);
    expect(FakeWebSocket.last.url).toBe(URLS[1]);
    FakeWebSocket.last.drop(1008);
    expect(client.stats().state).toBe("failed");
    expect(client.stats().lastError).toMatch(/1008/);
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(2);
    client.close();
  });
});

describe("SSE fallback", () => {
  it("uses EventSource where WebSocket is missing, with topics, since and epoch in the URL", () => {
    // 1. No WebSocket at all: SSE from the start.
    const { client, received } = makeClient({ topics: ["ticks.*", "trades.*"] }, { WebSocket: undefined });
    client.start();
    const source = FakeEventSource.instances[0];
    expect(source?.url).toBe("http://a:8080/sse?topics=ticks.*%2Ctrades.*");
    // 2. Events carry msg JSON, and the event id is the seq.
    source?.open();
    expect(client.stats().state).toBe("connected");
    expect(client.stats().transport).toBe("sse");
    source?.emit({ type: "subscribed", topics: ["ticks.*", "trades.*"], seq: 40, epoch: "e1", recovered: true },
                 undefined, "subscribed");
    source?.emit({ topic: "ticks.AAPL", data: { symbol: "AAPL" } }, "41");
    source?.emit({ topic: "trades.AAPL", seq: 42, data: {} });
    expect(received.map((m) => m.seq)).toEqual([41, 42]);
    // 3. An error closes it; the client reconnects with the lowest position of its subscriptions
    // and the epoch that position belongs to.
    source?.fail();
    expect(source?.closed).toBe(true);
    vi.advanceTimersByTime(250);
    expect(FakeEventSource.instances[1]?.url).toBe("http://b:8081/sse?topics=ticks.*%2Ctrades.*&since=41&epoch=e1");
    client.close();
  });
});

describe("a failed handshake: gateway down or WebSocket blocked", () => {
  it("moves a refused gateway's client to the next gateway over WebSocket, never to SSE", async () => {
    // 1. a refuses connections (fetch rejects), b answers /healthz with 502 (a proxy whose
    //    backend is gone): both are down, so each failure tries the next gateway's WebSocket.
    const http = new FakeHttp({ "http://a:8080/healthz": "refused", "http://b:8081/healthz": 502 });
    const { client } = makeClient({}, { fetch: http.fetch });
    client.start();
    FakeWebSocket.last.drop(1006);
    await settle();
    expect(http.asked).toEqual(["http://a:8080/healthz"]);
    expect(client.stats().state).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(5000);
    expect(FakeWebSocket.last.url).toBe(URLS[1]);
    FakeWebSocket.last.drop(1006);
    await settle();
    await vi.advanceTimersByTimeAsync(5000);
    // 2. Three WebSocket attempts, in list order, and no EventSource at all.
    expect(FakeWebSocket.instances.map((s) => s.url)).toEqual([URLS[0], URLS[1], URLS[2]]);
    expect(FakeEventSource.instances).toHaveLength(0);
    // 3. c accepts: connected over WebSocket to the third node.
    FakeWebSocket.last.accept("gw-3");
    expect(client.stats()).toMatchObject({ state: "connected", transport: "ws", node: "gw-3" });
    client.close();
  });

  it("counts a /healthz probe that never answers as a dead gateway", async () => {
    const http = new FakeHttp({ "http://a:8080/healthz": "hang" });
    const { client } = makeClient({ livenessTimeoutMs: 2000 }, { fetch: http.fetch });
    client.start();
    FakeWebSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(1999);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1 + 5000);
    expect(FakeWebSocket.last.url).toBe(URLS[1]);
    expect(FakeEventSource.instances).toHaveLength(0);
    client.close();
  });

  it("falls back to SSE on the same gateway when it answers HTTP but its handshakes keep failing", async () => {
    // 1. a answers /healthz, but two WebSocket handshakes fail in a row (sseAfterFailures 2).
    const http = new FakeHttp({ "http://a:8080/healthz": 200, "http://b:8081/healthz": 200 });
    const { client, received } = makeClient({ sseAfterFailures: 2 }, { fetch: http.fetch });
    client.start();
    FakeWebSocket.last.drop(1006);
    await settle();
    await vi.advanceTimersByTimeAsync(5000);
    // 2. The second attempt is the same gateway, still over WebSocket.
    expect(FakeWebSocket.instances.map((s) => s.url)).toEqual([URLS[0], URLS[0]]);
    expect(FakeEventSource.instances).toHaveLength(0);
    FakeWebSocket.last.drop(1006);
    await settle();
    // 3. Then SSE at once, on that same gateway.
    const source = FakeEventSource.instances[0]!;
    expect(source.url).toBe("http://a:8080/sse?topics=ticks.*");
    source.open();
    source.emit({ topic: "ticks.A", data: {} }, "5");
    expect(client.stats()).toMatchObject({ state: "connected", transport: "sse", url: source.url });
    expect(received.map((m) => m.seq)).toEqual([5]);
    // 4. That stream lost (its gateway died): the next gateway is tried over WebSocket first.
    source.fail();
    await vi.advanceTimersByTimeAsync(5000);
    expect(FakeWebSocket.last.url).toBe(URLS[1]);
    expect(FakeEventSource.instances).toHaveLength(1);
    FakeWebSocket.last.accept("gw-2");
    expect(client.stats()).toMatchObject({ state: "connected", transport: "ws", node: "gw-2" });
    client.close();
  });

  it("ignores a probe that answers after close()", async () => {
    const http = new FakeHttp({ "http://a:8080/healthz": "hang" });
    const { client } = makeClient({}, { fetch: http.fetch });
    client.start();
    FakeWebSocket.last.drop(1006);
    client.close();
    http.release(200);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(FakeEventSource.instances).toHaveLength(0);
    expect(client.stats().state).toBe("closed");
  });
});

describe("reconnect history", () => {
  it("records each connection with its node, transport, time down and the close code before it", () => {
    const { client } = makeClient();
    client.start();
    FakeWebSocket.last.accept("gw-1");
    vi.advanceTimersByTime(1000);
    FakeWebSocket.last.drop(1006);
    vi.advanceTimersByTime(125); // the first backoff wait: random 0.5 × 250 ms
    vi.advanceTimersByTime(75); // the handshake and welcome take a while
    FakeWebSocket.last.accept("gw-2");
    const { history, reconnects } = client.stats();
    expect(reconnects).toBe(1);
    expect(history.map(({ node, transport, afterCode }) => ({ node, transport, afterCode }))).toEqual([
      { node: "gw-1", transport: "ws", afterCode: null },
      { node: "gw-2", transport: "ws", afterCode: 1006 },
    ]);
    expect(history[0]?.downMs).toBeNull();
    expect(history[1]?.downMs).toBe(200);
    client.close();
  });
});

describe("back from SSE", () => {
  it("probes WebSocket on the side while on SSE and moves back once a handshake opens", async () => {
    // 1. One WebSocket failure on a gateway that answers HTTP is enough to fall back; SSE delivers seq 7.
    const http = new FakeHttp({ "http://a:8080/healthz": 200 });
    const { client, received } = makeClient({ sseAfterFailures: 1, wsProbeMs: 30_000 }, { fetch: http.fetch });
    client.start();
    FakeWebSocket.last.drop(1006);
    await settle();
    const source = FakeEventSource.instances[0]!;
    source.open();
    source.emit({ topic: "ticks.A", data: {} }, "7");
    expect(client.stats().transport).toBe("sse");
    // 2. The first probe fails: the SSE stream stays up, untouched.
    vi.advanceTimersByTime(30_000);
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last.drop(1006);
    expect(source.closed).toBe(false);
    expect(client.stats().transport).toBe("sse");
    // 3. The second opens: the probe is closed, SSE too, and a WebSocket link resumes from 7.
    vi.advanceTimersByTime(30_000);
    const probe = FakeWebSocket.last;
    probe.open();
    expect(probe.closedByClient).toBe(1000);
    expect(source.closed).toBe(true);
    const socket = FakeWebSocket.last;
    expect(socket).not.toBe(probe);
    socket.accept();
    expect(socket.framesOf("subscribe")[0]).toMatchObject({ topics: ["ticks.*"], since: { "ticks.*": 7 } });
    expect(client.stats()).toMatchObject({ transport: "ws", state: "connected", reconnects: 0 });
    // The history shows the move back: SSE first, then WebSocket with no outage.
    expect(client.stats().history.map(({ transport, downMs, afterCode }) => ({ transport, downMs, afterCode }))).toEqual([
      { transport: "sse", downMs: null, afterCode: null },
      { transport: "ws", downMs: 0, afterCode: null },
    ]);
    socket.receive({ type: "msg", topic: "ticks.A", seq: 7, id: "7-0", ts: Date.now() * 1000, data: {} });
    socket.receive({ type: "msg", topic: "ticks.A", seq: 8, id: "8-0", ts: Date.now() * 1000, data: {} });
    expect(received.map((m) => m.seq)).toEqual([7, 8]); // 7 again is a duplicate, dropped
    client.close();
  });
});

describe("SSE stream reopened for new topics", () => {
  it("is the same connection in the history and keeps probing WebSocket on the side", async () => {
    // 1. On SSE after one blocked handshake.
    const http = new FakeHttp({ "http://a:8080/healthz": 200 });
    const { client } = makeClient({ sseAfterFailures: 1, wsProbeMs: 30_000 }, { fetch: http.fetch });
    client.start();
    FakeWebSocket.last.drop(1006);
    await settle();
    FakeEventSource.instances[0]!.open();
    // 2. A new topic reopens the stream with both topics in its URL.
    client.subscribe(["trades.*"]);
    const reopened = FakeEventSource.instances[1]!;
    expect(reopened.url).toBe("http://a:8080/sse?topics=ticks.*%2Ctrades.*");
    reopened.open();
    expect(client.stats().history).toHaveLength(1);
    expect(client.stats().reconnects).toBe(0);
    // 3. The side probe is still scheduled.
    const sockets = FakeWebSocket.instances.length;
    vi.advanceTimersByTime(30_000);
    expect(FakeWebSocket.instances).toHaveLength(sockets + 1);
    client.close();
  });
});

describe("clock, latency and reports", () => {
  it("estimates clock offset from the lowest-RTT pong", () => {
    const { client } = makeClient();
    client.start();
    const socket = FakeWebSocket.last;
    socket.accept();
    const t0 = Date.now();
    const ping = socket.framesOf("ping")[0];
    expect(ping).toEqual({ type: "ping", id: 1, ts: t0 });
    // 1. RTT 40 ms; the server clock reads 5000 ms ahead of the local midpoint.
    vi.advanceTimersByTime(40);
    socket.receive({ type: "pong", id: 1, ts: (t0 + 20 + 5000) * 1000 });
    expect(client.stats().clockOffsetMs).toBe(5000);
    expect(client.stats().rttMs).toBe(40);
    // 2. A slower sample (RTT 200 ms) does not replace it.
    vi.advanceTimersByTime(7500 - 40);
    const second = socket.framesOf("ping")[1];
    vi.advanceTimersByTime(200);
    socket.receive({ type: "pong", id: second?.id, ts: (Date.now() - 100 + 9000) * 1000 });
    expect(client.stats().clockOffsetMs).toBe(5000);
    // 3. Latency is measured against the corrected clock.
    socket.receive({ type: "subscribed", topics: ["ticks.*"], seq: 0, recovered: true });
    socket.receive(msg("ticks.A", 1, { ts: (Date.now() + 5000 - 3) * 1000 }));
    expect(client.stats().latency?.p50).toBe(3);
    client.close();
  });

  it("sends a report with receipts of traced messages every second", () => {
    const { client } = makeClient();
    client.start();
    const socket = FakeWebSocket.last;
    socket.accept();
    socket.receive({ type: "subscribed", topics: ["ticks.*"], seq: 0, recovered: true });
    socket.receive(msg("ticks.A", 1, { trace: "00-abc-def-01", ts: (Date.now() - 2) * 1000 }));
    socket.receive(msg("ticks.A", 2, { ts: (Date.now() - 4) * 1000 }));
    vi.advanceTimersByTime(1000);
    const [report] = socket.framesOf("report");
    expect(report).toEqual({
      type: "report",
      received: [{ seq: 1, trace: "00-abc-def-01", t: Date.now() * 1000 - 1_000_000 }],
      latency: { n: 2, p50: 2, p99: 4 },
    });
    client.close();
  });

  it("surfaces gap notices from the gateway", () => {
    const { client } = makeClient();
    const gaps: unknown[] = [];
    client.on("gap", (g) => gaps.push(g));
    client.start();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.receive({ type: "gap", topic: "ticks.A", reason: "trimmed" });
    expect(gaps).toEqual([{ type: "gap", topic: "ticks.A", reason: "trimmed" }]);
    expect(client.stats().upstreamGaps).toBe(1);
    expect(client.stats().gaps).toBe(0);
    client.close();
  });

  it("offers the bearer subprotocol only with a token", () => {
    makeClient().client.start();
    expect(FakeWebSocket.last.protocols).toBeUndefined();
    makeClient({ token: "T" }).client.start();
    expect(FakeWebSocket.last.protocols).toEqual(["tickwire.v1", "bearer.T"]);
  });
});
