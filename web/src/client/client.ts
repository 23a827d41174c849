/**
 * TickwireClient: one logical feed over a list of gateways. It fails over between them,
 * reconnects with full-jitter backoff, notices a dead connection by heartbeat, resumes each
 * subscription where it left off, and hands the application every message once, in order.
 * Framework-free: the dashboard is one user of it.
 */

import { DEFAULT_BACKOFF, fullJitterDelay, type BackoffPolicy } from "./backoff.ts";
import { ClockSync } from "./clock.ts";
import { Emitter } from "./emitter.ts";
import { defaultEnvironment, type Environment, type TimerHandle } from "./environment.ts";
import { openEventSourceLink, openWebSocketLink, sseUrlFor, type Link, type LinkEvents, type Transport } from "./link.ts";
import { probeLiveness } from "./liveness.ts";
import { RateMeter, SampleWindow, type Percentiles } from "./metrics.ts";
import { CloseCode, type ErrorFrame, type GapFrame, type MsgFrame, type ServerFrame, type SubscribeFrame } from "./protocol.ts";
import { TraceReporter } from "./reporter.ts";
import { canTransition, type ConnectionState } from "./state.ts";
import { SubscriptionBook } from "./subscriptions.ts";

export interface TickwireOptions {
  /** Gateway WebSocket URLs (ws://host:port/ws), tried in order and in turn on failure. */
  urls: readonly string[];
  /** Subscriptions to open at start (NATS-style patterns). */
  topics?: readonly string[];
  backoff?: Partial<BackoffPolicy>;
  /** `auto`: WebSocket, falling back to SSE where it is missing, or where a gateway that
   * answers HTTP keeps failing the WebSocket handshake. */
  transport?: "auto" | Transport;
  /** Consecutive failed WebSocket handshakes on a gateway that answers HTTP (`/healthz`)
   * before `auto` switches to SSE on that gateway. A gateway that does not answer is down:
   * the client moves to the next one over WebSocket instead. */
  sseAfterFailures?: number;
  /** How long the `/healthz` probe after a failed handshake may take before the gateway
   * counts as down. */
  livenessTimeoutMs?: number;
  /** While `auto` has fallen back to SSE: how often a WebSocket handshake is tried on the
   * side; once one opens, the client moves back to WebSocket (resuming, so nothing is lost). */
  wsProbeMs?: number;
  /** Offered as the `bearer.<token>` subprotocol beside `tickwire.v1` (design §5). */
  token?: string;
  /** Heartbeat assumed until `welcome` gives the server's, seconds. */
  heartbeatSeconds?: number;
  reportIntervalMs?: number;
  /** Upper bound of the random delay on an immediate reconnect (close 4008 or 1012). */
  immediateJitterMs?: number;
  environment?: Partial<Environment>;
}

export interface ClientEvents {
  message: (msg: MsgFrame) => void;
  /** Continuity on this subscription was lost (`recovered:false`): drop its state, a snapshot follows. */
  reset: (pattern: string) => void;
  /** Data lost upstream of Tickwire, as the gateway reported it. */
  gap: (gap: GapFrame) => void;
  state: (state: ConnectionState) => void;
  serverError: (error: ErrorFrame) => void;
}

/** One successful (re)connection, for the reconnect history. */
export interface ConnectionRecord {
  /** When the connection was made, ms since the epoch. */
  at: number;
  node: string | null;
  url: string;
  transport: Transport;
  /** Time without a connection before this one, ms; null for the first connection. */
  downMs: number | null;
  /** Close code of the connection lost before this one; null for the first connection and
   * for a move from SSE back to WebSocket (downMs 0: the stream stayed up until then). */
  afterCode: number | null;
}

export interface ClientStats {
  state: ConnectionState;
  node: string | null;
  url: string | null;
  transport: Transport | null;
  reconnects: number;
  /** Attempts made since the last successful connection. */
  attempt: number;
  /** When the next attempt starts, ms since the epoch; null unless one is scheduled. */
  nextRetryAt: number | null;
  /** Origin `ts` to browser receive, ms, over the last samples; null before any. */
  latency: Percentiles | null;
  msgPerSecond: number;
  messages: number;
  /** Order violations the client detected itself: must stay 0. */
  gaps: number;
  /** `gap` notices from the gateway: data lost upstream. */
  upstreamGaps: number;
  duplicates: number;
  clockOffsetMs: number;
  rttMs: number | null;
  lastError: string | null;
  subscriptions: string[];
  /** The newest connections, oldest first (at most HISTORY_LENGTH). */
  history: ConnectionRecord[];
}

