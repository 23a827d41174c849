import { describe, expect, it } from "vitest";
import { backoffCeiling, fullJitterDelay } from "../../src/client/backoff";
import { ClockSync } from "../../src/client/clock";
import { SampleWindow, percentile } from "../../src/client/metrics";
import { parseServerFrame } from "../../src/client/protocol";
import { SubscriptionBook } from "../../src/client/subscriptions";
import { topicMatches } from "../../src/client/topics";

describe("full-jitter backoff", () => {
  const policy = { baseMs: 250, capMs: 4000, maxAttempts: 10 };

  it("stays within [0, min(cap, base·2^n)) for any random value", () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = backoffCeiling(policy, attempt);
      expect(ceiling).toBe(Math.min(4000, 250 * 2 ** attempt));
      for (const r of [0, 0.1, 0.5, 0.9, 0.999999]) {
        const delay = fullJitterDelay(policy, attempt, () => r);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(ceiling);
      }
    }
    // The cap keeps every wait under the 5 s reconnect promise.
    expect(fullJitterDelay(policy, 1000, () => 0.999999)).toBeLessThan(5000);
  });
});

describe("topicMatches", () => {
  it.each([
    ["ticks.*", "ticks.AAPL", true],
    ["ticks.*", "ticks.AAPL.x", false],
    ["ticks.*", "trades.AAPL", false],
    ["ticks.>", "ticks.AAPL.x", true],
    ["ticks.>", "ticks", false],
    ["ticks.AAPL", "ticks.AAPL", true],
    ["*.AAPL", "trades.AAPL", true],
  ])("%s vs %s → %s", (pattern, topic, expected) => {
    expect(topicMatches(pattern, topic)).toBe(expected);
  });
});

describe("SubscriptionBook", () => {
  it("keeps one position per pattern and drops seqs already seen per topic", () => {
    const book = new SubscriptionBook();
    book.add(["ticks.*", "ticks.AAPL"]);
    expect(book.accept("ticks.AAPL", 5)).toBe("deliver");
    expect(book.accept("ticks.MSFT", 7)).toBe("deliver");
    expect(book.accept("ticks.AAPL", 5)).toBe("duplicate");
    expect(book.accept("trades.AAPL", 8)).toBe("unsubscribed");
    expect(book.sinceFor(book.patterns())).toEqual({ "ticks.*": 7, "ticks.AAPL": 5 });
    expect(book.lowestSince()).toBe(5);
  });

  it("forgets topics no pattern covers any more, so a new subscription gets its snapshot", () => {
    const book = new SubscriptionBook();
    book.add(["ticks.*"]);
    book.accept("ticks.AAPL", 5);
    book.remove(["ticks.*"]);
    book.add(["ticks.*"]);
    expect(book.accept("ticks.AAPL", 5)).toBe("deliver");
  });
});

describe("ClockSync", () => {
  it("takes the first sample from a new peer whatever its RTT", () => {
    const clock = new ClockSync();
    clock.sample(0, 10, 1_005_000);
    expect(clock.offsetMs).toBe(1000);
    clock.newPeer();
    clock.sample(100, 300, 2_200_000);
    expect(clock.offsetMs).toBe(2000);
    expect(clock.rttMs).toBe(200);
  });
});

describe("metrics", () => {
  it("computes nearest-rank percentiles over a bounded window", () => {
    const window = new SampleWindow(100);
    for (let i = 1; i <= 200; i++) window.add(i);
    expect(window.values()).toHaveLength(100);
    expect(window.percentiles()).toEqual({ n: 100, p50: 150, p95: 195, p99: 199 });
    expect(percentile([], 50)).toBeNaN();
    expect(window.histogram([120, 180])).toEqual([19, 60, 21]);
  });
});

describe("parseServerFrame", () => {
  it("ignores junk and keeps only well-formed msgs of a batch", () => {
    expect(parseServerFrame("not json")).toBeNull();
    expect(parseServerFrame('{"type":"what"}')).toBeNull();
    expect(parseServerFrame('{"type":"msg","topic":"t"}')).toBeNull();
    expect(parseServerFrame('{"type":"batch","msgs":[{"topic":"t","seq":1},{"seq":2},null]}')).toEqual({
      type: "batch",
      msgs: [{ topic: "t", seq: 1 }],
    });
  });
});
