import { describe, expect, it } from "vitest";
import type { MsgFrame } from "../../src/client/protocol";
import { FrameBuffer } from "../../src/market/frameBuffer";
import { MarketStore } from "../../src/market/store";

const NOW = 1_700_000_000_000;
const tick = (seq: number, symbol: string, last: number, extra: object = {}): MsgFrame => ({
  topic: `ticks.${symbol}`,
  seq,
  ts: (NOW + seq) * 1000,
  data: { symbol, bid: last - 0.5, ask: last + 0.5, last, ...extra },
});
const trade = (seq: number, symbol: string): MsgFrame => ({ topic: `trades.${symbol}`, seq, data: { symbol, price: 10, size: 1, side: "buy" } });

describe("FrameBuffer", () => {
  it("drains everything that arrived in a frame in one call", () => {
    const frames: (() => void)[] = [];
    const drained: number[][] = [];
    const buffer = new FrameBuffer((msgs) => drained.push(msgs.map((m) => m.seq)), (cb) => frames.push(cb));
    buffer.push(tick(1, "A", 1));
    buffer.push(tick(2, "A", 2));
    expect(frames).toHaveLength(1);
    frames[0]?.();
    buffer.push(tick(3, "A", 3));
    frames[1]?.();
    expect(drained).toEqual([[1, 2], [3]]);
  });

  it("drains early when frames stop coming (hidden tab) instead of growing", () => {
    const drained: number[] = [];
    const buffer = new FrameBuffer((msgs) => drained.push(msgs.length), () => undefined, 3);
    for (let seq = 1; seq <= 7; seq++) buffer.push(tick(seq, "A", seq));
    expect(drained).toEqual([3, 3]);
  });
});

describe("MarketStore", () => {
  it("updates each symbol once per frame with its newest tick and keeps every trade counted", () => {
    const store = new MarketStore({ tape: 3, points: 100 });
    let notified = 0;
    store.subscribe(() => notified++);
    store.apply([tick(1, "B", 10), tick(2, "A", 5), trade(3, "A"), tick(4, "B", 12), trade(5, "B"), trade(6, "A"), trade(7, "A")], NOW);
    expect(notified).toBe(1);
    expect(store.tickers().map((r) => [r.symbol, r.last, r.version])).toEqual([
      ["A", 5, 1],
      ["B", 12, 1],
    ]);
    expect(store.tradeCount).toBe(4);
    expect(store.trades().map((t) => t.symbol)).toEqual(["A", "A", "B"]);
    // The first price applied for B was 12 (10 was superseded within the frame).
    store.apply([tick(8, "B", 11)], NOW);
    expect(store.tickers()[1]).toMatchObject({ last: 11, direction: "down", change: -1, version: 2 });
  });

  it("tolerates missing fields and drops rows of a reset topic", () => {
    const store = new MarketStore();
    store.apply([{ topic: "ticks.X", seq: 1 }, { topic: "ticks.Y", seq: 2, data: { bid: "1.5", ask: 2.5 } }], NOW);
    expect(store.tickers().map((r) => [r.symbol, r.last])).toEqual([
      ["X", null],
      ["Y", 2],
    ]);
    expect(store.points("Y")).toEqual([{ time: Math.floor(NOW / 1000), value: 2 }]);
    store.resetTopic("ticks.*");
    expect(store.tickers()).toEqual([]);
    expect(store.points("Y")).toEqual([]);
  });

  it("counts a message that reaches it again as a duplicate and leaves the screen as it was", () => {
    // 1. seq 2 then seq 2 again and an older 1 on the same topic: both are duplicates here.
    const store = new MarketStore();
    store.apply([tick(2, "A", 5)], NOW);
    store.apply([tick(2, "A", 6), tick(1, "A", 7), trade(3, "A")], NOW);
    expect(store.duplicates).toBe(2);
    expect(store.tickers()[0]?.last).toBe(5);
    expect(store.tradeCount).toBe(1);
    // 2. After a reset (a new epoch may restart the sequence) a low seq is new again.
    store.resetTopic("ticks.*");
    store.apply([tick(1, "A", 8)], NOW);
    expect(store.duplicates).toBe(2);
    expect(store.tickers()[0]?.last).toBe(8);
  });
});