const SUBPROTOCOL = "tickwire.v1";
const MAX_PENDING_PINGS = 16;
const HISTORY_LENGTH = 20;

export class TickwireClient {
  private readonly env: Environment;
  private readonly urls: readonly string[];
  private readonly policy: BackoffPolicy;
  private readonly transport: "auto" | Transport;
  private readonly sseAfterFailures: number;
  private readonly livenessTimeoutMs: number;
  private readonly wsProbeMs: number;
  private readonly defaultHeartbeatMs: number;
  private readonly reportIntervalMs: number;
  private readonly immediateJitterMs: number;
  private token: string | undefined;

  private readonly book = new SubscriptionBook();
  private readonly clock = new ClockSync();
  private readonly latency = new SampleWindow(2048);
  private readonly rate = new RateMeter(3);
  private readonly reporter: TraceReporter;
  private readonly events = new Emitter<ClientEvents>();

  private state: ConnectionState = "closed";
  private link: Link | null = null;
  private urlIndex = 0;
  private attempt = 0;
  /** Failed handshakes in a row on a gateway that answered HTTP. */
  private blockedHandshakes = 0;
  /** SSE is used until the stream is lost or a side probe finds WebSocket working again. */
  private onSse = false;
  /** Bumped by teardown, so a liveness probe that answers after it is ignored. */
  private generation = 0;
  private lostAt: number | null = null;
  private lostCode: number | null = null;
  private readonly history: ConnectionRecord[] = [];
  private node: string | null = null;
  private nextRetryAt: number | null = null;
  private retryTimer: TimerHandle | null = null;
  private heartbeatTimer: TimerHandle | null = null;
  private reportTimer: TimerHandle | null = null;
  private probeTimer: TimerHandle | null = null;
  private probe: Link | null = null;
  private heartbeatMs: number;
  private lastReceivedAt = 0;
  private pingId = 0;
  private readonly pings = new Map<number, number>();
  private lastError: string | null = null;
  private readonly counts = { messages: 0, reconnects: 0, gaps: 0, upstreamGaps: 0, duplicates: 0 };

  constructor(options: TickwireOptions) {
    if (!options.urls.length) throw new Error("TickwireClient needs at least one gateway URL");
    this.urls = [...options.urls];
    this.env = defaultEnvironment(options.environment);
    this.policy = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.transport = options.transport ?? "auto";
    this.sseAfterFailures = options.sseAfterFailures ?? 2;
    this.livenessTimeoutMs = options.livenessTimeoutMs ?? 3000;
    this.wsProbeMs = options.wsProbeMs ?? 60_000;
    this.defaultHeartbeatMs = (options.heartbeatSeconds ?? 15) * 1000;
    this.heartbeatMs = this.defaultHeartbeatMs;
    this.reportIntervalMs = options.reportIntervalMs ?? 1000;
    this.immediateJitterMs = options.immediateJitterMs ?? 100;
    this.token = options.token;
    this.reporter = new TraceReporter(this.env.random);
    this.book.add(options.topics ?? []);
  }

  on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void {
    return this.events.on(event, listener);
  }

  start(): void {
    if (this.state !== "closed") return;
    this.setState("connecting");
    this.reportTimer = this.env.timers.setInterval(() => this.sendReport(), this.reportIntervalMs);
    this.connect();
  }

  close(): void {
    this.teardown();
    if (this.reportTimer !== null) this.env.timers.clearInterval(this.reportTimer);
    this.reportTimer = null;
    this.setState("closed");
  }

  /** Starts over after `failed`, or skips the wait while `reconnecting`. */
  retry(): void {
    if (this.state !== "failed" && this.state !== "reconnecting") return;
    this.teardown();
    this.attempt = 0;
    this.blockedHandshakes = 0;
    this.lastError = null;
    if (this.state === "failed") this.setState("connecting");
    this.connect();
  }

  subscribe(patterns: readonly string[]): void {
    const added = this.book.add(patterns);
    if (!added.length) return;
    if (this.link?.transport === "sse") this.reopen();
    else this.sendSubscribe(added);
  }

  unsubscribe(patterns: readonly string[]): void {
    const removed = this.book.remove(patterns);
    if (!removed.length) return;
    if (this.link?.transport === "sse") this.reopen();
    else this.link?.send({ type: "unsubscribe", topics: removed });
  }

