/**
 * The dashboard's market state, updated once per animation frame from the batch of messages
 * that arrived since the last one: each ticker once with its newest value, every trade
 * counted and the newest kept in a bounded tape.
 */

import type { MsgFrame } from "../client/protocol";
import { topicMatches } from "../client/topics";
import { numberOr, record, symbolOf, type PricePoint, type TickerRow, type Trade } from "./model";

export interface StoreLimits {
  /** Trades kept for the tape; the total count includes the ones that fell off. */
  tape: number;
  /** Chart points kept per symbol (one per second). */
  points: number;
}

const DEFAULT_LIMITS: StoreLimits = { tape: 200, points: 3600 };

export class MarketStore {
  private readonly rows = new Map<string, TickerRow>();
  private readonly opens = new Map<string, number>();
  private readonly series = new Map<string, PricePoint[]>();
  private sortedRows: TickerRow[] = [];
  private tape: Trade[] = [];
  private tradeKey = 0;
  private version = 0;
  private readonly listeners = new Set<() => void>();
  /** Highest seq applied per topic, to check what reaches the screen independently of the client. */
  private readonly lastSeq = new Map<string, number>();
  tradeCount = 0;
  /** Messages whose seq was not above the last one applied on their topic: must stay 0. */
  duplicates = 0;

  constructor(private readonly limits: StoreLimits = DEFAULT_LIMITS) {}

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getVersion = (): number => this.version;

  tickers(): readonly TickerRow[] {
    return this.sortedRows;
  }

  trades(): readonly Trade[] {
    return this.tape;
  }

  points(symbol: string): readonly PricePoint[] {
    return this.series.get(symbol) ?? [];
  }

  /** Applies one frame's messages, in arrival order, and notifies once. */
  apply(msgs: readonly MsgFrame[], nowMs: number): void {
    if (!msgs.length) return;
    const newestTick = new Map<string, MsgFrame>();
    const newTrades: Trade[] = [];
    for (const msg of msgs) {
      if (msg.seq <= (this.lastSeq.get(msg.topic) ?? 0)) {
        this.duplicates++;
        continue;
      }
      this.lastSeq.set(msg.topic, msg.seq);
      const kind = msg.topic.slice(0, msg.topic.indexOf("."));
      const data = record(msg.data);
      if (kind === "ticks") newestTick.set(symbolOf(msg.topic, data), msg);
      else if (kind === "trades") newTrades.push(this.trade(msg, data, nowMs));
    }
    for (const [symbol, msg] of newestTick) this.updateTicker(symbol, msg, nowMs);
    if (newestTick.size) this.sortedRows = [...this.rows.values()].sort((a, b) => a.symbol.localeCompare(b.symbol));
    if (newTrades.length) {
      this.tradeCount += newTrades.length;
      this.tape = [...newTrades.reverse(), ...this.tape].slice(0, this.limits.tape);
    }
    this.changed();
  }

  /** Drops what came from topics matching `pattern` (continuity lost or unsubscribed). */
  resetTopic(pattern: string): void {
    // A reset may restart the sequence (a new stream epoch): lower seqs are not duplicates then.
    for (const topic of this.lastSeq.keys()) if (topicMatches(pattern, topic)) this.lastSeq.delete(topic);
    for (const [symbol, row] of this.rows) {
      if (!topicMatches(pattern, row.topic)) continue;
      this.rows.delete(symbol);
      this.opens.delete(symbol);
      this.series.delete(symbol);
    }
    this.sortedRows = this.sortedRows.filter((row) => this.rows.has(row.symbol));
    this.changed();
  }

  private trade(msg: MsgFrame, data: Record<string, unknown>, nowMs: number): Trade {
    return {
      key: ++this.tradeKey,
      symbol: symbolOf(msg.topic, data),
      price: numberOr(data.price),
      size: numberOr(data.size ?? data.qty),
      side: typeof data.side === "string" ? data.side : null,
      at: typeof msg.ts === "number" ? msg.ts / 1000 : nowMs,
    };
  }

  private updateTicker(symbol: string, msg: MsgFrame, nowMs: number): void {
    const data = record(msg.data);
    const previous = this.rows.get(symbol);
    const bid = numberOr(data.bid, previous?.bid ?? null);
    const ask = numberOr(data.ask, previous?.ask ?? null);
    const mid = bid !== null && ask !== null ? (bid + ask) / 2 : null;
    const last = numberOr(data.last ?? data.price, mid ?? previous?.last ?? null);
    if (last !== null && !this.opens.has(symbol)) this.opens.set(symbol, last);
    const open = this.opens.get(symbol);
    const change = numberOr(data.change, last !== null && open !== undefined ? last - open : null);
    const moved = previous?.last != null && last !== null && last !== previous.last;
    this.rows.set(symbol, {
      symbol,
      topic: msg.topic,
      bid,
      ask,
      last,
      change,
      direction: moved ? (last > (previous.last ?? last) ? "up" : "down") : (previous?.direction ?? null),
      version: (previous?.version ?? 0) + 1,
    });
    if (last !== null) this.addPoint(symbol, typeof msg.ts === "number" ? msg.ts / 1000 : nowMs, last);
  }

  private addPoint(symbol: string, ms: number, value: number): void {
    const time = Math.floor(ms / 1000);
    let points = this.series.get(symbol);
    if (!points) this.series.set(symbol, (points = []));
    const tail = points[points.length - 1];
    // The chart needs ascending times: a point in the same (or an earlier, out-of-order
    // origin) second replaces the tail instead of being appended.
    if (tail && time <= tail.time) tail.value = value;
    else points.push({ time, value });
    if (points.length > this.limits.points) points.splice(0, points.length - this.limits.points);
  }

  private changed(): void {
    this.version++;
    for (const listener of this.listeners) listener();
  }
}