  /** A fresh token for a long-lived connection, sent now and offered on later connects. */
  updateToken(token: string): void {
    this.token = token;
    this.link?.send({ type: "auth", token });
  }

  stats(): ClientStats {
    return {
      state: this.state,
      node: this.node,
      url: this.link?.url ?? null,
      transport: this.link?.transport ?? null,
      reconnects: this.counts.reconnects,
      attempt: this.attempt,
      nextRetryAt: this.nextRetryAt,
      latency: this.latency.percentiles(),
      msgPerSecond: this.rate.perSecond(this.env.now()),
      messages: this.counts.messages,
      gaps: this.counts.gaps,
      upstreamGaps: this.counts.upstreamGaps,
      duplicates: this.counts.duplicates,
      clockOffsetMs: this.clock.offsetMs,
      rttMs: this.clock.rttMs,
      lastError: this.lastError,
      subscriptions: this.book.patterns(),
      history: [...this.history],
    };
  }

  /** Latency sample counts per bucket (see SampleWindow.histogram). */
  latencyHistogram(edgesMs: readonly number[]): number[] {
    return this.latency.histogram(edgesMs);
  }

  // ---- connection lifecycle ------------------------------------------------------------

  private connect(): void {
    this.retryTimer = null;
    this.nextRetryAt = null;
    const url = this.currentUrl();
    const transport = this.chooseTransport();
    if (transport === null) {
      this.fail("neither WebSocket nor EventSource is available");
      return;
    }
    const events: LinkEvents = {
      opened: () => this.onOpened(),
      frame: (frame) => this.onFrame(frame),
      closed: (code, wasOpen) => this.onLost(transport, code, wasOpen),
    };
    try {
      this.link =
        transport === "ws"
          ? openWebSocketLink(this.env.WebSocket!, url, this.protocols(), events)
          : openEventSourceLink(this.env.EventSource!, sseUrlFor(url, this.book.patterns(), this.book.lowestSince(), this.book.epoch), events);
    } catch (error) {
      // A malformed URL or a blocked port throws from the constructor instead of closing.
      this.lastError = error instanceof Error ? error.message : String(error);
      this.onLost(transport, CloseCode.ABNORMAL, false);
    }
  }

  private chooseTransport(): Transport | null {
    const { WebSocket: ws, EventSource: es } = this.env;
    if (this.transport === "ws") return ws ? "ws" : null;
    if (this.transport === "sse") return es ? "sse" : null;
    if (!ws) return es ? "sse" : null;
    return es && this.onSse ? "sse" : "ws";
  }

  private protocols(): string[] {
    // Offered only with a token: a server that selects no subprotocol would otherwise make
    // the browser fail the handshake.
    return this.token ? [SUBPROTOCOL, `bearer.${this.token}`] : [];
  }

  private onOpened(): void {
    this.lastReceivedAt = this.env.now();
    if (this.link?.transport === "sse") {
      // SSE has no welcome: the open stream is the connection.
      this.markConnected();
      return;
    }
    this.sendSubscribe(this.book.patterns());
    // Armed before `welcome` so a server that accepts and then says nothing is noticed too.
    this.armHeartbeat();
  }

  private markConnected(): void {
    if (!this.link) return;
    const { transport, url } = this.link;
    // While connected this is an SSE stream reopened for new topics (the same connection),
    // or the move from SSE back to WebSocket: a new connection, made without an outage.
    const moved = this.state === "connected";
    if (!moved || this.history.at(-1)?.transport !== transport) this.record(transport, url, moved);
    this.lostAt = this.lostCode = null;
    this.attempt = 0;
    if (transport === "ws") this.blockedHandshakes = 0;
    this.lastError = null;
    this.setState("connected");
    if (transport === "sse" && this.transport === "auto" && this.env.WebSocket) this.scheduleProbe();
  }

  private record(transport: Transport, url: string, moved: boolean): void {
    const now = this.env.now();
    if (!moved && this.history.length) this.counts.reconnects++;
    this.history.push({
      at: now,
      node: this.node,
      url,
      transport,
      downMs: moved ? 0 : this.lostAt === null ? null : now - this.lostAt,
      afterCode: moved ? null : this.lostCode,
    });
    if (this.history.length > HISTORY_LENGTH) this.history.shift();
  }

  /** A fallen-back SSE connection keeps trying WebSocket on the side: a proxy that broke
   * it may have been fixed, and SSE costs the gateway more and cannot ping. */
  private scheduleProbe(): void {
    if (this.probeTimer !== null) return;
    this.probeTimer = this.env.timers.setTimeout(() => {
      this.probeTimer = null;
      const url = this.currentUrl();
      const done = (works: boolean) => {
        this.probe?.close(CloseCode.NORMAL);
        this.probe = null;
        if (this.link?.transport !== "sse") return;
        if (!works) {
          this.scheduleProbe();
          return;
        }
        this.onSse = false;
        this.reopen(); // over WebSocket now, resuming every subscription from its position
      };
      try {
        this.probe = openWebSocketLink(this.env.WebSocket!, url, this.protocols(), {
          opened: () => done(true),
          frame: () => undefined,
          closed: () => done(false),
        });
      } catch {
        done(false);
      }
    }, this.wsProbeMs);
  }

  private onLost(transport: Transport, code: number, wasOpen: boolean): void {
    if (this.state === "connected") {
      this.lostAt = this.env.now();
      this.lostCode = code;
    }
    this.teardown();
    if (code === CloseCode.POLICY) {
      this.fail("refused by the gateway (1008: auth, origin or permissions)");
      return;
    }
    if (transport === "ws" && !wasOpen && this.mayFallBack()) {
      this.checkLiveness();
      return;
    }
    // A lost SSE stream says nothing about WebSocket at the next gateway: try it first.
    if (transport === "sse") this.onSse = false;
    // A slow consumer may come straight back to the same replica; anything else tries the next.
    if (code !== CloseCode.SLOW_CONSUMER) this.nextUrl();
    const immediate = code === CloseCode.SLOW_CONSUMER || code === CloseCode.RESTART;
    this.scheduleReconnect(immediate);
  }

  private mayFallBack(): boolean {
    return this.transport === "auto" && this.env.EventSource !== undefined && this.env.fetch !== undefined;
  }

  private nextUrl(): void {
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
  }

  /** After a failed handshake: is it this gateway that is down, or WebSocket that is blocked? */
  private checkLiveness(): void {
    const generation = this.generation;
    this.setState("reconnecting");
    void probeLiveness(this.env.fetch!, this.currentUrl(), this.env.timers, this.livenessTimeoutMs).then((liveness) => {
      if (generation !== this.generation) return; // closed, retried or reconnected meanwhile
      if (liveness === "down") {
        this.blockedHandshakes = 0;
        this.nextUrl();
        this.scheduleReconnect(false);
        return;
      }
      this.blockedHandshakes++;
      if (this.blockedHandshakes < this.sseAfterFailures) {
        this.scheduleReconnect(false); // the same gateway, over WebSocket once more
        return;
      }
      this.lastError = "WebSocket blocked: the gateway answers HTTP but not the handshake";
      this.onSse = true;
      this.connect(); // at once: the gateway is up, only the transport changes
    });
  }

  private currentUrl(): string {
    return this.urls[this.urlIndex] ?? this.urls[0] ?? "";
  }

  private scheduleReconnect(immediate: boolean): void {
    if (this.attempt >= this.policy.maxAttempts) {
      this.fail(`gave up after ${this.attempt} attempts`);
      return;
    }
    // 4008 and 1012 lose nothing and say where to go, so only a small spread is added; an
    // immediate close again before a welcome falls back to the normal backoff.
    const delay =
      immediate && this.attempt === 0
        ? Math.floor(this.env.random() * this.immediateJitterMs)
        : fullJitterDelay(this.policy, this.attempt, this.env.random);
    this.attempt++;
    this.setState("reconnecting");
    this.nextRetryAt = this.env.now() + delay;
    this.retryTimer = this.env.timers.setTimeout(() => this.connect(), delay);
  }

  /** Reconnects at once over a fresh link (SSE carries its subscriptions in the URL). */
  private reopen(): void {
    this.teardown();
    this.connect();
  }

  private fail(reason: string): void {
    this.teardown();
    this.lastError = reason;
    this.setState("failed");
  }

  /** Stops the current link and every per-connection timer. */
  private teardown(): void {
    this.generation++;
    this.link?.close(CloseCode.NORMAL);
    this.link = null;
    this.node = null;
    this.pings.clear();
    if (this.retryTimer !== null) this.env.timers.clearTimeout(this.retryTimer);
    if (this.heartbeatTimer !== null) this.env.timers.clearInterval(this.heartbeatTimer);
    if (this.probeTimer !== null) this.env.timers.clearTimeout(this.probeTimer);
    this.retryTimer = this.heartbeatTimer = this.probeTimer = null;
    this.probe?.close(CloseCode.NORMAL);
    this.probe = null;
    this.nextRetryAt = null;
  }

  private setState(next: ConnectionState): void {
    if (next === this.state) return;
    if (!canTransition(this.state, next)) throw new Error(`TickwireClient: ${this.state} → ${next} is not a transition`);
    this.state = next;
    this.events.emit("state", next);
  }

  // ---- heartbeat and clock -------------------------------------------------------------

  private armHeartbeat(): void {
    if (this.heartbeatTimer !== null) this.env.timers.clearInterval(this.heartbeatTimer);
    // Pinging at half the heartbeat keeps pongs flowing on a quiet feed, so silence for two
    // heartbeats means the path is dead even if TCP has not noticed (no close event yet).
    this.heartbeatTimer = this.env.timers.setInterval(() => this.checkHeartbeat(), this.heartbeatMs / 2);
  }

  private checkHeartbeat(): void {
    if (this.env.now() - this.lastReceivedAt > 2 * this.heartbeatMs) {
      this.lastError = "heartbeat timeout";
      const transport = this.link?.transport ?? "ws";
      this.onLost(transport, CloseCode.ABNORMAL, true);
      return;
    }
    this.sendPing();
  }

  private sendPing(): void {
    const id = ++this.pingId;
    const ts = this.env.now();
    if (!this.link?.send({ type: "ping", id, ts })) return;
    this.pings.set(id, ts);
    if (this.pings.size > MAX_PENDING_PINGS) this.pings.delete(id - MAX_PENDING_PINGS);
  }

  // ---- frames --------------------------------------------------------------------------

  private onFrame(frame: ServerFrame): void {
    const now = this.env.now();
    this.lastReceivedAt = now;
    switch (frame.type) {
      case "msg":
        this.deliver(frame, now);
        break;
      case "batch":
        for (const msg of frame.msgs) this.deliver(msg, now);
        break;
      case "welcome":
        this.node = typeof frame.node === "string" ? frame.node : null;
        // Over SSE the client cannot ping, so neither heartbeat nor clock sync applies.
        if (this.link?.transport !== "ws") break;
        this.heartbeatMs = typeof frame.heartbeat === "number" && frame.heartbeat > 0 ? frame.heartbeat * 1000 : this.defaultHeartbeatMs;
        this.clock.newPeer();
        this.armHeartbeat();
        this.sendPing();
        this.markConnected();
        break;
      case "subscribed":
        for (const pattern of this.book.confirm(frame.topics, frame.seq, frame.epoch, frame.recovered)) {
          this.events.emit("reset", pattern);
        }
        break;
      case "pong": {
        const sent = typeof frame.id === "number" ? this.pings.get(frame.id) : undefined;
        if (sent !== undefined && typeof frame.ts === "number") {
          this.pings.delete(frame.id as number);
          this.clock.sample(sent, now, frame.ts);
        }
        break;
      }
      case "gap":
        this.counts.upstreamGaps++;
        this.events.emit("gap", frame);
        break;
      case "error":
        this.lastError = `${frame.code ?? "error"}: ${frame.message ?? ""}`;
        this.events.emit("serverError", frame);
        break;
    }
  }

  private deliver(msg: MsgFrame, now: number): void {
    const verdict = this.book.accept(msg.topic, msg.seq);
    if (verdict === "duplicate") {
      this.counts.duplicates++;
      return;
    }
    if (verdict === "unsubscribed") return;
    if (verdict === "deliver-out-of-order") this.counts.gaps++;
    this.counts.messages++;
    this.rate.add(now);
    const serverNow = this.clock.serverNow(now);
    if (typeof msg.ts === "number") {
      const latency = serverNow - msg.ts / 1000;
      this.latency.add(latency);
      this.reporter.latency(latency);
    }
    if (typeof msg.trace === "string") this.reporter.receipt(msg.seq, msg.trace, serverNow * 1000);
    this.events.emit("message", msg);
  }

  private sendSubscribe(patterns: readonly string[]): void {
    if (!patterns.length || this.link?.transport !== "ws") return;
    const frame: SubscribeFrame = { type: "subscribe", topics: [...patterns] };
    const since = this.book.sinceFor(patterns);
    if (since) {
      frame.since = since;
      if (this.book.epoch !== null) frame.epoch = this.book.epoch;
    }
    this.link.send(frame);
  }

  private sendReport(): void {
    if (this.link?.transport !== "ws" || this.state !== "connected") return;
    const report = this.reporter.take();
    if (report) this.link.send(report);
  }
}
